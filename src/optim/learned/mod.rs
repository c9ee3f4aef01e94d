//! Learned optimizers: meta-parameters in one [`crate::models::Params`] and the
//! [`crate::optim::Optimizer`] they define on a tape, run recorded (meta-training) or
//! unrecorded (evaluation).

mod a_priori;
mod convergent;
mod convergent_any;
mod coord_net;
mod direction;
mod hyper;
mod step_size;
mod unconstrained;

pub use a_priori::APrioriBound;
pub use convergent::{ConvergentError, ConvergentL2O, MagnitudeRen};
pub use convergent_any::{AnyConfig, AnyError, AnyStepRule, ConvergentAnyL2O};
pub use direction::{
    load_lstm, store_lstm, CoordinatewiseDirection, Direction, FeatureOrder, MlpDirection,
    PaperLstmDirection, DIRECTION_STATE,
};
pub use hyper::LearnedHeavyBall;
pub use step_size::StepSize;
pub use unconstrained::UnconstrainedL2O;
