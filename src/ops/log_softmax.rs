//! Row-wise log-softmax `y_ij = z_ij - ln sum_k exp(z_ik)`, stable for large logits.
//!
//! Derivative: `dy_i = (I - 1 softmax(z_i)ᵀ) dz_i`; VJP `g - exp(y) ∘ rowsum(g)`, with
//! `exp(y) = softmax(z)` recorded from the output.

use super::softmax::log_softmax_value;
use crate::tape::{Op, Scalar, Var};

struct LogSoftmaxOp;

impl<T: Scalar> Op<T> for LogSoftmaxOp {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (r, c) = y.shape();
        vec![Some(g - y.exp().mul_elem(g.row_sums().broadcast(r, c)))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Log-softmax of each row.
    pub fn log_softmax(self) -> Self {
        Var::record_with(LogSoftmaxOp, &[self], |v| log_softmax_value(v[0]))
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn log_softmax_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].log_softmax());
            check(&f, &[rand(seed, r, c) * 3.0], seed)?;
        }
    }

    #[test]
    fn log_softmax_is_stable_for_huge_logits() {
        let tape = crate::tape::Tape::<f32>::new();
        let z = tape.constant(nalgebra::dmatrix![1e30f32, 0.0]);
        let y = z.log_softmax().value();
        assert_eq!(y[(0, 0)], 0.0);
        assert_eq!(y[(0, 1)], -1e30);
    }
}
