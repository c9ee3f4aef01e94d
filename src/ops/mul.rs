//! Elementwise (Hadamard) product `c = a ∘ b`, and the inner product `<a, b> = sum(a ∘ b)`.
//!
//! Derivatives: `dc = da ∘ b + a ∘ db`, VJP `(g ∘ b, g ∘ a)`; `d<a, b> = <da, b> + <a, db>`,
//! VJP `(g b, g a)` for the 1 x 1 cotangent `g` (without forming `a ∘ b`).

use crate::tape::{Op, Scalar, Var};

struct MulOp;

impl<T: Scalar> Op<T> for MulOp {
    fn name(&self) -> &'static str {
        "mul_elem"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![
            x[0].requires_grad().then(|| g.mul_elem(x[1])),
            x[1].requires_grad().then(|| g.mul_elem(x[0])),
        ]
    }
}

struct DotOp;

impl<T: Scalar> Op<T> for DotOp {
    fn name(&self) -> &'static str {
        "dot"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![
            x[0].requires_grad().then(|| x[1].mul_scalar(g)),
            x[1].requires_grad().then(|| x[0].mul_scalar(g)),
        ]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise product of two same-shape variables.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![1.0, 2.0]);
    /// let b = tape.constant(dmatrix![3.0, 4.0]);
    /// assert_eq!(a.mul_elem(b).value(), dmatrix![3.0, 8.0]);
    /// ```
    pub fn mul_elem(self, other: Self) -> Self {
        self.zip_op(other, MulOp, "mul_elem", |a, b| a * b)
    }

    /// Elementwise square `a ∘ a`.
    pub fn square(self) -> Self {
        self.mul_elem(self)
    }

    /// Inner product `sum(a ∘ b)` as a 1 x 1 variable.
    ///
    /// Panics if the shapes differ.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.constant(dmatrix![1.0, 2.0]);
    /// let b = tape.constant(dmatrix![3.0, 4.0]);
    /// assert_eq!(a.dot(b).scalar(), 11.0);
    /// ```
    pub fn dot(self, other: Self) -> Self {
        super::same_tape("dot", self, other);
        Var::record_with(DotOp, &[self, other], |v| {
            crate::tape::assert_same_shape("dot", v[0], v[1]);
            let sum = crate::kernels::dot(v[0].as_slice(), v[1].as_slice());
            nalgebra::DMatrix::from_element(1, 1, sum)
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
        fn mul_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].mul_elem(x[1]).mul_elem(x[0]));
            check(&f, &[rand(seed, r, c), rand(seed + 1, r, c)], seed)?;
        }

        #[test]
        fn dot_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].dot(x[1]).mul_scalar(x[0].dot(x[0])));
            check(&f, &[rand(seed, r, c), rand(seed + 1, r, c)], seed)?;
        }
    }
}
