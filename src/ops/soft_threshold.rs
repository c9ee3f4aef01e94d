//! Soft-thresholding `y = sign(v) max(|v| - τ, 0)`, elementwise: the proximal operator of
//! `τ |.|_1` (with an elementwise `τ >= 0`, the prox of `sum_i τ_i |v_i|`).
//!
//! Derivatives (away from the kinks `|v| = τ`):
//! `dy/dv = 1[|v| > τ]`, `dy/dτ = -sign(v) 1[|v| > τ]`.
//! VJP: `(g ∘ m, -g ∘ sign(v) ∘ m)` with the mask `m` and the sign constants (their own
//! derivatives are 0 almost everywhere), so the VJP is differentiable again.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct SoftThresholdOp;

/// `1[|v| > τ]` and `-sign(v) 1[|v| > τ]`, the two partial derivatives.
fn partials<T: Scalar>(v: &DMatrix<T>, tau: &DMatrix<T>) -> (DMatrix<T>, DMatrix<T>) {
    let mask = v.zip_map(tau, |a, t| if a.abs() > t { T::one() } else { T::zero() });
    let dtau = v.zip_map(&mask, |a, m| {
        if a > T::zero() {
            -m
        } else if a < T::zero() {
            m
        } else {
            T::zero()
        }
    });
    (mask, dtau)
}

impl<T: Scalar> Op<T> for SoftThresholdOp {
    fn name(&self) -> &'static str {
        "soft_threshold"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (mask, dtau) = partials(&x[0].value_ref(), &x[1].value_ref());
        vec![
            Some(g.mul_elem(g.constant_like(mask))),
            Some(g.mul_elem(g.constant_like(dtau))),
        ]
    }
}

/// Plain-matrix soft-thresholding at a scalar `tau`: the unrecorded prox of `tau |.|_1`.
pub fn soft_threshold_matrix<T: Scalar>(v: &DMatrix<T>, tau: T) -> DMatrix<T> {
    v.map(|a| soft(a, tau))
}

#[allow(clippy::eq_op)]
fn soft<T: Scalar>(a: T, t: T) -> T {
    // Written with comparisons, not `max`, so that NaN stays NaN.
    if a > t {
        a - t
    } else if a < -t {
        a + t
    } else if a != a || t != t {
        // NaN compares unequal to itself.
        a + t
    } else {
        T::zero()
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise `sign(v) max(|v| - τ, 0)`, the prox of `τ |.|_1`. `tau` has this
    /// variable's shape (one threshold per entry) or is 1 x 1 (broadcast); panics otherwise.
    /// Gradients flow to both `v` and `tau`.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let v = tape.param(dmatrix![3.0; -0.5; -2.0]);
    /// let tau = tape.param(dmatrix![1.0; 1.0; 0.5]);
    /// let y = v.soft_threshold(tau);
    /// assert_eq!(y.value(), dmatrix![2.0; 0.0; -1.5]);
    /// let g = tape.grad(&[y.sum()], &[v, tau], false);
    /// assert_eq!(g[0].value(), dmatrix![1.0; 0.0; 1.0]);
    /// assert_eq!(g[1].value(), dmatrix![-1.0; 0.0; 1.0]);
    /// ```
    pub fn soft_threshold(self, tau: Self) -> Self {
        let (r, c) = self.shape();
        let tau = if tau.shape() == (1, 1) && (r, c) != (1, 1) {
            tau.broadcast(r, c)
        } else {
            tau
        };
        self.zip_op(tau, SoftThresholdOp, "soft_threshold", soft)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use nalgebra::DMatrix;
    use proptest::prelude::*;
    use rand::Rng;

    /// `v` with `|v_i| - τ_i` of magnitude in [0.1, 1): every entry clear of both kinks.
    fn away_from_kinks(seed: u64, r: usize, c: usize) -> [DMatrix<f64>; 2] {
        let mut g = rng(seed);
        let tau = uniform(&mut g, r, c, 0.2, 1.0);
        let v = DMatrix::from_fn(r, c, |i, j| {
            let gap = g.gen_range(0.1..1.0);
            let mag = if g.gen_bool(0.5) {
                tau[(i, j)] + gap
            } else {
                (tau[(i, j)] - gap).max(0.05).min(tau[(i, j)] - 0.1)
            };
            if g.gen_bool(0.5) {
                mag
            } else {
                -mag
            }
        });
        [v, tau]
    }

    #[test]
    fn soft_threshold_propagates_nan_and_broadcasts() {
        let tape = crate::tape::Tape::<f64>::new();
        let v = tape.constant(nalgebra::dmatrix![f64::NAN; 2.0; -0.3]);
        let y = v.soft_threshold(tape.scalar(0.5)).value();
        assert!(y[0].is_nan());
        assert_eq!((y[1], y[2]), (1.5, 0.0));
    }

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn soft_threshold_gradients(r in 1usize..5, c in 1usize..4, seed in 0u64..1_000_000) {
            // Products make the second derivative non-trivial (the op alone is piecewise linear).
            let f = tape_fn(|x| x[0].soft_threshold(x[1]).mul_elem(x[0].mul_elem(x[1])));
            check(&f, &away_from_kinks(seed, r, c), seed)?;
        }

        #[test]
        fn soft_threshold_scalar_tau_gradients(r in 1usize..5, seed in 0u64..1_000_000) {
            let [v, _] = away_from_kinks(seed, r, 1);
            // Thresholds below every |v| but not by less than 0.05.
            let min = v.iter().map(|a| a.abs()).fold(f64::INFINITY, f64::min);
            let tau = DMatrix::from_element(1, 1, (min - 0.05).max(0.01));
            prop_assume!(min > 0.07);
            let f = tape_fn(|x| x[0].soft_threshold(x[1]).square().mul_scalar(x[1]));
            check(&f, &[v, tau], seed)?;
        }
    }
}
