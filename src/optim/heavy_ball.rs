//! Plain gradient descent `x <- x - lr g` and Polyak's heavy ball
//! `x_{t+1} = x_t - lr g_t + β (x_t - x_{t-1})`, written once for fixed and meta-learned
//! hyperparameters ([`Rate`]).

use super::hyper::{check_range, HyperError};
use super::interface::{hand_crafted_algorithm, tunable};
use super::{Evaluation, OptState, OptimError, Optimizer, Oracle, Rate, StepInfo};
use crate::tape::{Scalar, Var};

/// Gradient descent with heavy-ball momentum β (β = 0 is plain gradient descent).
///
/// ```
/// use convergent_l2o::eval::{run, RunConfig};
/// use convergent_l2o::optim::HeavyBall;
/// use convergent_l2o::problems::Quadratic;
/// use nalgebra::{dmatrix, DMatrix};
///
/// let q = Quadratic::<f64>::new(dmatrix![1.0, 0.0; 0.0, 0.1], DMatrix::zeros(2, 1)).unwrap();
/// let gd = HeavyBall::gd(1.0).unwrap();
/// let out = run(&gd, &q, &dmatrix![1.0; 1.0], &RunConfig::new(100)).unwrap();
/// assert!(out.last.norm() < 1e-4); // 0.9^100
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeavyBall {
    /// The learning rate.
    pub lr: f64,
    /// Weight β of the previous displacement.
    pub beta: f64,
}

impl HeavyBall {
    /// Heavy ball with learning rate `lr > 0` and momentum β in [0, 1), checked.
    pub fn new(lr: f64, beta: f64) -> Result<HeavyBall, HyperError> {
        HeavyBall { lr, beta }.validated()
    }

    /// Plain gradient descent with learning rate `lr > 0`.
    pub fn gd(lr: f64) -> Result<HeavyBall, HyperError> {
        Self::new(lr, 0.0)
    }

    /// `self` if its hyperparameters are admissible, else an error naming the offender.
    pub fn validated(self) -> Result<HeavyBall, HyperError> {
        check_range(
            "heavy ball",
            "lr",
            self.lr,
            0.0,
            false,
            f64::INFINITY,
            false,
        )?;
        // β may be negative: the LOA scripts' heavy ball uses 1 - 2 sqrt(μ γ).
        check_range("heavy ball", "beta", self.beta, -1.0, false, 1.0, false)?;
        Ok(self)
    }
}

/// One heavy-ball step from `x` with gradient `g` and the previous point `previous` (none at
/// the first step): `x - lr g + β (x - previous)`.
pub fn heavy_ball_step<'t, T: Scalar>(
    x: Var<'t, T>,
    previous: Option<Var<'t, T>>,
    g: Var<'t, T>,
    lr: Rate<'t, T>,
    beta: Rate<'t, T>,
) -> Var<'t, T> {
    let next = x - lr.times(g);
    match previous {
        Some(prev) if !beta.is_zero() => next + (beta.times(x) - beta.times(prev)),
        _ => next,
    }
}

impl<'t, T: Scalar> Optimizer<'t, T> for HeavyBall {
    fn name(&self) -> String {
        if self.beta == 0.0 {
            "GD".into()
        } else {
            format!("heavy ball({})", self.beta)
        }
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
        let next = heavy_ball_step(
            x,
            state.tensor("previous"),
            at.grad,
            Rate::Fixed(self.lr),
            Rate::Fixed(self.beta),
        );
        if self.beta != 0.0 {
            state.set("previous", x);
        }
        state.set_x(next);
        Ok(StepInfo::none())
    }
}

hand_crafted_algorithm!(HeavyBall);
tunable!(HeavyBall);
