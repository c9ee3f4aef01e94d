//! The unconstrained learned optimizer (the LSTM baseline of Andrychowicz et al. and of the
//! paper): `x_{t+1} = x_t + w_t` with `w_t` the network's output. Nothing makes `w` vanish, so
//! convergence is not guaranteed (the paper's Fig. 3: the LSTM's iterates drift away after
//! its training horizon); [`crate::optim::ConvergentL2O::with_direction`] is its convergent
//! wrapper.

use super::direction::{Direction, FeatureOrder, PaperLstmDirection};
use crate::models::Prefixed;
use crate::models::{init_from_specs, zeros_from_specs, Bound, BuildError, Params, ParamsError};
use crate::optim::{
    Evaluation, LearnedOptimizer, OptState, OptimError, Optimizer, Oracle, StepInfo,
};
use crate::tape::{Scalar, Var};
use rand::Rng;
use std::fmt;
use std::sync::Arc;

/// A learned optimizer whose update is the direction network's raw output (its parameters
/// unprefixed).
///
/// ```
/// use convergent_l2o::eval::{run, RunConfig};
/// use convergent_l2o::models::CoordinatewiseConfig;
/// use convergent_l2o::optim::{CoordinatewiseDirection, Frozen, UnconstrainedL2O};
/// use convergent_l2o::problems::Quadratic;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let net = CoordinatewiseDirection::new(CoordinatewiseConfig::andrychowicz()).unwrap();
/// let opt = UnconstrainedL2O::<f64>::new(3, net, &mut StdRng::seed_from_u64(0));
/// let f = Quadratic::new(DMatrix::identity(3, 3), DMatrix::zeros(3, 1)).unwrap();
/// let out = run(&Frozen(&opt), &f, &DMatrix::from_element(3, 1, 1.0), &RunConfig::new(5));
/// assert_eq!(out.unwrap().last.shape(), (3, 1));
/// ```
#[derive(Clone)]
pub struct UnconstrainedL2O<T: Scalar> {
    dim: usize,
    net: Arc<dyn Direction<T>>,
    params: Params<T>,
}

impl<T: Scalar> fmt::Debug for UnconstrainedL2O<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnconstrainedL2O")
            .field("dim", &self.dim)
            .field("net", &self.net.name())
            .finish()
    }
}

impl<T: Scalar> UnconstrainedL2O<T> {
    /// An optimizer for `dim`-dimensional problems with a freshly initialized network.
    pub fn new(dim: usize, net: impl Direction<T> + 'static, rng: &mut impl Rng) -> Self {
        let params = init_from_specs(&net.specs(), rng);
        UnconstrainedL2O {
            dim,
            net: Arc::new(net),
            params,
        }
    }

    /// The paper's LSTM baseline for the 7850-parameter classifier (149,246 parameters), fed
    /// `[∇f, x, f]` as in the authors' notebook.
    pub fn paper(rng: &mut impl Rng) -> Result<Self, BuildError> {
        let net = PaperLstmDirection::new(7850, 2, FeatureOrder::GradPointLoss)?;
        Ok(Self::new(7850, net, rng))
    }

    /// The problem dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

impl<T: Scalar> LearnedOptimizer<T> for UnconstrainedL2O<T> {
    fn name(&self) -> String {
        "LSTM".into()
    }
    fn params(&self) -> &Params<T> {
        &self.params
    }
    fn set_params(&mut self, params: Params<T>) -> Result<(), ParamsError> {
        params.check_matches(&zeros_from_specs(&self.net.specs()))?;
        self.params = params;
        Ok(())
    }
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        Box::new(UnconstrainedRun { opt: self, theta })
    }
}

struct UnconstrainedRun<'a, 't, T: Scalar> {
    opt: &'a UnconstrainedL2O<T>,
    theta: Bound<'t, T>,
}

impl<'t, T: Scalar> UnconstrainedRun<'_, 't, T> {
    fn source(&self) -> Prefixed<'_, 't, T> {
        Prefixed {
            bound: &self.theta,
            prefix: "",
        }
    }
}

impl<'t, T: Scalar> Optimizer<'t, T> for UnconstrainedRun<'_, 't, T> {
    fn name(&self) -> String {
        "LSTM".into()
    }
    fn init(&self, x0: Var<'t, T>, _: &Oracle<'_, 't, T>) -> Result<OptState<'t, T>, OptimError> {
        if x0.shape() != (self.opt.dim, 1) {
            return Err(OptimError::Dimension {
                optimizer: "LSTM".into(),
                expected: self.opt.dim,
                found: x0.nrows(),
            });
        }
        let mut state = OptState::new(x0);
        self.opt.net.start(&self.source(), x0, &mut state);
        Ok(state)
    }
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        _: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let x = state.x();
        let w = self
            .opt
            .net
            .propose(&self.source(), x, at.grad, at.loss, state);
        state.set_x(x + w);
        Ok(StepInfo {
            tensors: vec![("w", w)],
            numbers: Vec::new(),
        })
    }
}
