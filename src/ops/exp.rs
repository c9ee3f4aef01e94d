//! Elementwise exponential `y = exp(x)`.
//!
//! Derivative: `dy/dx = exp(x) = y`; VJP `g ∘ y`.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct ExpOp;

impl<T: Scalar> Op<T> for ExpOp {
    fn name(&self) -> &'static str {
        "exp"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.mul_elem(y))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise `exp`.
    pub fn exp(self) -> Self {
        let value = {
            let a = self.value_ref();
            // f32 through the vectorized kernel (glibc's `expf` to the last bit).
            DMatrix::from_vec(a.nrows(), a.ncols(), crate::kernels::exp_of(a.as_slice()))
        };
        self.tape.record(ExpOp, &[self], value)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn exp_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].exp());
            check(&f, &[rand(seed, r, c)], seed)?;
        }
    }
}
