//! A dense layer whose weights and bias are one flat parameter column, on a batch of rows,
//! and its adjoint in the parameters:
//!
//! - `A(p; X) = X Wᵀ + 1 bᵀ` for `X` (B x f) and `p = [W row-major; b]` ((c f + c) x 1), the
//!   layout of PyTorch's `nn.Linear` weight (c x f) followed by its bias: the first `c f`
//!   entries of `p`, read column-major, are `Wᵀ` (f x c), so the weights are never copied
//!   out of `p`;
//! - `Aᵀ(G; X) = [vec(Xᵀ G); Gᵀ 1]` ((c f + c) x 1) for `G` (B x c): the gradient in `p` of
//!   `<G, A(p; X)>`, assembled in one buffer.
//!
//! The paper's optimizee is `A` followed by an activation and a cross-entropy; written as
//! slice, reshape, product, broadcast and add, its value and gradient cost seven full-length
//! copies of `p` a step, and as many again when the meta-gradient differentiates through them.
//!
//! Derivatives (`G` the cotangent of `A(p; X)`, `q` that of `Aᵀ(G; X)`, `W(q)ᵀ` the first
//! `c f` entries of `q` as an f x c matrix):
//! - `Z = A(p; X)`:   `dp = Aᵀ(G; X)`, `dX = G W(p)`;
//! - `P = Aᵀ(G; X)`:  `dG = A(q; X)`,  `dX = G W(q)`.
//!
//! Each VJP is again `A`, `Aᵀ` or a product, so both are differentiable to any order.

use super::same_tape;
use crate::kernels::{gemm_append, DenseRef};
use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct FlatLinearOp;

impl<T: Scalar> Op<T> for FlatLinearOp {
    fn name(&self) -> &'static str {
        "flat_linear"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (data, params) = (x[0], x[1]);
        let dx = data
            .requires_grad()
            .then(|| g.matmul_tr(weights_t(params, data.ncols(), g.ncols())));
        let dp = params.requires_grad().then(|| data.flat_linear_adjoint(g));
        vec![dx, dp]
    }
}

struct FlatLinearAdjointOp;

impl<T: Scalar> Op<T> for FlatLinearAdjointOp {
    fn name(&self) -> &'static str {
        "flat_linear_adjoint"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, q: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (data, cotangent) = (x[0], x[1]);
        let dx = data
            .requires_grad()
            .then(|| cotangent.matmul_tr(weights_t(q, data.ncols(), cotangent.ncols())));
        let dg = cotangent.requires_grad().then(|| data.flat_linear(q));
        vec![dx, dg]
    }
}

