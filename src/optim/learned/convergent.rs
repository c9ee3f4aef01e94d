//! ConvergentL2O (Martin & Furieri 2024): `x_{t+1} = x_t - η_t ∇f(x_t) + s_t v_t` with
//! `v_t = |z_t| w_t / |w_t|` (eq. 13): the magnitude `z = REN(δ^{x0})` is an ℓ2 signal for every
//! value of the meta-parameters (an ℓ2-stable REN driven by the impulse `x0, 0, 0, ...`), so
//! every meta-parameter value is a convergent algorithm (Theorems 1, 2); the direction
//! `w_t = Ω(x_t, ∇f(x_t), f(x_t))` (an MLP) is free.

use super::direction::{DirectionModel, DirectionNet, DirectionState};
use super::StepSize;
use crate::models::ren::{DenseRen, RenDims, RenError, RenModel, RenOptions, TiedRen};
use crate::models::{Activation, Bound, BuildError, MlpConfig, Params, Prefixed};
use crate::optim::HyperError;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use rand::Rng;
use std::fmt;

/// The ℓ2-stable REN producing the magnitude signal `z`.
#[derive(Clone, Debug)]
pub enum MagnitudeRen {
    /// A dense Lipschitz REN (small problems).
    Dense(DenseRen),
    /// The tied-block REN (the paper's 7850-dimensional problem).
    Tied(TiedRen),
}

impl MagnitudeRen {
    /// A dense ℓ2-stable REN for `dim`-dimensional problems with `n` states and `l` neurons,
    /// gain `gamma`, and the paper's options (learnable x0, biases decaying as 0.95^t).
    pub fn dense(dim: usize, n: usize, l: usize, gamma: f64) -> Result<Self, RenError> {
        let ren = DenseRen::lipschitz(RenDims::new(n, l, dim, dim), gamma, RenOptions::paper())?;
        Ok(MagnitudeRen::Dense(ren))
    }

    fn dims(&self) -> RenDims {
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

    fn build<'t, T: Scalar>(&self, get: &dyn Fn(&str) -> Var<'t, T>) -> RenModel<'t, T> {
        match self {
            MagnitudeRen::Dense(r) => r.build_from(get),
            MagnitudeRen::Tied(r) => r.build_from(get),
        }
    }

    fn check_params<T: Scalar>(&self, p: &Params<T>) -> Result<(), crate::models::ParamsError> {
        match self {
            MagnitudeRen::Dense(r) => r.check_params(p),
            MagnitudeRen::Tied(r) => r.check_params(p),
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
/// names), a magnitude REN, a direction MLP and a step-size rule.
///
/// ```
/// use convergent_l2o::optim::{ConvergentL2O, MagnitudeRen, StepSize};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let ren = MagnitudeRen::dense(2, 3, 3, 0.3).unwrap();
/// let opt = ConvergentL2O::<f64>::new(2, ren, 8, StepSize::Constant { eta: 0.5 }, &mut rng).unwrap();
/// // f(x) = |x|^2 / 2 (beta = 1): the learned updates converge for any meta-parameters.
/// let tape = Tape::new();
/// let bound = opt.params().bind_constants(&tape);
/// let run = opt.prepare(&bound);
/// let mut x = tape.param(DMatrix::from_column_slice(2, 1, &[3.0, -1.0]));
/// let mut traj = run.start(x);
/// for _ in 0..400 {
///     let f = x.square().sum().scale(0.5);
///     let g = tape.grad(&[f], &[x], false)[0];
///     x = tape.param((x + run.step(&mut traj, x, g, f).update).value());
/// }
/// assert!(x.value().norm() < 1e-6);
/// ```
#[derive(Clone, Debug)]
pub struct ConvergentL2O<T: Scalar> {
    dim: usize,
    ren: MagnitudeRen,
    omega: DirectionNet,
    step_size: StepSize,
    params: Params<T>,
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
        Self::with_direction(dim, ren, DirectionNet::Mlp(omega), step_size, rng)
    }

    /// The paper's instance for the 784 -> 10 classifier (dim 7850): the tied-block REN
    /// (n = l = 3, gamma = 0.3), Omega 15701 -> 3 -> 3 -> 7850, and `step_size`.
    pub fn paper(step_size: StepSize, rng: &mut impl Rng) -> Result<Self, ConvergentError> {
        let dim = 7850;
        let omega = DirectionNet::Mlp(MlpConfig::paper_omega(dim));
        Self::with_direction(
            dim,
            MagnitudeRen::Tied(TiedRen::paper()),
            omega,
            step_size,
            rng,
        )
    }

    /// Like [`ConvergentL2O::new`] with any direction network: an MLP (input `2 dim + 1`,
    /// output `dim`), or an LSTM, which makes this the *convergent wrapper* of that LSTM (only
    /// its direction is used; the magnitude comes from the REN's ℓ2 signal, eq. 13).
    pub fn with_direction(
        dim: usize,
        ren: MagnitudeRen,
        omega: DirectionNet,
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
        let omega_params = omega
            .init_params(dim, rng)
            .map_err(ConvergentError::Build)?;
        params.extend_prefixed("omega", &omega_params);
        Ok(ConvergentL2O {
            dim,
            ren,
            omega,
            step_size,
            params,
        })
    }

    /// Replaces the meta-parameters (loaded from a file, say), checking every name and shape.
    pub fn set_params(&mut self, params: Params<T>) -> Result<(), ConvergentError> {
        self.ren
            .check_params(&params.sub_params("REN"))
            .map_err(|error| {
                ConvergentError::Build(BuildError::Params {
                    model: "REN",
                    error,
                })
            })?;
        self.omega
            .model(self.dim, params.sub_params("omega"))
            .map_err(ConvergentError::Build)?;
        params.check_matches(&self.params).map_err(|error| {
            ConvergentError::Build(BuildError::Params {
                model: "ConvergentL2O",
                error,
            })
        })?;
        self.params = params;
        Ok(())
    }

    /// The meta-parameters (`REN.*`, `omega.*`).
    pub fn params(&self) -> &Params<T> {
        &self.params
    }

    /// The meta-parameters, for an outer optimizer's update.
    pub fn params_mut(&mut self) -> &mut Params<T> {
        &mut self.params
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

    /// Builds the REN's explicit model once for these bound meta-parameters (per meta-step),
    /// to run any number of trajectories.
    pub fn prepare<'b, 't>(&self, bound: &'b Bound<'t, T>) -> Prepared<'b, 't, T> {
        let ren = self.ren.build(&|name| bound.get_prefixed("REN", name));
        let omega = self
            .omega
            .model(self.dim, self.params.sub_params("omega"))
            .expect("parameters were checked when set");
        Prepared {
            bound,
            ren,
            omega,
            step_size: self.step_size,
            dim: self.dim,
        }
    }
}

/// A ConvergentL2O whose REN is built on a tape, ready to run trajectories.
pub struct Prepared<'b, 't, T: Scalar> {
    bound: &'b Bound<'t, T>,
    ren: RenModel<'t, T>,
    omega: DirectionModel<T>,
    step_size: StepSize,
    dim: usize,
}

/// The per-trajectory state: the REN's state, the step count and the impulse `x0`.
#[derive(Clone)]
pub struct Trajectory<'t, T: Scalar> {
    ren_state: Var<'t, T>,
    direction: DirectionState<'t, T>,
    x0: Var<'t, T>,
    t: usize,
}

impl<'t, T: Scalar> Trajectory<'t, T> {
    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.t
    }

    /// Cuts every gradient path through the carried state (truncated BPTT): the values stay.
    pub fn detach(&mut self) {
        self.ren_state = self.ren_state.stop_gradient();
        self.direction.detach();
    }

    /// The carried values (REN state, then the direction network's), off the tape.
    pub fn state_values(&self) -> Vec<DMatrix<T>> {
        let mut values = vec![self.ren_state.value()];
        values.extend(self.direction.values());
        values
    }

    /// Replaces the carried state by constants on `tape` holding `values` (from
    /// [`Trajectory::state_values`]), so an unrecorded run can truncate its tape between steps
    /// and keep its memory flat; `x0` and the step count are kept.
    pub fn restore_state(&mut self, tape: &'t Tape<T>, values: &[DMatrix<T>]) {
        let (ren, direction) = values
            .split_first()
            .expect("Trajectory::restore_state: no values");
        self.ren_state = tape.constant(ren.clone());
        self.direction.restore(tape, direction);
    }
}

