//! The paper's optimizee: a single-layer classifier `softmax(act(X Wᵀ + b))` trained with
//! cross-entropy (eq. 18 of Martin & Furieri).

use crate::models::Activation;
use crate::tape::{Scalar, Var};

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
    /// use convergent_l2o::meta::classifier::ClassifierShape;
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
            check_gradients(&f, &[params.clone()], 11).unwrap();
        }
    }
}
