//! convergent-l2o: learning optimization algorithms that are guaranteed to converge.
//!
//! - [`tape`]: reverse-mode autodiff over nalgebra matrices, with gradients of gradients.
//! - [`ops`]: the differentiable operations, each with its VJP and gradient checks.
//! - [`models`]: building blocks of optimizees and learned optimizers.
//! - [`optim`]: optimizers (to come).
//! - [`meta`]: tasks, data and meta-training.

#![warn(missing_docs)]

pub mod meta;
pub mod models;
pub mod ops;
pub mod optim;
pub mod tape;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
