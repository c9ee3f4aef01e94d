//! The unconstrained learned optimizer (the LSTM baseline of Andrychowicz et al. and of the
//! paper): `x_{t+1} = x_t + w_t` with `w_t` the network's output. Nothing makes `w` vanish, so
//! convergence is not guaranteed (the paper's Fig. 3: the LSTM's iterates drift away after
//! its training horizon); [`crate::optim::ConvergentL2O::with_direction`] is its convergent
//! wrapper.

use super::direction::{DirectionModel, DirectionNet, DirectionState, FeatureOrder};
use crate::models::{Bound, BuildError, Params, Prefixed};
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use rand::Rng;

/// A learned optimizer whose update is the direction network's raw output.
///
/// ```
/// use convergent_l2o::models::CoordinatewiseConfig;
/// use convergent_l2o::optim::{DirectionNet, UnconstrainedL2O};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let net = DirectionNet::Coordinatewise(CoordinatewiseConfig::andrychowicz());
/// let opt = UnconstrainedL2O::<f64>::new(3, net, &mut StdRng::seed_from_u64(0)).unwrap();
/// let tape = Tape::new();
/// let bound = opt.params().bind(&tape);
/// let run = opt.prepare(&bound);
/// let x = tape.param(DMatrix::from_element(3, 1, 1.0));
/// let mut traj = run.start(x);
/// let f = x.square().sum();
/// let g = tape.grad(&[f], &[x], true)[0];
/// let update = run.step(&mut traj, x, g, f);
/// assert_eq!(update.shape(), (3, 1));
/// ```
#[derive(Clone, Debug)]
pub struct UnconstrainedL2O<T: Scalar> {
    dim: usize,
    net: DirectionNet,
    params: Params<T>,
}

impl<T: Scalar> UnconstrainedL2O<T> {
    /// An optimizer for `dim`-dimensional problems with a freshly initialized network.
    pub fn new(dim: usize, net: DirectionNet, rng: &mut impl Rng) -> Result<Self, BuildError> {
        let params = net.init_params(dim, rng)?;
        net.model(dim, params.clone())?;
        Ok(UnconstrainedL2O { dim, net, params })
    }

    /// The paper's LSTM baseline for the 7850-parameter classifier (149,246 parameters), fed
    /// `[∇f, x, f]` as in the authors' notebook.
    pub fn paper(rng: &mut impl Rng) -> Result<Self, BuildError> {
        let net = DirectionNet::PaperLstm {
            hidden: 2,
            order: FeatureOrder::GradPointLoss,
        };
        Self::new(7850, net, rng)
    }

    /// The network's parameters.
    pub fn params(&self) -> &Params<T> {
        &self.params
    }

    /// The parameters, for an outer optimizer's update.
    pub fn params_mut(&mut self) -> &mut Params<T> {
        &mut self.params
    }

    /// Replaces the parameters, checking every name and shape.
    pub fn set_params(&mut self, params: Params<T>) -> Result<(), BuildError> {
        self.net.model(self.dim, params.clone())?;
        self.params = params;
        Ok(())
    }

    /// The network for these bound parameters (names without prefix), ready to run.
    pub fn prepare<'b, 't>(&self, bound: &'b Bound<'t, T>) -> UnconstrainedRun<'b, 't, T> {
        let model = self
            .net
            .model(self.dim, self.params.clone())
            .expect("parameters were checked when set");
        UnconstrainedRun {
            bound,
            model,
            dim: self.dim,
        }
    }
}

/// An unconstrained optimizer ready to run trajectories.
pub struct UnconstrainedRun<'b, 't, T: Scalar> {
    bound: &'b Bound<'t, T>,
    model: DirectionModel<T>,
    dim: usize,
}

/// The per-trajectory state (the network's recurrent state).
#[derive(Clone)]
pub struct UnconstrainedTrajectory<'t, T: Scalar> {
    state: DirectionState<'t, T>,
}

impl<'t, T: Scalar> UnconstrainedTrajectory<'t, T> {
    /// Cuts every gradient path through the carried state (truncated BPTT).
    pub fn detach(&mut self) {
        self.state.detach();
    }

    /// The carried values, off the tape.
    pub fn state_values(&self) -> Vec<DMatrix<T>> {
        self.state.values()
    }

    /// Replaces the carried state by constants on `tape` holding `values` (from
    /// [`UnconstrainedTrajectory::state_values`]): see [`crate::optim::Trajectory::restore_state`].
    pub fn restore_state(&mut self, tape: &'t Tape<T>, values: &[DMatrix<T>]) {
        self.state.restore(tape, values);
    }
}

impl<'b, 't, T: Scalar> UnconstrainedRun<'b, 't, T> {
    fn source(&self) -> Prefixed<'b, 't, T> {
        Prefixed {
            bound: self.bound,
            prefix: "",
        }
    }

    /// Starts a trajectory at `x0`.
    pub fn start(&self, x0: Var<'t, T>) -> UnconstrainedTrajectory<'t, T> {
        UnconstrainedTrajectory {
            state: self.model.start(&self.source(), x0.tape(), self.dim),
        }
    }

    /// The update `x_{t+1} - x_t` at `x` with gradient `g` and value `f`.
    pub fn step(
        &self,
        traj: &mut UnconstrainedTrajectory<'t, T>,
        x: Var<'t, T>,
        g: Var<'t, T>,
        f: Var<'t, T>,
    ) -> Var<'t, T> {
        self.model.propose(&self.source(), &mut traj.state, x, g, f)
    }
}