/// What one step produced.
#[derive(Clone, Copy)]
pub struct LearnedStep<'t, T: Scalar> {
    /// `x_{t+1} - x_t`.
    pub update: Var<'t, T>,
    /// The learned term `v_t = |z_t| w_t / |w_t|` (before the factor `s_t`).
    pub v: Var<'t, T>,
    /// The step size `η_t` used.
    pub eta: f64,
}

impl<'b, 't, T: Scalar> Prepared<'b, 't, T> {
    /// The REN's explicit model on the tape.
    pub fn ren_model(&self) -> &RenModel<'t, T> {
        &self.ren
    }

    fn omega_params(&self) -> Prefixed<'b, 't, T> {
        Prefixed {
            bound: self.bound,
            prefix: "omega",
        }
    }

    /// Starts a trajectory at `x0` (a `dim` x 1 column): the REN will see `δ^{x0}`.
    pub fn start(&self, x0: Var<'t, T>) -> Trajectory<'t, T> {
        assert!(
            x0.shape() == (self.dim, 1),
            "ConvergentL2O: x0 is {:?}, expected {} x 1",
            x0.shape(),
            self.dim
        );
        Trajectory {
            ren_state: self.ren.initial_state(),
            direction: self.omega.start(&self.omega_params(), x0.tape(), self.dim),
            x0,
            t: 0,
        }
    }

    /// One step at `x` with gradient `g` and value `f` (1 x 1): the update and its parts.
    pub fn step(
        &self,
        traj: &mut Trajectory<'t, T>,
        x: Var<'t, T>,
        g: Var<'t, T>,
        f: Var<'t, T>,
    ) -> LearnedStep<'t, T> {
        let t = traj.t;
        let impulse = (t == 0).then_some(traj.x0);
        let (z, next) = self.ren.step(traj.ren_state, impulse, t);
        traj.ren_state = next;
        traj.t += 1;
        let w = self
            .omega
            .propose(&self.omega_params(), &mut traj.direction, x, g, f);
        // |w| = 0 gives v = 0 (no direction, no step) rather than NaN.
        let v = w.mul_scalar(z.norm().mul_elem(w.norm().recip_or_zero()));
        let eta = self.step_size.eta(t);
        let s = self.step_size.v_scale(t);
        let update = v.scale(T::cast(s)) - g.scale(T::cast(eta));
        LearnedStep { update, v, eta }
    }
}
