//! Elementwise hyperbolic tangent `y = tanh(x)`.
//!
//! Derivative: `dy/dx = 1 - y^2`; VJP `g - g ∘ y ∘ y`.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct TanhOp;

impl<T: Scalar> Op<T> for TanhOp {
    fn name(&self) -> &'static str {
        "tanh"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g - g.mul_elem(y).mul_elem(y))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise `tanh`.
    pub fn tanh(self) -> Self {
        let value = {
            let a = self.value_ref();
            // f32 through the vectorized kernel (fdlibm's `tanhf` to the last bit).
            DMatrix::from_vec(a.nrows(), a.ncols(), crate::kernels::tanh_of(a.as_slice()))
        };
        self.tape.record(TanhOp, &[self], value)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn tanh_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].tanh());
            check(&f, &[rand(seed, r, c) * 2.0], seed)?;
        }
    }
}
