//! Elementwise quotient `c = a / b`.
//!
//! Derivative: `dc = da / b - a ∘ db / b^2`; VJP `(g / b, -(g ∘ c) / b)`.

use crate::tape::{Op, Scalar, Var};

struct DivOp;

impl<T: Scalar> Op<T> for DivOp {
    fn name(&self) -> &'static str {
        "div_elem"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], c: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let ga = g.div_elem(x[1]);
        vec![Some(ga), x[1].requires_grad().then(|| -(ga.mul_elem(c)))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise quotient of two same-shape variables.
    pub fn div_elem(self, other: Self) -> Self {
        self.zip_op(other, DivOp, "div_elem", |a, b| a / b)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn div_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].div_elem(x[1]));
            let b = signed_away_from_zero(&mut rng(seed + 1), r, c, 0.5, 2.0);
            check(&f, &[rand(seed, r, c), b], seed)?;
        }
    }
}
