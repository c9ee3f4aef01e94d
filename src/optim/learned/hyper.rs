//! Meta-learned hyperparameters of a hand-crafted rule: gradient descent whose step size (and,
//! optionally, heavy-ball momentum) are meta-parameters. The smallest learned optimizer, and
//! the one whose meta-gradients can be checked exactly (the estimators' tests).

use crate::models::{Bound, Params, ParamsError};
use crate::optim::{
    heavy_ball_step, Evaluation, LearnedOptimizer, OptState, OptimError, Optimizer, Oracle, Rate,
    StepInfo,
};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;

/// Gradient descent `x_{t+1} = x_t - lr ∇f(x_t) + β (x_t - x_{t-1})` with meta-parameters
/// `lr` and, when learned, `momentum` (β; 0 otherwise), both 1 x 1 and used as they are (no
/// squashing: the meta-loss itself tells which values work).
///
/// ```
/// use convergent_l2o::optim::{LearnedHeavyBall, LearnedOptimizer};
/// let gd = LearnedHeavyBall::<f64>::new(0.5, None);
/// assert_eq!(gd.params().get("lr")[0], 0.5);
/// assert!(gd.params().try_get("momentum").is_none());
/// ```
#[derive(Clone, Debug)]
pub struct LearnedHeavyBall<T: Scalar> {
    params: Params<T>,
}

impl<T: Scalar> LearnedHeavyBall<T> {
    /// Starting at step size `lr` and, if given, momentum `momentum` (learned too).
    pub fn new(lr: f64, momentum: Option<f64>) -> Self {
        let mut params = Params::new();
        params.insert("lr", DMatrix::from_element(1, 1, T::cast(lr)));
        if let Some(m) = momentum {
            params.insert("momentum", DMatrix::from_element(1, 1, T::cast(m)));
        }
        LearnedHeavyBall { params }
    }
}

impl<T: Scalar> LearnedOptimizer<T> for LearnedHeavyBall<T> {
    fn name(&self) -> String {
        if self.params.try_get("momentum").is_some() {
            "learned heavy ball".into()
        } else {
            "learned GD".into()
        }
    }
    fn params(&self) -> &Params<T> {
        &self.params
    }
    fn set_params(&mut self, params: Params<T>) -> Result<(), ParamsError> {
        params.check_matches(&self.params)?;
        self.params = params;
        Ok(())
    }
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        let momentum = self
            .params
            .try_get("momentum")
            .map(|_| theta.get("momentum"));
        Box::new(HeavyBallRun {
            lr: theta.get("lr"),
            momentum,
        })
    }
}

struct HeavyBallRun<'t, T: Scalar> {
    lr: Var<'t, T>,
    momentum: Option<Var<'t, T>>,
}

impl<'t, T: Scalar> Optimizer<'t, T> for HeavyBallRun<'t, T> {
    fn name(&self) -> String {
        "learned heavy ball".into()
    }
    fn init(&self, x0: Var<'t, T>, _: &Oracle<'_, 't, T>) -> Result<OptState<'t, T>, OptimError> {
        Ok(OptState::new(x0))
    }
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        _: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let x = state.x();
        let beta = self.momentum.map_or(Rate::Fixed(0.0), Rate::Var);
        let next = heavy_ball_step(
            x,
            state.tensor("previous"),
            at.grad,
            Rate::Var(self.lr),
            beta,
        );
        if self.momentum.is_some() {
            state.set("previous", x);
        }
        state.set_x(next);
        Ok(StepInfo::none())
    }
}
