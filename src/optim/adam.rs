//! Adam as PyTorch's `torch.optim.Adam` defines it (bias correction, eps outside the square
//! root, L2 weight decay added to the gradient):
//!
//! ```text
//! g <- g + λ x;  m <- β1 m + (1 - β1) g;  v <- β2 v + (1 - β2) g²
//! x <- x - lr (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)        t = 1, 2, ...
//! ```

use super::hyper::{check_range, HyperError};
use super::UpdateTensor;

/// Hyperparameters of Adam (the learning rate is passed to each step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Decay of the first moment β1.
    pub beta1: f64,
    /// Decay of the second moment β2.
    pub beta2: f64,
    /// Added to the denominator's square root.
    pub eps: f64,
    /// L2 weight decay λ added to the gradient.
    pub weight_decay: f64,
}

impl Default for Adam {
    /// PyTorch's defaults: β = (0.9, 0.999), eps = 1e-8, no weight decay.
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Per-trajectory state of Adam: step count and the two moments.
#[derive(Clone, Debug)]
pub struct AdamState<X> {
    step: u32,
    moments: Option<(X, X)>,
}

impl<X> Default for AdamState<X> {
    fn default() -> Self {
        AdamState {
            step: 0,
            moments: None,
        }
    }
}

impl<X> AdamState<X> {
    /// The state from its parts: steps taken and the first and second moments (after at
    /// least one step) — for restoring a checkpoint.
    pub fn from_parts(step: u32, moments: Option<(X, X)>) -> Self {
        AdamState { step, moments }
    }

    /// Steps taken and the moments, for saving a checkpoint.
    pub fn parts(&self) -> (u32, Option<&(X, X)>) {
        (self.step, self.moments.as_ref())
    }
}

impl Adam {
    /// `self` if every hyperparameter is admissible, else an error naming the offender.
    pub fn validated(self) -> Result<Adam, HyperError> {
        check_range("Adam", "beta1", self.beta1, 0.0, true, 1.0, false)?;
        check_range("Adam", "beta2", self.beta2, 0.0, true, 1.0, false)?;
        check_range("Adam", "eps", self.eps, 0.0, false, f64::INFINITY, false)?;
        check_range(
            "Adam",
            "weight_decay",
            self.weight_decay,
            0.0,
            true,
            f64::INFINITY,
            false,
        )?;
        Ok(self)
    }

    /// One step from `x` with gradient `g`: returns the new point and updates the state.
    ///
    /// ```
    /// use convergent_l2o::optim::{Adam, AdamState};
    /// use nalgebra::dmatrix;
    /// let mut state = AdamState::default();
    /// // The first bias-corrected step has size lr whatever the gradient's scale.
    /// let x1 = Adam::default().step(&mut state, &dmatrix![1.0f64], &dmatrix![250.0], &0.01);
    /// assert!((x1[0] - 0.99).abs() < 1e-9);
    /// ```
    pub fn step<X: UpdateTensor>(&self, state: &mut AdamState<X>, x: &X, g: &X, lr: &X::Rate) -> X {
        let g = g.with_weight_decay(x, self.weight_decay);
        state.step += 1;
        let g2 = g.mul(&g);
        let (m, v) = match state.moments.take() {
            None => (g.scale(1.0 - self.beta1), g2.scale(1.0 - self.beta2)),
            Some((m, v)) => (
                m.lin(self.beta1, &g, 1.0 - self.beta1),
                v.lin(self.beta2, &g2, 1.0 - self.beta2),
            ),
        };
        let t = state.step as i32;
        let m_hat = m.scale(1.0 / (1.0 - self.beta1.powi(t)));
        let v_hat = v.scale(1.0 / (1.0 - self.beta2.powi(t)));
        let direction = m_hat.div(&v_hat.sqrt().add_const(self.eps));
        state.moments = Some((m, v));
        x.minus(&direction.times_rate(lr))
    }
}
