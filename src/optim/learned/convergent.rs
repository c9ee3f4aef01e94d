//! ConvergentL2O (Martin & Furieri 2024): `x_{t+1} = x_t - η_t ∇f(x_t) + s_t v_t` with
//! `v_t = |z_t| w_t / |w_t|` (eq. 13): the magnitude `z = REN(δ^{x0})` is an ℓ2 signal for every
//! value of the meta-parameters (an ℓ2-stable REN driven by the impulse `x0, 0, 0, ...`), so
//! every meta-parameter value is a convergent algorithm (Theorems 1, 2); the direction `w_t`
//! (any [`Direction`]: the paper's MLP Ω, an LSTM, one's own) is free.

use super::direction::{Direction, MlpDirection};
use super::StepSize;
use crate::models::ren::{DenseRen, RenDims, RenError, RenModel, RenOptions, TiedRen};
use crate::models::{init_from_specs, zeros_from_specs};
use crate::models::{Activation, Bound, BuildError, MlpConfig, Params, ParamsError, Prefixed};
use crate::optim::{
    Evaluation, HyperError, LearnedOptimizer, OptState, OptimError, Optimizer, Oracle, StepInfo,
};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use std::fmt;
use std::sync::Arc;

/// The ℓ2-stable REN producing the magnitude signal `z`.
#[derive(Clone, Debug)]
pub enum MagnitudeRen {
    /// A dense Lipschitz REN (small problems).
    Dense(Box<DenseRen>),
    /// The tied-block REN (the paper's 7850-dimensional problem).
    Tied(TiedRen),
}

impl MagnitudeRen {
    /// A dense ℓ2-stable REN for `dim`-dimensional problems with `n` states and `l` neurons,
    /// gain `gamma`, and the paper's options (learnable x0, biases decaying as 0.95^t).
    pub fn dense(dim: usize, n: usize, l: usize, gamma: f64) -> Result<Self, RenError> {
        let ren = DenseRen::lipschitz(RenDims::new(n, l, dim, dim), gamma, RenOptions::paper())?;
        Ok(MagnitudeRen::Dense(Box::new(ren)))
    }

    /// Its sizes.
    pub fn dims(&self) -> RenDims {
        match self {
            MagnitudeRen::Dense(r) => r.dims(),
            MagnitudeRen::Tied(r) => r.dims(),
        }
    }

    fn init_params<T: Scalar>(&self, rng: &mut impl Rng, std: f64) -> Params<T> {
        match self {
            MagnitudeRen::Dense(r) => r.init_params(rng, std),
            MagnitudeRen::Tied(r) => r.init_params(rng, std),
        }
    }

    fn check_params<T: Scalar>(&self, p: &Params<T>) -> Result<(), ParamsError> {
        match self {
            MagnitudeRen::Dense(r) => r.check_params(p),
            MagnitudeRen::Tied(r) => r.check_params(p),
        }
    }

    /// The explicit model for the REN's parameters bound under `REN.` in `theta`.
    pub fn build<'t, T: Scalar>(&self, theta: &Bound<'t, T>) -> RenModel<'t, T> {
        let get = |name: &str| theta.get_prefixed("REN", name);
        match self {
            MagnitudeRen::Dense(r) => r.build_from(&get),
            MagnitudeRen::Tied(r) => r.build_from(&get),
        }
    }
}

/// Why a ConvergentL2O could not be built.
#[derive(Debug)]
pub enum ConvergentError {
    /// The REN's configuration is invalid.
    Ren(RenError),
    /// The direction network or the parameters do not fit.
    Build(BuildError),
    /// The step sizes break the conditions of the theorem.
    Hyper(HyperError),
    /// The REN's input/output size differs from the problem dimension.
    Dimension {
        /// The problem dimension.
        dim: usize,
        /// The REN's (input, output) sizes.
        ren: (usize, usize),
    },
}

impl fmt::Display for ConvergentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConvergentError::Ren(e) => write!(f, "ConvergentL2O: {e}"),
            ConvergentError::Build(e) => write!(f, "ConvergentL2O: {e}"),
            ConvergentError::Hyper(e) => write!(f, "ConvergentL2O: {e}"),
            ConvergentError::Dimension { dim, ren } => write!(
                f,
                "ConvergentL2O: the REN maps {} -> {}, but the problem has dimension {dim}",
                ren.0, ren.1
            ),
        }
    }
}

