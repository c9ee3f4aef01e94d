//! Optimizees: one [`Problem`] trait for every objective an optimizer can run on, families of
//! problems to meta-train on ([`ProblemFamily`], learned_optimization's `TaskFamily`), initial
//! points, and the data they read.
//!
//! A user writes a problem with two methods (its dimension and its loss on the tape); the
//! optional ones (smoothness, infimum, the ℓ1 weight of a composite objective, a plain
//! value-and-gradient) default to "unknown", "none" or the tape.
//!
//! ```
//! use convergent_l2o::problems::Problem;
//! use convergent_l2o::tape::{Scalar, Var};
//! use nalgebra::DMatrix;
//!
//! /// f(x) = |x|² / 2 in `n` dimensions.
//! struct HalfSquare(usize);
//!
//! impl<T: Scalar> Problem<T> for HalfSquare {
//!     fn dim(&self) -> usize {
//!         self.0
//!     }
//!     fn loss<'t>(&self, x: Var<'t, T>, _step: usize) -> Var<'t, T> {
//!         x.square().sum().scale(T::cast(0.5))
//!     }
//!     fn smoothness(&self) -> Option<f64> {
//!         Some(1.0)
//!     }
//! }
//!
//! let (f, g) = Problem::<f64>::value_and_grad(&HalfSquare(2), &DMatrix::from_element(2, 1, 3.0), 0);
//! assert_eq!((f, g[0]), (9.0, 3.0));
//! ```

mod classifier;
mod convex;
pub mod data;
mod family;
mod initial;
mod l1_logistic;
mod lasso;
mod mlp_classifier;
mod mlp_family;
mod shuffled;
mod smooth;

pub use classifier::{Classifier, ClassifierMetrics, ClassifierShape};
pub use convex::{standard_normal_point, LoaQuadratics, Ridge, SyntheticLogistic};
pub use family::{Draw, FamilyFn, ProblemFamily, Sampled, SequentialClassifiers};
pub use initial::InitialPoint;
pub use l1_logistic::{L1Logistic, LogisticConfig};
pub use lasso::{relative_error, Lasso, LassoConfig};
pub use mlp_classifier::{
    load_dataset, minibatches, MlpClassifier, MlpMetrics, MlpShape, PixelNormalization,
};
pub use mlp_family::{MlpFamily, MlpFamilyConfig};
pub use shuffled::ShuffledClassifiers;
pub use smooth::{Logistic, Quadratic};

use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use std::fmt;

/// An objective `F(x) = f(x) + ρ |x|_1` over `dim`-dimensional columns, with `f` given on the
/// tape (stochastic problems let step `t` see minibatch `t`) and `ρ = 0` unless the problem is
/// composite.
///
/// `Send + Sync` so that runs on one problem can go in parallel and problems can be shared.
pub trait Problem<T: Scalar>: Send + Sync {
    /// Number of variables (points are `dim x 1` columns).
    fn dim(&self) -> usize;

