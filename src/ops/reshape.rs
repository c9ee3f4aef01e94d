//! Reshape to `rows` x `cols`, reading and writing entries in column-major order (nalgebra's
//! storage order), so it copies nothing but the buffer.
//!
//! Derivative: a permutation-free relabelling of entries; VJP reshapes `G` back.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct ReshapeOp {
    rows: usize,
    cols: usize,
}

impl<T: Scalar> Op<T> for ReshapeOp {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.reshape(self.rows, self.cols))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// The same entries, in column-major order, as a `rows` x `cols` matrix.
    ///
    /// Panics if the number of entries differs.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let v = tape.constant(dmatrix![1.0; 2.0; 3.0; 4.0]);
    /// assert_eq!(v.reshape(2, 2).value(), dmatrix![1.0, 3.0; 2.0, 4.0]);
    /// ```
    pub fn reshape(self, rows: usize, cols: usize) -> Self {
        let (r, c) = self.shape();
        assert!(
            r * c == rows * cols,
            "reshape: cannot reshape {r} x {c} ({} entries) to {rows} x {cols}",
            r * c
        );
        if (r, c) == (rows, cols) {
            return self;
        }
        Var::record_with(ReshapeOp { rows: r, cols: c }, &[self], |v| {
            DMatrix::from_vec(rows, cols, v[0].as_slice().to_vec())
        })
    }

    /// All entries as one column (column-major order).
    pub fn flatten(self) -> Self {
        let n = self.len();
        self.reshape(n, 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn reshape_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(move |x| {
                x[0].reshape(c, r).matmul(x[0]).flatten().tanh()
            });
            check(&f, &[rand(seed, r, c)], seed)?;
        }
    }
}
