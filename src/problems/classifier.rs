//! The paper's optimizee: a single-layer classifier `softmax(act(X Wᵀ + b))` trained with
//! cross-entropy (eq. 18 of Martin & Furieri), as a [`Problem`] on sequential minibatches, and
//! its accuracy and loss on a whole data split ([`ClassifierMetrics`]).

use super::data::{Batches, Subset, NUM_CLASSES};
use super::{Problem, ProblemError};
use crate::kernels::{gemm_into, DenseRef};
use crate::models::Activation;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use std::sync::Arc;

/// Flat parameter layout of a `features -> classes` single-layer classifier: the weights
/// `W` (classes x features, row-major, as PyTorch's `nn.Linear`) followed by the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassifierShape {
    /// Input features (784 for MNIST).
    pub features: usize,
    /// Classes (10 for MNIST).
    pub classes: usize,
}

impl ClassifierShape {
    /// The paper's 784 -> 10 classifier (7850 parameters).
    pub const MNIST: ClassifierShape = ClassifierShape {
        features: 784,
        classes: 10,
    };

    /// Number of parameters `classes * features + classes`.
    pub fn num_params(&self) -> usize {
        self.classes * self.features + self.classes
    }

    /// The logits `act(X Wᵀ + b)` (one row per sample) for flat parameters `params`
    /// (a `num_params` x 1 column).
    ///
    /// Panics if the shapes do not fit.
    pub fn outputs<'t, T: Scalar>(
        &self,
        params: Var<'t, T>,
        images: Var<'t, T>,
        activation: Activation,
    ) -> Var<'t, T> {
        let f = self.features;
        assert!(
            params.shape() == (self.num_params(), 1),
            "classifier: parameters must be {} x 1, found {:?}",
            self.num_params(),
            params.shape()
        );
        assert!(
            images.ncols() == f,
            "classifier: images must have {f} columns, found {:?}",
            images.shape()
        );
        // The flat layout is flat_linear's: W row-major, then b.
        activation.apply(images.flat_linear(params))
    }

    /// Mean softmax cross-entropy of the classifier on a batch (`one_hot`: one row per sample).
    ///
    /// ```
    /// use convergent_l2o::problems::ClassifierShape;
    /// use convergent_l2o::models::Activation;
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::DMatrix;
    ///
    /// let shape = ClassifierShape { features: 3, classes: 2 };
    /// let tape = Tape::<f64>::new();
    /// let params = tape.param(DMatrix::zeros(shape.num_params(), 1));
    /// let images = tape.constant(DMatrix::from_element(4, 3, 1.0));
    /// let one_hot = tape.constant(DMatrix::from_fn(4, 2, |i, j| (i % 2 == j) as u8 as f64));
    /// let loss = shape.loss(params, images, one_hot, Activation::Tanh);
    /// assert!((loss.scalar() - 2f64.ln()).abs() < 1e-12);
    /// ```
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
}

/// The paper's optimizee: the `features -> 10` classifier with cross-entropy, step `t` seeing
/// the `(start + t)`-th minibatch of a data split, taken sequentially (wrapping around). The
/// number of features comes from the data (784 for MNIST).
#[derive(Clone)]
pub struct Classifier<T: Scalar> {
    batches: Arc<Batches<T>>,
    shape: ClassifierShape,
    activation: Activation,
    start: usize,
}

impl<T: Scalar> Classifier<T> {
    /// The classifier on `data` in minibatches of `batch_size` with `activation`, starting at
    /// minibatch `start`. Converts the whole split; to share one conversion between many
    /// problems use [`Classifier::with_batches`]. Errors if the split holds no full minibatch.
    pub fn new(
        data: Subset<'_>,
        activation: Activation,
        batch_size: usize,
        start: usize,
    ) -> Result<Self, ProblemError> {
        Ok(Self::with_batches(
            Arc::new(Batches::new(data, batch_size)?),
            activation,
            start,
        ))
    }

    /// The classifier on already converted minibatches.
    pub fn with_batches(batches: Arc<Batches<T>>, activation: Activation, start: usize) -> Self {
        let shape = ClassifierShape {
            features: batches.num_features(),
            classes: NUM_CLASSES,
        };
        Classifier {
            batches,
            shape,
            activation,
            start,
        }
    }

    /// The layout of the flat parameters.
    pub fn shape(&self) -> ClassifierShape {
        self.shape
    }
}

