//! The element types with SIMD and `matrixmultiply` kernels, and how generic code finds out
//! whether its scalar type is one of them.

use super::columns::Columns;
use crate::tape::Scalar;
use std::any::TypeId;

mod sealed {
    /// Implemented for `f32` and `f64` only, so [`super::Simd`] cannot be implemented outside.
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The scalar types with SIMD and `matrixmultiply` kernels: `f32` and `f64` (sealed).
///
/// Generic code over [`Scalar`] does not require this trait: it compares `TypeId`s and calls
/// these kernels on pointers reinterpreted as `f32` or `f64` when the types are equal.
pub trait Simd: Scalar + sealed::Sealed {
    /// `c = a b` for an m x k `a` and a k x n `b` given as raw arrays with (row, column)
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

    /// The column kernel: `c (m x n, column stride ldc) = a bp` for a column-major `a` (its k
    /// columns) and `bp` packed row-major with `n <= 12` columns; false, writing nothing,
    /// when this CPU has no SIMD kernel.
    ///
    /// # Safety
    /// Each column of `a` must hold `m` valid elements, `bp` `k * n`, `c` `ldc * (n - 1) + m`,
    /// and `c` must not alias `a` or `bp`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn skinny_kernel(
        m: usize,
        k: usize,
        n: usize,
        a: Columns<'_, Self>,
        bp: *const Self,
        c: *mut Self,
        ldc: usize,
    ) -> bool;

    /// The dot kernel: `c (m x n, column stride ldc) = aᵀ b` with `a` k x m (its m columns)
    /// and `b` k x n column-major (column stride ldb); false, writing nothing, when this CPU
    /// has no SIMD kernel.
    ///
    /// # Safety
    /// Each column of `a` must hold `k` valid elements, `b` must address `ldb * (n - 1) + k`,
    /// `c` `ldc * (n - 1) + m`, and `c` must alias neither.
    #[allow(clippy::too_many_arguments)]
    unsafe fn dot_kernel(
        m: usize,
        k: usize,
        n: usize,
        a: Columns<'_, Self>,
        b: *const Self,
        ldb: usize,
        c: *mut Self,
        ldc: usize,
    ) -> bool;
}

macro_rules! impl_simd {
    ($ty:ident, $gemm:path, $skinny:path, $dot:path) => {
        impl Simd for $ty {
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
                // SAFETY: the caller guarantees every element addressed is valid and that `c`
                // aliases neither input, which is `matrixmultiply`'s contract.
                unsafe { $gemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc) };
            }

            unsafe fn skinny_kernel(
                m: usize,
                k: usize,
                n: usize,
                a: Columns<'_, Self>,
                bp: *const Self,
                c: *mut Self,
                ldc: usize,
            ) -> bool {
                // SAFETY: the caller's contract is the kernel's.
                unsafe { $skinny(m, k, n, a, bp, c, ldc) }
            }

            unsafe fn dot_kernel(
                m: usize,
                k: usize,
                n: usize,
                a: Columns<'_, Self>,
                b: *const Self,
                ldb: usize,
                c: *mut Self,
                ldc: usize,
            ) -> bool {
                // SAFETY: the caller's contract is the kernel's.
                unsafe { $dot(m, k, n, a, b, ldb, c, ldc) }
            }
        }
    };
}

impl_simd!(
    f32,
    matrixmultiply::sgemm,
    super::skinny::kernel_f32,
    super::dots::kernel_f32
);
impl_simd!(
    f64,
    matrixmultiply::dgemm,
    super::skinny::kernel_f64,
    super::dots::kernel_f64
);

/// Which [`Simd`] type a scalar type is, if any.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum SimdType {
    /// `T` is `f32`.
    F32,
    /// `T` is `f64`.
    F64,
    /// Any other scalar type: portable loops only.
    Other,
}

/// `T`'s [`SimdType`], by `TypeId` (a constant after monomorphization). When it is `F32`
/// (`F64`), `T` *is* `f32` (`f64`), so a `*const T` may be read as a `*const f32` (`f64`).
pub(crate) fn simd_type<T: Scalar>() -> SimdType {
    let t = TypeId::of::<T>();
    if t == TypeId::of::<f32>() {
        SimdType::F32
    } else if t == TypeId::of::<f64>() {
        SimdType::F64
    } else {
        SimdType::Other
    }
}

/// `f32_kernel` over `src` when `T` is `f32` (an elementwise kernel filling its output), `other`
/// on each element otherwise.
pub(crate) fn map_f32<T: Scalar>(
    src: &[T],
    f32_kernel: fn(&[f32], &mut [f32]),
    other: impl Fn(T) -> T,
) -> Vec<T> {
    if simd_type::<T>() != SimdType::F32 {
        return src.iter().map(|&x| other(x)).collect();
    }
    // SAFETY: `T` is `f32` (`simd_type`), so the slice is a slice of `f32`.
    let src = unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len()) };
    let mut out = vec![0.0f32; src.len()];
    f32_kernel(src, &mut out);
    let mut out = std::mem::ManuallyDrop::new(out);
    // SAFETY: `T` is `f32`, so this is the same vector under its own type (pointer, length and
    // capacity from a live `Vec<f32>` that is not dropped).
    unsafe { Vec::from_raw_parts(out.as_mut_ptr().cast::<T>(), out.len(), out.capacity()) }
}
