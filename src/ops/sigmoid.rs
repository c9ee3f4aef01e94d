//! Elementwise logistic sigmoid `y = 1 / (1 + exp(-x))`.
//!
//! Derivative: `dy/dx = y (1 - y)`; VJP `g ∘ y - g ∘ y ∘ y`.

use crate::tape::{Op, Scalar, Var};

struct SigmoidOp;

/// Stable logistic function: never evaluates `exp` of a large positive number.
pub(crate) fn sigmoid<T: Scalar>(a: T) -> T {
    if a >= T::zero() {
        T::one() / (T::one() + (-a).exp())
    } else {
        let e = a.exp();
        e / (T::one() + e)
    }
}

impl<T: Scalar> Op<T> for SigmoidOp {
    fn name(&self) -> &'static str {
        "sigmoid"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let gy = g.mul_elem(y);
        vec![Some(gy - gy.mul_elem(y))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise logistic sigmoid.
    pub fn sigmoid(self) -> Self {
        self.map_op(SigmoidOp, sigmoid)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn sigmoid_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].sigmoid());
            check(&f, &[rand(seed, r, c) * 3.0], seed)?;
        }
    }
}
