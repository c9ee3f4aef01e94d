//! The interface every recorded operation implements.

use super::{Scalar, Var};

/// A differentiable operation recorded on the tape.
///
/// `vjp` must be written with recording operations (the same methods users call on [`Var`]),
/// never with raw matrix arithmetic on the cotangent: that is what makes the backward pass
/// itself differentiable when gradients are taken with `create_graph = true`.
pub trait Op<T: Scalar>: 'static {
    /// Name used in error messages and debug output.
    fn name(&self) -> &'static str;

    /// Vector-Jacobian product: given the node's inputs, its output and the cotangent `g` of the
    /// output, returns one cotangent per input (`None` where the input gets no gradient).
    fn vjp<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        g: Var<'t, T>,
    ) -> Vec<Option<Var<'t, T>>>;
}
