//! One interface over the learned optimizers, for meta-training and evaluation code.

use crate::models::{Bound, Params};
use crate::optim::{
    ConvergentL2O, Prepared, Trajectory, UnconstrainedL2O, UnconstrainedRun,
    UnconstrainedTrajectory,
};
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;

/// A learned optimizer as meta-training sees it: meta-parameters and rollouts.
///
/// `Sync` because meta-training runs the trajectories of a meta-step in parallel, each on its
/// own tape.
pub trait Learned<T: Scalar>: Sync {
    /// Short name for tables and progress lines.
    fn name(&self) -> String;
    /// The meta-parameters.
    fn params(&self) -> &Params<T>;
    /// The meta-parameters, for the outer optimizer's update (shapes must not change).
    fn params_mut(&mut self) -> &mut Params<T>;
    /// A rollout from `x0` with the meta-parameters `bound` (prepared once per call).
    fn begin<'b, 't>(
        &'b self,
        bound: &'b Bound<'t, T>,
        x0: Var<'t, T>,
    ) -> Box<dyn Rollout<'t, T> + 'b>
    where
        't: 'b;
}

/// A running trajectory of a learned optimizer.
pub trait Rollout<'t, T: Scalar> {
    /// The update `x_{t+1} - x_t` at `x` with gradient `g` and value `f`.
    fn step(&mut self, x: Var<'t, T>, g: Var<'t, T>, f: Var<'t, T>) -> Var<'t, T>;
    /// Cuts the gradient paths through the carried state (truncated BPTT).
    fn detach(&mut self);
    /// The carried state's values, off the tape.
    fn state_values(&self) -> Vec<DMatrix<T>>;
    /// Replaces the carried state by constants on `tape` holding `values` (from
    /// [`Rollout::state_values`]): an unrecorded run truncates its tape between steps (back to
    /// a mark taken after [`Learned::begin`]) and keeps its memory flat.
    fn restore_state(&mut self, tape: &'t Tape<T>, values: &[DMatrix<T>]);
}

struct ConvergentRollout<'b, 't, T: Scalar> {
    prepared: Prepared<'b, 't, T>,
    traj: Trajectory<'t, T>,
}

impl<'t, T: Scalar> Rollout<'t, T> for ConvergentRollout<'_, 't, T> {
    fn step(&mut self, x: Var<'t, T>, g: Var<'t, T>, f: Var<'t, T>) -> Var<'t, T> {
        self.prepared.step(&mut self.traj, x, g, f).update
    }
    fn detach(&mut self) {
        self.traj.detach();
    }
    fn state_values(&self) -> Vec<DMatrix<T>> {
        self.traj.state_values()
    }
    fn restore_state(&mut self, tape: &'t Tape<T>, values: &[DMatrix<T>]) {
        self.traj.restore_state(tape, values);
    }
}

impl<T: Scalar> Learned<T> for ConvergentL2O<T> {
    fn name(&self) -> String {
        "ConvergentL2O".into()
    }
    fn params(&self) -> &Params<T> {
        ConvergentL2O::params(self)
    }
    fn params_mut(&mut self) -> &mut Params<T> {
        ConvergentL2O::params_mut(self)
    }
    fn begin<'b, 't>(
        &'b self,
        bound: &'b Bound<'t, T>,
        x0: Var<'t, T>,
    ) -> Box<dyn Rollout<'t, T> + 'b>
    where
        't: 'b,
    {
        let prepared = self.prepare(bound);
        let traj = prepared.start(x0);
        Box::new(ConvergentRollout { prepared, traj })
    }
}

struct UnconstrainedRollout<'b, 't, T: Scalar> {
    run: UnconstrainedRun<'b, 't, T>,
    traj: UnconstrainedTrajectory<'t, T>,
}

impl<'t, T: Scalar> Rollout<'t, T> for UnconstrainedRollout<'_, 't, T> {
    fn step(&mut self, x: Var<'t, T>, g: Var<'t, T>, f: Var<'t, T>) -> Var<'t, T> {
        self.run.step(&mut self.traj, x, g, f)
    }
    fn detach(&mut self) {
        self.traj.detach();
    }
    fn state_values(&self) -> Vec<DMatrix<T>> {
        self.traj.state_values()
    }
    fn restore_state(&mut self, tape: &'t Tape<T>, values: &[DMatrix<T>]) {
        self.traj.restore_state(tape, values);
    }
}

impl<T: Scalar> Learned<T> for UnconstrainedL2O<T> {
    fn name(&self) -> String {
        "LSTM".into()
    }
    fn params(&self) -> &Params<T> {
        UnconstrainedL2O::params(self)
    }
    fn params_mut(&mut self) -> &mut Params<T> {
        UnconstrainedL2O::params_mut(self)
    }
    fn begin<'b, 't>(
        &'b self,
        bound: &'b Bound<'t, T>,
        x0: Var<'t, T>,
    ) -> Box<dyn Rollout<'t, T> + 'b>
    where
        't: 'b,
    {
        let run = self.prepare(bound);
        let traj = run.start(x0);
        Box::new(UnconstrainedRollout { run, traj })
    }
}
