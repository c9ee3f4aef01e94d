//! Elementwise logistic sigmoid `y = 1 / (1 + exp(-x))`.
//!
//! Derivative: `dy/dx = y (1 - y)`; VJP `g ∘ y - g ∘ y ∘ y`.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct SigmoidOp;

impl<T: Scalar> Op<T> for SigmoidOp {
    fn name(&self) -> &'static str {
        "sigmoid"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let gy = g.mul_elem(y);
        vec![Some(gy - gy.mul_elem(y))]
    }
}

/// The logistic function of every element, stable (`exp` of a large positive number is never
/// taken): `1 / (1 + exp(-a))` for `a >= 0`, `exp(a) / (1 + exp(a))` below. Both use
/// `exp(-|a|)`, taken for all elements at once (f32 through the vectorized kernel).
fn sigmoid_of<T: Scalar>(src: &[T]) -> Vec<T> {
    let negative_abs: Vec<T> = src.iter().map(|a| -a.abs()).collect();
    let exps = crate::kernels::exp_of(&negative_abs);
    src.iter()
        .zip(exps)
        .map(|(&a, e)| {
            if a >= T::zero() {
                T::one() / (T::one() + e)
            } else {
                e / (T::one() + e)
            }
        })
        .collect()
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise logistic sigmoid.
    pub fn sigmoid(self) -> Self {
        let value = {
            let a = self.value_ref();
            DMatrix::from_vec(a.nrows(), a.ncols(), sigmoid_of(a.as_slice()))
        };
        self.tape.record(SigmoidOp, &[self], value)
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
