//! Elementwise softplus `y = ln(1 + exp(x))`, computed stably as `max(x, 0) + ln(1 + exp(-|x|))`.
//!
//! Derivative: `dy/dx = sigmoid(x)`; VJP `g ∘ sigmoid(x)`.

use crate::tape::{Op, Scalar, Var};

struct SoftplusOp;

fn softplus<T: Scalar>(a: T) -> T {
    a.max(T::zero()) + (-a.abs()).exp().ln_1p()
}

impl<T: Scalar> Op<T> for SoftplusOp {
    fn name(&self) -> &'static str {
        "softplus"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.mul_elem(x[0].sigmoid()))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise softplus `ln(1 + exp(x))`, stable for large `|x|`.
    pub fn softplus(self) -> Self {
        self.map_op(SoftplusOp, softplus)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn softplus_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].softplus());
            check(&f, &[rand(seed, r, c) * 4.0], seed)?;
        }
    }
}
