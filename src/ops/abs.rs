//! Elementwise absolute value `y = |x|`.
//!
//! Derivative: `dy/dx = sign(x)` (taken as 0 at 0); VJP `g ∘ sign(x)`, where the sign is a
//! constant (its own derivative is 0 almost everywhere).

use crate::tape::{Op, Scalar, Var};

struct AbsOp;

impl<T: Scalar> Op<T> for AbsOp {
    fn name(&self) -> &'static str {
        "abs"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let sign = x[0].value_ref().map(|a| {
            if a > T::zero() {
                T::one()
            } else if a < T::zero() {
                -T::one()
            } else {
                T::zero()
            }
        });
        vec![Some(g.mul_elem(g.constant_like(sign)))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise absolute value.
    pub fn abs(self) -> Self {
        self.map_op(AbsOp, |a| a.abs())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn abs_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].abs().mul_elem(x[0]));
            check(&f, &[signed_away_from_zero(&mut rng(seed), r, c, 0.1, 2.0)], seed)?;
        }
    }
}
