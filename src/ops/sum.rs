//! Sums over all entries, over each row, or over each column (and the means built on them).
//!
//! Derivatives: every input entry enters its sum with weight 1, so the VJP broadcasts the
//! cotangent back to the input's shape: `sum`: `g` (1 x 1) to r x c; `row_sums`: `g` (r x 1)
//! along the columns; `col_sums`: `g` (1 x c) along the rows.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

/// Which entries are summed together.
#[derive(Clone, Copy)]
enum Axis {
    All,
    /// One sum per row: r x c -> r x 1.
    Rows,
    /// One sum per column: r x c -> 1 x c.
    Cols,
}

struct SumOp {
    axis: Axis,
    rows: usize,
    cols: usize,
}

impl<T: Scalar> Op<T> for SumOp {
    fn name(&self) -> &'static str {
        match self.axis {
            Axis::All => "sum",
            Axis::Rows => "row_sums",
            Axis::Cols => "col_sums",
        }
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.broadcast(self.rows, self.cols))]
    }
}

fn reduce<T: Scalar>(a: &DMatrix<T>, axis: Axis) -> DMatrix<T> {
    match axis {
        Axis::All => DMatrix::from_element(1, 1, a.sum()),
        Axis::Rows => DMatrix::from_column_slice(a.nrows(), 1, a.column_sum().as_slice()),
        Axis::Cols => DMatrix::from_row_slice(1, a.ncols(), a.row_sum().as_slice()),
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    fn reduce(self, axis: Axis) -> Self {
        let (rows, cols) = self.shape();
        Var::record_with(SumOp { axis, rows, cols }, &[self], |v| reduce(v[0], axis))
    }

    /// Sum of all entries, as a 1 x 1 variable.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![1.0, 2.0; 3.0, 4.0]);
    /// assert_eq!(a.sum().scalar(), 10.0);
    /// assert_eq!(a.row_sums().value(), dmatrix![3.0; 7.0]);
    /// assert_eq!(a.col_sums().value(), dmatrix![4.0, 6.0]);
    /// ```
    pub fn sum(self) -> Self {
        self.reduce(Axis::All)
    }

    /// The sum of each row, as an r x 1 column.
    pub fn row_sums(self) -> Self {
        self.reduce(Axis::Rows)
    }

    /// The sum of each column, as a 1 x c row.
    pub fn col_sums(self) -> Self {
        self.reduce(Axis::Cols)
    }

    /// Mean of all entries, as a 1 x 1 variable.
    pub fn mean(self) -> Self {
        let n = T::from_count(self.len());
        self.sum().scale(T::one() / n)
    }

    /// The mean of each row, as an r x 1 column.
    pub fn row_means(self) -> Self {
        let n = T::from_count(self.ncols());
        self.row_sums().scale(T::one() / n)
    }

    /// The mean of each column, as a 1 x c row.
    pub fn col_means(self) -> Self {
        let n = T::from_count(self.nrows());
        self.col_sums().scale(T::one() / n)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn sum_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].square().sum());
            check(&f, &[rand(seed, r, c)], seed)?;
        }

        #[test]
        fn row_and_col_sum_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let rows = tape_fn(|x| x[0].square().row_sums());
            check(&rows, &[rand(seed, r, c)], seed)?;
            let cols = tape_fn(|x| x[0].square().col_means());
            check(&cols, &[rand(seed, r, c)], seed)?;
            let col_sums = tape_fn(|x| x[0].square().col_sums());
            check(&col_sums, &[rand(seed, r, c)], seed)?;
            let row_means = tape_fn(|x| x[0].square().row_means());
            check(&row_means, &[rand(seed, r, c)], seed)?;
            let mean = tape_fn(|x| x[0].square().mean());
            check(&mean, &[rand(seed, r, c)], seed)?;
        }
    }
}
