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
    /// Elementwise `max(x, 0)`; NaN stays NaN.
    pub fn relu(self) -> Self {
        // Not `a.max(0)`: that maps NaN to 0 and would hide it.
        self.map_op(ReluOp, |a| if a <= T::zero() { T::zero() } else { a })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    #[test]
    fn relu_propagates_nan() {
        let tape = crate::tape::Tape::<f64>::new();
        let y = tape
            .constant(nalgebra::dmatrix![f64::NAN, -1.0, 2.0])
            .relu()
            .value();
        assert!(y[0].is_nan());
        assert_eq!((y[1], y[2]), (0.0, 2.0));
    }

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn relu_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].relu().mul_elem(x[0]));
            check(&f, &[signed_away_from_zero(&mut rng(seed), r, c, 0.1, 2.0)], seed)?;
        }
    }
}
