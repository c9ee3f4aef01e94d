//! The kernel choice for `C = op(A) op(B)`, `op` the identity or the transpose, by shape:
//! the dot kernel ([`super::dots`]) for `Aᵀ B` with a long inner dimension and a skinny `B`,
//! the column kernel ([`super::skinny`]) for a tall `A` times a skinny `B`, the small-shape
//! loops for matrix-vector and outer products, and `matrixmultiply` with swapped strides for
//! transposes otherwise (nalgebra's `tr_mul` is 4-5x slower at these sizes, and its own
//! small-matrix fallback mis-reads strided views).

use super::dots::{gemm_dot, DOT_MAX_COLUMNS};
use super::simd::{simd_type, Simd, SimdType};
use super::skinny::{gemm_skinny, gemm_small, MAX_COLUMNS};
use crate::tape::Scalar;
use nalgebra::DMatrix;

/// A borrowed column-major matrix: `data[i + j * rows]` is entry (i, j). A flat parameter
/// vector read as a matrix without copying it, or a `DMatrix`.
///
/// `data` holds exactly `rows * cols` entries (both constructors ensure it), which the
/// kernels rely on.
#[derive(Clone, Copy)]
pub(crate) struct DenseRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
}

impl<'a, T> DenseRef<'a, T> {
    /// The first `rows * cols` entries of `data` as a rows x cols matrix.
    ///
    /// Panics if `data` is shorter.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        DenseRef {
            data: &data[..rows * cols],
            rows,
            cols,
        }
    }

    /// The shape of `op(self)`.
    pub fn op_shape(&self, transposed: bool) -> (usize, usize) {
        if transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// (row stride, column stride) of `op(self)`: a transpose swaps them.
    fn strides(&self, transposed: bool) -> (usize, usize) {
        if transposed {
            (self.rows, 1)
        } else {
            (1, self.rows)
        }
    }
}

impl<'a, T: Scalar> From<&'a DMatrix<T>> for DenseRef<'a, T> {
    fn from(m: &'a DMatrix<T>) -> Self {
        DenseRef {
            data: m.as_slice(),
            rows: m.nrows(),
            cols: m.ncols(),
        }
    }
}

/// Writes `op(a) op(b)` into `c` (column-major, zeros on entry), choosing the kernel by shape.
///
/// Panics with both shapes if the inner dimensions differ, or if `c` has the wrong length.
pub(crate) fn gemm_into<T: Scalar>(
    a: DenseRef<'_, T>,
    ta: bool,
    b: DenseRef<'_, T>,
    tb: bool,
    c: &mut [T],
) {
    let (ar, ac) = a.op_shape(ta);
    let (br, bc) = b.op_shape(tb);
    assert!(
        ac == br,
        "matmul: inner dimensions differ, left is {ar} x {ac}{}, right is {br} x {bc}{}",
        if ta { " (transposed)" } else { "" },
        if tb { " (transposed)" } else { "" }
    );
    assert_eq!(c.len(), ar * bc, "gemm_into: output of the wrong size");
    if ar == 0 || ac == 0 || bc == 0 {
        return;
    }
    let c = c.as_mut_ptr();
    if ta && !tb && bc <= DOT_MAX_COLUMNS && ac >= 16 {
        // SAFETY: `a` (ac x ar) and `b` (ac x bc) are contiguous column-major matrices and `c`
        // holds ar x bc entries that alias neither.
        if unsafe { gemm_dot(ar, ac, bc, a.data.as_ptr(), ac, b.data.as_ptr(), ac, c) } {
            return;
        }
    }
    if !ta && bc <= 2 * MAX_COLUMNS && ar >= 16 {
        let (skb, sjb) = b.strides(tb);
        let b_at = |kk: usize, j: usize| b.data[kk * skb + j * sjb];
        // SAFETY: `a` is a contiguous ar x ac column-major matrix and `c` holds ar x bc entries.
        if unsafe { gemm_skinny(ar, ac, bc, a.data.as_ptr(), ar, b_at, c) } {
            return;
        }
    }
    let (sa, sb) = (a.strides(ta), b.strides(tb));
    // SAFETY: the strides address exactly the entries of `a` and `b`, whose shapes were checked
    // above; `c` holds ar x bc zeros, as gemm_small's outer-product form requires.
    unsafe {
        if gemm_small(ar, ac, bc, a.data.as_ptr(), sa, b.data.as_ptr(), sb, c) {
            return;
        }
        gemm_general(ar, ac, bc, a.data.as_ptr(), sa, b.data.as_ptr(), sb, c);
    }
}

