//! RMSprop as PyTorch's `torch.optim.RMSprop` defines it:
//!
//! ```text
//! g <- g + λ x;  v <- α v + (1 - α) g²
//! centered: a <- α a + (1 - α) g;  den = sqrt(v - a²) + eps     else den = sqrt(v) + eps
//! momentum μ > 0: b <- μ b + g / den;  x <- x - lr b             else x <- x - lr g / den
//! ```

use super::hyper::{check_range, HyperError};
use super::UpdateTensor;

/// Hyperparameters of RMSprop (the learning rate is passed to each step).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsProp {
    /// Smoothing constant α of the squared-gradient average.
    pub alpha: f64,
    /// Added to the denominator's square root.
    pub eps: f64,
    /// L2 weight decay λ added to the gradient.
    pub weight_decay: f64,
    /// Momentum μ (0 for none).
    pub momentum: f64,
    /// Normalize by the estimated variance instead of the second moment.
    pub centered: bool,
}

impl Default for RmsProp {
    /// PyTorch's defaults: α = 0.99, eps = 1e-8, no momentum, not centered.
    fn default() -> Self {
        RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

/// Per-trajectory state of RMSprop.
#[derive(Clone, Debug)]
pub struct RmsPropState<X> {
    square_avg: Option<X>,
    grad_avg: Option<X>,
    buffer: Option<X>,
}

impl<X> Default for RmsPropState<X> {
    fn default() -> Self {
        RmsPropState {
            square_avg: None,
            grad_avg: None,
            buffer: None,
        }
    }
}

/// `α avg + (1 - α) new`, starting from a zero average.
fn ema<X: UpdateTensor>(avg: Option<X>, new: &X, alpha: f64) -> X {
    match avg {
        None => new.scale(1.0 - alpha),
        Some(a) => a.lin(alpha, new, 1.0 - alpha),
    }
}

impl RmsProp {
    /// `self` if every hyperparameter is admissible, else an error naming the offender.
    pub fn validated(self) -> Result<RmsProp, HyperError> {
        check_range("RMSprop", "alpha", self.alpha, 0.0, true, 1.0, false)?;
        check_range("RMSprop", "eps", self.eps, 0.0, false, f64::INFINITY, false)?;
        check_range("RMSprop", "momentum", self.momentum, 0.0, true, 1.0, false)?;
        check_range(
            "RMSprop",
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
    pub fn step<X: UpdateTensor>(
        &self,
        state: &mut RmsPropState<X>,
        x: &X,
        g: &X,
        lr: &X::Rate,
    ) -> X {
        let g = g.with_weight_decay(x, self.weight_decay);
        let v = ema(state.square_avg.take(), &g.mul(&g), self.alpha);
        let second = if self.centered {
            let a = ema(state.grad_avg.take(), &g, self.alpha);
            let var = v.minus(&a.mul(&a));
            state.grad_avg = Some(a);
            var
        } else {
            v.clone()
        };
        state.square_avg = Some(v);
        let scaled = g.div(&second.sqrt().add_const(self.eps));
        let direction = if self.momentum > 0.0 {
            let b = match state.buffer.take() {
                None => scaled,
                Some(b) => b.lin(self.momentum, &scaled, 1.0),
            };
            state.buffer = Some(b.clone());
            b
        } else {
            scaled
        };
        x.minus(&direction.times_rate(lr))
    }
}
