//! Elementwise hyperbolic tangent `y = tanh(x)`.
//!
//! Derivative: `dy/dx = 1 - y^2`; VJP `g - g ∘ y ∘ y`.

use crate::tape::{Op, Scalar, Var};

struct TanhOp;

impl<T: Scalar> Op<T> for TanhOp {
    fn name(&self) -> &'static str {
        "tanh"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g - g.mul_elem(y).mul_elem(y))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise `tanh`.
    pub fn tanh(self) -> Self {
        self.map_op(TanhOp, |a| a.tanh())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn tanh_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].tanh());
            check(&f, &[rand(seed, r, c) * 2.0], seed)?;
        }
    }
}
