//! Meta-losses: what a trajectory is scored by. A meta-loss gives one term per inner step
//! (from `f`, `∇f` and the point), summed or averaged over a window of the unroll. The paper's
//! weighted sum of losses, L2O-PA's mean objective and LOA's mean log relative suboptimality
//! are three of them; a researcher's own is a type implementing [`MetaLoss`].

use crate::optim::{check_range, HyperError};
use crate::problems::Problem;
use crate::tape::{Scalar, Var};

/// What a meta-loss term sees at one inner step.
pub struct TermContext<'a, 't, T: Scalar> {
    /// The inner step `t` of the evaluated point.
    pub step: usize,
    /// The trajectory's horizon `T`.
    pub horizon: usize,
    /// The point (the optimizer's query point).
    pub point: Var<'t, T>,
    /// `f` at the point (1 x 1).
    pub loss: Var<'t, T>,
    /// `∇f` at the point (none for the last point of an after-update window, where it is not
    /// needed).
    pub grad: Option<Var<'t, T>>,
    /// `f` at the trajectory's first point, as a number.
    pub start_loss: f64,
    /// The problem.
    pub problem: &'a dyn Problem<T>,
}

/// A meta-loss: a term per inner step, summed (or averaged) over the steps of a window.
pub trait MetaLoss<T: Scalar>: Send + Sync {
    /// A short name.
    fn name(&self) -> String;

    /// Whether the term of step `t` scores the point after `t`'s update (`x_{t+1}`, steps
    /// `1..=T`) rather than before it (`x_t`, steps `0..T`).
    fn after_update(&self) -> bool {
        false
    }

    /// Whether a window's loss is the mean of its terms rather than their sum.
    fn mean(&self) -> bool {
        false
    }

    /// Checks the meta-loss's own settings (the trainer calls it once).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// Checks that the trajectory can be scored (a problem constant it needs, a positive
    /// initial gap); the message says what is missing.
    fn check(&self, _problem: &dyn Problem<T>, _start_loss: f64) -> Result<(), String> {
        Ok(())
    }

    /// The term at `ctx.step` (none: this step is not scored).
    fn term<'t>(&self, ctx: &TermContext<'_, 't, T>) -> Option<Var<'t, T>>;
}

/// The paper's meta-loss (7): `Σ_{t<T} γ_t f(x_t) + α |∇f(x_t)|²` with
/// `γ_t = decay^(T-1-t)` (the paper: α = 0, decay 0.95).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WeightedLoss {
    /// α: weight of `|∇f(x_t)|²` (constant in t).
    pub grad_weight: f64,
    /// γ_t = decay^(T-1-t): later iterates weigh more when decay < 1.
    pub decay: f64,
}

impl WeightedLoss {
    /// The paper's: α = 0, γ_t = 0.95^(T-1-t).
    pub const PAPER: WeightedLoss = WeightedLoss {
        grad_weight: 0.0,
        decay: 0.95,
    };

    /// The weights `decay > 0` and `grad_weight >= 0`, checked.
    ///
    /// ```
    /// use convergent_l2o::meta::WeightedLoss;
    /// assert!(WeightedLoss::new(0.95, 0.0).is_ok());
    /// assert!(WeightedLoss::new(-0.5, 0.0).unwrap_err().to_string().contains("decay"));
    /// ```
    pub fn new(decay: f64, grad_weight: f64) -> Result<Self, HyperError> {
        check_range(
            "meta-loss",
            "decay",
            decay,
            0.0,
            false,
            f64::INFINITY,
            false,
        )?;
        check_range(
            "meta-loss",
            "grad_weight",
            grad_weight,
            0.0,
            true,
            f64::INFINITY,
            false,
        )?;
        Ok(WeightedLoss { grad_weight, decay })
    }

    /// γ_t for a horizon of `horizon` steps.
    pub fn gamma(&self, t: usize, horizon: usize) -> f64 {
        self.decay.powi((horizon - 1 - t) as i32)
    }
}

impl<T: Scalar> MetaLoss<T> for WeightedLoss {
    fn name(&self) -> String {
        format!("weighted losses (decay {})", self.decay)
    }
    fn validate(&self) -> Result<(), String> {
        WeightedLoss::new(self.decay, self.grad_weight)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    fn term<'t>(&self, ctx: &TermContext<'_, 't, T>) -> Option<Var<'t, T>> {
        if ctx.step >= ctx.horizon {
            return None;
        }
        let mut term = ctx.loss.scale(T::cast(self.gamma(ctx.step, ctx.horizon)));
        if self.grad_weight != 0.0 {
            let g = ctx.grad?;
            term = term + g.square().sum().scale(T::cast(self.grad_weight));
        }
        Some(term)
    }
}

/// L2O-PA's meta-loss: the mean of `F(y_t) = f(y_t) + ρ |y_t|_1` over the points after each
/// update (`t = 1..=T`), as the original code's segment loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MeanObjective;

impl<T: Scalar> MetaLoss<T> for MeanObjective {
    fn name(&self) -> String {
        "mean objective".into()
    }
    fn after_update(&self) -> bool {
        true
    }
    fn mean(&self) -> bool {
        true
    }
    fn term<'t>(&self, ctx: &TermContext<'_, 't, T>) -> Option<Var<'t, T>> {
        let rho = ctx.problem.l1_weight();
        Some(if rho == 0.0 {
            ctx.loss
        } else {
            ctx.loss + ctx.point.abs().sum().scale(T::cast(rho))
        })
    }
}

/// LOA's meta-loss: the mean over `t = 1..=T` of `log((f(x_t) - F*)/(f(x_0) - F*) + ε)`, the
/// log relative suboptimality. It weighs every instance and step equally whatever the scale of
/// `f` and rewards the rate, which is what a quasi-Newton method is judged on; `ε` keeps it
/// finite at convergence, and a rounding-negative gap contributes the constant `log ε`.
/// Needs the problem's infimum `F*`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogRelative {
    /// The floor `ε > 0`.
    pub floor: f64,
}

impl<T: Scalar> MetaLoss<T> for LogRelative {
    fn name(&self) -> String {
        "mean log relative suboptimality".into()
    }
    fn after_update(&self) -> bool {
        true
    }
    fn mean(&self) -> bool {
        true
    }
    fn check(&self, problem: &dyn Problem<T>, start_loss: f64) -> Result<(), String> {
        if !(self.floor > 0.0 && self.floor.is_finite()) {
            return Err(format!(
                "the floor {} must be positive and finite",
                self.floor
            ));
        }
        let f_star = problem
            .infimum()
            .ok_or("the log relative meta-loss needs the problem's infimum")?;
        let gap = start_loss - f_star;
        if gap.is_nan() || gap <= 0.0 {
            return Err(format!(
                "f(x_0) - F* = {gap} is not positive: nothing to optimize"
            ));
        }
        Ok(())
    }
    fn term<'t>(&self, ctx: &TermContext<'_, 't, T>) -> Option<Var<'t, T>> {
        let f_star = ctx.problem.infimum()?;
        let gap = ctx.start_loss - f_star;
        let f = ctx.loss.scalar().as_f64();
        Some(if (f - f_star) / gap + self.floor > 0.0 {
            ctx.loss
                .add_scalar(T::cast(-f_star))
                .scale(T::cast(1.0 / gap))
                .add_scalar(T::cast(self.floor))
                .log()
        } else {
            ctx.loss.tape().scalar(T::cast(self.floor.ln()))
        })
    }
}