impl std::error::Error for ConvergentError {}

/// The convergent learned optimizer: meta-parameters `REN.*` and `omega.*` (the authors'
/// names), a magnitude REN, a direction network and a step-size rule.
///
/// ```
/// use convergent_l2o::eval::{run, RunConfig};
/// use convergent_l2o::optim::{ConvergentL2O, Frozen, MagnitudeRen, StepSize};
/// use convergent_l2o::problems::Quadratic;
/// use nalgebra::{dmatrix, DMatrix};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let ren = MagnitudeRen::dense(2, 3, 3, 0.3).unwrap();
/// let opt = ConvergentL2O::<f64>::new(2, ren, 8, StepSize::Constant { eta: 0.5 }, &mut rng).unwrap();
/// // f(x) = |x|^2 / 2 (beta = 1): the learned updates converge for any meta-parameters.
/// let f = Quadratic::new(DMatrix::identity(2, 2), DMatrix::zeros(2, 1)).unwrap();
/// let out = run(&Frozen(&opt), &f, &dmatrix![3.0; -1.0], &RunConfig::new(400)).unwrap();
/// assert!(out.last.norm() < 1e-6);
/// ```
#[derive(Clone)]
pub struct ConvergentL2O<T: Scalar> {
    dim: usize,
    ren: MagnitudeRen,
    direction: Arc<dyn Direction<T>>,
    step_size: StepSize,
    params: Params<T>,
}

impl<T: Scalar> fmt::Debug for ConvergentL2O<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConvergentL2O")
            .field("dim", &self.dim)
            .field("ren", &self.ren)
            .field("direction", &self.direction.name())
            .field("step_size", &self.step_size)
            .finish()
    }
}

impl<T: Scalar> ConvergentL2O<T> {
    /// A ConvergentL2O for `dim`-dimensional problems: the given REN (its input and output size
    /// must be `dim`), an MLP `2 dim + 1 -> hidden -> hidden -> dim` (ReLU) as direction, and
    /// the step-size rule; REN parameters start at N(0, 0.01²) as in the paper's code.
    pub fn new(
        dim: usize,
        ren: MagnitudeRen,
        hidden: usize,
        step_size: StepSize,
        rng: &mut impl Rng,
    ) -> Result<Self, ConvergentError> {
        let omega = MlpConfig::new(&[2 * dim + 1, hidden, hidden, dim], Activation::Relu);
        let direction = MlpDirection::new(dim, omega).map_err(ConvergentError::Build)?;
        Self::with_direction(dim, ren, direction, step_size, rng)
    }

    /// The paper's instance for the 784 -> 10 classifier (dim 7850): the tied-block REN
    /// (n = l = 3, gamma = 0.3), Omega 15701 -> 3 -> 3 -> 7850, and `step_size`.
    pub fn paper(step_size: StepSize, rng: &mut impl Rng) -> Result<Self, ConvergentError> {
        let dim = 7850;
        let omega = MlpDirection::paper(dim).map_err(ConvergentError::Build)?;
        Self::with_direction(
            dim,
            MagnitudeRen::Tied(TiedRen::paper()),
            omega,
            step_size,
            rng,
        )
    }

    /// Like [`ConvergentL2O::new`] with any direction network (its parameters under
    /// `omega.`): an MLP, or an LSTM, which makes this the *convergent wrapper* of that LSTM
    /// (only its direction is used; the magnitude comes from the REN's ℓ2 signal, eq. 13).
    pub fn with_direction(
        dim: usize,
        ren: MagnitudeRen,
        direction: impl Direction<T> + 'static,
        step_size: StepSize,
        rng: &mut impl Rng,
    ) -> Result<Self, ConvergentError> {
        let dims = ren.dims();
        if dims.m != dim || dims.p != dim {
            return Err(ConvergentError::Dimension {
                dim,
                ren: (dims.m, dims.p),
            });
        }
        let step_size = step_size.validated(None).map_err(ConvergentError::Hyper)?;
        let mut params = Params::new();
        params.extend_prefixed("REN", &ren.init_params(rng, 0.01));
        let omega: Params<T> = init_from_specs(&direction.specs(), rng);
        params.extend_prefixed("omega", &omega);
        Ok(ConvergentL2O {
            dim,
            ren,
            direction: Arc::new(direction),
            step_size,
            params,
        })
    }

