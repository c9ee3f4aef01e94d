//! Adam as PyTorch's `torch.optim.Adam` defines it (bias correction, eps outside the square
//! root, L2 weight decay added to the gradient):
//!
//! ```text
//! g <- g + λ x;  m <- β1 m + (1 - β1) g;  v <- β2 v + (1 - β2) g²
//! x <- x - lr (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)        t = 1, 2, ...
//! ```

use super::hyper::{check_range, HyperError};
use super::interface::{hand_crafted_algorithm, tunable};
use super::sgd::{lin, with_weight_decay};
use super::{Evaluation, OptState, OptimError, Optimizer, Oracle, StepInfo};
use crate::tape::{Scalar, Var};

/// Adam with PyTorch's semantics (state: `exp_avg`, `exp_avg_sq`; the step count is the
/// state's).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// The learning rate.
    pub lr: f64,
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
    /// PyTorch's defaults: lr = 1e-3, β = (0.9, 0.999), eps = 1e-8, no weight decay.
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl Adam {
    /// PyTorch's Adam with learning rate `lr`, checked.
    pub fn new(lr: f64) -> Result<Adam, HyperError> {
        Adam {
            lr,
            ..Adam::default()
        }
        .validated()
    }

    /// `self` if every hyperparameter is admissible, else an error naming the offender.
    pub fn validated(self) -> Result<Adam, HyperError> {
        check_range("Adam", "lr", self.lr, 0.0, false, f64::INFINITY, false)?;
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

    /// The step `x_{t+1} - x_t` for gradient `g` at `x`, the `t`-th (from 1), with the moments
    /// `moments` of the previous steps (none before the first); returns it with the new moments.
    pub(crate) fn direction<'t, T: Scalar>(
        &self,
        x: Var<'t, T>,
        g: Var<'t, T>,
        t: usize,
        moments: Option<(Var<'t, T>, Var<'t, T>)>,
    ) -> (Var<'t, T>, (Var<'t, T>, Var<'t, T>)) {
        let g = with_weight_decay(g, x, self.weight_decay);
        let g2 = g.mul_elem(g);
        let (m, v) = match moments {
            None => (
                g.scale(T::cast(1.0 - self.beta1)),
                g2.scale(T::cast(1.0 - self.beta2)),
            ),
            Some((m, v)) => (
                lin(m, self.beta1, g, 1.0 - self.beta1),
                lin(v, self.beta2, g2, 1.0 - self.beta2),
            ),
        };
        let t = t as i32;
        let m_hat = m.scale(T::cast(1.0 / (1.0 - self.beta1.powi(t))));
        let v_hat = v.scale(T::cast(1.0 / (1.0 - self.beta2.powi(t))));
        let direction = m_hat.div_elem(v_hat.sqrt().add_scalar(T::cast(self.eps)));
        (direction.scale(T::cast(-self.lr)), (m, v))
    }
}

impl<'t, T: Scalar> Optimizer<'t, T> for Adam {
    fn name(&self) -> String {
        "Adam".into()
    }
    fn init(&self, x0: Var<'t, T>, _: &Oracle<'_, 't, T>) -> Result<OptState<'t, T>, OptimError> {
        self.validated()?;
        Ok(OptState::new(x0))
    }
    /// ```
    /// use convergent_l2o::eval::{run, RunConfig};
    /// use convergent_l2o::optim::Adam;
    /// use convergent_l2o::problems::Quadratic;
    /// use nalgebra::dmatrix;
    /// // The first bias-corrected step has size lr whatever the gradient's scale.
    /// let q = Quadratic::<f64>::new(dmatrix![250.0], dmatrix![0.0]).unwrap();
    /// let out = run(&Adam::new(0.01).unwrap(), &q, &dmatrix![1.0], &RunConfig::new(1)).unwrap();
    /// assert!((out.last[0] - 0.99).abs() < 1e-9);
    /// ```
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        _: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let x = state.x();
        let moments = state.tensor("exp_avg").zip(state.tensor("exp_avg_sq"));
        let (step, (m, v)) = self.direction(x, at.grad, state.step() + 1, moments);
        state.set("exp_avg", m);
        state.set("exp_avg_sq", v);
        state.set_x(x + step);
        Ok(StepInfo::none())
    }
}

hand_crafted_algorithm!(Adam);
tunable!(Adam);
