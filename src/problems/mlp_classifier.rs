//! A multilayer perceptron classifier on any IDX image dataset, as a [`Problem`] over one flat
//! parameter column: `features -> hidden[0] -> ... -> classes`, each layer PyTorch's
//! `nn.Linear` (weights row-major, then the bias), cross-entropy on sequential minibatches.
//! Zero hidden layers is the paper's perceptron (the activation then applies to the logits, as
//! in eq. 18); otherwise the activation follows every hidden layer and the logits are linear.

use super::data::{Batches, Mnist, Normalization, Subset, NUM_CLASSES};
use super::{Problem, ProblemError};
use crate::models::Activation;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use rand::Rng;
use std::path::Path;
use std::sync::Arc;

/// The layer sizes of an MLP classifier and the layout of its flat parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MlpShape {
    features: usize,
    hidden: Vec<usize>,
    classes: usize,
}

impl MlpShape {
    /// `features -> hidden... -> classes`; errors on a zero size.
    ///
    /// ```
    /// use convergent_l2o::problems::MlpShape;
    /// let s = MlpShape::new(784, &[32], 10).unwrap();
    /// assert_eq!(s.num_params(), 784 * 32 + 32 + 32 * 10 + 10);
    /// assert_eq!(s.to_string(), "784-32-10");
    /// assert!(MlpShape::new(784, &[0], 10).is_err());
    /// ```
    pub fn new(features: usize, hidden: &[usize], classes: usize) -> Result<Self, ProblemError> {
        if features == 0 || classes == 0 || hidden.contains(&0) {
            return Err(ProblemError::new(
                "MLP classifier",
                format!(
                    "every layer needs at least one unit (features {features}, hidden {hidden:?}, \
                     classes {classes})"
                ),
            ));
        }
        Ok(MlpShape {
            features,
            hidden: hidden.to_vec(),
            classes,
        })
    }

    /// Input features.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Hidden widths (empty: the paper's perceptron).
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }

    /// Classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// `(inputs, outputs)` of every layer, first to last.
    pub fn layers(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.features];
        sizes.extend(&self.hidden);
        sizes.push(self.classes);
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// Number of parameters (weights and biases of every layer).
    pub fn num_params(&self) -> usize {
        self.layers().iter().map(|(i, o)| i * o + o).sum()
    }

    /// Sizes of the tensors the flat parameters concatenate: each layer's weights, then its
    /// bias.
    pub fn tensor_sizes(&self) -> Vec<usize> {
        self.layers()
            .iter()
            .flat_map(|&(i, o)| [i * o, o])
            .collect()
    }

    /// The logits (one row per sample) for flat parameters `params` and a batch `images`
    /// (`B x features`); panics if the shapes do not fit (a programming error).
    pub fn outputs<'t, T: Scalar>(
        &self,
        params: Var<'t, T>,
        images: Var<'t, T>,
        activation: Activation,
    ) -> Var<'t, T> {
        assert!(
            params.shape() == (self.num_params(), 1) && images.ncols() == self.features,
            "MLP {self}: parameters {:?} (need {} x 1), images {:?} (need {} columns)",
            params.shape(),
            self.num_params(),
            images.shape(),
            self.features
        );
        let layers = self.layers();
        let (mut h, mut offset) = (images, 0);
        for (k, &(i, o)) in layers.iter().enumerate() {
            let p = if layers.len() == 1 {
                params
            } else {
                params.rows_range(offset, i * o + o)
            };
            offset += i * o + o;
            h = h.flat_linear(p);
            if k + 1 < layers.len() || self.hidden.is_empty() {
                h = activation.apply(h);
            }
        }
        h
    }

    /// Mean softmax cross-entropy on a batch (`one_hot`: one row per sample).
    pub fn loss<'t, T: Scalar>(
        &self,
        params: Var<'t, T>,
        images: Var<'t, T>,
        one_hot: Var<'t, T>,
        activation: Activation,
    ) -> Var<'t, T> {
        self.outputs(params, images, activation)
            .softmax_cross_entropy(one_hot)
    }

    /// PyTorch's initialization of `nn.Linear` times `scale`: every weight and bias of a layer
    /// with `i` inputs uniform in `±scale/√i`.
    pub fn init<T: Scalar>(&self, scale: f64, rng: &mut impl Rng) -> DMatrix<T> {
        let mut values = Vec::with_capacity(self.num_params());
        for (i, o) in self.layers() {
            let b = scale / (i as f64).sqrt();
            for _ in 0..(i * o + o) {
                values.push(if b > 0.0 {
                    T::cast(rng.gen_range(-b..b))
                } else {
                    T::zero()
                });
            }
        }
        DMatrix::from_vec(values.len(), 1, values)
    }
}

