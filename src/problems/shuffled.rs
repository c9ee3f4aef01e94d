//! The original notebooks' meta-training sampler: one stream of minibatches over reshuffled
//! epochs of a data split, consumed in order by every trajectory of every meta-step.

use super::data::{Batches, Subset};
use super::{Classifier, Draw, InitialPoint, Problem, ProblemError, ProblemFamily, Sampled};
use crate::models::Activation;
use crate::tape::Scalar;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::sync::Arc;

/// The classifier on a stream of shuffled minibatches, as `LSTM_Optimizer.ipynb` and
/// `ConvergentL2O.ipynb` meta-train: a `DataLoader` with a `SubsetRandomSampler` whose iterator
/// is shared by all trajectories, so trajectory `j` (the `index`-th of meta-step `k`, `j = k
/// per_step + index`) reads stream minibatches `j horizon .. (j + 1) horizon`, and epoch `e` of
/// the stream is a permutation of the split drawn from `(seed, e)` alone. A trailing partial
/// minibatch of an epoch is dropped (the notebooks keep it; on the full MNIST split of 48,000
/// samples there is none). Compare [`SequentialClassifiers`](super::SequentialClassifiers),
/// which replays the unshuffled minibatches from a cursor (`jax_ref.py`).
///
/// ```
/// use convergent_l2o::models::Activation;
/// use convergent_l2o::problems::data::{Mnist, Split};
/// use convergent_l2o::problems::{Draw, InitialPoint, ProblemFamily, ShuffledClassifiers};
/// use rand::{rngs::StdRng, SeedableRng};
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
/// let mnist = Mnist::load(dir.as_ref()).unwrap();
/// let family = ShuffledClassifiers::<f32>::new(
///     mnist.split(Split::MetaTrain), Activation::Tanh, 128, 10, 50, InitialPoint::META_TRAIN, 7,
/// ).unwrap();
/// let draw = Draw { meta_step: 3, index: 2 };
/// let s = family.sample(draw, &mut StdRng::seed_from_u64(0)).unwrap();
/// assert_eq!(s.problem.dim(), 7850);
/// // Trajectory 32 starts at stream minibatch 32 * 50 = 1600.
/// assert_eq!(family.stream_batch(32 * 50), family.trajectory_batches(32)[0]);
/// ```
#[derive(Clone)]
pub struct ShuffledClassifiers<T: Scalar> {
    /// The split's normalized samples as columns (`features x n`): a sample is contiguous.
    samples: Arc<DMatrix<T>>,
    labels: Arc<Vec<usize>>,
    activation: Activation,
    batch_size: usize,
    per_step: usize,
    horizon: usize,
    initial: InitialPoint,
    seed: u64,
}

impl<T: Scalar> ShuffledClassifiers<T> {
    /// `per_step` trajectories of `horizon` steps per meta-step on `data` in minibatches of
    /// `batch_size`, epochs shuffled from `seed` (the notebooks: the meta-train split, tanh, 128,
    /// 10, 50, U[0, 0.01]); errors if the split holds no full minibatch or a count is zero.
    pub fn new(
        data: Subset<'_>,
        activation: Activation,
        batch_size: usize,
        per_step: usize,
        horizon: usize,
        initial: InitialPoint,
        seed: u64,
    ) -> Result<Self, ProblemError> {
        if per_step == 0 || horizon == 0 || batch_size == 0 || batch_size > data.len() {
            return Err(ProblemError::new(
                "shuffled classifiers",
                format!(
                    "per_step = {per_step} and horizon = {horizon} must be positive and the batch \
                     size {batch_size} between 1 and the split's {} samples",
                    data.len()
                ),
            ));
        }
        Ok(ShuffledClassifiers {
            samples: Arc::new(data.samples_as_columns()),
            labels: Arc::new(data.labels().iter().map(|&l| usize::from(l)).collect()),
            activation,
            batch_size,
            per_step,
            horizon,
            initial,
            seed,
        })
    }

    /// Full minibatches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.labels.len() / self.batch_size
    }

    /// The sample order of epoch `epoch`: a permutation of the split from `(seed, epoch)`.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.labels.len()).collect();
        // Two odd multipliers keep (seed, epoch) pairs apart before StdRng's own expansion.
        let key = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        order.shuffle(&mut StdRng::seed_from_u64(key));
        order
    }

    /// The samples of stream minibatch `position` (epoch `position / batches_per_epoch()`).
    pub fn stream_batch(&self, position: usize) -> Vec<usize> {
        let per_epoch = self.batches_per_epoch();
        let (epoch, b) = (position / per_epoch, position % per_epoch);
        self.epoch_order(epoch)[b * self.batch_size..(b + 1) * self.batch_size].to_vec()
    }

    /// The samples of each minibatch of global trajectory `j`, in step order.
    pub fn trajectory_batches(&self, j: usize) -> Vec<Vec<usize>> {
        let per_epoch = self.batches_per_epoch();
        let first = j * self.horizon;
        let mut current: Option<(usize, Vec<usize>)> = None;
        (first..first + self.horizon)
            .map(|p| {
                let epoch = p / per_epoch;
                if current.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    current = Some((epoch, self.epoch_order(epoch)));
                }
                let order = &current.as_ref().expect("set above").1;
                let b = p % per_epoch;
                order[b * self.batch_size..(b + 1) * self.batch_size].to_vec()
            })
            .collect()
    }
}

impl<T: Scalar> ProblemFamily<T> for ShuffledClassifiers<T> {
    fn name(&self) -> String {
        format!("{} classifier on shuffled minibatches", self.activation)
    }
    fn sample(&self, draw: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError> {
        let j = draw.meta_step * self.per_step + draw.index;
        let indices: Vec<usize> = self.trajectory_batches(j).concat();
        // The minibatches read their samples in place from the shared split.
        let batches = Batches::gathered_shared(
            Arc::clone(&self.samples),
            &self.labels,
            &indices,
            self.batch_size,
        )?;
        let problem = Classifier::with_batches(Arc::new(batches), self.activation, 0);
        let x0 = self.initial.sample(problem.dim(), rng);
        Ok(Sampled {
            problem: Arc::new(problem),
            x0,
        })
    }
}
