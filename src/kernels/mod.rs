//! Matrix-product and reduction kernels under the differentiable ops: SIMD kernels for the
//! skinny products of meta-training, small-shape loops, `matrixmultiply`, and sums of
//! products in eight running sums.
//!
//! The layering is `tape` (scalars, values) <- `kernels` <- `ops`: nothing here records on a
//! tape. The SIMD and `matrixmultiply` hooks exist for `f32` and `f64` only ([`Simd`], a sealed
//! trait); generic code over any [`Scalar`](crate::tape::Scalar) reaches them by comparing type
//! ids, and other scalar types take portable loops.

#[macro_use]
mod isa;
mod columns;
mod dots;
mod exp;
mod gemm;
mod lanes;
mod outer;
mod reduce;
mod simd;
mod skinny;
mod small;
mod tanh;

pub use columns::Columns;
pub(crate) use dots::{DOT_MAX_COLUMNS, DOT_MIN_INNER};
pub(crate) use exp::exp_of;
pub(crate) use gemm::{gemm_append, gemm_into, DenseRef};
pub(crate) use outer::{add_outer_products, outer_products_keep_bits};
pub use reduce::{dot, norm_squared_f64};
pub use simd::Simd;
pub(crate) use tanh::tanh_of;
