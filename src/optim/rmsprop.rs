//! RMSprop as PyTorch's `torch.optim.RMSprop` defines it:
//!
//! ```text
//! g <- g + λ x;  v <- α v + (1 - α) g²
//! centered: a <- α a + (1 - α) g;  den = sqrt(v - a²) + eps     else den = sqrt(v) + eps
//! momentum μ > 0: b <- μ b + g / den;  x <- x - lr b             else x <- x - lr g / den
//! ```

use super::hyper::{check_range, HyperError};
use super::interface::{hand_crafted_algorithm, tunable};
use super::sgd::{lin, with_weight_decay};
use super::{Evaluation, OptState, OptimError, Optimizer, Oracle, StepInfo};
use crate::tape::{Scalar, Var};

/// RMSprop with PyTorch's semantics (state: `square_avg`, `grad_avg`, `momentum_buffer`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsProp {
    /// The learning rate.
    pub lr: f64,
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
    /// PyTorch's defaults: lr = 1e-2, α = 0.99, eps = 1e-8, no momentum, not centered.
    fn default() -> Self {
        RmsProp {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
        }
    }
}

/// `α avg + (1 - α) new`, starting from a zero average.
fn ema<'t, T: Scalar>(avg: Option<Var<'t, T>>, new: Var<'t, T>, alpha: f64) -> Var<'t, T> {
    match avg {
        None => new.scale(T::cast(1.0 - alpha)),
        Some(a) => lin(a, alpha, new, 1.0 - alpha),
    }
}

impl RmsProp {
    /// PyTorch's RMSprop with learning rate `lr`, checked.
    pub fn new(lr: f64) -> Result<RmsProp, HyperError> {
        RmsProp {
            lr,
            ..RmsProp::default()
        }
        .validated()
    }

    /// `self` if every hyperparameter is admissible, else an error naming the offender.
    pub fn validated(self) -> Result<RmsProp, HyperError> {
        check_range("RMSprop", "lr", self.lr, 0.0, false, f64::INFINITY, false)?;
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
}

impl<'t, T: Scalar> Optimizer<'t, T> for RmsProp {
    fn name(&self) -> String {
        "RMSprop".into()
    }
    fn init(&self, x0: Var<'t, T>, _: &Oracle<'_, 't, T>) -> Result<OptState<'t, T>, OptimError> {
        self.validated()?;
        Ok(OptState::new(x0))
    }
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        _: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let x = state.x();
        let g = with_weight_decay(at.grad, x, self.weight_decay);
        let v = ema(state.tensor("square_avg"), g.mul_elem(g), self.alpha);
        let second = if self.centered {
            let a = ema(state.tensor("grad_avg"), g, self.alpha);
            state.set("grad_avg", a);
            v - a.mul_elem(a)
        } else {
            v
        };
        state.set("square_avg", v);
        let scaled = g.div_elem(second.sqrt().add_scalar(T::cast(self.eps)));
        let direction = if self.momentum > 0.0 {
            let b = match state.tensor("momentum_buffer") {
                None => scaled,
                Some(b) => lin(b, self.momentum, scaled, 1.0),
            };
            state.set("momentum_buffer", b);
            b
        } else {
            scaled
        };
        state.set_x(x - direction.scale(T::cast(self.lr)));
        Ok(StepInfo::none())
    }
}

hand_crafted_algorithm!(RmsProp);
tunable!(RmsProp);
