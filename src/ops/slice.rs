//! Taking a rectangular block `C = A[r0..r0+nr, c0..c0+nc]`, and its adjoint, placing a block
//! into zeros.
//!
//! Derivatives: slicing is linear; its VJP places `G` into an r x c zero matrix at
//! `(r0, c0)` (`pad`), and the VJP of `pad` is the slice of `G` at the same place.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct SliceOp {
    r0: usize,
    c0: usize,
    rows: usize,
    cols: usize,
}

impl<T: Scalar> Op<T> for SliceOp {
    fn name(&self) -> &'static str {
        "slice"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.pad(self.rows, self.cols, self.r0, self.c0))]
    }
}

struct PadOp {
    r0: usize,
    c0: usize,
    rows: usize,
    cols: usize,
}

impl<T: Scalar> Op<T> for PadOp {
    fn name(&self) -> &'static str {
        "pad"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.slice(self.r0, self.c0, self.rows, self.cols))]
    }
}

/// The `rows` x `cols` block of `src` at `(r0, c0)`, copied a column (a contiguous run) at a
/// time: nalgebra's view-to-owned conversion goes entry by entry.
pub(crate) fn block<T: Scalar>(
    src: &DMatrix<T>,
    r0: usize,
    c0: usize,
    rows: usize,
    cols: usize,
) -> DMatrix<T> {
    let ld = src.nrows();
    let data = src.as_slice();
    let mut out = Vec::with_capacity(rows * cols);
    for j in c0..c0 + cols {
        out.extend_from_slice(&data[j * ld + r0..j * ld + r0 + rows]);
    }
    DMatrix::from_vec(rows, cols, out)
}

/// Writes `src` into `dst` with its top-left entry at `(r0, c0)`, a column at a time.
pub(crate) fn copy_block<T: Scalar>(dst: &mut DMatrix<T>, r0: usize, c0: usize, src: &DMatrix<T>) {
    let (ld, rows) = (dst.nrows(), src.nrows());
    let out = dst.as_mut_slice();
    for (j, column) in src.as_slice().chunks_exact(rows.max(1)).enumerate() {
        let start = (c0 + j) * ld + r0;
        out[start..start + rows].copy_from_slice(column);
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// The `rows` x `cols` block starting at row `r0`, column `c0`.
    ///
    /// Panics if the block does not fit.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![1.0, 2.0, 3.0; 4.0, 5.0, 6.0]);
    /// assert_eq!(a.slice(0, 1, 2, 2).value(), dmatrix![2.0, 3.0; 5.0, 6.0]);
    /// ```
    pub fn slice(self, r0: usize, c0: usize, rows: usize, cols: usize) -> Self {
        let (r, c) = self.shape();
        assert!(
            r0 + rows <= r && c0 + cols <= c,
            "slice: block {rows} x {cols} at ({r0}, {c0}) does not fit in {r} x {c}"
        );
        let op = SliceOp {
            r0,
            c0,
            rows: r,
            cols: c,
        };
        Var::record_with(op, &[self], |v| block(v[0], r0, c0, rows, cols))
    }

    /// Entries `start..start + len` of a column vector.
    pub fn rows_range(self, start: usize, len: usize) -> Self {
        self.slice(start, 0, len, self.ncols())
    }

    /// This variable placed at `(r0, c0)` inside a `rows` x `cols` matrix of zeros.
    ///
    /// Panics if it does not fit.
    pub fn pad(self, rows: usize, cols: usize, r0: usize, c0: usize) -> Self {
        let (r, c) = self.shape();
        assert!(
            r0 + r <= rows && c0 + c <= cols,
            "pad: block {r} x {c} at ({r0}, {c0}) does not fit in {rows} x {cols}"
        );
        let op = PadOp {
            r0,
            c0,
            rows: r,
            cols: c,
        };
        Var::record_with(op, &[self], |v| {
            let mut out = DMatrix::zeros(rows, cols);
            copy_block(&mut out, r0, c0, v[0]);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn slice_and_pad_gradients(r in 1usize..6, c in 1usize..6, seed in 0u64..1_000_000,
                                   fr in 0.0f64..1.0, fc in 0.0f64..1.0) {
            let r0 = ((r as f64) * fr) as usize % r;
            let c0 = ((c as f64) * fc) as usize % c;
            let (nr, nc) = (r - r0, c - c0);
            let f = tape_fn(move |x| {
                x[0].slice(r0, c0, nr, nc).square().pad(r + 1, c + 2, 1, 0)
            });
            check(&f, &[rand(seed, r, c)], seed)?;
        }
    }

    #[test]
    #[should_panic(expected = "slice: block 2 x 2 at (1, 0) does not fit in 2 x 3")]
    fn slice_out_of_bounds_is_named() {
        let tape = crate::tape::Tape::<f64>::new();
        let _ = tape
            .constant(nalgebra::DMatrix::zeros(2, 3))
            .slice(1, 0, 2, 2);
    }
}
