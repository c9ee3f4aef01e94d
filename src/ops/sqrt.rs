//! Elementwise square root `y = sqrt(x)`.
//!
//! Derivative: `dy/dx = 1 / (2 y)`; VJP `g / (2 y)`.

use crate::tape::{Op, Scalar, Var};

struct SqrtOp;

impl<T: Scalar> Op<T> for SqrtOp {
    fn name(&self) -> &'static str {
        "sqrt"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.div_elem(y).scale(T::cast(0.5)))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise square root.
    pub fn sqrt(self) -> Self {
        self.map_op(SqrtOp, |a| a.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn sqrt_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].sqrt());
            check(&f, &[uniform(&mut rng(seed), r, c, 0.2, 3.0)], seed)?;
        }
    }
}
