//! Matrix products `C = op(A) op(B)` with `op` the identity or the transpose.
//!
//! Derivatives (G the cotangent of C):
//! - `C = A B`:     `dA = G Bᵀ`,  `dB = Aᵀ G`
//! - `C = Aᵀ B`:    `dA = B Gᵀ`,  `dB = A G`
//! - `C = A Bᵀ`:    `dA = G B`,   `dB = Gᵀ A`
//! - `C = Aᵀ Bᵀ`:   `dA = Bᵀ Gᵀ`, `dB = Gᵀ Aᵀ`
//!
//! Each VJP is again a product of this family, so it is differentiable to any order. The
//! products themselves run in [`crate::kernels`], which picks a kernel by shape; products with
//! a transposed operand go through `matrixmultiply` with swapped strides rather than
//! nalgebra's `tr_mul`, which is 4-5x slower at these sizes (research/rust_autodiff_survey.md
//! 4.2); nalgebra's own small-matrix fallback mis-reads strided views, so it is bypassed.

use super::same_tape;
use crate::kernels::{
    add_outer_products, gemm_append, outer_products_keep_bits, DenseRef, DOT_MAX_COLUMNS,
    DOT_MIN_INNER,
};
use crate::tape::{Factor, Op, OuterCotangent, Scalar, Var};
use nalgebra::DMatrix;

struct MatMulOp {
    ta: bool,
    tb: bool,
}

impl MatMulOp {
    /// The cotangent of input `k` as the product `op(left) op(right)` (the table above).
    fn cotangent_product(&self, k: usize) -> (Factor, bool, Factor, bool) {
        use Factor::{Cotangent as G, Input};
        let (a, b) = (Input(0), Input(1));
        match (k, self.ta, self.tb) {
            (0, false, false) => (G, false, b, true),
            (0, true, false) => (b, false, G, true),
            (0, false, true) => (G, false, b, false),
            (0, true, true) => (b, true, G, true),
            (_, false, false) => (a, true, G, false),
            (_, true, false) => (a, false, G, false),
            (_, false, true) => (G, true, a, false),
            (_, true, true) => (G, true, a, true),
        }
    }
}