    /// The smooth part `f(x)` at inner step `t`, recorded on `x`'s tape (1 x 1).
    fn loss<'t>(&self, x: Var<'t, T>, step: usize) -> Var<'t, T>;

    /// A short name for tables and error messages.
    fn name(&self) -> String {
        "problem".into()
    }

    /// The Lipschitz constant β of `∇f`, if known (an upper bound is fine).
    fn smoothness(&self) -> Option<f64> {
        None
    }

    /// A lower bound μ > 0 on the curvature of `f` (strong convexity), if known.
    fn strong_convexity(&self) -> Option<f64> {
        None
    }

    /// `inf F`, if known.
    fn infimum(&self) -> Option<f64> {
        None
    }

    /// Sizes of the tensors the flat `dim x 1` column concatenates, in order (a network's
    /// weights and biases; per-tensor normalizations read them); one tensor by default.
    fn tensor_sizes(&self) -> Vec<usize> {
        vec![self.dim()]
    }

    /// The weight `ρ >= 0` of the ℓ1 term of a composite objective (0: smooth).
    fn l1_weight(&self) -> f64 {
        0.0
    }

    /// `f(x)` and `∇f(x)` at step `t` on `x`'s tape (`x` must be differentiable: a `param` or
    /// computed from one); the gradient is recorded, so differentiable again, when
    /// `create_graph`. Problems with a cheaper closed form of the gradient override it (and
    /// write it with recording ops).
    fn loss_and_grad<'t>(
        &self,
        x: Var<'t, T>,
        step: usize,
        create_graph: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let f = self.loss(x, step);
        let g = x.tape().grad(&[f], &[x], create_graph)[0];
        (f, g)
    }

    /// `f(x)` and `∇f(x)` at step `t`, off the tape (line searches, baselines, reference runs).
    fn value_and_grad(&self, x: &DMatrix<T>, step: usize) -> (f64, DMatrix<T>) {
        let tape = Tape::new();
        let xv = tape.param(x.clone());
        let f = self.loss(xv, step);
        let g = tape.grad(&[f], &[xv], false)[0].value();
        (f.scalar().as_f64(), g)
    }

    /// `F(x) = f(x) + ρ |x|_1` at step `t`, off the tape.
    fn objective(&self, x: &DMatrix<T>, step: usize) -> f64 {
        let tape = Tape::new();
        let f = tape.no_grad(|| self.loss(tape.constant(x.clone()), step).scalar().as_f64());
        f + self.l1_weight() * x.iter().map(|v| v.as_f64().abs()).sum::<f64>()
    }

    /// `F(x)` at step `t` on `x`'s tape (1 x 1).
    fn objective_var<'t>(&self, x: Var<'t, T>, step: usize) -> Var<'t, T> {
        let f = self.loss(x, step);
        let rho = self.l1_weight();
        if rho == 0.0 {
            f
        } else {
            f + x.abs().sum().scale(T::cast(rho))
        }
    }

    /// `prox_{s ρ |.|_1}(v)` for per-coordinate step sizes `s` (a column, or 1 x 1 for one
    /// step size): soft-thresholding at `s ρ`, differentiable in `v` and `s`. The identity for
    /// a smooth problem.
    fn prox_var<'t>(&self, v: Var<'t, T>, steps: Var<'t, T>) -> Var<'t, T> {
        let rho = self.l1_weight();
        if rho == 0.0 {
            v
        } else {
            v.soft_threshold(steps.scale(T::cast(rho)))
        }
    }
}

/// An invalid problem: a configuration or data that cannot define one.
#[derive(Clone, Debug, PartialEq)]
pub struct ProblemError {
    /// The problem family.
    pub problem: &'static str,
    /// What is wrong.
    pub detail: String,
}

impl ProblemError {
    /// An error of `problem` saying `detail`.
    pub fn new(problem: &'static str, detail: impl Into<String>) -> Self {
        ProblemError {
            problem,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ProblemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.problem, self.detail)
    }
}

impl std::error::Error for ProblemError {}

/// Whether every entry is finite; without an early exit the check runs vectorized (finite
/// values are the common case).
pub fn all_finite<T: Scalar>(m: &DMatrix<T>) -> bool {
    m.as_slice().iter().fold(true, |ok, v| ok & v.is_finite())
}

/// How many rows of `outputs` (one per sample) have their largest entry first at the sample's
/// label (the paper's argmax rule; ties, like ReLU outputs at 0, go to the first class, as
/// `torch.argmax`).
pub(crate) fn correct_by_argmax<T: Scalar>(outputs: &DMatrix<T>, labels: &[usize]) -> usize {
    outputs
        .row_iter()
        .zip(labels)
        .filter(|(row, &label)| {
            let mut best = 0;
            for j in 1..row.len() {
                if row[j] > row[best] {
                    best = j;
                }
            }
            best == label
        })
        .count()
}