impl std::fmt::Display for MlpShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.features)?;
        for h in &self.hidden {
            write!(f, "-{h}")?;
        }
        write!(f, "-{}", self.classes)
    }
}

/// Minibatches of a split: `batch_size` samples each, or one batch of the whole split when it
/// holds fewer samples (a smaller batch rather than an error); an empty split is an error.
pub fn minibatches<T: Scalar>(
    data: Subset<'_>,
    batch_size: usize,
) -> Result<Arc<Batches<T>>, ProblemError> {
    if data.is_empty() || batch_size == 0 {
        return Err(ProblemError::new(
            "MLP classifier",
            format!(
                "a split of {} samples with batch size {batch_size}: need samples and a \
                 positive batch size",
                data.len()
            ),
        ));
    }
    Ok(Arc::new(Batches::new(data, batch_size.min(data.len()))?))
}

/// The MLP classifier on sequential minibatches: step `t` sees minibatch `start + t` (cycling
/// through the split, Theorem 2's cyclic partial gradients).
#[derive(Clone)]
pub struct MlpClassifier<T: Scalar> {
    batches: Arc<Batches<T>>,
    shape: MlpShape,
    activation: Activation,
    start: usize,
}

impl<T: Scalar> MlpClassifier<T> {
    /// The classifier with `hidden` widths on `data` in minibatches of `batch_size` (the whole
    /// split if it is smaller), starting at minibatch `start`.
    ///
    /// ```
    /// use convergent_l2o::models::Activation;
    /// use convergent_l2o::problems::data::{Mnist, Split};
    /// use convergent_l2o::problems::{MlpClassifier, Problem};
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
    /// let mnist = Mnist::load(dir.as_ref()).unwrap();
    /// let p = MlpClassifier::<f32>::new(mnist.split(Split::EvalTrain), &[16], Activation::Relu, 128, 0).unwrap();
    /// assert_eq!(p.dim(), 784 * 16 + 16 + 16 * 10 + 10);
    /// ```
    pub fn new(
        data: Subset<'_>,
        hidden: &[usize],
        activation: Activation,
        batch_size: usize,
        start: usize,
    ) -> Result<Self, ProblemError> {
        let shape = MlpShape::new(data.num_features(), hidden, NUM_CLASSES)?;
        Self::with_batches(minibatches(data, batch_size)?, shape, activation, start)
    }

    /// The classifier on already converted minibatches; errors if `shape` does not read the
    /// batches' features or give `NUM_CLASSES` outputs.
    pub fn with_batches(
        batches: Arc<Batches<T>>,
        shape: MlpShape,
        activation: Activation,
        start: usize,
    ) -> Result<Self, ProblemError> {
        if shape.features != batches.num_features() || shape.classes != NUM_CLASSES {
            return Err(ProblemError::new(
                "MLP classifier",
                format!(
                    "the network {shape} does not fit images of {} features and {NUM_CLASSES} \
                     classes",
                    batches.num_features()
                ),
            ));
        }
        Ok(MlpClassifier {
            batches,
            shape,
            activation,
            start,
        })
    }

    /// The layer sizes.
    pub fn shape(&self) -> &MlpShape {
        &self.shape
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Samples per minibatch.
    pub fn batch_size(&self) -> usize {
        self.batches.batch_size()
    }
}

impl<T: Scalar> Problem<T> for MlpClassifier<T> {
    fn name(&self) -> String {
        format!("{} {} MLP", self.shape, self.activation)
    }
    fn dim(&self) -> usize {
        self.shape.num_params()
    }
    fn loss<'t>(&self, x: Var<'t, T>, step: usize) -> Var<'t, T> {
        let (images, one_hot) = self.batches.on_tape(x.tape(), self.start + step);
        self.shape.loss(x, images, one_hot, self.activation)
    }
    fn infimum(&self) -> Option<f64> {
        Some(0.0)
    }
    fn tensor_sizes(&self) -> Vec<usize> {
        self.shape.tensor_sizes()
    }
}

