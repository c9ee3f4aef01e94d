//! Row-wise softmax `y_ij = exp(z_ij) / sum_k exp(z_ik)` (one sample per row), computed with
//! the row maximum subtracted so it never overflows.
//!
//! Derivative: `dy_i = (diag(y_i) - y_i y_iᵀ) dz_i`; VJP `y ∘ (g - rowsum(g ∘ y))`.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct SoftmaxOp;

impl<T: Scalar> Op<T> for SoftmaxOp {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (r, c) = y.shape();
        let inner = g.mul_elem(y).row_sums().broadcast(r, c);
        vec![Some(y.mul_elem(g - inner))]
    }
}

/// Row-wise `z_ij - max_k z_ik` and `ln sum_k exp(...)`: the shared stable kernel of softmax,
/// log-softmax and cross-entropy.
pub(crate) fn shifted_logsumexp<T: Scalar>(z: &DMatrix<T>) -> (DMatrix<T>, Vec<T>) {
    // Column-major storage: sweep whole columns (contiguous) and keep one running value per
    // row, rather than walking strided rows; every row still sums its columns in order.
    let rows = z.nrows();
    let mut max = vec![T::min_value().unwrap(); rows];
    for column in z.column_iter() {
        for (m, &v) in max.iter_mut().zip(column.iter()) {
            *m = m.max(v);
        }
    }
    let mut shifted = z.clone();
    let mut sum = vec![T::zero(); rows];
    for mut column in shifted.column_iter_mut() {
        for ((v, &m), s) in column.iter_mut().zip(&max).zip(sum.iter_mut()) {
            *v -= m;
            *s += v.exp();
        }
    }
    (shifted, sum.into_iter().map(|s| s.ln()).collect())
}

/// Row-wise log-softmax of `z`, stable.
pub(crate) fn log_softmax_value<T: Scalar>(z: &DMatrix<T>) -> DMatrix<T> {
    let (mut out, lse) = shifted_logsumexp(z);
    for mut column in out.column_iter_mut() {
        for (v, &l) in column.iter_mut().zip(&lse) {
            *v -= l;
        }
    }
    out
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Softmax of each row.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let z = tape.constant(dmatrix![0.0, 0.0; 1000.0, 1000.0]);
    /// assert_eq!(z.softmax().value(), dmatrix![0.5, 0.5; 0.5, 0.5]);
    /// ```
    pub fn softmax(self) -> Self {
        Var::record_with(SoftmaxOp, &[self], |v| {
            log_softmax_value(v[0]).map(|a| a.exp())
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
        fn softmax_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].softmax());
            check(&f, &[rand(seed, r, c) * 3.0], seed)?;
        }
    }
}
