//! Optimizers behind one interface ([`Optimizer`]: a state from `x0`, an update from `f` and
//! `∇f`), recorded or not: the hand-crafted baselines with PyTorch's semantics, the learned
//! optimizers ([`LearnedOptimizer`]: meta-parameters that define an optimizer), and Lemma 1's
//! convergence certificate. [`ConvergentL2O`] is the convergent learned optimizer of Martin &
//! Furieri; [`LoaBfgs`] is LOA's learned BFGS (Castera & Ochs), with its baselines [`Bfgs`],
//! [`Nesterov`] and [`loa_gradient_descent`] / [`loa_heavy_ball`] (see [`loa_warm_up`] for the
//! original's protocol).
//!
//! Every optimizer keeps its trajectory in an [`OptState`] (named tensors), so any of them
//! can be detached (truncated backpropagation), read as values and restored (runs in flat
//! memory, checkpoints of persistent trajectories).

mod adam;
mod certificate;
mod heavy_ball;
mod hyper;
mod interface;
mod learned;
mod loa;
mod rmsprop;
mod sgd;
mod state;
mod structured;

pub use adam::Adam;
pub use certificate::{Certificate, Lemma1};
pub use heavy_ball::{heavy_ball_step, HeavyBall};
pub use hyper::{check_positive, check_range, HyperError};
pub use interface::{
    Algorithm, Evaluation, Fixed, Frozen, LearnedOptimizer, OptimError, Optimizer, Oracle, Rate,
    Recording, StepInfo, Tunable,
};
pub use learned::{
    load_lstm, store_lstm, APrioriBound, AnyConfig, AnyError, AnyStepRule, ConvergentAnyL2O,
    ConvergentError, ConvergentL2O, CoordinatewiseDirection, Direction, FeatureOrder,
    LearnedHeavyBall, MagnitudeRen, MlpDirection, PaperLstmDirection, StepSize, UnconstrainedL2O,
    DIRECTION_STATE,
};
pub use loa::{
    armijo, backtrack, curvature_condition, generalized_bfgs, is_descent_direction,
    loa_gradient_descent, loa_heavy_ball, loa_nesterov, loa_warm_up, Bfgs, InnerGradients,
    LineSearch, LoaBfgs, Nesterov, FEATURE_D_PREV, LOA_PARAMS, SAFEGUARD_EPS,
};
pub use rmsprop::RmsProp;
pub use sgd::Sgd;
pub use state::{OptState, StateValues};
pub use structured::{
    fista_momenta, pa_update, reference_optimum, ConvergentPa, L2oPa, PaConfig, ProxGradient,
    Squash,
};

use crate::tape::Scalar;

/// The paper's baselines with PyTorch's defaults: SGD, NAG (momentum 0.9), Adam, RMSprop (each
/// at its default learning rate; a grid search sets the rate).
pub fn paper_baselines<T: Scalar>() -> Vec<Box<dyn Tunable<T>>> {
    vec![
        Box::new(Sgd::new(1e-3).expect("valid")),
        Box::new(Sgd::nesterov(1e-3, 0.9).expect("valid")),
        Box::new(Adam::default()),
        Box::new(RmsProp::default()),
    ]
}
