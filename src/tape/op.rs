//! The interface every recorded operation implements.

use super::{Scalar, Var};
use nalgebra::DMatrix;

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

    /// [`Op::vjp`] for the inputs marked in `wanted` only: the sweep ignores the others, so an
    /// op may skip them (`None`). The default computes every cotangent.
    fn vjp_wanted<'t>(
        &self,
        inputs: &[Var<'t, T>],
        output: Var<'t, T>,
        g: Var<'t, T>,
        _wanted: &[bool],
    ) -> Vec<Option<Var<'t, T>>> {
        self.vjp(inputs, output, g)
    }

    /// For a sweep that records nothing: adds the cotangent of input `k` (for the output
    /// cotangent `g`) into that input's running sum `sum` in place, with the bits of taking it
    /// from [`Op::vjp`] and adding it, and returns true; or returns false, leaving `sum` alone,
    /// and the sweep takes the cotangent from `vjp` (the default). Worth it where the cotangent
    /// would be formed only to be added, like the rank-one weight gradient of a product with
    /// a vector.
    fn add_cotangent(
        &self,
        _k: usize,
        _inputs: &[Var<'_, T>],
        _g: &DMatrix<T>,
        _sum: &mut DMatrix<T>,
    ) -> bool {
        false
    }
}
