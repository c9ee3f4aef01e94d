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

    /// For a sweep that records nothing: the cotangent of input `k` (for the output cotangent
    /// `g`) as an outer product `u vᵀ` whose formed value rounds every entry as `0 + u_i v_j`,
    /// or `None` (the default: the sweep takes the cotangent from [`Op::vjp`]). The sweep then
    /// keeps the factors and adds all the terms an input receives into its running sum at once
    /// with [`OuterCotangent::add_terms`], instead of forming each product and reading the sum
    /// back once per term. Worth it where the product is large and its factors small, like the
    /// rank-one weight gradient of a product with a vector.
    fn outer_cotangent(
        &self,
        _k: usize,
        _inputs: &[Var<'_, T>],
        _g: &DMatrix<T>,
    ) -> Option<OuterCotangent<T>> {
        None
    }
}

/// Where the factors of an outer-product cotangent are: the output's cotangent or an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    /// The cotangent of the op's output.
    Cotangent,
    /// Input `i` of the op.
    Input(usize),
}

/// Adds outer-product terms `(u_t, v_t)` into a column-major running sum (see
/// [`OuterCotangent::add_terms`]).
pub type AddOuterTerms<T> = fn(terms: &[(&[T], &[T])], sum: &mut [T]);

/// A cotangent `u vᵀ` given by its factors (see [`Op::outer_cotangent`]): `u` and `v` are read
/// as stored (a column or a row, only their entries count), and the cotangent is `u.len() x
/// v.len()`.
pub struct OuterCotangent<T: Scalar> {
    /// The factor whose entries run down the cotangent's columns.
    pub u: Factor,
    /// The factor whose entries run along its rows.
    pub v: Factor,
    /// Adds the terms `u_t v_tᵀ` into the column-major `sum`, one after the other, every entry
    /// as `sum + (0 + u_i v_j)`: the bits of forming each cotangent and adding it in turn.
    /// Every op's function must give these bits, so the sweep adds all the terms an input
    /// receives with the first one's.
    pub add_terms: AddOuterTerms<T>,
}
