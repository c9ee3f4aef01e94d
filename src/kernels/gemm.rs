//! The kernel choice for `C = op(A) op(B)`, `op` the identity or the transpose, by shape:
//! the dot kernel ([`super::dots`]) for `Aᵀ B` with a long inner dimension and a skinny `B`,
//! the column kernel ([`super::skinny`]) for a tall `A` times a skinny `B`, the small-shape
//! loops for matrix-vector and outer products, and `matrixmultiply` with swapped strides for
//! transposes otherwise (nalgebra's `tr_mul` is 4-5x slower at these sizes, and its own
//! small-matrix fallback mis-reads strided views).

use super::columns::Columns;
use super::dots::{gemm_dot, DOT_MAX_COLUMNS, DOT_MIN_INNER};
use super::simd::{simd_type, Simd, SimdType};
use super::skinny::{gemm_skinny, MAX_COLUMNS};
use super::small::gemm_small;
use crate::tape::{Scalar, StoredTranspose};
use nalgebra::DMatrix;

/// A borrowed column-major matrix: `data[i + j * rows]` is entry (i, j). A flat parameter
/// vector read as a matrix without copying it, or a `DMatrix`; or, made by
/// [`DenseRef::gathered`], columns of a larger matrix picked by index (a minibatch drawn from
/// a split stored one sample per column), read in place.
///
/// Without an index, `data` holds exactly `rows * cols` entries; with one, `cols` is the
/// index's length and every index is a column of `data` (the constructors ensure both), which
/// the kernels rely on.
#[derive(Clone, Copy)]
pub(crate) struct DenseRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    index: Option<&'a [usize]>,
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
            index: None,
        }
    }

    /// Columns `index[0], index[1], ...` of the column-major `data` of `rows` rows, in that
    /// order, as a `rows x index.len()` matrix.
    ///
    /// Panics if an index is not a column of `data`.
    pub fn gathered(data: &'a [T], rows: usize, index: &'a [usize]) -> Self {
        // Columns of no rows hold nothing to read, whatever the index.
        if let Some(columns) = data.len().checked_div(rows) {
            if let Some(&bad) = index.iter().find(|&&j| j >= columns) {
                panic!("DenseRef::gathered: column {bad} of a matrix of {columns} columns");
            }
        }
        DenseRef {
            data,
            rows,
            cols: index.len(),
            index: Some(index),
        }
    }

    /// The columns as the SIMD kernels read them.
    fn columns(&self) -> Columns<'a, T> {
        match self.index {
            Some(index) => Columns::gathered(self.data, self.rows, index),
            None => Columns::strided(self.data, self.rows),
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
            index: None,
        }
    }
}

impl<'a, T: Scalar> From<&'a StoredTranspose<T>> for DenseRef<'a, T> {
    /// The transpose a constant keeps, read in place (a gathered one too).
    fn from(t: &'a StoredTranspose<T>) -> Self {
        match t {
            StoredTranspose::Whole(m) => DenseRef::from(&**m),
            StoredTranspose::Columns { source, index } => {
                DenseRef::gathered(source.as_slice(), source.nrows(), index)
            }
        }
    }
}

impl<T: Scalar> DenseRef<'_, T> {
    /// A gathered matrix's entries, copied into contiguous columns (`None` for a plain one),
    /// for the products that read through strides.
    fn gather(&self) -> Option<Vec<T>> {
        let index = self.index?;
        let mut out = Vec::with_capacity(self.rows * index.len());
        for &j in index {
            out.extend_from_slice(&self.data[j * self.rows..(j + 1) * self.rows]);
        }
        Some(out)
    }
}

/// Writes `op(a) op(b)` into `c` (column-major; whatever it held is overwritten, never read).
///
/// Panics with both shapes if the inner dimensions differ, or if `c` has the wrong length.
pub(crate) fn gemm_into<T: Scalar>(
    a: DenseRef<'_, T>,
    ta: bool,
    b: DenseRef<'_, T>,
    tb: bool,
    c: &mut [T],
) {
    let len = check_shapes(a, ta, b, tb);
    assert_eq!(c.len(), len, "gemm_into: output of the wrong size");
    // SAFETY: `c` holds exactly the ar x bc entries `gemm_write` writes, and as a unique borrow
    // it aliases neither input.
    unsafe { gemm_write(a, ta, b, tb, c.as_mut_ptr()) }
}

/// Appends the column-major `op(a) op(b)` to `out`, written once: the new entries are not
/// zeroed first (zeroing the products' outputs was 8.5% of a meta-step's instructions).
///
/// Panics with both shapes if the inner dimensions differ.
pub(crate) fn gemm_append<T: Scalar>(
    a: DenseRef<'_, T>,
    ta: bool,
    b: DenseRef<'_, T>,
    tb: bool,
    out: &mut Vec<T>,
) {
    let len = check_shapes(a, ta, b, tb);
    out.reserve(len);
    let start = out.len();
    // SAFETY: after `reserve`, the `len` entries past `out.len()` are allocated and alias
    // neither input (`out` is borrowed mutably, the inputs shared); `gemm_write` writes every
    // one of them and reads none, so they are initialized when the length is set.
    unsafe {
        gemm_write(a, ta, b, tb, out.as_mut_ptr().add(start));
        out.set_len(start + len);
    }
}

