//! convergent-l2o: learning optimization algorithms that are guaranteed to converge.
//!
//! The layers, each using only those before it:
//!
//! - [`tape`]: reverse-mode autodiff over nalgebra matrices, with gradients of gradients.
//! - [`kernels`]: the matrix-product and reduction kernels under the ops (SIMD where available).
//! - [`ops`]: the differentiable operations, each with its VJP and gradient checks.
//! - [`models`]: MLP, LSTM, REN; they describe their parameters and read them by name.
//! - [`problems`]: optimizees ([`problems::Problem`]), families of them, data, initial points.
//! - [`optim`]: every optimizer behind one interface ([`optim::Optimizer`]), hand-crafted and
//!   learned ([`optim::LearnedOptimizer`]), and the convergence certificates.
//! - [`meta`]: the one meta-trainer, its meta-losses and gradient estimators, checkpoints.
//! - [`eval`]: runs of any optimizer on any problem, grid search, reports.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod eval;
pub mod kernels;
pub mod meta;
pub mod models;
pub mod ops;
pub mod optim;
pub mod problems;
pub mod tape;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
