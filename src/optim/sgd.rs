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
use super::interface::{hand_crafted_algorithm, tunable};
use super::{Evaluation, OptState, OptimError, Optimizer, Oracle, StepInfo};
use crate::tape::{Scalar, Var};

/// SGD and its momentum variants with PyTorch's semantics (state: `momentum_buffer`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// The learning rate.
    pub lr: f64,
    /// Momentum μ (0 for plain SGD).
    pub momentum: f64,
    /// Dampening τ of the momentum's new gradient.
    pub dampening: f64,
    /// L2 weight decay λ added to the gradient.
    pub weight_decay: f64,
    /// Nesterov momentum (NAG); needs μ > 0 and τ = 0, as in PyTorch.
    pub nesterov: bool,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`, checked.
    pub fn new(lr: f64) -> Result<Sgd, HyperError> {
        Sgd {
            lr,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
        .validated()
    }

    /// SGD with momentum μ, checked.
    pub fn momentum(lr: f64, momentum: f64) -> Result<Sgd, HyperError> {
        Sgd {
            momentum,
            ..Sgd::new(lr)?
        }
        .validated()
    }

    /// Nesterov accelerated gradient with momentum μ (PyTorch's form), checked.
    pub fn nesterov(lr: f64, momentum: f64) -> Result<Sgd, HyperError> {
        Sgd {
            momentum,
            nesterov: true,
            ..Sgd::new(lr)?
        }
        .validated()
    }

    /// `self` if every hyperparameter is admissible, else an error naming the offender.
    pub fn validated(self) -> Result<Sgd, HyperError> {
        let owner = if self.nesterov { "NAG" } else { "SGD" };
        check_range(owner, "lr", self.lr, 0.0, false, f64::INFINITY, false)?;
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
}

/// `g + λ x` (PyTorch's `weight_decay`), or `g` when λ = 0.
pub(crate) fn with_weight_decay<'t, T: Scalar>(
    g: Var<'t, T>,
    x: Var<'t, T>,
    lambda: f64,
) -> Var<'t, T> {
    if lambda == 0.0 {
        g
    } else {
        g.scale(T::one()) + x.scale(T::cast(lambda))
    }
}

/// `a u + b v`, the form of every moving average.
pub(crate) fn lin<'t, T: Scalar>(u: Var<'t, T>, a: f64, v: Var<'t, T>, b: f64) -> Var<'t, T> {
    // The bits of `u.scale(a) + v.scale(b)`, in one pass and one node.
    Var::weighted_sum(&[(T::cast(a), u), (T::cast(b), v)])
}

impl<'t, T: Scalar> Optimizer<'t, T> for Sgd {
    fn name(&self) -> String {
        if self.nesterov {
            "NAG".into()
        } else if self.momentum > 0.0 {
            format!("SGD(momentum {})", self.momentum)
        } else {
            "SGD".into()
        }
    }
    fn init(&self, x0: Var<'t, T>, _: &Oracle<'_, 't, T>) -> Result<OptState<'t, T>, OptimError> {
        self.validated()?;
        Ok(OptState::new(x0))
    }
    /// ```
    /// use convergent_l2o::eval::{run, RunConfig};
    /// use convergent_l2o::optim::Sgd;
    /// use convergent_l2o::problems::Quadratic;
    /// use nalgebra::dmatrix;
    /// // f(x) = x² (A = 2): first step b = g = 2, d = g + 0.9 b = 3.8, x = 1 - 0.1 * 3.8
    /// let q = Quadratic::<f64>::new(dmatrix![2.0], dmatrix![0.0]).unwrap();
    /// let nag = Sgd::nesterov(0.1, 0.9).unwrap();
    /// let out = run(&nag, &q, &dmatrix![1.0], &RunConfig::new(1)).unwrap();
    /// assert!((out.last[0] - 0.62).abs() < 1e-15);
    /// ```
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        _: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let x = state.x();
        let g = with_weight_decay(at.grad, x, self.weight_decay);
        let direction = if self.momentum == 0.0 {
            g
        } else {
            let b = match state.tensor("momentum_buffer") {
                None => g,
                Some(b) => lin(b, self.momentum, g, 1.0 - self.dampening),
            };
            state.set("momentum_buffer", b);
            if self.nesterov {
                lin(g, 1.0, b, self.momentum)
            } else {
                b
            }
        };
        state.set_x(x - direction.scale(T::cast(self.lr)));
        Ok(StepInfo::none())
    }
}

hand_crafted_algorithm!(Sgd);
tunable!(Sgd);
