//! Euclidean (Frobenius) norm `y = |a|_2 = sqrt(sum a_ij^2)`, with a safe gradient at 0.
//!
//! Derivative: `dy/da = a / y` for `a != 0`; at `a = 0` the norm is not differentiable and the
//! zero subgradient is used, so no NaN ever appears. VJP `a * (g * r)` with `r = 1/y` (0 when
//! `y = 0`), `r` itself recorded (`dr/dy = -r^2`), which makes the VJP differentiable again.

use crate::tape::{Op, Scalar, Var};

struct NormOp;

impl<T: Scalar> Op<T> for NormOp {
    fn name(&self) -> &'static str {
        "norm"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(x[0].mul_scalar(g.mul_elem(y.recip_or_zero())))]
    }
}

/// `r = 1/y` where `y != 0`, else 0; derivative `-r^2` (0 where `y = 0`).
struct RecipOrZeroOp;

impl<T: Scalar> Op<T> for RecipOrZeroOp {
    fn name(&self) -> &'static str {
        "recip_or_zero"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], r: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(-g.mul_elem(r.square()))]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// The Euclidean norm of all entries, as a 1 x 1 variable (gradient 0 at the origin).
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.param(dmatrix![3.0, 4.0]);
    /// let n = a.norm();
    /// assert_eq!(n.scalar(), 5.0);
    /// let g = tape.grad(&[n], &[a], false)[0].value();
    /// assert!((g - dmatrix![0.6, 0.8]).norm() < 1e-15);
    /// let zero = tape.param(dmatrix![0.0, 0.0]);
    /// assert_eq!(tape.grad(&[zero.norm()], &[zero], false)[0].value(), dmatrix![0.0, 0.0]);
    /// ```
    pub fn norm(self) -> Self {
        Var::record_with(NormOp, &[self], |v| {
            let a = v[0].as_slice();
            nalgebra::DMatrix::from_element(1, 1, crate::kernels::dot(a, a).sqrt())
        })
    }

    /// Elementwise `1/x`, with 0 where `x = 0` (used where a zero denominator means "no
    /// direction", as in normalizing a zero vector).
    pub fn recip_or_zero(self) -> Self {
        self.map_op(RecipOrZeroOp, |a| {
            if a == T::zero() {
                T::zero()
            } else {
                T::one() / a
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use crate::tape::Tape;
    use nalgebra::DMatrix;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn norm_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].norm());
            check(&f, &[rand(seed, r, c)], seed)?;
        }

        #[test]
        fn recip_or_zero_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].recip_or_zero());
            check(&f, &[signed_away_from_zero(&mut rng(seed), r, c, 0.5, 2.0)], seed)?;
        }
    }

    #[test]
    fn norm_second_derivative_at_zero_is_finite() {
        let tape = Tape::<f64>::new();
        let a = tape.param(DMatrix::zeros(3, 1));
        let g = tape.grad(&[a.norm()], &[a], true)[0];
        let h = tape.grad(&[g.sum()], &[a], false)[0].value();
        assert!(h.iter().all(|v| v.is_finite()));
    }
}
