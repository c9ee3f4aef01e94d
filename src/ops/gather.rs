//! Rows picked by index, `C[i, :] = A[idx[i], :]`, and its adjoint, adding rows into their
//! places, `S[r, :] = Σ_{i: idx[i] = r} G[i, :]` (`rows` x c).
//!
//! Both are linear and each other's adjoint. Derivatives: the VJP of `gather_rows` is
//! `scatter_add_rows` of the cotangent, and the VJP of `scatter_add_rows` is `gather_rows`.
//!
//! `scatter_add_rows` adds, for each row, the picked rows in increasing `i`, starting from
//! zero: a block repeated by `broadcast` and `reshape` and summed back by `row_sums` rounds the
//! same. One gather replaces that chain of copies (a tied REN's output, 28 values repeated 280
//! times and 10 more after them).

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;
use std::sync::Arc;

/// A choice of rows by index, repeats and omissions allowed, kept as runs of consecutive rows
/// (and a run repeated back to back as one run and a count), so that [`Var::gather_rows`]
/// copies and [`Var::scatter_add_rows`] adds whole runs.
///
/// ```
/// use convergent_l2o::ops::RowIndex;
/// let index = RowIndex::new([3, 4, 5, 3, 4, 5, 0]);
/// assert_eq!((index.len(), index.bound()), (7, 6));
/// assert_eq!(index.rows().collect::<Vec<_>>(), vec![3, 4, 5, 3, 4, 5, 0]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowIndex {
    /// Runs in order: rows `first..first + len`, `times` times over.
    runs: Arc<[Run]>,
    len: usize,
    bound: usize,
}

impl RowIndex {
    /// The rows `rows[0], rows[1], ...`, in that order.
    pub fn new(rows: impl IntoIterator<Item = usize>) -> Self {
        let mut consecutive: Vec<(usize, usize)> = Vec::new();
        let (mut len, mut bound) = (0, 0);
        for r in rows {
            match consecutive.last_mut() {
                Some((first, n)) if *first + *n == r => *n += 1,
                _ => consecutive.push((r, 1)),
            }
            len += 1;
            bound = bound.max(r + 1);
        }
        let mut runs: Vec<Run> = Vec::new();
        for (first, len) in consecutive {
            match runs.last_mut() {
                Some(run) if (run.first, run.len) == (first, len) => run.times += 1,
                _ => runs.push(Run {
                    first,
                    len,
                    times: 1,
                }),
            }
        }
        RowIndex {
            runs: runs.into(),
            len,
            bound,
        }
    }

    /// How many rows are picked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no row is picked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One more than the largest row picked (0 if none): the fewest rows a source can have.
    pub fn bound(&self) -> usize {
        self.bound
    }

    /// The picked rows, in order.
    pub fn rows(&self) -> impl Iterator<Item = usize> + '_ {
        self.runs
            .iter()
            .flat_map(|run| (0..run.times).flat_map(move |_| run.first..run.first + run.len))
    }
}

/// Rows `first..first + len`, picked `times` times in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    first: usize,
    len: usize,
    times: usize,
}

struct GatherRowsOp {
    index: RowIndex,
    rows: usize,
}

impl<T: Scalar> Op<T> for GatherRowsOp {
    fn name(&self) -> &'static str {
        "gather_rows"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.scatter_add_rows(&self.index, self.rows))]
    }
}

struct ScatterAddRowsOp {
    index: RowIndex,
}

