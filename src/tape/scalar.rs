//! The floating-point types the tape computes in.

use nalgebra::RealField;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::{Debug, Display};

/// A real scalar the tape can hold: `f32` (the paper's experiments) or `f64` (gradient checks).
///
/// ```
/// use convergent_l2o::tape::Scalar;
/// assert_eq!(<f32 as Scalar>::cast(0.5), 0.5f32);
/// assert_eq!(2.0f64.as_f64(), 2.0);
/// ```
pub trait Scalar:
    RealField + Copy + Default + Debug + Display + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Short name of the type, as printed by benchmarks (`"f32"`, `"f64"`).
    const NAME: &'static str;
    /// Converts from `f64`, rounding to the nearest representable value.
    fn cast(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;
    /// `c = a b` for an m x k `a` and a k x n `b` given as raw arrays with row and column
    /// strides (so transposes are free), through `matrixmultiply`.
    ///
    /// # Safety
    /// Every element addressed by the dimensions and strides must be valid, and `c` must not
    /// alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_strided(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        a_strides: (isize, isize),
        b: *const Self,
        b_strides: (isize, isize),
        c: *mut Self,
        c_strides: (isize, isize),
    );
    /// The SIMD kernel of `tape::skinny` for `c (m x n, column stride ldc) = a bp`, `bp` packed
    /// row-major with `n <= 12` columns; false, writing nothing, when this CPU has none.
    ///
    /// # Safety
    /// Every element addressed must be valid and `c` must not alias `a` or `bp`.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn skinny_kernel(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        lda: usize,
        bp: *const Self,
        c: *mut Self,
        ldc: usize,
    ) -> bool;
    /// The SIMD kernel of `tape::dots` for `c (m x n, column stride ldc) = aᵀ b` with `a` k x m
    /// and `b` k x n column-major; false, writing nothing, when this CPU has none.
    ///
    /// # Safety
    /// Every element addressed must be valid and `c` must not alias `a` or `b`.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_kernel(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        lda: usize,
        b: *const Self,
        ldb: usize,
        c: *mut Self,
        ldc: usize,
    ) -> bool;
    /// Converts a count or index to this type.
    fn from_count(n: usize) -> Self {
        Self::cast(n as f64)
    }
}

macro_rules! impl_scalar {
    ($ty:ident, $gemm:path, $skinny:path, $dot:path) => {
        impl Scalar for $ty {
            const NAME: &'static str = stringify!($ty);
            unsafe fn dot_kernel(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                lda: usize,
                b: *const Self,
                ldb: usize,
                c: *mut Self,
                ldc: usize,
            ) -> bool {
                $dot(m, k, n, a, lda, b, ldb, c, ldc)
            }
            unsafe fn skinny_kernel(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                lda: usize,
                bp: *const Self,
                c: *mut Self,
                ldc: usize,
            ) -> bool {
                $skinny(m, k, n, a, lda, bp, c, ldc)
            }
            unsafe fn gemm_strided(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                (rsa, csa): (isize, isize),
                b: *const Self,
                (rsb, csb): (isize, isize),
                c: *mut Self,
                (rsc, csc): (isize, isize),
            ) {
                $gemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc);
            }
            fn cast(x: f64) -> Self {
                x as $ty
            }
            fn as_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

impl_scalar!(
    f32,
    matrixmultiply::sgemm,
    super::skinny::kernel_f32,
    super::dots::kernel_f32
);
impl_scalar!(
    f64,
    matrixmultiply::dgemm,
    super::skinny::kernel_f64,
    super::dots::kernel_f64
);