impl<T: Scalar> Op<T> for MatMulOp {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], out: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        self.vjp_wanted(x, out, g, &[true, true])
    }
    fn vjp_wanted<'t>(
        &self,
        x: &[Var<'t, T>],
        _: Var<'t, T>,
        g: Var<'t, T>,
        wanted: &[bool],
    ) -> Vec<Option<Var<'t, T>>> {
        // Products for an input that needs no gradient (data, say), or whose cotangent the
        // sweep does not want, are skipped: each is as expensive as the forward product.
        (0..2)
            .map(|k| {
                (wanted[k] && x[k].requires_grad()).then(|| {
                    let (left, tl, right, tr) = self.cotangent_product(k);
                    let pick = |o: Factor| match o {
                        Factor::Cotangent => g,
                        Factor::Input(i) => x[i],
                    };
                    pick(left).matmul_t(tl, pick(right), tr)
                })
            })
            .collect()
    }
    /// A cotangent of inner dimension 1 (the weight gradient of a product with a vector: `G
    /// xᵀ` for `W x`) is given by its factors, for the sweep to add with the other uses'
    /// terms at once, when the formed product would round as the small-shape loops do
    /// ([`crate::kernels::outer_products_keep_bits`]).
    fn outer_cotangent(
        &self,
        k: usize,
        x: &[Var<'_, T>],
        g: &DMatrix<T>,
    ) -> Option<OuterCotangent<T>> {
        let (left, tl, right, tr) = self.cotangent_product(k);
        let shape = |o: Factor| match o {
            Factor::Cotangent => g.shape(),
            Factor::Input(i) => x[i].shape(),
        };
        let op_shape = |o: Factor, t: bool| {
            let (r, c) = shape(o);
            if t {
                (c, r)
            } else {
                (r, c)
            }
        };
        let ((rows, inner), (inner_right, cols)) = (op_shape(left, tl), op_shape(right, tr));
        // With an inner dimension of 1, `op(left)` is a column and `op(right)` a row whatever
        // the transposes: their storage is `u` and `v`.
        if inner != 1 || inner_right != 1 || x[k].shape() != (rows, cols) {
            return None;
        }
        if !outer_products_keep_bits(rows, cols) {
            return None;
        }
        Some(OuterCotangent {
            u: left,
            v: right,
            add_terms: add_outer_products::<T>,
        })
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
    gemm_refs(DenseRef::from(a), ta, DenseRef::from(b), tb)
}

/// [`gemm`] on borrowed (possibly gathered) operands.
fn gemm_refs<T: Scalar>(a: DenseRef<'_, T>, ta: bool, b: DenseRef<'_, T>, tb: bool) -> DMatrix<T> {
    let (rows, cols) = (a.op_shape(ta).0, b.op_shape(tb).1);
    let mut c = Vec::new();
    gemm_append(a, ta, b, tb, &mut c);
    DMatrix::from_vec(rows, cols, c)
}

impl<'t, T: Scalar> Var<'t, T> {
    /// `op(self) op(other)` where `op` transposes when its flag is set.
    pub fn matmul_t(self, transpose_self: bool, other: Self, transpose_other: bool) -> Self {
        let op = MatMulOp {
            ta: transpose_self,
            tb: transpose_other,
        };
        // A left operand with a stored transpose times a skinny right one is read so that the
        // dot kernel streams its contiguous columns (`X B` as `(Xᵀ)ᵀ B`); otherwise a transposed
        // operand with a stored transpose is read through it, since general gemm would repack
        // its strided rows on every product.
        // A transposed left operand with a short inner dimension (a wide weight `W` in `Wᵀ g`)
        // is out of the dot kernel's reach and is read through its stored transpose too, as a
        // tall product.
        let skinny = !transpose_other && other.ncols() <= DOT_MAX_COLUMNS;
        let short_inner = self.nrows() < DOT_MIN_INNER;
        // Operands read through a stored transpose are not borrowed otherwise: a constant
        // known only by its transpose is then never formed.
        let self_t = match (self.stored_transpose(), transpose_self) {
            (Some(t), false) if skinny => Some((t, true)),
            (Some(t), true) if !skinny || short_inner => Some((t, false)),
            _ => None,
        };
        let other_t = transpose_other.then(|| other.stored_transpose()).flatten();
        same_tape("matmul", self, other);
        let value = {
            let (self_plain, other_plain);
            let (a, ta) = match &self_t {
                Some((t, ta)) => (DenseRef::from(t), *ta),
                None => {
                    self_plain = self.value_ref();
                    (DenseRef::from(&*self_plain), transpose_self)
                }
            };
            let (b, tb) = match &other_t {
                Some(t) => (DenseRef::from(t), false),
                None => {
                    other_plain = other.value_ref();
                    (DenseRef::from(&*other_plain), transpose_other)
                }
            };
            gemm_refs(a, ta, b, tb)
        };
        self.tape().record(op, &[self, other], value)
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
    use crate::tape::Var;
    use nalgebra::DMatrix;
    use proptest::prelude::*;
    use proptest::test_runner::Config;

    proptest! {
        #![proptest_config(config())]
        /// A weight used in three products with vectors and once elementwise between them:
        /// its rank-one cotangents wait as factors in a sweep that records nothing and are
        /// added in place, before the elementwise cotangent and after it, and are formed and
        /// added as nodes in one that records; both give the same bits, for every transpose
        /// and either operand, in column lengths that do and do not take the deferred path.
        #[test]
        fn rank_one_cotangents_added_later_keep_their_bits(
            r in 2usize..13, c in 20usize..30, seed in 0u64..1_000_000,
            weight_left: bool, ta: bool, tb: bool) {
            let tape = crate::tape::Tape::<f32>::new();
            let f32s = |m: DMatrix<f64>| m.map(|v| v as f32);
            let weight = tape.param(f32s(rand(seed, r, c)));
            // op(weight) is r x c or c x r; the vector matches its inner side.
            let (wr, wc) = if (weight_left && ta) || (!weight_left && tb) { (c, r) } else { (r, c) };
            let mut loss = tape.scalar(0.0);
            for t in 0..3 {
                // op(vector) is wc x 1 on the right of op(weight), 1 x wr on its left.
                let shape = match (weight_left, ta, tb) {
                    (true, _, false) => (wc, 1),
                    (true, _, true) => (1, wc),
                    (false, true, _) => (wr, 1),
                    (false, false, _) => (1, wr),
                };
                let vector = tape.constant(f32s(rand(seed + 1 + t, shape.0, shape.1)));
                let product = if weight_left {
                    weight.matmul_t(ta, vector, tb)
                } else {
                    vector.matmul_t(ta, weight, tb)
                };
                loss = loss + product.tanh().sum();
                if t == 1 {
                    loss = loss + weight.tanh().sum();
                }
            }
            let plain = tape.grad(&[loss], &[weight], false)[0].value();
            let recorded = tape.grad(&[loss], &[weight], true)[0].value();
            prop_assert_eq!(plain, recorded);
        }

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

    /// Naive `op(a) op(b)` in f64, whatever the element type.
    fn naive<T: crate::tape::Scalar>(
        a: &DMatrix<T>,
        ta: bool,
        b: &DMatrix<T>,
        tb: bool,
    ) -> DMatrix<f64> {
        let a = a.map(|v| v.as_f64());
        let b = b.map(|v| v.as_f64());
        let a = if ta { a.transpose() } else { a };
        let b = if tb { b.transpose() } else { b };
        a * b
    }

    /// Shapes that reach each path of `gemm`: the SIMD dot and column kernels (tall `A` or a
    /// long inner dimension, at most 24 columns, with vector and scalar tails), the
    /// small-shape forms (inner dimension at most 4, tall or wide; one row with up to 8 terms;
    /// 8 rows of one term; a few outputs with a long inner dimension) and general gemm.
    fn shape() -> impl Strategy<Value = (usize, usize, usize)> {
        prop_oneof![
            (16usize..90, 1usize..300, 1usize..30),
            (1usize..6, 1usize..5, 1usize..200),
            (1usize..2, 5usize..9, 1usize..200),
            (8usize..9, 1usize..2, 9usize..200),
            (1usize..200, 1usize..5, 1usize..6),
            (1usize..9, 5usize..400, 1usize..9),
            (1usize..40, 1usize..40, 1usize..40),
        ]
    }

    fn check_paths<T: crate::tape::Scalar>(
        (m, k, n): (usize, usize, usize),
        seed: u64,
        ta: bool,
        tb: bool,
        tol: f64,
    ) -> Result<(), TestCaseError> {
        let cast = |x: DMatrix<f64>| x.map(T::cast);
        let a = cast(if ta {
            rand(seed, k, m)
        } else {
            rand(seed, m, k)
        });
        let b = cast(if tb {
            rand(seed + 1, n, k)
        } else {
            rand(seed + 1, k, n)
        });
        let got = crate::ops::gemm(&a, ta, &b, tb).map(|v| v.as_f64());
        let expected = naive(&a, ta, &b, tb);
        let err = (&got - &expected).amax();
        prop_assert!(
            err <= tol * (k as f64),
            "{m}x{k}x{n} ta={ta} tb={tb}: error {err}"
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(Config::with_cases(64))]
        #[test]
        fn every_gemm_path_matches_the_naive_product_in_f64_and_f32(
            dims in shape(), seed in 0u64..1_000_000, ta: bool, tb: bool) {
            check_paths::<f64>(dims, seed, ta, tb, 1e-14)?;
            check_paths::<f32>(dims, seed, ta, tb, 1e-6)?;
        }
    }

    #[test]
    fn products_with_a_stored_transpose_match_the_plain_constant() {
        use std::sync::Arc;
        let tape = crate::tape::Tape::<f64>::new();
        let x = rand(3, 40, 7);
        let shared =
            tape.constant_shared_with_transpose(Arc::new(x.clone()), Arc::new(x.transpose()));
        let plain = tape.constant(x.clone());
        let g = tape.param(rand(4, 40, 3));
        let h = tape.param(rand(5, 7, 3));
        assert_eq!(shared.tr_matmul(g).value(), plain.tr_matmul(g).value());
        assert_eq!(shared.matmul(h).value(), plain.matmul(h).value());
        assert_eq!(
            h.tr_matmul(shared.t()).value(),
            h.tr_matmul(plain.t()).value()
        );
        assert_eq!(
            g.matmul_t(true, shared, false).value(),
            g.matmul_t(true, plain, false).value()
        );
        // Gradients through the shared constant, first and second order, agree too.
        let f = |data| -> Var<'_, f64> { Var::tr_matmul(data, g).tanh().matmul_tr(h).sum() };
        let (fs, fp) = (f(shared), f(plain));
        let gs = tape.grad(&[fs], &[g, h], true);
        let gp = tape.grad(&[fp], &[g, h], true);
        for (a, b) in gs.iter().zip(&gp) {
            assert!((a.value() - b.value()).amax() < 1e-12);
        }
        let hs = tape.grad(&[gs[0].sum()], &[g], false)[0].value();
        let hp = tape.grad(&[gp[0].sum()], &[g], false)[0].value();
        assert!((hs - hp).amax() < 1e-12);
    }

    /// A wide weight bound with its transpose gives the products and the gradients (first and
    /// second order) of the plain parameter, up to rounding: `Wᵀ g` then runs as a tall product.
    #[test]
    fn a_wide_weight_with_its_transpose_matches_the_plain_parameter() {
        let tape = crate::tape::Tape::<f64>::new();
        let w = rand(6, 3, 150);
        let (kept, plain) = (tape.param_with_transpose(w.clone()), tape.param(w));
        let x = tape.param(rand(7, 150, 1));
        let f = |w| -> Var<'_, f64> { Var::tr_matmul(w, Var::matmul(w, x).tanh()).tanh().sum() };
        let (fk, fp) = (f(kept), f(plain));
        assert!((fk.scalar() - fp.scalar()).abs() < 1e-12);
        let gk = tape.grad(&[fk], &[kept, x], true);
        let gp = tape.grad(&[fp], &[plain, x], true);
        for (a, b) in gk.iter().zip(&gp) {
            assert!((a.value() - b.value()).amax() < 1e-12);
        }
        let hk = tape.grad(&[gk[1].sum()], &[kept, x], false);
        let hp = tape.grad(&[gp[1].sum()], &[plain, x], false);
        for (a, b) in hk.iter().zip(&hp) {
            assert!((a.value() - b.value()).amax() < 1e-12);
        }
    }

    #[test]
    #[should_panic(expected = "cannot be the transpose")]
    fn a_misshapen_transpose_is_refused() {
        use std::sync::Arc;
        let tape = crate::tape::Tape::<f64>::new();
        let x = rand(3, 4, 5);
        let _ = tape.constant_shared_with_transpose(Arc::new(x.clone()), Arc::new(x));
    }

    #[test]
    #[should_panic(expected = "matmul: inner dimensions differ, left is 2 x 3, right is 2 x 3")]
    fn matmul_names_both_shapes() {
        let tape = crate::tape::Tape::<f64>::new();
        let a = tape.constant(nalgebra::DMatrix::zeros(2, 3));
        let _ = a.matmul(a);
    }
}
