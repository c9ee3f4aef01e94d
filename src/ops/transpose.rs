//! Transpose `C = Aᵀ`.
//!
//! Derivative: the transpose is linear and its adjoint is itself; VJP `Gᵀ`.

use crate::tape::{Op, Scalar, Var};

struct TransposeOp;

impl<T: Scalar> Op<T> for TransposeOp {
    fn name(&self) -> &'static str {
        "transpose"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.t())]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// The transpose.
    pub fn t(self) -> Self {
        Var::record_with(TransposeOp, &[self], |v| v[0].transpose())
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn transpose_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].t().matmul(x[0]).tanh());
            check(&f, &[rand(seed, r, c)], seed)?;
        }
    }
}