/// The number of entries of `op(a) op(b)`; panics with both shapes if the inner dimensions
/// differ.
fn check_shapes<T>(a: DenseRef<'_, T>, ta: bool, b: DenseRef<'_, T>, tb: bool) -> usize {
    let (ar, ac) = a.op_shape(ta);
    let (br, bc) = b.op_shape(tb);
    assert!(
        ac == br,
        "matmul: inner dimensions differ, left is {ar} x {ac}{}, right is {br} x {bc}{}",
        if ta { " (transposed)" } else { "" },
        if tb { " (transposed)" } else { "" }
    );
    ar * bc
}

/// Writes every entry of the column-major `op(a) op(b)` to `c`, reading none: `c` may point at
/// uninitialized memory. The kernel is chosen by shape.
///
/// # Safety
/// The shapes must agree (as [`check_shapes`] checks), and `c` must be valid for writes of
/// the product's rows x columns entries and alias neither input.
unsafe fn gemm_write<T: Scalar>(
    a: DenseRef<'_, T>,
    ta: bool,
    b: DenseRef<'_, T>,
    tb: bool,
    c: *mut T,
) {
    let (ar, ac) = a.op_shape(ta);
    let bc = b.op_shape(tb).1;
    if ar == 0 || bc == 0 {
        return;
    }
    if ac == 0 {
        // An empty inner dimension: the product is zero.
        for i in 0..ar * bc {
            // SAFETY: i < ar * bc, which the caller vouches `c` can take.
            unsafe { c.add(i).write(T::zero()) };
        }
        return;
    }
    if let Some(b_data) = b.gather() {
        // Only the left operand is read in place: a gathered right one is copied first.
        let b = DenseRef::new(&b_data, b.rows, b.cols);
        // SAFETY: the same product on a copy of `b`, with the caller's `c`.
        return unsafe { gemm_write(a, ta, b, tb, c) };
    }
    if ta && !tb && bc <= DOT_MAX_COLUMNS && ac >= DOT_MIN_INNER {
        // SAFETY: `a` (ac x ar) has ar columns of ac entries each, `b` (ac x bc) is a contiguous
        // column-major matrix, and `c` holds ar x bc entries that alias neither; the dot kernel
        // writes every entry.
        if unsafe { gemm_dot(ar, ac, bc, a.columns(), b.data.as_ptr(), ac, c) } {
            return;
        }
    }
    if !ta && bc <= 2 * MAX_COLUMNS && ar >= 16 {
        let (skb, sjb) = b.strides(tb);
        let b_at = |kk: usize, j: usize| b.data[kk * skb + j * sjb];
        // SAFETY: `a` (ar x ac) has ac columns of ar entries each and `c` holds ar x bc
        // entries; the column kernel writes every entry.
        if unsafe { gemm_skinny(ar, ac, bc, a.columns(), b_at, c) } {
            return;
        }
    }
    if let Some(a_data) = a.gather() {
        // The strided products below read a contiguous copy: the same entries, so the same
        // sums as on a matrix gathered beforehand.
        let a = DenseRef::new(&a_data, a.rows, a.cols);
        // SAFETY: the same product on a copy of `a`, with the caller's `c`.
        return unsafe { gemm_write(a, ta, b, tb, c) };
    }
    let (sa, sb) = (a.strides(ta), b.strides(tb));
    // SAFETY: the strides address exactly the entries of `a` and `b`, whose shapes the caller
    // checked; `c` holds ar x bc entries, which both functions write without reading
    // (`matrixmultiply` reads no output when beta is zero).
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

    /// Every kernel writes each output entry and reads none: products into a buffer of NaNs
    /// give the bits of the same products into a fresh vector, for shapes that reach the dot,
    /// column, small and general kernels, transposed or not, in f32 and f64.
    #[test]
    fn outputs_are_written_and_never_read() {
        fn check<T: Scalar>(to: impl Fn(f64) -> T) {
            let shapes = [
                (3, 200, 1),   // dots of a wide weight
                (200, 3, 1),   // tall, short inner dimension
                (3, 1, 200),   // outer product
                (128, 40, 10), // minibatch products
                (40, 128, 10),
                (30, 30, 30), // general
                (2, 2, 2),
                (10, 2, 3), // tall outer product, column form
                (5, 0, 4),  // empty inner dimension
            ];
            for &(m, k, n) in &shapes {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let a: Vec<T> = (0..ar * ac).map(|v| to((v as f64 * 0.37).sin())).collect();
                    let b: Vec<T> = (0..br * bc).map(|v| to((v as f64 * 0.53).cos())).collect();
                    let (a, b) = (DenseRef::new(&a, ar, ac), DenseRef::new(&b, br, bc));
                    let mut fresh = Vec::new();
                    gemm_append(a, ta, b, tb, &mut fresh);
                    let mut stale = vec![to(f64::NAN); m * n];
                    gemm_into(a, ta, b, tb, &mut stale);
                    let bits = |v: &[T]| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&fresh), bits(&stale), "{m}x{k}x{n} ta={ta} tb={tb}");
                    assert!(fresh.iter().all(|x| x.as_f64().is_finite()));
                }
            }
        }
        check::<f64>(|v| v);
        check::<f32>(|v| v as f32);
    }

    /// The column kernel sums every entry over the inner index in increasing order, in passes
    /// of its columns or not: its outputs are the bits of a plain running `mul_add`, for inner
    /// dimensions below, at and past a pass and row counts with vector and scalar tails.
    #[test]
    fn the_column_kernel_sums_in_order_across_passes() {
        fn check<T: Scalar>(to: impl Fn(f64) -> T) {
            for &(m, k, n) in &[
                (40, 1, 3),
                (47, 31, 10),
                (128, 32, 12),
                (33, 33, 1),
                (64, 100, 15),
            ] {
                let a: Vec<T> = (0..m * k).map(|v| to((v as f64 * 0.37).sin())).collect();
                let b: Vec<T> = (0..k * n).map(|v| to((v as f64 * 0.53).cos())).collect();
                let mut c = Vec::new();
                gemm_append(
                    DenseRef::new(&a, m, k),
                    false,
                    DenseRef::new(&b, k, n),
                    false,
                    &mut c,
                );
                for j in 0..n {
                    for i in 0..m {
                        let sum =
                            (0..k).fold(T::zero(), |s, kk| a[i + kk * m].mul_add(b[kk + j * k], s));
                        assert_eq!(
                            c[i + j * m].as_f64().to_bits(),
                            sum.as_f64().to_bits(),
                            "{m}x{k}x{n} entry ({i}, {j})"
                        );
                    }
                }
            }
        }
        check::<f64>(|v| v);
        check::<f32>(|v| v as f32);
    }

    /// Columns read in place by index give the bits of the same columns copied out first, on
    /// either side of a product and for every kernel (dot, column, small, general), in f32 and
    /// f64; an index may repeat a column and go in any order.
    #[test]
    fn gathered_operands_give_the_bits_of_their_copies() {
        fn check<T: Scalar>(to: impl Fn(f64) -> T) {
            let shapes = [
                (128, 40, 10),
                (40, 128, 10),
                (3, 200, 1),
                (30, 30, 30),
                (2, 3, 2),
            ];
            for &(m, k, n) in &shapes {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    // Sources of more columns than picked; the picks run backwards and repeat.
                    let source = |rows: usize, cols: usize, w: f64| -> Vec<T> {
                        (0..rows * (cols + 3))
                            .map(|v| to((v as f64 * w).sin()))
                            .collect()
                    };
                    let picks = |cols: usize| -> Vec<usize> {
                        (0..cols)
                            .map(|j| if j % 4 == 3 { 1 } else { cols + 2 - j })
                            .collect()
                    };
                    let (a_src, b_src) = (source(ar, ac, 0.37), source(br, bc, 0.53));
                    let (a_idx, b_idx) = (picks(ac), picks(bc));
                    let copy = |src: &[T], rows: usize, idx: &[usize]| -> Vec<T> {
                        idx.iter()
                            .flat_map(|&j| src[j * rows..(j + 1) * rows].to_vec())
                            .collect()
                    };
                    let (a_copy, b_copy) = (copy(&a_src, ar, &a_idx), copy(&b_src, br, &b_idx));
                    let mut copied = Vec::new();
                    gemm_append(
                        DenseRef::new(&a_copy, ar, ac),
                        ta,
                        DenseRef::new(&b_copy, br, bc),
                        tb,
                        &mut copied,
                    );
                    let mut in_place = Vec::new();
                    gemm_append(
                        DenseRef::gathered(&a_src, ar, &a_idx),
                        ta,
                        DenseRef::gathered(&b_src, br, &b_idx),
                        tb,
                        &mut in_place,
                    );
                    let bits = |v: &[T]| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&in_place),
                        bits(&copied),
                        "{m}x{k}x{n} ta={ta} tb={tb}"
                    );
                }
            }
        }
        check::<f64>(|v| v);
        check::<f32>(|v| v as f32);
    }

    #[test]
    #[should_panic(expected = "column 5 of a matrix of 5 columns")]
    fn a_gathered_column_past_the_end_is_refused() {
        let data = [0.0f64; 10];
        let _ = DenseRef::gathered(&data, 2, &[0, 5]);
    }
}
