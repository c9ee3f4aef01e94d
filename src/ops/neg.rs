//! Negation `c = -a`.
//!
//! Derivative: `dc/da = -I`; VJP `-g`.

use crate::tape::{Op, Scalar, Var};
use std::ops::Neg;

struct NegOp;

impl<T: Scalar> Op<T> for NegOp {
    fn name(&self) -> &'static str {
        "neg"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(-g)]
    }
}

impl<'t, T: Scalar> Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    /// Elementwise negation.
    fn neg(self) -> Self {
        self.map_op(NegOp, |a| -a)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn neg_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| (-x[0]).mul_elem(x[0]));
            check(&f, &[rand(seed, r, c)], seed)?;
        }
    }
}
