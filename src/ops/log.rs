//! Elementwise natural logarithm `y = ln(x)`.
//!
//! Derivative: `dy/dx = 1/x`; VJP `g / x`.

use crate::tape::{Op, Scalar, Var};

struct LogOp;

impl<T: Scalar> Op<T> for LogOp {
    fn name(&self) -> &'static str {
        "log"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.div_elem(x[0]))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise natural logarithm (NaN for negative entries, -inf at 0).
    pub fn log(self) -> Self {
        self.map_op(LogOp, |a| a.ln())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn log_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].log());
            check(&f, &[uniform(&mut rng(seed), r, c, 0.2, 3.0)], seed)?;
        }
    }
}
