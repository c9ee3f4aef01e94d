//! Composite problems `F(x) = f(x) + ρ |x|_1` with a smooth `f` (the benchmarks of Liu et al.,
//! ICML 2023, "Towards constituting mathematical structures for L2O"): LASSO and
//! ℓ1-regularized logistic regression, reference optima by long FISTA runs, the relative
//! error metric, and meta-training of [`crate::optim::L2oPa`].

mod lasso;
mod logistic;
mod train;

pub use lasso::{Lasso, LassoConfig};
pub use logistic::{L1Logistic, LogisticConfig};
pub use train::{pa_meta_loss, PaError, PaStepReport, PaTrainConfig, PaTrainer};

use crate::ops::soft_threshold_matrix;
use crate::optim::ProxGradient;
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use std::fmt;

/// `F = f + ρ |.|_1` with `f` convex and `L`-smooth, one instance per object.
pub trait CompositeProblem<T: Scalar> {
    /// Number of variables `n` (the point is an `n x 1` column).
    fn dim(&self) -> usize;
    /// The weight `ρ` of the ℓ1 term.
    fn rho(&self) -> f64;
    /// The gradient Lipschitz constant as the original code uses it (step size `0.9999 / L`).
    fn lipschitz(&self) -> f64;
    /// `f(x)` (1 x 1), recorded on `x`'s tape.
    fn smooth_var<'t>(&self, x: Var<'t, T>) -> Var<'t, T>;
    /// `∇f(x)` written with recording ops, so it can be differentiated again.
    fn smooth_grad_var<'t>(&self, x: Var<'t, T>) -> Var<'t, T>;
    /// `f(x)`, unrecorded.
    fn smooth(&self, x: &DMatrix<T>) -> T;
    /// `∇f(x)`, unrecorded.
    fn smooth_grad(&self, x: &DMatrix<T>) -> DMatrix<T>;

    /// `F(x) = f(x) + ρ |x|_1`, unrecorded.
    fn objective(&self, x: &DMatrix<T>) -> T {
        self.smooth(x) + T::cast(self.rho()) * x.iter().fold(T::zero(), |a, v| a + v.abs())
    }
    /// `F(x)` (1 x 1) on `x`'s tape.
    fn objective_var<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        self.smooth_var(x) + x.abs().sum().scale(T::cast(self.rho()))
    }
    /// `prox_{step ρ |.|_1}(v)`: soft-thresholding at `step ρ`.
    fn prox(&self, v: &DMatrix<T>, step: T) -> DMatrix<T> {
        soft_threshold_matrix(v, step * T::cast(self.rho()))
    }
    /// The original code's step size `0.9999 / L`.
    fn step_size(&self) -> f64 {
        0.9999 / self.lipschitz()
    }
}

/// An invalid problem configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ProblemError {
    /// The problem family.
    pub problem: &'static str,
    /// What is wrong.
    pub detail: String,
}

impl fmt::Display for ProblemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.problem, self.detail)
    }
}

impl std::error::Error for ProblemError {}

/// Checks the sizes shared by both generators: positive rows and columns, `sparsity <= cols`,
/// a finite `rho >= 0`.
pub(crate) fn check_sizes(
    problem: &'static str,
    rows: usize,
    cols: usize,
    sparsity: usize,
    rho: f64,
) -> Result<(), ProblemError> {
    let err = |detail: String| Err(ProblemError { problem, detail });
    if rows == 0 || cols == 0 {
        return err(format!("W is {rows} x {cols}; both sizes must be positive"));
    }
    if sparsity > cols {
        return err(format!(
            "sparsity {sparsity} exceeds the dimension {cols} of x*"
        ));
    }
    if !(rho.is_finite() && rho >= 0.0) {
        return err(format!("rho = {rho} must be finite and >= 0"));
    }
    Ok(())
}

/// A `cols x 1` vector with `sparsity` N(0, 1) entries at random positions.
pub(crate) fn sparse_normal<T: Scalar>(
    cols: usize,
    sparsity: usize,
    rng: &mut impl rand::Rng,
) -> DMatrix<T> {
    use rand_distr::{Distribution, StandardNormal};
    let support = rand::seq::index::sample(rng, cols, sparsity);
    let mut x = DMatrix::zeros(cols, 1);
    for i in support.iter() {
        let v: f64 = StandardNormal.sample(rng);
        x[i] = T::cast(v);
    }
    x
}

/// The largest singular value `|W|_2`.
pub(crate) fn spectral_norm<T: Scalar>(w: &DMatrix<T>) -> f64 {
    w.clone()
        .singular_values()
        .iter()
        .fold(0.0, |m, s| f64::max(m, s.as_f64()))
}

/// The reference optimum `F*`: the smallest objective over `iterations` FISTA steps from 0
/// (the original code uses 5000), `F(0)` included.
pub fn reference_optimum<T: Scalar, P: CompositeProblem<T> + ?Sized>(
    problem: &P,
    iterations: usize,
) -> f64 {
    let mut fista = ProxGradient::fista(problem);
    let mut best = problem.objective(fista.x()).as_f64();
    for _ in 0..iterations {
        fista.step(problem);
        best = best.min(problem.objective(fista.x()).as_f64());
    }
    best
}

/// The benchmark metric `(F(x) - F*) / F*`.
pub fn relative_error(objective: f64, optimum: f64) -> f64 {
    (objective - optimum) / optimum
}
