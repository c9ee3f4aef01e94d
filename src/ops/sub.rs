//! Elementwise subtraction `c = a - b`.
//!
//! Derivative: `dc/da = I`, `dc/db = -I`; VJP `(g, -g)`.

use crate::tape::{Op, Scalar, Var};
use std::ops::Sub;

struct SubOp;

impl<T: Scalar> Op<T> for SubOp {
    fn name(&self) -> &'static str {
        "sub"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], out: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        self.vjp_wanted(x, out, g, &[true, true])
    }
    /// `-g` is formed only when wanted: a constant subtrahend (targets, say) needs none.
    fn vjp_wanted<'t>(
        &self,
        x: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        wanted: &[bool],
    ) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g), (wanted[1] && x[1].requires_grad()).then(|| -g)]
    }
}

impl<'t, T: Scalar> Sub for Var<'t, T> {
    type Output = Var<'t, T>;
    /// Elementwise difference of two same-shape variables.
    fn sub(self, rhs: Self) -> Self {
        self.zip_op(rhs, SubOp, "sub", |a, b| a - b)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn sub_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| (x[0] - x[1]).mul_elem(x[1]));
            check(&f, &[rand(seed, r, c), rand(seed + 1, r, c)], seed)?;
        }
    }
}
