//! Families of problems (learned_optimization's `TaskFamily`): what a learned optimizer is
//! meta-trained on. A family draws a problem and an initial point from a generator; the
//! meta-trainer derives that generator from (seed, meta-step, index), so a draw can be repeated
//! exactly (a resumed run, a particle restored from a checkpoint).

use super::data::{Batches, Subset};
use super::{Classifier, InitialPoint, Problem, ProblemError};
use crate::models::Activation;
use crate::tape::Scalar;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which draw of a family: the meta-step it is made for and its index within that meta-step
/// (a trajectory, or a particle starting a new inner problem).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    /// The meta-step.
    pub meta_step: usize,
    /// The index within the meta-step.
    pub index: usize,
}

/// A problem and the initial point to start from.
#[derive(Clone)]
pub struct Sampled<T: Scalar> {
    /// The problem.
    pub problem: Arc<dyn Problem<T>>,
    /// The initial point (`dim x 1`).
    pub x0: DMatrix<T>,
}

impl<T: Scalar> Sampled<T> {
    /// `problem` from `x0`; errors if `x0` is not a `dim x 1` column.
    pub fn new(problem: impl Problem<T> + 'static, x0: DMatrix<T>) -> Result<Self, ProblemError> {
        if x0.shape() != (problem.dim(), 1) {
            return Err(ProblemError::new(
                "initial point",
                format!(
                    "x0 is {:?}, the problem has dimension {}",
                    x0.shape(),
                    problem.dim()
                ),
            ));
        }
        Ok(Sampled {
            problem: Arc::new(problem),
            x0,
        })
    }
}

/// A distribution over problems and initial points.
///
/// `Sync` because the trajectories of a meta-step are drawn and run in parallel. A draw must
/// depend only on `draw` and the generator (so it can be repeated).
pub trait ProblemFamily<T: Scalar>: Sync {
    /// A short name for progress lines and reports.
    fn name(&self) -> String;
    /// The problem and initial point of `draw`, from `rng`.
    fn sample(&self, draw: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError>;
}

/// A family given by a closure: the quickest way to meta-train on problems of one's own.
///
/// ```
/// use convergent_l2o::problems::{FamilyFn, InitialPoint, ProblemFamily, Quadratic, Sampled};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let family = FamilyFn::new("quadratics", |_draw, rng: &mut StdRng| {
///     let q = Quadratic::<f64>::random(4, 0.1, 1.0, rng);
///     Sampled::new(q, InitialPoint::Normal { std: 1.0 }.sample(4, rng))
/// });
/// let draw = convergent_l2o::problems::Draw { meta_step: 0, index: 0 };
/// let s = family.sample(draw, &mut StdRng::seed_from_u64(0)).unwrap();
/// assert_eq!(s.x0.shape(), (4, 1));
/// ```
pub struct FamilyFn<F> {
    name: String,
    sample: F,
}

impl<F> FamilyFn<F> {
    /// The family called `name` drawing with `sample`.
    pub fn new(name: &str, sample: F) -> Self {
        FamilyFn {
            name: name.to_string(),
            sample,
        }
    }
}

impl<T, F> ProblemFamily<T> for FamilyFn<F>
where
    T: Scalar,
    F: Fn(Draw, &mut StdRng) -> Result<Sampled<T>, ProblemError> + Sync,
{
    fn name(&self) -> String {
        self.name.clone()
    }
    fn sample(&self, draw: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError> {
        (self.sample)(draw, rng)
    }
}

/// The paper's meta-training distribution: the classifier on a data split, trajectory `i` of
/// meta-step `k` starting at the minibatch where the previous trajectory ended (jax_ref.py's
/// `cursor`, back to 0 when fewer than `horizon` batches remain), `x0` from `initial`.
#[derive(Clone)]
pub struct SequentialClassifiers<T: Scalar> {
    batches: Arc<Batches<T>>,
    activation: Activation,
    per_step: usize,
    horizon: usize,
    initial: InitialPoint,
}

impl<T: Scalar> SequentialClassifiers<T> {
    /// `per_step` trajectories of `horizon` steps per meta-step on `data` in minibatches of
    /// `batch_size` (the paper: the meta-train split, tanh, 128, 10, 50, U[0, 0.01]); errors
    /// if the split holds no full minibatch or a count is zero.
    pub fn new(
        data: Subset<'_>,
        activation: Activation,
        batch_size: usize,
        per_step: usize,
        horizon: usize,
        initial: InitialPoint,
    ) -> Result<Self, ProblemError> {
        if per_step == 0 || horizon == 0 {
            return Err(ProblemError::new(
                "sequential classifiers",
                format!("per_step = {per_step} and horizon = {horizon} must be positive"),
            ));
        }
        Ok(SequentialClassifiers {
            batches: Arc::new(Batches::new(data, batch_size)?),
            activation,
            per_step,
            horizon,
            initial,
        })
    }

    /// The first minibatch of global trajectory `j` (derived, not stored, so a resumed run sees
    /// the same minibatches).
    pub fn start(&self, j: usize) -> usize {
        let batches = self.batches.len();
        let (mut cursor, mut start) = (0, 0);
        // The cursor cycles with a period of at most `batches` trajectories.
        let period = (batches / self.horizon).max(1);
        for _ in 0..=(j % period) {
            if cursor + self.horizon > batches {
                cursor = 0;
            }
            start = cursor;
            cursor += self.horizon;
        }
        start
    }
}

impl<T: Scalar> ProblemFamily<T> for SequentialClassifiers<T> {
    fn name(&self) -> String {
        format!("{} classifier on sequential minibatches", self.activation)
    }
    fn sample(&self, draw: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError> {
        let j = draw.meta_step * self.per_step + draw.index;
        let problem =
            Classifier::with_batches(self.batches.clone(), self.activation, self.start(j));
        let x0 = self.initial.sample(problem.dim(), rng);
        Ok(Sampled {
            problem: Arc::new(problem),
            x0,
        })
    }
}
