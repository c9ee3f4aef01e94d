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

    /// f32 goes through the exp kernel, element by element the stable formula on it; f64
    /// through the C library's `exp`.
    #[test]
    fn each_type_takes_its_exponential() {
        use crate::kernels::exp_of;
        use crate::tape::Tape;
        use nalgebra::DMatrix;
        let values = [-80.0, -3.25, -0.0, 0.0, 1e-8, 0.75, 17.0, 100.0];
        let tape = Tape::<f32>::new();
        let y = tape
            .constant(DMatrix::from_row_slice(2, 4, &values))
            .sigmoid()
            .value();
        let tape64 = Tape::<f64>::new();
        let y64 = tape64.constant(DMatrix::from_row_slice(2, 4, &values.map(f64::from)));
        let y64 = y64.sigmoid().value();
        for (k, &a) in DMatrix::from_row_slice(2, 4, &values).iter().enumerate() {
            let e: f32 = exp_of(&[-a.abs()])[0];
            let want = if a >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            assert_eq!(y[k].to_bits(), want.to_bits(), "sigmoid({a})");
            let a = a as f64;
            let e = (-a.abs()).exp();
            let want = if a >= 0.0 {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            assert_eq!(y64[k].to_bits(), want.to_bits(), "sigmoid({a}) in f64");
        }
    }
}
