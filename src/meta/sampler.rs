//! The paper's meta-training distribution as a [`TaskSampler`]: the classifier on sequential
//! minibatches, each trajectory starting where the previous one ended.

use super::{Classifier, InitialPoint, Task, TaskSampler};
use crate::meta::data::{Batches, Subset};
use crate::models::Activation;
use crate::tape::Scalar;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use std::sync::Arc;

/// The paper's meta-training tasks: the classifier on a data split, trajectory `i` of
/// meta-step `k` starting at the minibatch where the previous trajectory ended (jax_ref.py's
/// `cursor`, back to 0 when fewer than `horizon` batches remain), `x0` from `initial`.
#[derive(Clone)]
pub struct SequentialClassifierTasks<T: Scalar> {
    batches: Arc<Batches<T>>,
    activation: Activation,
    per_step: usize,
    horizon: usize,
    initial: InitialPoint,
}

impl<T: Scalar> SequentialClassifierTasks<T> {
    /// `per_step` trajectories of `horizon` steps per meta-step on `data` in minibatches of
    /// `batch_size` (the paper: the meta-train split, tanh, 128, 10, 50, U[0, 0.01]).
    ///
    /// Panics if `batch_size` is 0 or exceeds the split.
    pub fn new(
        data: Subset<'_>,
        activation: Activation,
        batch_size: usize,
        per_step: usize,
        horizon: usize,
        initial: InitialPoint,
    ) -> Self {
        SequentialClassifierTasks {
            batches: Arc::new(Batches::new(data, batch_size)),
            activation,
            per_step,
            horizon,
            initial,
        }
    }

    /// The first minibatch of global trajectory `j` (derived, not stored, so a resumed run sees
    /// the same minibatches).
    pub fn start(&self, j: usize) -> usize {
        let batches = self.batches.len();
        let (mut cursor, mut start) = (0, 0);
        for _ in 0..=j {
            if cursor + self.horizon > batches {
                cursor = 0;
            }
            start = cursor;
            cursor += self.horizon;
        }
        start
    }
}

impl<T: Scalar> TaskSampler<T> for SequentialClassifierTasks<T> {
    fn sample<'a>(
        &'a self,
        meta_step: usize,
        index: usize,
        rng: &mut StdRng,
    ) -> (Box<dyn Task<T> + 'a>, DMatrix<T>) {
        let start = self.start(meta_step * self.per_step + index);
        let task = Classifier::with_batches(self.batches.clone(), self.activation, start);
        let dim = task.dim();
        (Box::new(task), self.initial.sample(dim, rng))
    }
}
