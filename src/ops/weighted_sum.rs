//! A weighted sum of same-shape variables with fixed weights, `C = Σ_i s_i A_i`, in one pass.
//!
//! The terms are added left to right, each product `s_i A_i` rounded first (a weight of 1
//! adds the entry itself). Since `a - b` is `a + (-b)` and `-(s b)` is `(-s) b` exactly, the
//! terms `[(s, v), (-η, g), (1, x)]` give, bit for bit, `x + (v.scale(s) - g.scale(η))`: an
//! optimizer's update chain becomes one node and one pass instead of four.
//!
//! Derivative: `dC/dA_i = s_i I`, VJP `s_i G` (`G` itself for a weight of 1).

use super::same_tape;
use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct WeightedSumOp<T> {
    weights: Vec<T>,
}

impl<T: Scalar> Op<T> for WeightedSumOp<T> {
    fn name(&self) -> &'static str {
        "weighted_sum"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        x.iter()
            .zip(&self.weights)
            .map(|(xi, &s)| {
                xi.requires_grad()
                    .then(|| if s == T::one() { g } else { g.scale(s) })
            })
            .collect()
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// `Σ_i s_i a_i` for the `(s_i, a_i)` of `terms` (all of one shape), added left to right
    /// with each product rounded first: the same bits as the chain of [`Var::scale`], `+` and
    /// `-` it replaces, in one pass and one tape node.
    ///
    /// Panics if `terms` is empty, or if the shapes or tapes differ.
    ///
    /// ```
    /// use convergent_l2o::tape::{Tape, Var};
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(dmatrix![1.0; 2.0]);
    /// let v = tape.param(dmatrix![0.5; -1.0]);
    /// let g = tape.param(dmatrix![4.0; 2.0]);
    /// // x + (2 v - 0.25 g)
    /// let next = Var::weighted_sum(&[(2.0, v), (-0.25, g), (1.0, x)]);
    /// assert_eq!(next.value(), dmatrix![1.0; -0.5]);
    /// assert_eq!(next.value(), (x + (v.scale(2.0) - g.scale(0.25))).value());
    /// ```
    pub fn weighted_sum(terms: &[(T, Var<'t, T>)]) -> Var<'t, T> {
        assert!(!terms.is_empty(), "weighted_sum: no terms");
        let vars: Vec<Var<'t, T>> = terms.iter().map(|&(_, v)| v).collect();
        for &v in &vars[1..] {
            same_tape("weighted_sum", vars[0], v);
        }
        let weights: Vec<T> = terms.iter().map(|&(s, _)| s).collect();
        let value = Var::with_values(&vars, |values| {
            let first = values[0];
            for m in &values[1..] {
                crate::tape::assert_same_shape("weighted_sum", first, m);
            }
            let mut out: Vec<T> = if weights[0] == T::one() {
                first.as_slice().to_vec()
            } else {
                let s = weights[0];
                first.as_slice().iter().map(|&a| s * a).collect()
            };
            for (&s, m) in weights[1..].iter().zip(&values[1..]) {
                let terms = out.iter_mut().zip(m.as_slice());
                if s == T::one() {
                    terms.for_each(|(acc, &a)| *acc += a);
                } else {
                    terms.for_each(|(acc, &a)| *acc += s * a);
                }
            }
            DMatrix::from_vec(first.nrows(), first.ncols(), out)
        });
        vars[0]
            .tape()
            .record(WeightedSumOp { weights }, &vars, value)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use crate::tape::{Tape, Var};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn weighted_sum_gradients(r in 1usize..5, c in 1usize..4, seed in 0u64..1_000_000,
                                  s in -3.0f64..3.0, t in -3.0f64..3.0) {
            // The same variable twice, a weight of 1, and a product after the sum, so that the
            // second-order check sees every input's cotangent.
            let f = tape_fn(move |x| {
                Var::weighted_sum(&[(s, x[0]), (1.0, x[1]), (t, x[2]), (-0.5, x[0])])
                    .mul_elem(x[1])
            });
            let inputs = [rand(seed, r, c), rand(seed + 1, r, c), rand(seed + 2, r, c)];
            check(&f, &inputs, seed)?;
        }

        #[test]
        fn weighted_sum_rounds_as_the_chain_it_replaces(seed in 0u64..1_000_000,
                                                        s in -3.0f32..3.0, eta in 0.0f32..2.0) {
            let tape = Tape::<f32>::new();
            let draw = |k: u64| tape.param(rand(seed + k, 7, 2).map(|a| a as f32 * 1e3));
            let (x, v, g) = (draw(0), draw(1), draw(2));
            let fused = Var::weighted_sum(&[(s, v), (-eta, g), (1.0, x)]);
            let chain = x + (v.scale(s) - g.scale(eta));
            prop_assert_eq!(fused.value(), chain.value());
            // And the cotangents the chain would give each input.
            let ct = draw(3);
            let fused_grads = tape.grad(&[fused.mul_elem(ct).sum()], &[x, v, g], false);
            let chain_grads = tape.grad(&[chain.mul_elem(ct).sum()], &[x, v, g], false);
            for (a, b) in fused_grads.iter().zip(&chain_grads) {
                prop_assert_eq!(a.value(), b.value());
            }
        }
    }

    #[test]
    #[should_panic(expected = "weighted_sum: no terms")]
    fn weighted_sum_refuses_no_terms() {
        let _ = Var::<f64>::weighted_sum(&[]);
    }

    #[test]
    #[should_panic(expected = "weighted_sum")]
    fn weighted_sum_refuses_mismatched_shapes() {
        let tape = Tape::<f64>::new();
        let a = tape.constant(nalgebra::DMatrix::zeros(2, 1));
        let b = tape.constant(nalgebra::DMatrix::zeros(3, 1));
        let _ = Var::weighted_sum(&[(1.0, a), (2.0, b)]);
    }
}
