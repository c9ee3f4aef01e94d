//! SGD with momentum, dampening, weight decay and Nesterov momentum (NAG), as PyTorch's
//! `torch.optim.SGD` defines them:
//!
//! ```text
//! g <- g + λ x
//! b <- g                      (first step)        b <- μ b + (1 - τ) g   (later steps)
//! d <- g + μ b  (Nesterov)    d <- b  (otherwise; d <- g when μ = 0)
//! x <- x - lr d
//! ```

use super::hyper::{check_range, HyperError};
use super::UpdateTensor;

/// Hyperparameters of SGD (learning rate aside, which is passed to each step so that it can
/// be a recorded, meta-learned variable).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Momentum μ (0 for plain SGD).
    pub momentum: f64,
    /// Dampening τ of the momentum's new gradient.
    pub dampening: f64,
    /// L2 weight decay λ added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (NAG); needs μ > 0 and τ = 0, as in PyTorch.
    pub nesterov: bool,
}

/// Per-trajectory state of SGD: the momentum buffer.
#[derive(Clone, Debug)]
pub struct SgdState<X> {
    buffer: Option<X>,
}

impl<X> Default for SgdState<X> {
    fn default() -> Self {
        SgdState { buffer: None }
    }
}

impl Sgd {
    /// Plain SGD (no momentum).
    pub const PLAIN: Sgd = Sgd {
        momentum: 0.0,
        dampening: 0.0,
        weight_decay: 0.0,
        nesterov: false,
    };

    /// SGD with momentum μ, checked.
    pub fn momentum(momentum: f64) -> Result<Sgd, HyperError> {
        Sgd {
            momentum,
            ..Sgd::PLAIN
        }
        .validated()
    }

    /// Nesterov accelerated gradient with momentum μ (PyTorch's form), checked.
    pub fn nesterov(momentum: f64) -> Result<Sgd, HyperError> {
        Sgd {
            momentum,
            nesterov: true,
            ..Sgd::PLAIN
        }
        .validated()
    }

    /// `self` if every hyperparameter is admissible, else an error naming the offender.
    pub fn validated(self) -> Result<Sgd, HyperError> {
        let owner = if self.nesterov { "NAG" } else { "SGD" };
        check_range(owner, "momentum", self.momentum, 0.0, true, 1.0, false)?;
        check_range(owner, "dampening", self.dampening, 0.0, true, 1.0, true)?;
        check_range(
            owner,
            "weight_decay",
            self.weight_decay,
            0.0,
            true,
            f64::INFINITY,
            false,
        )?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(HyperError {
                owner,
                detail: format!(
                    "Nesterov momentum needs momentum > 0 and dampening = 0 (got {} and {})",
                    self.momentum, self.dampening
                ),
            });
        }
        Ok(self)
    }

    /// One step from `x` with gradient `g`: returns the new point and updates the state.
    ///
    /// ```
    /// use convergent_l2o::optim::{Sgd, SgdState};
    /// use nalgebra::dmatrix;
    /// let nag = Sgd::nesterov(0.9).unwrap();
    /// let mut state = SgdState::default();
    /// let x = dmatrix![1.0f64];
    /// // first step: b = g = 2, d = g + 0.9 b = 3.8, x = 1 - 0.1 * 3.8
    /// let x1 = nag.step(&mut state, &x, &dmatrix![2.0], &0.1);
    /// assert!((x1[0] - 0.62).abs() < 1e-15);
    /// ```
    pub fn step<X: UpdateTensor>(&self, state: &mut SgdState<X>, x: &X, g: &X, lr: &X::Rate) -> X {
        let g = g.with_weight_decay(x, self.weight_decay);
        let direction = if self.momentum == 0.0 {
            g
        } else {
            let b = match state.buffer.take() {
                None => g.clone(),
                Some(b) => b.lin(self.momentum, &g, 1.0 - self.dampening),
            };
            state.buffer = Some(b.clone());
            if self.nesterov {
                g.lin(1.0, &b, self.momentum)
            } else {
                b
            }
        };
        x.minus(&direction.times_rate(lr))
    }
}