/// Accuracy and mean cross-entropy of an MLP classifier on a whole split.
#[derive(Clone, Debug)]
pub struct MlpMetrics<T: Scalar> {
    shape: MlpShape,
    activation: Activation,
    images_t: Arc<DMatrix<T>>,
    one_hot: Arc<DMatrix<T>>,
    labels: Vec<usize>,
}

impl<T: Scalar> MlpMetrics<T> {
    /// Metrics of the network `shape` with `activation` on every sample of `data`; errors if
    /// the split is empty or the network does not read its features.
    pub fn new(
        data: Subset<'_>,
        shape: &MlpShape,
        activation: Activation,
    ) -> Result<Self, ProblemError> {
        if data.is_empty() || shape.features != data.num_features() {
            return Err(ProblemError::new(
                "MLP metrics",
                format!(
                    "a split of {} samples of {} features for the network {shape}",
                    data.len(),
                    data.num_features()
                ),
            ));
        }
        let batch = data.batch::<T>(0, data.len());
        Ok(MlpMetrics {
            shape: shape.clone(),
            activation,
            images_t: Arc::new(batch.images.transpose()),
            one_hot: Arc::new(batch.one_hot),
            labels: batch.labels,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always false: construction refuses an empty split.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The logits, one row per sample, or `None` if `params` is not a `num_params x 1` column.
    pub fn outputs(&self, params: &DMatrix<T>) -> Option<DMatrix<T>> {
        if params.shape() != (self.shape.num_params(), 1) {
            return None;
        }
        let tape = Tape::new();
        tape.no_grad(|| {
            let images = tape.constant_transposed(self.images_t.clone());
            let p = tape.constant(params.clone());
            Some(self.shape.outputs(p, images, self.activation).value())
        })
    }

    /// Fraction of samples whose label is the first index of the largest output; NaN for
    /// parameters of the wrong size or non-finite outputs (a diverged run has no accuracy).
    pub fn accuracy(&self, params: &DMatrix<T>) -> f64 {
        let Some(out) = self.outputs(params) else {
            return f64::NAN;
        };
        if !super::all_finite(&out) {
            return f64::NAN;
        }
        let correct = super::correct_by_argmax(&out, &self.labels);
        correct as f64 / self.len() as f64
    }

    /// Mean cross-entropy on the split (NaN for parameters of the wrong size).
    pub fn loss(&self, params: &DMatrix<T>) -> f64 {
        if params.shape() != (self.shape.num_params(), 1) {
            return f64::NAN;
        }
        let tape = Tape::new();
        tape.no_grad(|| {
            let images = tape.constant_transposed(self.images_t.clone());
            let y = tape.constant_shared(self.one_hot.clone());
            let p = tape.constant(params.clone());
            self.shape
                .loss(p, images, y, self.activation)
                .scalar()
                .as_f64()
        })
    }
}

/// How pixels are normalized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelNormalization {
    /// The paper's MNIST statistics (mean 0.1307, std 0.3081) for every dataset.
    Paper,
    /// The dataset's own mean and std, over its training file (never the test file).
    Dataset,
}

/// Loads an IDX dataset directory with `normalization`; errors name the file and the problem
/// (and a constant training set, whose std is 0).
pub fn load_dataset(dir: &Path, normalization: PixelNormalization) -> Result<Mnist, String> {
    let data = Mnist::load(dir).map_err(|e| e.to_string())?;
    if normalization == PixelNormalization::Paper {
        return Ok(data);
    }
    let (mut sum, mut sum_sq, mut count) = (0.0f64, 0.0f64, 0usize);
    for split in [super::data::Split::MetaTrain, super::data::Split::EvalTrain] {
        for &p in data.split(split).pixels() {
            let v = p as f64 / 255.0;
            sum += v;
            sum_sq += v * v;
            count += 1;
        }
    }
    let mean = sum / count.max(1) as f64;
    let std = (sum_sq / count.max(1) as f64 - mean * mean).max(0.0).sqrt();
    Mnist::load_with(dir, Normalization { mean, std }).map_err(|e| {
        format!(
            "{}: the dataset's own normalization (mean {mean}, std {std}) is unusable: {e}",
            dir.display()
        )
    })
}
