//! Learned optimizers: meta-parameters in a [`crate::models::Params`], a per-trajectory state,
//! and a step that runs recorded (meta-training) or unrecorded (evaluation).

mod convergent;
mod step_size;

pub use convergent::{
    ConvergentError, ConvergentL2O, LearnedStep, MagnitudeRen, Prepared, Trajectory,
};
pub use step_size::StepSize;
