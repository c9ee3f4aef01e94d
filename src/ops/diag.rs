//! The diagonal of a matrix as a column (`diag`), and a column placed on the diagonal of a
//! zero matrix (`diag_matrix`).
//!
//! Derivative: both are linear and adjoint to each other: the VJP of `diag` places `G` on the
//! diagonal of an r x c zero matrix, the VJP of `diag_matrix` reads the diagonal of `G`.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct DiagOp {
    rows: usize,
    cols: usize,
}

impl<T: Scalar> Op<T> for DiagOp {
    fn name(&self) -> &'static str {
        "diag"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.diag_matrix(self.rows, self.cols))]
    }
}

struct DiagMatrixOp;

impl<T: Scalar> Op<T> for DiagMatrixOp {
    fn name(&self) -> &'static str {
        "diag_matrix"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.diag())]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// The diagonal entries `a_ii`, `i < min(rows, cols)`, as a column.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![1.0, 2.0; 3.0, 4.0]);
    /// assert_eq!(a.diag().value(), dmatrix![1.0; 4.0]);
    /// assert_eq!(a.diag().diag_matrix(2, 2).value(), dmatrix![1.0, 0.0; 0.0, 4.0]);
    /// ```
    pub fn diag(self) -> Self {
        let (rows, cols) = self.shape();
        Var::record_with(DiagOp { rows, cols }, &[self], |v| {
            DMatrix::from_fn(rows.min(cols), 1, |i, _| v[0][(i, i)])
        })
    }

    /// A `rows` x `cols` zero matrix with this column on its diagonal.
    ///
    /// Panics unless this is a column of length `min(rows, cols)`.
    pub fn diag_matrix(self, rows: usize, cols: usize) -> Self {
        let (r, c) = self.shape();
        assert!(
            c == 1 && r == rows.min(cols),
            "diag_matrix: expected a column of length {}, found {r} x {c}",
            rows.min(cols)
        );
        Var::record_with(DiagMatrixOp, &[self], |v| {
            DMatrix::from_fn(rows, cols, |i, j| if i == j { v[0][i] } else { T::zero() })
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
        fn diag_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(move |x| {
                x[0].square().diag().tanh().diag_matrix(r, c)
            });
            check(&f, &[rand(seed, r, c)], seed)?;
        }
    }
}
