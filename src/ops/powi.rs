//! Elementwise integer power `y = x^n`.
//!
//! Derivative: `dy/dx = n x^(n-1)`; VJP `n g ∘ x^(n-1)` (`g` for `n = 1`, nothing for `n = 0`).

use crate::tape::{Op, Scalar, Var};

struct PowiOp(i32);

impl<T: Scalar> Op<T> for PowiOp {
    fn name(&self) -> &'static str {
        "powi"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let n = self.0;
        let grad = match n {
            0 => None,
            1 => Some(g),
            _ => Some(g.mul_elem(x[0].powi(n - 1)).scale(T::cast(n as f64))),
        };
        vec![grad]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise `x^n` for an integer `n` (negative powers allowed).
    pub fn powi(self, n: i32) -> Self {
        self.map_op(PowiOp(n), move |a| a.powi(n))
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn powi_gradients(r in 1usize..4, c in 1usize..4, seed in 0u64..1_000_000, n in -3i32..5) {
            let f = tape_fn(move |x| x[0].powi(n));
            check(&f, &[signed_away_from_zero(&mut rng(seed), r, c, 0.5, 1.5)], seed)?;
        }
    }
}
