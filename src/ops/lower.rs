//! Lower-triangular part of a matrix (with or without its diagonal), zeros elsewhere.
//!
//! Derivative: a fixed mask, so the VJP applies the same mask to `G`.

use crate::tape::{Op, Scalar, Var};

struct LowerOp {
    strict: bool,
}

impl<T: Scalar> Op<T> for LowerOp {
    fn name(&self) -> &'static str {
        "lower"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.lower(self.strict))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Entries on and below the diagonal (`strict = false`) or strictly below it
    /// (`strict = true`); the others are zero. Works on rectangular matrices.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![1.0, 2.0; 3.0, 4.0]);
    /// assert_eq!(a.lower(true).value(), dmatrix![0.0, 0.0; 3.0, 0.0]);
    /// ```
    pub fn lower(self, strict: bool) -> Self {
        Var::record_with(LowerOp { strict }, &[self], |v| {
            let mut out = v[0].clone();
            for j in 0..out.ncols() {
                let keep_from = if strict { j + 1 } else { j };
                for i in 0..keep_from.min(out.nrows()) {
                    out[(i, j)] = T::zero();
                }
            }
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
        fn lower_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000, strict: bool) {
            let f = tape_fn(move |x| x[0].square().lower(strict));
            check(&f, &[rand(seed, r, c)], seed)?;
        }
    }
}
