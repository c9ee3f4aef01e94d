//! Matrix products `C = op(A) op(B)` with `op` the identity or the transpose.
//!
//! Derivatives (G the cotangent of C):
//! - `C = A B`:     `dA = G Bᵀ`,  `dB = Aᵀ G`
//! - `C = Aᵀ B`:    `dA = B Gᵀ`,  `dB = A G`
//! - `C = A Bᵀ`:    `dA = G B`,   `dB = Gᵀ A`
//! - `C = Aᵀ Bᵀ`:   `dA = Bᵀ Gᵀ`, `dB = Gᵀ Aᵀ`
//!
//! Each VJP is again a product of this family, so it is differentiable to any order. Products
//! with a transposed operand run through `matrixmultiply` with swapped strides rather than
//! nalgebra's `tr_mul`, which is 4-5x slower at these sizes (research/rust_autodiff_survey.md
//! 4.2); nalgebra's own small-matrix fallback mis-reads strided views, so it is bypassed.

use crate::tape::{gemm_skinny, gemm_small, Op, Scalar, Var, MAX_COLUMNS};
use nalgebra::DMatrix;

struct MatMulOp {
    ta: bool,
    tb: bool,
}

impl<T: Scalar> Op<T> for MatMulOp {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (a, b) = (x[0], x[1]);
        // Products for an input that needs no gradient (data, say) are skipped: each is as
        // expensive as the forward product.
        let da = a.requires_grad().then(|| match (self.ta, self.tb) {
            (false, false) => g.matmul_t(false, b, true),
            (true, false) => b.matmul_t(false, g, true),
            (false, true) => g.matmul_t(false, b, false),
            (true, true) => b.matmul_t(true, g, true),
        });
        let db = b.requires_grad().then(|| match (self.ta, self.tb) {
            (false, false) => a.matmul_t(true, g, false),
            (true, false) => a.matmul_t(false, g, false),
            (false, true) => g.matmul_t(true, a, false),
            (true, true) => g.matmul_t(true, a, true),
        });
        vec![da, db]
    }
}

/// `op(a) op(b)`, where `op` transposes when the flag is set, through `matrixmultiply`.
///
/// Panics with both shapes if the inner dimensions differ.
///
/// ```
/// use convergent_l2o::ops::gemm;
/// use nalgebra::dmatrix;
/// let a = dmatrix![1.0, 2.0; 3.0, 4.0];
/// assert_eq!(gemm(&a, true, &a, false), a.transpose() * &a);
/// ```
pub fn gemm<T: Scalar>(a: &DMatrix<T>, ta: bool, b: &DMatrix<T>, tb: bool) -> DMatrix<T> {
    let (ar, ac) = if ta {
        (a.ncols(), a.nrows())
    } else {
        a.shape()
    };
    let (br, bc) = if tb {
        (b.ncols(), b.nrows())
    } else {
        b.shape()
    };
    assert!(
        ac == br,
        "matmul: inner dimensions differ, left is {ar} x {ac}{}, right is {br} x {bc}{}",
        if ta { " (transposed)" } else { "" },
        if tb { " (transposed)" } else { "" }
    );
    let mut c = DMatrix::zeros(ar, bc);
    if ar == 0 || ac == 0 || bc == 0 {
        return c;
    }
    if !ta && bc <= 2 * MAX_COLUMNS && ar >= 16 {
        let b_at = |kk: usize, j: usize| if tb { b[(j, kk)] } else { b[(kk, j)] };
        // SAFETY: `a` is a contiguous ar x ac column-major matrix and `c` a fresh ar x bc one.
        if unsafe { gemm_skinny(ar, ac, bc, a.as_ptr(), ar, b_at, c.as_mut_ptr()) } {
            return c;
        }
    }
    // Column-major storage: entry (i, j) at i + j * nrows; a transpose swaps the strides.
    let strides = |m: &DMatrix<T>, t: bool| {
        let ld = m.nrows();
        if t {
            (ld, 1)
        } else {
            (1, ld)
        }
    };
    // SAFETY: as below; `c` is zero-initialized, as gemm_small's outer-product form requires.
    if unsafe {
        gemm_small(
            ar,
            ac,
            bc,
            a.as_ptr(),
            strides(a, ta),
            b.as_ptr(),
            strides(b, tb),
            c.as_mut_ptr(),
        )
    } {
        return c;
    }
    let strides = |m: &DMatrix<T>, t: bool| {
        let (r, c) = strides(m, t);
        (r as isize, c as isize)
    };
    // SAFETY: the strides address exactly the entries of `a`, `b` and `c`, whose shapes were
    // checked above, and `c` is a fresh allocation.
    unsafe {
        T::gemm_strided(
            ar,
            ac,
            bc,
            a.as_ptr(),
            strides(a, ta),
            b.as_ptr(),
            strides(b, tb),
            c.as_mut_ptr(),
            (1, ar as isize),
        );
    }
    c
}

