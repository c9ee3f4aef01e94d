//! Elementwise rectifier `y = max(x, 0)`.
//!
//! Derivative: `dy/dx = 1[x > 0]` (0 at 0, as in PyTorch); VJP `g ∘ 1[x > 0]` with the mask a
//! constant (its derivative is 0 almost everywhere).

use crate::tape::{Op, Scalar, Var};

struct ReluOp;

impl<T: Scalar> Op<T> for ReluOp {
    fn name(&self) -> &'static str {
        "relu"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let mask = x[0]
            .value_ref()
            .map(|a| if a > T::zero() { T::one() } else { T::zero() });
        vec![Some(g.mul_elem(g.constant_like(mask)))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise `max(x, 0)`.
    pub fn relu(self) -> Self {
        self.map_op(ReluOp, |a| a.max(T::zero()))
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn relu_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].relu().mul_elem(x[0]));
            check(&f, &[signed_away_from_zero(&mut rng(seed), r, c, 0.1, 2.0)], seed)?;
        }
    }
}
