//! Product of a matrix and a recorded 1 x 1 variable, `c = s a`.
//!
//! Derivative: `dc = s da + a ds`; VJP `(s g, sum(g ∘ a))`.

use crate::tape::{Op, Scalar, Var};

struct MulScalarOp;

impl<T: Scalar> Op<T> for MulScalarOp {
    fn name(&self) -> &'static str {
        "mul_scalar"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![
            x[0].requires_grad().then(|| g.mul_scalar(x[1])),
            x[1].requires_grad().then(|| g.dot(x[0])),
        ]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Every entry multiplied by the 1 x 1 variable `s` (a learnable step size, say).
    ///
    /// Panics if `s` is not 1 x 1.
    pub fn mul_scalar(self, s: Self) -> Self {
        Var::record_with(MulScalarOp, &[self, s], |v| {
            assert!(
                v[1].shape() == (1, 1),
                "mul_scalar: the scalar must be 1 x 1, found {} x {} (matrix is {} x {})",
                v[1].nrows(),
                v[1].ncols(),
                v[0].nrows(),
                v[0].ncols()
            );
            let s = v[1][(0, 0)];
            let data = v[0].as_slice().iter().map(|&a| a * s).collect();
            nalgebra::DMatrix::from_vec(v[0].nrows(), v[0].ncols(), data)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn mul_scalar_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].mul_scalar(x[1]).mul_elem(x[0]));
            check(&f, &[rand(seed, r, c), rand(seed + 1, 1, 1)], seed)?;
        }
    }
}
