//! Matrix inverse `Y = A⁻¹` (by LU with partial pivoting).
//!
//! Derivative: `dY = -Y dA Y`; VJP `-Yᵀ G Yᵀ`, written with recorded products of the output.

use crate::tape::{Op, Scalar, Var};

struct InverseOp;

impl<T: Scalar> Op<T> for InverseOp {
    fn name(&self) -> &'static str {
        "inverse"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(-y.tr_matmul(g.matmul_tr(y)))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// The inverse of a square matrix.
    ///
    /// Panics if the matrix is not square or is singular (prefer [`Var::solve`] when the inverse
    /// is only multiplied by something).
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![2.0, 0.0; 0.0, 4.0]);
    /// assert_eq!(a.inverse().value(), dmatrix![0.5, 0.0; 0.0, 0.25]);
    /// ```
    pub fn inverse(self) -> Self {
        Var::record_with(InverseOp, &[self], |v| {
            let (r, c) = v[0].shape();
            assert!(r == c, "inverse: matrix must be square, found {r} x {c}");
            v[0].clone()
                .lu()
                .try_inverse()
                .unwrap_or_else(|| panic!("inverse: the {r} x {r} matrix is singular"))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use nalgebra::DMatrix;
    use proptest::prelude::*;

    /// Well-conditioned: identity plus a small perturbation.
    pub fn well_conditioned(seed: u64, n: usize) -> DMatrix<f64> {
        DMatrix::identity(n, n) * 2.0 + rand(seed, n, n) * 0.5
    }

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn inverse_gradients(n in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].inverse());
            check(&f, &[well_conditioned(seed, n)], seed)?;
        }
    }

    #[test]
    #[should_panic(expected = "inverse: the 2 x 2 matrix is singular")]
    fn singular_inverse_is_named() {
        let tape = crate::tape::Tape::<f64>::new();
        let _ = tape.constant(DMatrix::zeros(2, 2)).inverse();
    }
}
