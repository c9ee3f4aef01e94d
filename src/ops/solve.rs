//! Linear solve `X = A⁻¹ B` (by LU with partial pivoting), without forming the inverse.
//!
//! Derivative: `dX = A⁻¹ (dB - dA X)`; VJP `dB = A⁻ᵀ G` (a recorded solve with `Aᵀ`) and
//! `dA = -dB Xᵀ`.

use crate::tape::{Op, Scalar, Var};

struct SolveOp;

impl<T: Scalar> Op<T> for SolveOp {
    fn name(&self) -> &'static str {
        "solve"
    }
    fn vjp<'t>(&self, a: &[Var<'t, T>], x: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let db = a[0].t().solve(g);
        vec![a[0].requires_grad().then(|| -db.matmul_tr(x)), Some(db)]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// The solution `X` of `self * X = b` for a square, invertible `self`.
    ///
    /// Panics if `self` is not square, the shapes do not fit, or `self` is singular.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![2.0, 0.0; 0.0, 4.0]);
    /// let b = tape.constant(dmatrix![1.0; 1.0]);
    /// assert_eq!(a.solve(b).value(), dmatrix![0.5; 0.25]);
    /// ```
    pub fn solve(self, b: Self) -> Self {
        Var::record_with(SolveOp, &[self, b], |v| {
            let (r, c) = v[0].shape();
            assert!(r == c, "solve: matrix must be square, found {r} x {c}");
            assert!(
                v[1].nrows() == r,
                "solve: left is {r} x {c} but right-hand side is {} x {}",
                v[1].nrows(),
                v[1].ncols()
            );
            v[0].clone()
                .lu()
                .solve(v[1])
                .unwrap_or_else(|| panic!("solve: the {r} x {r} matrix is singular"))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use nalgebra::DMatrix;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn solve_gradients(n in 1usize..5, k in 1usize..4, seed in 0u64..1_000_000) {
            let a = DMatrix::identity(n, n) * 2.0 + rand(seed, n, n) * 0.5;
            let f = tape_fn(|x| x[0].solve(x[1]));
            check(&f, &[a, rand(seed + 1, n, k)], seed)?;
        }
    }

    #[test]
    fn solve_agrees_with_inverse() {
        let tape = crate::tape::Tape::<f64>::new();
        let a = tape.constant(DMatrix::identity(3, 3) * 2.0 + rand(3, 3, 3) * 0.5);
        let b = tape.constant(rand(4, 3, 2));
        let diff = a.solve(b).value() - a.inverse().matmul(b).value();
        assert!(diff.norm() < 1e-12);
    }
}