impl<T: Scalar> Op<T> for ScatterAddRowsOp {
    fn name(&self) -> &'static str {
        "scatter_add_rows"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.gather_rows(&self.index))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// The rows of `index`, in its order (`index.len()` x c).
    ///
    /// Panics if `index` picks a row this variable does not have.
    ///
    /// ```
    /// use convergent_l2o::ops::RowIndex;
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.param(dmatrix![1.0; 2.0; 3.0]);
    /// let index = RowIndex::new([1, 2, 1, 2, 0]);
    /// let picked = a.gather_rows(&index);
    /// assert_eq!(picked.value(), dmatrix![2.0; 3.0; 2.0; 3.0; 1.0]);
    /// // Its adjoint adds each row back where it came from.
    /// assert_eq!(picked.scatter_add_rows(&index, 3).value(), dmatrix![1.0; 4.0; 6.0]);
    /// ```
    pub fn gather_rows(self, index: &RowIndex) -> Self {
        let (rows, cols) = self.shape();
        assert!(
            index.bound() <= rows,
            "gather_rows: row index {} out of range for {rows} rows",
            index.bound() - 1
        );
        let op = GatherRowsOp {
            index: index.clone(),
            rows,
        };
        Var::record_with(op, &[self], |v| {
            let mut out = Vec::with_capacity(index.len() * cols);
            for column in v[0].as_slice().chunks_exact(rows.max(1)).take(cols) {
                for run in index.runs.iter() {
                    // One copy from the source, then copies of what is already out, doubling.
                    let start = out.len();
                    out.extend_from_slice(&column[run.first..run.first + run.len]);
                    let end = start + run.len * run.times;
                    while out.len() < end {
                        let copied = out.len() - start;
                        out.extend_from_within(start..start + copied.min(end - out.len()));
                    }
                }
            }
            DMatrix::from_vec(index.len(), cols, out)
        })
    }

    /// A `rows` x c matrix whose row `r` is the sum of the rows `i` of this variable that
    /// `index` took from row `r`, added in increasing `i` from zero (zero where none did).
    ///
    /// Panics if `index` does not pick one row per row of this variable, or picks a row
    /// beyond `rows`.
    pub fn scatter_add_rows(self, index: &RowIndex, rows: usize) -> Self {
        let (n, cols) = self.shape();
        assert!(
            index.len() == n,
            "scatter_add_rows: {} indices for {n} rows",
            index.len()
        );
        assert!(
            index.bound() <= rows,
            "scatter_add_rows: row index {} out of range for {rows} rows",
            index.bound() - 1
        );
        let op = ScatterAddRowsOp {
            index: index.clone(),
        };
        Var::record_with(op, &[self], |v| {
            let mut out = DMatrix::zeros(rows, cols);
            let sums = out.as_mut_slice();
            for (j, column) in v[0]
                .as_slice()
                .chunks_exact(n.max(1))
                .take(cols)
                .enumerate()
            {
                let target = &mut sums[j * rows..(j + 1) * rows];
                let mut at = 0;
                for run in index.runs.iter() {
                    let sums = &mut target[run.first..run.first + run.len];
                    for _ in 0..run.times {
                        let rows = &column[at..at + run.len];
                        sums.iter_mut().zip(rows).for_each(|(s, &g)| *s += g);
                        at += run.len;
                    }
                }
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RowIndex;
    use crate::ops::testing::*;
    use crate::tape::Tape;
    use nalgebra::DMatrix;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn gather_and_scatter_gradients(r in 1usize..5, c in 1usize..4, picks in 1usize..9,
                                        seed in 0u64..1_000_000) {
            // Repeats and omissions: row k picks (k * 7 + seed) mod r.
            let index = RowIndex::new((0..picks).map(|k| (k * 7 + seed as usize) % r));
            let f = tape_fn(move |x| {
                let picked = x[0].gather_rows(&index).square();
                picked.scatter_add_rows(&index, r + 1).tanh()
            });
            check(&f, &[rand(seed, r, c)], seed)?;
        }

        #[test]
        fn repeating_and_summing_back_round_as_broadcast_and_row_sums(
            size in 1usize..6, count in 1usize..40, seed in 0u64..1_000_000) {
            let tape = Tape::<f32>::new();
            let block = tape.param(rand(seed, size, 1).map(|a| a as f32));
            let index = RowIndex::new((0..count * size).map(|i| i % size));
            let gathered = block.gather_rows(&index);
            let chain = block.broadcast(size, count).reshape(size * count, 1);
            prop_assert_eq!(gathered.value(), chain.value());
            let g = tape.constant(rand(seed + 1, size * count, 1).map(|a| a as f32 * 1e3));
            let summed = g.scatter_add_rows(&index, size);
            prop_assert_eq!(summed.value(), g.reshape(size, count).row_sums().value());
        }
    }

    #[test]
    #[should_panic(expected = "gather_rows: row index 3 out of range for 3 rows")]
    fn gather_refuses_an_index_out_of_range() {
        let tape = Tape::<f64>::new();
        let _ = tape
            .constant(DMatrix::zeros(3, 2))
            .gather_rows(&RowIndex::new([0, 3]));
    }

    #[test]
    #[should_panic(expected = "scatter_add_rows: 2 indices for 3 rows")]
    fn scatter_refuses_a_short_index() {
        let tape = Tape::<f64>::new();
        let _ = tape
            .constant(DMatrix::zeros(3, 1))
            .scatter_add_rows(&RowIndex::new([0, 1]), 4);
    }
}
