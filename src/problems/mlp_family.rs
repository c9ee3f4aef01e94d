//! A family of MLP classifiers on one dataset split (learned_optimization's image MLP task
//! family): each draw picks a depth, hidden widths, an activation, a minibatch size, a first
//! minibatch and an initialization scale.

use super::data::{Batches, Subset, NUM_CLASSES};
use super::mlp_classifier::{minibatches, MlpClassifier, MlpShape};
use super::{Draw, ProblemError, ProblemFamily, Sampled};
use crate::models::Activation;
use crate::tape::Scalar;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::sync::Arc;

/// What an [`MlpFamily`] draws from (each list a uniform choice).
#[derive(Clone, Debug, PartialEq)]
pub struct MlpFamilyConfig {
    /// Numbers of hidden layers (0: the paper's perceptron).
    pub depths: Vec<usize>,
    /// Widths of a hidden layer (each layer draws its own).
    pub widths: Vec<usize>,
    /// Activations.
    pub activations: Vec<Activation>,
    /// Minibatch sizes (a split smaller than one batch gives one batch of the whole split).
    pub batch_sizes: Vec<usize>,
    /// `(lo, hi)`: the initialization scale (times PyTorch's `nn.Linear` bound) is uniform in
    /// it.
    pub init_scale: (f64, f64),
}

impl MlpFamilyConfig {
    /// The meta-training family of `examples/transfer`: 1 or 2 hidden layers of 16 to 64
    /// units, tanh, sigmoid or ReLU, minibatches of 64 or 128, initialization scale 0.5 to 2.
    pub fn transfer() -> Self {
        MlpFamilyConfig {
            depths: vec![1, 2],
            widths: vec![16, 32, 64],
            activations: Activation::PAPER.to_vec(),
            batch_sizes: vec![64, 128],
            init_scale: (0.5, 2.0),
        }
    }

    fn validate(&self) -> Result<(), ProblemError> {
        let err = |detail: String| Err(ProblemError::new("MLP family", detail));
        if self.depths.is_empty()
            || self.widths.is_empty()
            || self.activations.is_empty()
            || self.batch_sizes.is_empty()
        {
            return err(format!("every choice list must be non-empty: {self:?}"));
        }
        if self.widths.contains(&0) || self.batch_sizes.contains(&0) {
            return err(format!(
                "widths {:?} and batch sizes {:?} must be positive",
                self.widths, self.batch_sizes
            ));
        }
        if self.depths.iter().any(|&d| d > 16) {
            return err(format!(
                "depths {:?}: at most 16 hidden layers",
                self.depths
            ));
        }
        let (lo, hi) = self.init_scale;
        if !(lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo <= hi) {
            return err(format!(
                "init_scale ({lo}, {hi}) must satisfy 0 <= lo <= hi < inf"
            ));
        }
        Ok(())
    }
}

/// MLP classifiers on one split, drawn as [`MlpFamilyConfig`] says.
///
/// ```
/// use convergent_l2o::problems::data::{Mnist, Split};
/// use convergent_l2o::problems::{Draw, MlpFamily, MlpFamilyConfig, ProblemFamily};
/// use rand::{rngs::StdRng, SeedableRng};
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
/// let mnist = Mnist::load(dir.as_ref()).unwrap();
/// let family = MlpFamily::<f32>::new(mnist.split(Split::MetaTrain), MlpFamilyConfig::transfer()).unwrap();
/// let s = family.sample(Draw { meta_step: 0, index: 0 }, &mut StdRng::seed_from_u64(0)).unwrap();
/// assert_eq!(s.x0.nrows(), s.problem.dim());
/// ```
pub struct MlpFamily<T: Scalar> {
    config: MlpFamilyConfig,
    features: usize,
    batches: Vec<(usize, Arc<Batches<T>>)>,
}

impl<T: Scalar> MlpFamily<T> {
    /// The family on `data`; converts the split once per batch size. Errors on an empty
    /// choice list, a zero width or batch size, a bad scale range or an empty split.
    pub fn new(data: Subset<'_>, config: MlpFamilyConfig) -> Result<Self, ProblemError> {
        config.validate()?;
        let mut batches = Vec::new();
        for &size in &config.batch_sizes {
            if !batches.iter().any(|(s, _)| *s == size) {
                batches.push((size, minibatches(data, size)?));
            }
        }
        Ok(MlpFamily {
            config,
            features: data.num_features(),
            batches,
        })
    }

    /// What it draws from.
    pub fn config(&self) -> &MlpFamilyConfig {
        &self.config
    }
}

impl<T: Scalar> ProblemFamily<T> for MlpFamily<T> {
    fn name(&self) -> String {
        format!(
            "MLP classifiers ({} features, depths {:?}, widths {:?})",
            self.features, self.config.depths, self.config.widths
        )
    }

    fn sample(&self, _draw: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError> {
        let c = &self.config;
        let pick = |v: &[usize], rng: &mut StdRng| *v.choose(rng).expect("validated non-empty");
        let depth = pick(&c.depths, rng);
        let hidden: Vec<usize> = (0..depth).map(|_| pick(&c.widths, rng)).collect();
        let activation = *c.activations.choose(rng).expect("validated non-empty");
        let size = pick(&c.batch_sizes, rng);
        let batches = &self
            .batches
            .iter()
            .find(|(s, _)| *s == size)
            .expect("converted for every size")
            .1;
        let start = rng.gen_range(0..batches.len());
        let (lo, hi) = c.init_scale;
        let scale = if hi > lo { rng.gen_range(lo..hi) } else { lo };
        let shape = MlpShape::new(self.features, &hidden, NUM_CLASSES)?;
        let x0 = shape.init::<T>(scale, rng);
        let problem = MlpClassifier::with_batches(batches.clone(), shape, activation, start)?;
        Sampled::new(problem, x0)
    }
}
