//! Optimizers: hand-crafted baselines with PyTorch's semantics, written once for plain
//! matrices and for tape variables ([`UpdateTensor`]), and Lemma 1's convergence certificate.
//! [`ConvergentL2O`] is the convergent learned optimizer of Martin & Furieri; [`LoaBfgs`] the
//! learned BFGS of Castera & Ochs.

mod adam;
mod certificate;
mod gd;
mod hyper;
mod learned;
mod loa;
mod rmsprop;
mod rule;
mod sgd;
mod structured;
mod tensor;

pub use adam::{Adam, AdamState};
pub use certificate::{Certificate, Lemma1};
pub use gd::{HeavyBall, HeavyBallState};
pub use hyper::{check_positive, HyperError};
pub use learned::{
    APrioriBound, ConvergentError, ConvergentL2O, DirectionNet, DirectionState, FeatureOrder,
    LearnedStep, MagnitudeRen, Prepared, StepSize, Trajectory, UnconstrainedL2O, UnconstrainedRun,
    UnconstrainedTrajectory,
};
pub use loa::{
    armijo, bfgs, generalized_bfgs, gradient_descent, heavy_ball, nesterov, standard_normal_point,
    InnerGradients, Iterates, LineSearch, LoaBfgs, LoaConfig, LoaError, LoaStepReport,
    LoaTrainConfig, LoaTrainer, LoaUnrolled, Start, FEATURE_D_PREV, LOA_PARAMS,
};
pub use rmsprop::{RmsProp, RmsPropState};
pub use rule::{Rule, RuleState, Stepper};
pub use sgd::{Sgd, SgdState};
pub(crate) use structured::PaValues;
pub use structured::{
    fista_momenta, pa_update, ConvergentPa, L2oPa, PaConfig, PaState, ProxGradient, Squash,
};
pub use tensor::UpdateTensor;
