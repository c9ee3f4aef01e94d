//! convergent-l2o: learning optimization algorithms that are guaranteed to converge.
//!
//! - [`tape`]: reverse-mode autodiff over nalgebra matrices, with gradients of gradients.
//! - [`ops`]: the differentiable operations, each with its VJP and gradient checks.
//! - [`meta`]: tasks, data and meta-training.

pub mod meta;
pub mod models;
pub mod ops;
pub mod tape;
