//! The autodiff engine: an arena tape over nalgebra matrices with reverse-mode gradients of
//! any order.
//!
//! Every operation's VJP is written with the same recording operations users call, so
//! [`Tape::grad`] with `create_graph = true` records the backward pass itself and its result
//! can be differentiated again (the "dual tape"). Without it, the same VJPs run unrecorded.

pub(crate) mod arena;
mod backward;
pub mod gradcheck;
mod op;
mod scalar;
mod var;

pub(crate) use arena::StoredTranspose;
pub use arena::{Mark, Tape};
pub use op::{AddOuterTerms, Factor, Op, OuterCotangent};
pub use scalar::Scalar;
pub(crate) use var::assert_same_shape;
pub use var::Var;
