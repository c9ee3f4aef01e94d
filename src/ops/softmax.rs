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

/// Row-wise `z_ij - max_k z_ik` and `sum_k exp(...)`, with `exp` of the shifted entries kept
/// when `keep_exp` (softmax needs them; log-softmax only the sums): the shared stable kernel of
/// softmax, log-softmax and cross-entropy.
fn shifted_exp_sums<T: Scalar>(z: &DMatrix<T>, keep_exp: bool) -> (DMatrix<T>, Vec<T>) {
    // Column-major storage: sweep whole columns (contiguous) and keep one running value per
    // row, rather than walking strided rows; every row still sums its columns in order.
    let rows = z.nrows();
    let mut max = vec![T::min_value().unwrap(); rows];
    for column in z.as_slice().chunks_exact(rows.max(1)) {
        for (m, &v) in max.iter_mut().zip(column) {
            *m = m.max(v);
        }
    }
    // Shift every entry by its row's maximum, take the exponentials of the whole matrix at
    // once (f32 through the vectorized kernel, glibc's `expf` to the last bit), then sum each
    // row over its columns in order.
    let mut shifted = z.clone();
    for column in shifted.as_mut_slice().chunks_exact_mut(rows.max(1)) {
        for (v, &m) in column.iter_mut().zip(&max) {
            *v -= m;
        }
    }
    let exps = crate::kernels::exp_of(shifted.as_slice());
    let mut sum = vec![T::zero(); rows];
    for column in exps.chunks_exact(rows.max(1)) {
        for (s, &e) in sum.iter_mut().zip(column) {
            *s += e;
        }
    }
    let out = if keep_exp {
        DMatrix::from_vec(z.nrows(), z.ncols(), exps)
    } else {
        shifted
    };
    (out, sum)
}

/// Row-wise log-softmax of `z`, stable.
pub(crate) fn log_softmax_value<T: Scalar>(z: &DMatrix<T>) -> DMatrix<T> {
    let (mut out, sum) = shifted_exp_sums(z, false);
    let lse: Vec<T> = sum.into_iter().map(|s| s.ln()).collect();
    let rows = z.nrows().max(1);
    for column in out.as_mut_slice().chunks_exact_mut(rows) {
        for (v, &l) in column.iter_mut().zip(&lse) {
            *v -= l;
        }
    }
    out
}

/// Row-wise softmax of `z`, stable: one exponential per entry.
fn softmax_value<T: Scalar>(z: &DMatrix<T>) -> DMatrix<T> {
    let (mut out, sum) = shifted_exp_sums(z, true);
    let rows = z.nrows().max(1);
    for column in out.as_mut_slice().chunks_exact_mut(rows) {
        for (v, &s) in column.iter_mut().zip(&sum) {
            *v /= s;
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
        Var::record_with(SoftmaxOp, &[self], |v| softmax_value(v[0]))
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

    /// Each row sums its columns' exponentials in order, f32 through the exp kernel.
    #[test]
    fn rows_sum_the_kernels_exponentials_in_order() {
        use crate::kernels::exp_of;
        use crate::tape::Tape;
        use nalgebra::DMatrix;
        let z = DMatrix::from_fn(3, 5, |i, j| (i as f32 * 1.7 - j as f32 * 0.9).sin() * 4.0);
        let tape = Tape::<f32>::new();
        let y = tape.constant(z.clone()).softmax().value();
        let ls = tape.constant(z.clone()).log_softmax().value();
        for i in 0..3 {
            let m = z.row(i).iter().fold(f32::MIN, |m, &v| m.max(v));
            let shifted: Vec<f32> = z.row(i).iter().map(|&v| v - m).collect();
            let e = exp_of(&shifted);
            let sum = e.iter().fold(0.0f32, |s, &v| s + v);
            for j in 0..5 {
                assert_eq!(y[(i, j)].to_bits(), (e[j] / sum).to_bits());
                assert_eq!(ls[(i, j)].to_bits(), (shifted[j] - sum.ln()).to_bits());
            }
        }
    }
}
