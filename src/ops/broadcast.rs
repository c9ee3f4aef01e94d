//! Broadcasting a 1 x 1, 1 x c or r x 1 variable to r x c (bias addition).
//!
//! Derivative: each input entry is copied to several outputs, so the VJP sums the cotangent
//! over the copies: over everything (from 1 x 1), over rows (`col_sums`, from 1 x c) or over
//! columns (`row_sums`, from r x 1).

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct BroadcastOp {
    from: (usize, usize),
}

impl<T: Scalar> Op<T> for BroadcastOp {
    fn name(&self) -> &'static str {
        "broadcast"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (gr, gc) = g.shape();
        let grad = match self.from {
            (r, c) if (r, c) == (gr, gc) => g,
            (1, 1) => g.sum(),
            (1, _) => g.col_sums(),
            _ => g.row_sums(),
        };
        vec![Some(grad)]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Repeats a 1 x 1, 1 x c or r x 1 value to fill `rows` x `cols`.
    ///
    /// Panics if the shape cannot be broadcast.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let bias = tape.constant(dmatrix![1.0, 2.0]);
    /// assert_eq!(bias.broadcast(2, 2).value(), dmatrix![1.0, 2.0; 1.0, 2.0]);
    /// ```
    pub fn broadcast(self, rows: usize, cols: usize) -> Self {
        let from = self.shape();
        let ok = (from.0 == rows || from.0 == 1) && (from.1 == cols || from.1 == 1);
        assert!(
            ok,
            "broadcast: cannot broadcast {} x {} to {} x {}",
            from.0, from.1, rows, cols
        );
        if from == (rows, cols) {
            return self;
        }
        Var::record_with(BroadcastOp { from }, &[self], |v| {
            let a = v[0].as_slice();
            let mut out = Vec::with_capacity(rows * cols);
            for j in 0..cols {
                match from {
                    (1, 1) => out.resize(out.len() + rows, a[0]),
                    (1, _) => out.resize(out.len() + rows, a[j]),
                    _ => out.extend_from_slice(a),
                }
            }
            DMatrix::from_vec(rows, cols, out)
        })
    }

    /// `self + b` with `b` broadcast to this variable's shape (a row bias, a column bias or a
    /// scalar).
    pub fn add_broadcast(self, b: Self) -> Self {
        let (r, c) = self.shape();
        self + b.broadcast(r, c)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn broadcast_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000, kind in 0usize..3) {
            let (br, bc) = [(1, 1), (1, c), (r, 1)][kind];
            let f = tape_fn(|x| x[0].add_broadcast(x[1]).tanh());
            check(&f, &[rand(seed, r, c), rand(seed + 1, br, bc)], seed)?;
        }
    }

    #[test]
    #[should_panic(expected = "broadcast: cannot broadcast 2 x 3 to 4 x 3")]
    fn broadcast_refuses_incompatible_shapes() {
        let tape = crate::tape::Tape::<f64>::new();
        let _ = tape
            .constant(nalgebra::DMatrix::zeros(2, 3))
            .broadcast(4, 3);
    }
}