/// `W(p)ᵀ` (f x c) on the tape: the first `c f` entries of `p`, column-major.
fn weights_t<T: Scalar>(p: Var<'_, T>, features: usize, classes: usize) -> Var<'_, T> {
    p.slice(0, 0, features * classes, 1)
        .reshape(features, classes)
}

impl<'t, T: Scalar> Var<'t, T> {
    /// `self Wᵀ + 1 bᵀ` for a batch of rows `self` (B x f) and the flat parameters `params`
    /// (`(c f + c) x 1`: the c x f weights row-major, then the c biases). Reads a stored
    /// transpose of `self` (a minibatch) if there is one, as does
    /// [`Var::flat_linear_adjoint`]: the second of the two products of a step then finds the
    /// minibatch in cache.
    ///
    /// Panics unless `params` is a column whose length is a multiple of `f + 1`.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(dmatrix![1.0, 2.0; 3.0, 4.0; 5.0, 6.0]);
    /// // W = [1 0; 0 1; 1 1] (3 classes x 2 features), b = [0.5, 0, -1]
    /// let p = tape.param(dmatrix![1.0; 0.0; 0.0; 1.0; 1.0; 1.0; 0.5; 0.0; -1.0]);
    /// let z = x.flat_linear(p);
    /// assert_eq!(z.value(), dmatrix![1.5, 2.0, 2.0; 3.5, 4.0, 6.0; 5.5, 6.0, 10.0]);
    /// ```
    pub fn flat_linear(self, params: Self) -> Self {
        let (batch, features) = self.shape();
        let classes = classes_of(params, features);
        let stored_t = self.stored_transpose();
        same_tape("flat_linear", self, params);
        let value = {
            // The data is borrowed only without a stored transpose: a constant known only by
            // its transpose is never formed.
            let p = params.value_ref();
            let p = p.as_slice();
            let w_t = DenseRef::new(p, features, classes);
            let mut z = Vec::new();
            match &stored_t {
                Some(x_t) => gemm_append(DenseRef::from(x_t), true, w_t, false, &mut z),
                None => gemm_append(
                    DenseRef::from(&*self.value_ref()),
                    false,
                    w_t,
                    false,
                    &mut z,
                ),
            }
            for (column, &b) in z
                .chunks_exact_mut(batch.max(1))
                .zip(&p[features * classes..])
            {
                column.iter_mut().for_each(|zi| *zi += b);
            }
            DMatrix::from_vec(batch, classes, z)
        };
        self.tape().record(FlatLinearOp, &[self, params], value)
    }

    /// `[vec(selfᵀ g); gᵀ 1]` for a batch of rows `self` (B x f) and `g` (B x c): the gradient
    /// of `<g, self.flat_linear(p)>` in `p`, in the layout of `p`.
    ///
    /// Panics if the batch sizes differ.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(dmatrix![1.0, 2.0; 3.0, 4.0]);
    /// let p = tape.param(dmatrix![0.1; 0.2; 0.3; 0.4; 0.5; 0.6]);
    /// let g = tape.constant(dmatrix![1.0, -1.0; 2.0, 0.5]);
    /// let by_tape = tape.grad(&[x.flat_linear(p).mul_elem(g).sum()], &[p], false)[0];
    /// assert_eq!(x.flat_linear_adjoint(g).value(), by_tape.value());
    /// ```
    pub fn flat_linear_adjoint(self, g: Self) -> Self {
        let (batch, features) = self.shape();
        let (g_batch, classes) = g.shape();
        assert!(
            batch == g_batch,
            "flat_linear_adjoint: {batch} rows of data but {g_batch} rows of cotangent"
        );
        let stored_t = self.stored_transpose();
        same_tape("flat_linear_adjoint", self, g);
        let value = {
            let g = g.value_ref();
            let mut out = Vec::with_capacity(features * classes + classes);
            let cotangent = DenseRef::from(&*g);
            match &stored_t {
                Some(x_t) => gemm_append(DenseRef::from(x_t), false, cotangent, false, &mut out),
                None => gemm_append(
                    DenseRef::from(&*self.value_ref()),
                    true,
                    cotangent,
                    false,
                    &mut out,
                ),
            }
            out.extend(
                g.column_iter()
                    .map(|column| column.iter().fold(T::zero(), |s, &gi| s + gi)),
            );
            DMatrix::from_vec(features * classes + classes, 1, out)
        };
        self.tape().record(FlatLinearAdjointOp, &[self, g], value)
    }
}

/// The number of classes `c` of flat parameters `(c f + c) x 1` for `f` features.
fn classes_of<T: Scalar>(params: Var<'_, T>, features: usize) -> usize {
    let (n, cols) = params.shape();
    assert!(
        cols == 1 && n % (features + 1) == 0 && n > 0,
        "flat_linear: parameters must be a (c * {features} + c) x 1 column for {features} \
         features, found {n} x {cols}"
    );
    n / (features + 1)
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use crate::tape::{Tape, Var};
    use nalgebra::DMatrix;
    use proptest::prelude::*;
    use std::sync::Arc;

    /// `A(p; X)` composed of slice, reshape, product and broadcast, as the classifier was.
    fn composed<'t>(x: Var<'t, f64>, p: Var<'t, f64>, classes: usize) -> Var<'t, f64> {
        let f = x.ncols();
        let w_t = p.slice(0, 0, f * classes, 1).reshape(f, classes);
        let b = p.slice(f * classes, 0, classes, 1).reshape(1, classes);
        x.matmul(w_t).add_broadcast(b)
    }

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn flat_linear_gradients(batch in 1usize..6, f in 1usize..6, c in 1usize..4,
                                 seed in 0u64..1_000_000) {
            let func = tape_fn(|x| x[0].flat_linear(x[1]).tanh());
            check(&func, &[rand(seed, batch, f), rand(seed + 1, c * f + c, 1)], seed)?;
        }

        #[test]
        fn flat_linear_adjoint_gradients(batch in 1usize..6, f in 1usize..6, c in 1usize..4,
                                         seed in 0u64..1_000_000) {
            let func = tape_fn(|x| x[0].flat_linear_adjoint(x[1]).tanh());
            check(&func, &[rand(seed, batch, f), rand(seed + 1, batch, c)], seed)?;
        }

        #[test]
        fn flat_linear_is_the_composed_layer(batch in 1usize..40, f in 1usize..40,
                                              c in 1usize..12, seed in 0u64..1_000_000) {
            let tape = Tape::<f64>::new();
            let x = rand(seed, batch, f);
            let shared = tape.constant_shared_with_transpose(
                Arc::new(x.clone()), Arc::new(x.transpose()));
            let plain = tape.constant(x);
            let p = tape.param(rand(seed + 1, c * f + c, 1));
            let expected = composed(plain, p, c).value();
            for data in [shared, plain] {
                prop_assert!((data.flat_linear(p).value() - &expected).amax() < 1e-12);
                let g = tape.constant(rand(seed + 2, batch, c));
                let by_tape = tape.grad(&[composed(data, p, c).mul_elem(g).sum()], &[p], false);
                prop_assert!((data.flat_linear_adjoint(g).value() - by_tape[0].value()).amax()
                    < 1e-12);
            }
        }
    }

    #[test]
    fn data_known_by_its_transpose_is_never_formed_and_gives_the_same_bits() {
        // The classifier's step as meta-training records it: the loss, its gradient on the
        // tape, and the gradient of a function of that gradient (second order), with the
        // minibatch held only transposed; every value must equal the plain constant's, and
        // the minibatch must never have been formed.
        let tape = Tape::<f64>::new();
        let x = rand(11, 13, 6);
        let shared = tape.constant_transposed(Arc::new(x.transpose()));
        let plain = tape.constant(x);
        let p = tape.param(rand(12, 3 * 6 + 3, 1));
        assert_eq!(
            step_to_second_order(shared, p),
            step_to_second_order(plain, p)
        );
        assert_never_formed(&tape, shared);
    }

    /// The loss, gradient and a second-order gradient of the classifier's step on `data`.
    fn step_to_second_order<'t>(
        data: Var<'t, f64>,
        p: Var<'t, f64>,
    ) -> (DMatrix<f64>, DMatrix<f64>, DMatrix<f64>) {
        let tape = p.tape();
        let loss = data.flat_linear(p).tanh().sum();
        let g = tape.grad(&[loss], &[p], true)[0];
        let hvp = tape.grad(&[g.mul_elem(g).sum()], &[p], false)[0];
        (loss.value(), g.value(), hvp.value())
    }

    /// Panics unless `data` is a constant known by its transpose that was never formed.
    fn assert_never_formed(tape: &Tape<f64>, data: Var<'_, f64>) {
        let nodes = tape.nodes.borrow();
        match &nodes[data.id()].value {
            crate::tape::arena::Value::Transposed(_, plain) => {
                assert!(plain.get().is_none(), "the minibatch was formed")
            }
            _ => panic!("not a constant known by its transpose"),
        }
    }

    #[test]
    fn data_read_in_place_by_index_is_never_formed_and_gives_the_same_bits() {
        // As above, for a minibatch picked out of a larger split by index (backwards, with a
        // repeat), at sizes that reach the dot and column kernels: the same bits as the picked
        // columns copied out first, without forming the minibatch; then through the plain
        // products, which may form it.
        let tape = Tape::<f64>::new();
        let split = rand(21, 20, 50);
        let picked: Vec<usize> = (0..40)
            .map(|r| if r % 7 == 6 { 3 } else { 45 - r })
            .collect();
        let gathered = tape.constant_gathered(Arc::new(split.clone()), Arc::from(&picked[..]));
        let copied = tape.constant_transposed(Arc::new(split.select_columns(&picked)));
        let p = tape.param(rand(22, 3 * 20 + 3, 1));
        assert_eq!(
            step_to_second_order(gathered, p),
            step_to_second_order(copied, p)
        );
        assert_never_formed(&tape, gathered);
        let (w, g) = (tape.param(rand(23, 20, 4)), tape.constant(rand(24, 40, 4)));
        let products = |data: Var<'_, f64>| {
            let loss = data.matmul(w).mul_elem(g).sum();
            let dw = tape.grad(&[loss], &[w], false)[0];
            (loss.value(), dw.value(), data.tr_matmul(g).value())
        };
        assert_eq!(products(gathered), products(copied));
        assert_eq!(gathered.value(), split.select_columns(&picked).transpose());
    }

    #[test]
    #[should_panic(expected = "column 7 of a matrix of 7 columns")]
    fn a_gathered_constant_refuses_a_column_past_the_end() {
        let tape = Tape::<f64>::new();
        let _ = tape.constant_gathered(Arc::new(rand(1, 3, 7)), Arc::from(&[0, 7][..]));
    }

    #[test]
    fn a_constant_known_by_its_transpose_reads_as_the_matrix() {
        let tape = Tape::<f64>::new();
        let x = rand(3, 4, 5);
        let data = tape.constant_transposed(Arc::new(x.transpose()));
        let w = tape.param(rand(4, 5, 2));
        assert_eq!(data.shape(), (4, 5));
        let rows = tape.constant(x.clone());
        assert_eq!(data.matmul(w).value(), rows.matmul(w).value());
        assert_eq!(data.tanh().value(), x.map(f64::tanh));
        assert_eq!(tape.num_scalars(), 20 + 10 + 20 + 8 + 8 + 20);
    }

    #[test]
    fn gradient_of_the_gradient_through_both_maps() {
        // f(p) = sum tanh(A(p)) has grad Aᵀ(1 - tanh²); its Hessian-vector product goes
        // through A, Aᵀ and their VJPs, checked against the composed layer's.
        let tape = Tape::<f64>::new();
        let x = tape.constant(rand(7, 9, 5));
        let p = tape.param(rand(8, 3 * 5 + 3, 1));
        let v = tape.constant(rand(9, 3 * 5 + 3, 1));
        fn hvp<'t>(
            tape: &'t Tape<f64>,
            p: Var<'t, f64>,
            v: Var<'t, f64>,
            layer: impl Fn(Var<'t, f64>) -> Var<'t, f64>,
        ) -> DMatrix<f64> {
            let g = tape.grad(&[layer(p).tanh().sum()], &[p], true)[0];
            tape.grad(&[g.mul_elem(v).sum()], &[p], false)[0].value()
        }
        let fused = hvp(&tape, p, v, |p| x.flat_linear(p));
        let reference = hvp(&tape, p, v, |p| composed(x, p, 3));
        assert!((fused - reference).amax() < 1e-12);
    }

    #[test]
    #[should_panic(expected = "flat_linear: parameters must be a (c * 4 + c) x 1 column")]
    fn misshapen_parameters_are_named() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(DMatrix::zeros(2, 4));
        let _ = x.flat_linear(tape.param(DMatrix::zeros(7, 1)));
    }

    #[test]
    #[should_panic(expected = "flat_linear_adjoint: 2 rows of data but 3 rows of cotangent")]
    fn mismatched_batches_are_named() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(DMatrix::zeros(2, 4));
        let _ = x.flat_linear_adjoint(tape.constant(DMatrix::zeros(3, 2)));
    }
}
