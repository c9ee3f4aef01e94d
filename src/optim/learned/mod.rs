//! Learned optimizers: meta-parameters in a [`crate::models::Params`], a per-trajectory state,
//! and a step that runs recorded (meta-training) or unrecorded (evaluation).

mod a_priori;
mod convergent;
mod direction;
mod step_size;
mod unconstrained;

pub use a_priori::APrioriBound;
pub use convergent::{
    ConvergentError, ConvergentL2O, LearnedStep, MagnitudeRen, Prepared, Trajectory,
};
pub use direction::{DirectionNet, DirectionState, FeatureOrder};
pub use step_size::StepSize;
pub use unconstrained::{UnconstrainedL2O, UnconstrainedRun, UnconstrainedTrajectory};
