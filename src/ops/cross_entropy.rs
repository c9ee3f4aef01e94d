//! Fused softmax cross-entropy, averaged over the rows (samples):
//! `L = -(1/B) sum_i sum_k y_ik ln softmax(z_i)_k`, with targets `y` (one-hot rows or any
//! distributions).
//!
//! Derivatives: `dL/dz = (softmax(z) - y) / B` for targets that sum to 1 per row, in general
//! `(softmax(z) ∘ rowsum(y) - y) / B`; `dL/dy = -log_softmax(z) / B`. The VJP is written with
//! the recorded `softmax` and `log_softmax`, so second derivatives through the fused op are
//! exact (a fused backward that is not itself differentiable silently gives wrong second
//! derivatives).

use super::softmax::log_softmax_value;
use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct CrossEntropyOp;

impl<T: Scalar> Op<T> for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (z, y) = (x[0], x[1]);
        let (rows, cols) = z.shape();
        let g_per_row = g.scale(T::one() / T::from_count(rows));
        let dz = if y.requires_grad() {
            // General targets: the row mass of y scales the softmax term.
            z.softmax().mul_elem(y.row_sums().broadcast(rows, cols)) - y
        } else {
            let y_value = y.value_ref();
            // Each sample's mass: the sum along its row (nalgebra's `column_sum`).
            let mass_is_one = y_value
                .column_sum()
                .iter()
                .all(|m| (*m - T::one()).abs() <= T::cast(1e-6));
            drop(y_value);
            if mass_is_one {
                z.softmax() - y
            } else {
                z.softmax().mul_elem(y.row_sums().broadcast(rows, cols)) - y
            }
        };
        let dy = y
            .requires_grad()
            .then(|| -z.log_softmax().mul_scalar(g_per_row));
        vec![Some(dz.mul_scalar(g_per_row)), dy]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Mean over rows of the cross-entropy between `softmax(self)` and the target rows
    /// `targets` (one-hot or distributions), as a 1 x 1 variable.
    ///
    /// Panics if the shapes differ.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let logits = tape.param(dmatrix![0.0, 0.0]);
    /// let target = tape.constant(dmatrix![1.0, 0.0]);
    /// let loss = logits.softmax_cross_entropy(target);
    /// assert!((loss.scalar() - 2f64.ln()).abs() < 1e-15);
    /// ```
    pub fn softmax_cross_entropy(self, targets: Self) -> Self {
        Var::record_with(CrossEntropyOp, &[self, targets], |v| {
            crate::tape::assert_same_shape("softmax_cross_entropy", v[0], v[1]);
            let logp = log_softmax_value(v[0]);
            let total = logp.dot(v[1]);
            DMatrix::from_element(1, 1, -total / T::from_count(v[0].nrows()))
        })
    }

    /// [`Var::softmax_cross_entropy`] with class indices (one per row) instead of one-hot rows.
    ///
    /// Panics if there is not one label per row or a label is out of range.
    pub fn softmax_cross_entropy_labels(self, labels: &[usize]) -> Self {
        let (rows, cols) = self.shape();
        assert!(
            labels.len() == rows,
            "softmax_cross_entropy_labels: {} labels for {rows} rows",
            labels.len()
        );
        let mut one_hot = DMatrix::zeros(rows, cols);
        for (i, &k) in labels.iter().enumerate() {
            assert!(
                k < cols,
                "softmax_cross_entropy_labels: label {k} at row {i} is out of range for {cols} classes"
            );
            one_hot[(i, k)] = T::one();
        }
        self.softmax_cross_entropy(self.constant_like(one_hot))
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use nalgebra::DMatrix;
    use proptest::prelude::*;

    fn one_hot(seed: u64, r: usize, c: usize) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |i, j| {
            if (seed as usize).wrapping_add(i) % c == j {
                1.0
            } else {
                0.0
            }
        })
    }

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn cross_entropy_gradients_one_hot(r in 1usize..5, c in 2usize..5, seed in 0u64..1_000_000) {
            let y = one_hot(seed, r, c);
            let f = tape_fn(move |x| {
                x[0].tanh().softmax_cross_entropy(x[0].constant_like(y.clone()))
            });
            check(&f, &[rand(seed, r, c) * 3.0], seed)?;
        }

        #[test]
        fn cross_entropy_gradients_in_both_arguments(r in 1usize..5, c in 2usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].softmax_cross_entropy(x[1].softmax()));
            check(&f, &[rand(seed, r, c) * 3.0, rand(seed + 1, r, c)], seed)?;
        }

        /// Targets whose rows do not sum to 1 get the general derivative, even where every
        /// column (class) sums to 1.
        #[test]
        fn cross_entropy_gradients_with_unnormalized_rows(c in 2usize..5, seed in 0u64..1_000_000) {
            // Column j of rows 0 and 1: (1 - a_j, a_j), so every column sums to 1 and the
            // rows to c - Σa and Σa.
            let a: Vec<f64> = (0..c).map(|j| 0.1 + 0.8 * ((seed as f64 + j as f64) * 0.37).sin().abs()).collect();
            let y = DMatrix::from_fn(2, c, |i, j| if i == 0 { 1.0 - a[j] } else { a[j] });
            let f = tape_fn(move |x| x[0].softmax_cross_entropy(x[0].constant_like(y.clone())));
            check(&f, &[rand(seed, 2, c) * 3.0], seed)?;
        }

        #[test]
        fn fused_equals_composed(r in 1usize..5, c in 2usize..5, seed in 0u64..1_000_000) {
            let tape = crate::tape::Tape::<f64>::new();
            let z = tape.param(rand(seed, r, c) * 3.0);
            let y = tape.constant(one_hot(seed, r, c));
            let fused = z.softmax_cross_entropy(y);
            let composed = -(z.log_softmax().dot(y)).scale(1.0 / r as f64);
            prop_assert!((fused.scalar() - composed.scalar()).abs() < 1e-12);
            let labels: Vec<usize> = (0..r).map(|i| (seed as usize).wrapping_add(i) % c).collect();
            prop_assert!((z.softmax_cross_entropy_labels(&labels).scalar() - fused.scalar()).abs() < 1e-15);
        }
    }
}