impl<T: Scalar> Problem<T> for Classifier<T> {
    fn name(&self) -> String {
        format!("{} classifier", self.activation)
    }
    fn dim(&self) -> usize {
        self.shape.num_params()
    }
    fn loss<'t>(&self, x: Var<'t, T>, step: usize) -> Var<'t, T> {
        let (images, one_hot) = self.batches.on_tape(x.tape(), self.start + step);
        self.shape.loss(x, images, one_hot, self.activation)
    }
    fn infimum(&self) -> Option<f64> {
        // Cross-entropy is non-negative.
        Some(0.0)
    }
}

/// Accuracy and mean cross-entropy of the paper's classifier on a whole data split.
#[derive(Clone, Debug)]
pub struct ClassifierMetrics<T: Scalar> {
    shape: ClassifierShape,
    activation: Activation,
    /// The images transposed (features x samples): the product with the weights then reads
    /// contiguous columns (the dot kernel).
    images_t: DMatrix<T>,
    labels: Vec<usize>,
}

impl<T: Scalar> ClassifierMetrics<T> {
    /// Metrics of the `features -> 10` classifier with `activation` on every sample of `data`.
    pub fn new(data: Subset<'_>, activation: Activation) -> Self {
        let batch = data.batch::<T>(0, data.len());
        ClassifierMetrics {
            shape: ClassifierShape {
                features: data.num_features(),
                classes: NUM_CLASSES,
            },
            activation,
            images_t: batch.images.transpose(),
            labels: batch.labels,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The classifier's outputs `act(X Wᵀ + b)`, one row per sample; panics if `params` is
    /// not a `num_params x 1` column.
    pub fn outputs(&self, params: &DMatrix<T>) -> DMatrix<T> {
        let (f, c) = (self.shape.features, self.shape.classes);
        assert!(
            params.shape() == (self.shape.num_params(), 1),
            "ClassifierMetrics: parameters must be {} x 1, found {:?}",
            self.shape.num_params(),
            params.shape()
        );
        // Row-major W read column-major is Wᵀ, as in `ClassifierShape::outputs`; the product is
        // taken off the tape so the test images are not copied onto one at every call.
        let w_t = DenseRef::new(params.as_slice(), f, c);
        let mut logits = DMatrix::zeros(self.len(), c);
        gemm_into(
            DenseRef::from(&self.images_t),
            true,
            w_t,
            false,
            logits.as_mut_slice(),
        );
        for (j, mut col) in logits.column_iter_mut().enumerate() {
            col.add_scalar_mut(params[f * c + j]);
        }
        let tape = Tape::new();
        self.activation.apply(tape.constant(logits)).value()
    }

    /// Fraction of samples whose label is the first index of the largest output (the paper's
    /// argmax rule; ReLU outputs tie at 0 and then give the first class, as `torch.argmax`);
    /// NaN when the parameters or outputs are not finite (a diverged run has no accuracy).
    pub fn accuracy(&self, params: &DMatrix<T>) -> f64 {
        let out = self.outputs(params);
        if !super::all_finite(&out) {
            return f64::NAN;
        }
        let correct = super::correct_by_argmax(&out, &self.labels);
        correct as f64 / self.len().max(1) as f64
    }

    /// Mean softmax cross-entropy of the outputs (the training loss on the whole split);
    /// not finite when the parameters are not.
    pub fn loss(&self, params: &DMatrix<T>) -> f64 {
        let out = self.outputs(params);
        let total: f64 = out
            .row_iter()
            .zip(&self.labels)
            .map(|(row, &label)| {
                let o: Vec<f64> = row.iter().map(|v| v.as_f64()).collect();
                let max = o.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + o.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                lse - o[label]
            })
            .sum();
        total / self.len().max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::gradcheck::{check_gradients, tape_fn};
    use nalgebra::DMatrix;

    #[test]
    fn classifier_loss_gradients_first_and_second_order() {
        let shape = ClassifierShape {
            features: 4,
            classes: 3,
        };
        let images = DMatrix::from_fn(5, 4, |i, j| ((i * 4 + j) as f64).sin());
        let one_hot = DMatrix::from_fn(5, 3, |i, j| (i % 3 == j) as u8 as f64);
        let params = DMatrix::from_fn(shape.num_params(), 1, |i, _| (i as f64 * 0.37).cos() * 0.5);
        for act in Activation::PAPER {
            let (x, y) = (images.clone(), one_hot.clone());
            let f = tape_fn(move |p| {
                let tape = p[0].tape();
                shape.loss(
                    p[0],
                    tape.constant(x.clone()),
                    tape.constant(y.clone()),
                    act,
                )
            });
            check_gradients(&f, std::slice::from_ref(&params), 11).unwrap();
        }
    }
}
