//! Elementwise addition `c = a + b`.
//!
//! Derivative: `dc/da = dc/db = I`, so the VJP passes the cotangent `g` to both inputs.

use crate::tape::{Op, Scalar, Var};
use std::ops::Add;

struct AddOp;

impl<T: Scalar> Op<T> for AddOp {
    fn name(&self) -> &'static str {
        "add"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g), Some(g)]
    }
}

impl<'t, T: Scalar> Add for Var<'t, T> {
    type Output = Var<'t, T>;
    /// Elementwise sum of two same-shape variables.
    fn add(self, rhs: Self) -> Self {
        self.zip_op(rhs, AddOp, "add", |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn add_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| (x[0] + x[1]).mul_elem(x[0]));
            check(&f, &[rand(seed, r, c), rand(seed + 1, r, c)], seed)?;
        }
    }

    #[test]
    #[should_panic(expected = "add: shape mismatch, left is 2 x 3, right is 3 x 2")]
    fn add_names_both_shapes() {
        let tape = crate::tape::Tape::<f64>::new();
        let _ = tape.constant(nalgebra::DMatrix::zeros(2, 3))
            + tape.constant(nalgebra::DMatrix::zeros(3, 2));
    }
}
