//! LOA learned BFGS of Castera & Ochs ("From Learning to Optimize to Learning Optimization
//! Algorithms", AISTATS 2025), its classical baselines (GD, Nesterov, heavy ball, BFGS) with
//! the original scripts' step sizes, initialization and Armijo line search, and meta-training.
//!
//! Shared protocol (the original's `main_*.py`): from a random `x_{-1}`,
//! `x_0 = x_{-1} - ∇f(x_{-1})/(2 λmax)`; quasi-Newton methods start from
//! `H = 0.8 BB I` with the Barzilai–Borwein step `BB = ⟨Δg, Δx⟩/⟨Δg, Δg⟩` of that first step,
//! and are updated once before their first step.

mod baselines;
mod model;
mod run;
mod train;

pub use baselines::{armijo, bfgs, gradient_descent, heavy_ball, nesterov, Iterates, Start};
pub use model::{generalized_bfgs, LoaBfgs, FEATURE_D_PREV, LOA_PARAMS};
pub use run::{InnerGradients, LineSearch, LoaConfig, LoaUnrolled};
pub use train::{standard_normal_point, LoaStepReport, LoaTrainConfig, LoaTrainer};

use std::fmt;

/// Why an LOA run, a baseline or a meta-step could not proceed.
#[derive(Clone, Debug, PartialEq)]
pub enum LoaError {
    /// `x_{-1}` does not have the problem's dimension.
    Dimension {
        /// The problem's dimension.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The task does not provide a constant LOA needs (`smoothness` or `infimum`).
    MissingConstant(&'static str),
    /// The initialization failed (a stationary `x_{-1}`, a non-finite BB step).
    Start(String),
    /// A NaN or Inf: where (meta-step if any, inner step, quantity).
    NonFinite {
        /// The meta-step, when meta-training.
        meta_step: Option<usize>,
        /// The inner step `k`.
        step: usize,
        /// What was not finite.
        quantity: String,
    },
    /// A bad configuration value.
    Config(String),
    /// Parameters that do not fit the model, or a file error.
    Params(String),
}

impl fmt::Display for LoaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoaError::Dimension { expected, got } => write!(
                f,
                "LOA: x_-1 has {got} entries but the problem has dimension {expected}"
            ),
            LoaError::MissingConstant(c) => {
                write!(f, "LOA: the task does not provide its {c}, which LOA needs")
            }
            LoaError::Start(m) => write!(f, "LOA initialization: {m}"),
            LoaError::NonFinite {
                meta_step,
                step,
                quantity,
            } => {
                if let Some(m) = meta_step {
                    write!(f, "meta-step {m}: ")?;
                }
                write!(f, "{quantity} is not finite at inner step {step}")
            }
            LoaError::Config(m) => write!(f, "LOA configuration: {m}"),
            LoaError::Params(m) => write!(f, "LOA parameters: {m}"),
        }
    }
}

impl std::error::Error for LoaError {}

impl From<super::HyperError> for LoaError {
    fn from(e: super::HyperError) -> Self {
        LoaError::Config(e.to_string())
    }
}