/// `C = A B` for an m x k `A` and a k x n `B` addressed by (row, column) strides, writing the
/// column-major m x n `C`: `matrixmultiply` for `f32` and `f64`, [`gemm_portable`] for any
/// other scalar type.
///
/// # Safety
/// Every element addressed by the dimensions and strides must be valid, and `c` (m * n
/// elements) must not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_general<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    sa: (usize, usize),
    b: *const T,
    sb: (usize, usize),
    c: *mut T,
) {
    let signed = |(r, c): (usize, usize)| (r as isize, c as isize);
    let sc = (1, m as isize);
    match simd_type::<T>() {
        SimdType::F32 => {
            // SAFETY: `T` is `f32` (equal type ids), so the casts only rename the pointee type;
            // the caller guarantees the elements addressed and that `c` aliases neither input.
            unsafe {
                f32::gemm_strided(
                    m,
                    k,
                    n,
                    a.cast(),
                    signed(sa),
                    b.cast(),
                    signed(sb),
                    c.cast(),
                    sc,
                )
            }
        }
        SimdType::F64 => {
            // SAFETY: `T` is `f64` (equal type ids), so the casts only rename the pointee type;
            // the caller guarantees the elements addressed and that `c` aliases neither input.
            unsafe {
                f64::gemm_strided(
                    m,
                    k,
                    n,
                    a.cast(),
                    signed(sa),
                    b.cast(),
                    signed(sb),
                    c.cast(),
                    sc,
                )
            }
        }
        // SAFETY: the caller's contract is `gemm_portable`'s.
        SimdType::Other => unsafe { gemm_portable(m, k, n, a, sa, b, sb, c) },
    }
}

/// The portable form of [`gemm_general`]: every entry of `C` summed in increasing inner index.
///
/// # Safety
/// As [`gemm_general`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_portable<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    (sia, ska): (usize, usize),
    b: *const T,
    (skb, sjb): (usize, usize),
    c: *mut T,
) {
    for j in 0..n {
        for i in 0..m {
            let mut sum = T::zero();
            for kk in 0..k {
                // SAFETY: `A(i, kk)` and `B(kk, j)` with i < m, kk < k, j < n, which the caller
                // vouches for.
                sum += unsafe { *a.add(i * sia + kk * ska) * *b.add(kk * skb + j * sjb) };
            }
            // SAFETY: entry (i, j) of the column-major m x n `c`, which the caller vouches for.
            unsafe { *c.add(j * m + i) = sum };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loop other scalar types take agrees with `matrixmultiply` on strided operands.
    #[test]
    fn the_portable_loop_matches_matrixmultiply() {
        let (m, k, n) = (7, 5, 3);
        let a: Vec<f64> = (0..m * k).map(|v| (v as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|v| (v as f64 * 0.53).cos()).collect();
        // `a` read transposed (stored k x m), `b` column-major.
        let (sa, sb) = ((k, 1), (1, k));
        let (mut fast, mut slow) = (vec![0.0; m * n], vec![0.0; m * n]);
        // SAFETY: the strides address the k x m and k x n arrays exactly; outputs are separate.
        unsafe {
            gemm_general(m, k, n, a.as_ptr(), sa, b.as_ptr(), sb, fast.as_mut_ptr());
            gemm_portable(m, k, n, a.as_ptr(), sa, b.as_ptr(), sb, slow.as_mut_ptr());
        }
        for (x, y) in fast.iter().zip(&slow) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }
}