impl<'t, T: Scalar> Var<'t, T> {
    /// `op(self) op(other)` where `op` transposes when its flag is set.
    pub fn matmul_t(self, transpose_self: bool, other: Self, transpose_other: bool) -> Self {
        let op = MatMulOp {
            ta: transpose_self,
            tb: transpose_other,
        };
        // A transposed operand with a stored transpose is read through it: general gemm would
        // otherwise repack its strided rows on every product.
        let self_t = transpose_self.then(|| self.stored_transpose()).flatten();
        let other_t = transpose_other.then(|| other.stored_transpose()).flatten();
        Var::record_with(op, &[self, other], |v| {
            let (a, ta) = match &self_t {
                Some(t) => (&**t, false),
                None => (v[0], transpose_self),
            };
            let (b, tb) = match &other_t {
                Some(t) => (&**t, false),
                None => (v[1], transpose_other),
            };
            gemm(a, ta, b, tb)
        })
    }

    /// Matrix product `self * other`.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![1.0, 2.0; 3.0, 4.0]);
    /// let x = tape.constant(dmatrix![1.0; 1.0]);
    /// assert_eq!(a.matmul(x).value(), dmatrix![3.0; 7.0]);
    /// ```
    pub fn matmul(self, other: Self) -> Self {
        self.matmul_t(false, other, false)
    }

    /// `selfᵀ * other` without forming the transpose.
    pub fn tr_matmul(self, other: Self) -> Self {
        self.matmul_t(true, other, false)
    }

    /// `self * otherᵀ` without forming the transpose.
    pub fn matmul_tr(self, other: Self) -> Self {
        self.matmul_t(false, other, true)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn matmul_gradients(n in 1usize..9, k in 1usize..9, m in 1usize..9, seed in 0u64..1_000_000,
                            ta: bool, tb: bool) {
            let a = if ta { rand(seed, k, n) } else { rand(seed, n, k) };
            let b = if tb { rand(seed + 1, m, k) } else { rand(seed + 1, k, m) };
            let f = tape_fn(move |x| x[0].matmul_t(ta, x[1], tb).tanh());
            check(&f, &[a, b], seed)?;
        }

        #[test]
        fn gemm_matches_naive_products(n in 1usize..40, k in 1usize..40, m in 1usize..40,
                                       seed in 0u64..1_000_000) {
            let a = rand(seed, n, k);
            let b = rand(seed + 1, k, m);
            let expected = &a * &b;
            let at = a.transpose();
            let bt = b.transpose();
            prop_assert!((crate::ops::gemm(&at, true, &b, false) - &expected).norm() < 1e-12);
            prop_assert!((crate::ops::gemm(&a, false, &bt, true) - &expected).norm() < 1e-12);
            prop_assert!((crate::ops::gemm(&at, true, &bt, true) - &expected).norm() < 1e-12);
        }
    }

    #[test]
    #[should_panic(expected = "matmul: inner dimensions differ, left is 2 x 3, right is 2 x 3")]
    fn matmul_names_both_shapes() {
        let tape = crate::tape::Tape::<f64>::new();
        let a = tape.constant(nalgebra::DMatrix::zeros(2, 3));
        let _ = a.matmul(a);
    }
}
