//! Optimizers for composite problems `f + ρ |.|_1` ([`crate::meta::CompositeProblem`]): ISTA
//! and FISTA, the math-structured L2O-PA of Liu et al. (ICML 2023), and its convergent wrapper.

mod convergent_pa;
mod l2o_pa;
mod proximal;

pub use convergent_pa::ConvergentPa;
pub(crate) use l2o_pa::PaValues;
pub use l2o_pa::{L2oPa, PaConfig, PaState, Squash};
pub use proximal::{fista_momenta, pa_update, ProxGradient};
