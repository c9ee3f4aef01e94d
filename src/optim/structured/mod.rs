//! Optimizers for composite problems `F = f + ρ |.|_1` (problems with a
//! [`crate::problems::Problem::l1_weight`] and a known smoothness): ISTA and FISTA
//! ([`ProxGradient`]), the math-structured L2O-PA of Liu et al. (ICML 2023, [`L2oPa`]), its
//! convergent wrapper ([`ConvergentPa`]), and the reference optimum `F*` of the benchmarks.

mod convergent_pa;
mod l2o_pa;
mod proximal;

pub use convergent_pa::ConvergentPa;
pub use l2o_pa::{L2oPa, PaConfig, Squash};
pub use proximal::{fista_momenta, pa_update, reference_optimum, ProxGradient};
