//! Concatenation of matrices, stacked vertically (`concat_rows`) or side by side
//! (`concat_cols`).
//!
//! Derivative: concatenation is linear; the VJP hands each input the block of `G` where it
//! was placed (a `slice`, whose own VJP is `pad`).

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct ConcatOp {
    vertical: bool,
}

impl<T: Scalar> Op<T> for ConcatOp {
    fn name(&self) -> &'static str {
        if self.vertical {
            "concat_rows"
        } else {
            "concat_cols"
        }
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let mut offset = 0;
        x.iter()
            .map(|xi| {
                let (r, c) = xi.shape();
                let block = if self.vertical {
                    g.slice(offset, 0, r, c)
                } else {
                    g.slice(0, offset, r, c)
                };
                offset += if self.vertical { r } else { c };
                Some(block)
            })
            .collect()
    }
}

fn concat<'t, T: Scalar>(parts: &[Var<'t, T>], vertical: bool) -> Var<'t, T> {
    let name = if vertical {
        "concat_rows"
    } else {
        "concat_cols"
    };
    assert!(!parts.is_empty(), "{name}: nothing to concatenate");
    Var::record_with(ConcatOp { vertical }, parts, |v| {
        let (r0, c0) = v[0].shape();
        for m in v {
            let ok = if vertical {
                m.ncols() == c0
            } else {
                m.nrows() == r0
            };
            assert!(
                ok,
                "{name}: shape mismatch, first part is {r0} x {c0}, another is {} x {}",
                m.nrows(),
                m.ncols()
            );
        }
        let (rows, cols) = if vertical {
            (v.iter().map(|m| m.nrows()).sum(), c0)
        } else {
            (r0, v.iter().map(|m| m.ncols()).sum())
        };
        // Column-major storage: column j of a vertical stack is column j of every part in
        // turn; a horizontal stack is the parts' storage in turn. Written once, never zeroed
        // first (zeroing took 2% of a meta-step).
        let mut data = Vec::with_capacity(rows * cols);
        if vertical {
            for j in 0..cols {
                for m in v {
                    let r = m.nrows();
                    data.extend_from_slice(&m.as_slice()[j * r..(j + 1) * r]);
                }
            }
        } else {
            for m in v {
                data.extend_from_slice(m.as_slice());
            }
        }
        DMatrix::from_vec(rows, cols, data)
    })
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Stacks `parts` vertically (all with the same number of columns); for column vectors,
    /// their concatenation.
    ///
    /// ```
    /// use convergent_l2o::tape::{Tape, Var};
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![1.0; 2.0]);
    /// let b = tape.constant(dmatrix![3.0]);
    /// assert_eq!(Var::concat_rows(&[a, b]).value(), dmatrix![1.0; 2.0; 3.0]);
    /// ```
    pub fn concat_rows(parts: &[Self]) -> Self {
        concat(parts, true)
    }

    /// Places `parts` side by side (all with the same number of rows).
    pub fn concat_cols(parts: &[Self]) -> Self {
        concat(parts, false)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use crate::tape::Var;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn concat_gradients(r in 1usize..4, c in 1usize..4, k in 1usize..4, seed in 0u64..1_000_000) {
            let rows = tape_fn(|x| Var::concat_rows(&[x[0], x[1].square(), x[0]]));
            check(&rows, &[rand(seed, r, c), rand(seed + 1, k, c)], seed)?;
            let cols = tape_fn(|x| Var::concat_cols(&[x[0].square(), x[1]]));
            check(&cols, &[rand(seed, r, c), rand(seed + 1, r, k)], seed)?;
        }
    }

    #[test]
    fn concat_places_every_part_where_a_block_matrix_has_it() {
        use nalgebra::dmatrix;
        let tape = crate::tape::Tape::<f64>::new();
        let a = tape.constant(dmatrix![1.0, 2.0, 3.0; 4.0, 5.0, 6.0]);
        let b = tape.constant(dmatrix![7.0, 8.0, 9.0]);
        let c = tape.constant(dmatrix![10.0; 11.0]);
        assert_eq!(
            Var::concat_rows(&[a, b, a]).value(),
            dmatrix![1.0, 2.0, 3.0; 4.0, 5.0, 6.0; 7.0, 8.0, 9.0; 1.0, 2.0, 3.0; 4.0, 5.0, 6.0]
        );
        assert_eq!(
            Var::concat_cols(&[c, a, c]).value(),
            dmatrix![10.0, 1.0, 2.0, 3.0, 10.0; 11.0, 4.0, 5.0, 6.0, 11.0]
        );
    }

    #[test]
    #[should_panic(expected = "concat_cols: shape mismatch, first part is 2 x 1, another is 3 x 1")]
    fn concat_names_shapes() {
        let tape = crate::tape::Tape::<f64>::new();
        let a = tape.constant(nalgebra::DMatrix::zeros(2, 1));
        let b = tape.constant(nalgebra::DMatrix::zeros(3, 1));
        let _ = Var::concat_cols(&[a, b]);
    }
}
