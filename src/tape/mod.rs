//! The autodiff engine: an arena tape over nalgebra matrices with reverse-mode gradients of
//! any order.
//!
//! Every operation's VJP is written with the same recording operations users call, so
//! [`Tape::grad`] with `create_graph = true` records the backward pass itself and its result
//! can be differentiated again (the "dual tape"). Without it, the same VJPs run unrecorded.

#[macro_use]
mod isa;
mod arena;
mod backward;
mod dots;
pub mod gradcheck;
mod op;
mod scalar;
mod skinny;
mod var;

pub use arena::{Mark, Tape};
pub(crate) use dots::{gemm_dot, DOT_MAX_COLUMNS};
pub use op::Op;
pub use scalar::Scalar;
pub(crate) use skinny::{gemm_skinny, gemm_small, MAX_COLUMNS};
pub(crate) use var::assert_same_shape;
pub use var::Var;