    /// The problem dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The step-size rule.
    pub fn step_size(&self) -> StepSize {
        self.step_size
    }

    /// The magnitude REN.
    pub fn ren(&self) -> &MagnitudeRen {
        &self.ren
    }

    /// The direction network.
    pub fn direction(&self) -> &dyn Direction<T> {
        &*self.direction
    }

    /// The expected tensors: the REN's under `REN.`, the direction network's under `omega.`.
    fn template(&self) -> Params<T> {
        let mut t = Params::new();
        for (name, m) in self.params.iter() {
            t.insert(name, DMatrix::zeros(m.nrows(), m.ncols()));
        }
        t
    }
}

impl<T: Scalar> LearnedOptimizer<T> for ConvergentL2O<T> {
    fn name(&self) -> String {
        "ConvergentL2O".into()
    }
    fn params(&self) -> &Params<T> {
        &self.params
    }
    fn set_params(&mut self, params: Params<T>) -> Result<(), ParamsError> {
        self.ren.check_params(&params.sub_params("REN"))?;
        let omega: Params<T> = zeros_from_specs(&self.direction.specs());
        params.sub_params("omega").check_matches(&omega)?;
        params.check_matches(&self.template())?;
        self.params = params;
        Ok(())
    }
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        let ren = self.ren.build(&theta);
        Box::new(ConvergentRun {
            opt: self,
            theta,
            ren,
        })
    }
}

/// A ConvergentL2O whose REN is built on a tape, ready to run trajectories.
struct ConvergentRun<'a, 't, T: Scalar> {
    opt: &'a ConvergentL2O<T>,
    theta: Bound<'t, T>,
    ren: RenModel<'t, T>,
}

/// State tensors of a ConvergentL2O trajectory: the REN's state and the impulse (kept until
/// the first step reads it).
const REN_STATE: &str = "ren";
const IMPULSE: &str = "x0";

impl<'t, T: Scalar> Optimizer<'t, T> for ConvergentRun<'_, 't, T> {
    fn name(&self) -> String {
        "ConvergentL2O".into()
    }

    /// Starts a trajectory at `x0` (the REN will see `δ^{x0}`); refuses a problem of another
    /// dimension, and Theorem 1's constant step size at or above `1/β` when the problem
    /// reports its smoothness β.
    fn init(
        &self,
        x0: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError> {
        let dim = self.opt.dim;
        if x0.shape() != (dim, 1) {
            return Err(OptimError::Dimension {
                optimizer: "ConvergentL2O".into(),
                expected: dim,
                found: x0.nrows(),
            });
        }
        self.opt
            .step_size
            .validated(oracle.problem().smoothness())?;
        let mut state = OptState::new(x0);
        state.set(REN_STATE, self.ren.initial_state());
        state.set(IMPULSE, x0);
        let p = Prefixed {
            bound: &self.theta,
            prefix: "omega",
        };
        self.opt.direction.start(&p, x0, &mut state);
        Ok(state)
    }

    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        _: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let t = state.step();
        let impulse = state.tensor(IMPULSE);
        state.remove(IMPULSE);
        let (z, next) = self.ren.step(state.expect(REN_STATE), impulse, t);
        state.set(REN_STATE, next);
        let p = Prefixed {
            bound: &self.theta,
            prefix: "omega",
        };
        let (x, g) = (state.x(), at.grad);
        let w = self.opt.direction.propose(&p, x, g, at.loss, state);
        // |w| = 0 gives v = 0 (no direction, no step) rather than NaN.
        let v = w.mul_scalar(z.norm().mul_elem(w.norm().recip_or_zero()));
        let eta = self.opt.step_size.eta(t);
        let s = self.opt.step_size.v_scale(t);
        // x + (s v - eta g), in one pass.
        let next = Var::weighted_sum(&[(T::cast(s), v), (-T::cast(eta), g), (T::one(), x)]);
        state.set_x(next);
        Ok(StepInfo {
            tensors: vec![("v", v), ("z", z)],
            numbers: vec![("eta", eta), ("s", s)],
        })
    }
}
