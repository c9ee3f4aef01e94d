//! Elementwise hyperbolic tangent `y = tanh(x)`, and its VJP as an op of its own.
//!
//! Derivatives:
//! - `y = tanh(x)`: `dy/dx = 1 - y^2`; VJP `tanh_grad(g, y) = g - (g ∘ y) ∘ y`.
//! - `r = tanh_grad(g, y)`, cotangent `c`: `dg = tanh_grad(c, y)`, `dy = -2 c ∘ g ∘ y`, computed
//!   as `-((c ∘ (g ∘ y)) + ((c ∘ y) ∘ g))`: the two terms that the chain
//!   `g - g.mul_elem(y).mul_elem(y)` adds into `y`'s cotangent one after the other. Where they
//!   are its first terms (in an inner gradient `y` is the output of the `tanh` being
//!   differentiated, and nothing recorded after it reads `y`), a second-order sweep keeps the
//!   bits it had with the chain: three nodes in the inner gradient and five operations in the
//!   sweep before, one and two now.
//! - `d = tanh_grad_y(c, g, y)`, cotangent `e`: `dc = -2 e ∘ g ∘ y`, `dg = -2 e ∘ c ∘ y`,
//!   `dy = -2 e ∘ c ∘ g` (third order, with plain recorded ops).

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct TanhOp;

impl<T: Scalar> Op<T> for TanhOp {
    fn name(&self) -> &'static str {
        "tanh"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.tanh_grad(y))]
    }
}

struct TanhGradOp;

impl<T: Scalar> Op<T> for TanhGradOp {
    fn name(&self) -> &'static str {
        "tanh_grad"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, c: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let (g, y) = (x[0], x[1]);
        let dg = g.requires_grad().then(|| c.tanh_grad(y));
        let dy = y.requires_grad().then(|| {
            Var::record_with(TanhGradYOp, &[c, g, y], |v| {
                let (c, g, y) = (v[0].as_slice(), v[1].as_slice(), v[2].as_slice());
                let data = c
                    .iter()
                    .zip(g)
                    .zip(y)
                    .map(|((&c, &g), &y)| -((c * (g * y)) + ((c * y) * g)))
                    .collect();
                DMatrix::from_vec(v[0].nrows(), v[0].ncols(), data)
            })
        });
        vec![dg, dy]
    }
}

struct TanhGradYOp;

impl<T: Scalar> Op<T> for TanhGradYOp {
    fn name(&self) -> &'static str {
        "tanh_grad_y"
    }
    fn vjp<'t>(&self, x: &[Var<'t, T>], _: Var<'t, T>, e: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        let minus_two = -(T::one() + T::one());
        let times = |a: Var<'t, T>, b: Var<'t, T>| e.mul_elem(a).mul_elem(b).scale(minus_two);
        let (c, g, y) = (x[0], x[1], x[2]);
        vec![
            c.requires_grad().then(|| times(g, y)),
            g.requires_grad().then(|| times(c, y)),
            y.requires_grad().then(|| times(c, g)),
        ]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Elementwise `tanh`.
    pub fn tanh(self) -> Self {
        let value = {
            let a = self.value_ref();
            // f32 through the vectorized kernel (fdlibm's `tanhf` to the last bit).
            DMatrix::from_vec(a.nrows(), a.ncols(), crate::kernels::tanh_of(a.as_slice()))
        };
        self.tape.record(TanhOp, &[self], value)
    }

    /// `self - (self ∘ y) ∘ y`: the cotangent of `tanh`'s input for the cotangent `self` of its
    /// output `y`, in one pass, with the bits of the chain of `mul_elem` and `-` it replaces.
    ///
    /// Panics if the shapes differ.
    pub fn tanh_grad(self, y: Self) -> Self {
        Var::record_with(TanhGradOp, &[self, y], |v| {
            crate::tape::assert_same_shape("tanh_grad", v[0], v[1]);
            let (g, y) = (v[0].as_slice(), v[1].as_slice());
            let data = g.iter().zip(y).map(|(&g, &y)| g - (g * y) * y).collect();
            DMatrix::from_vec(v[0].nrows(), v[0].ncols(), data)
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
        fn tanh_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].tanh());
            check(&f, &[rand(seed, r, c) * 2.0], seed)?;
        }

        /// `tanh_grad` and (through the second-order check) `tanh_grad_y`, each input alone
        /// and both together.
        #[test]
        fn tanh_grad_gradients(r in 1usize..4, c in 1usize..4, seed in 0u64..1_000_000) {
            let f = tape_fn(|x| x[0].tanh_grad(x[1].tanh()).mul_elem(x[0]));
            check(&f, &[rand(seed, r, c), rand(seed + 1, r, c) * 2.0], seed)?;
            let g = rand(seed + 2, r, c);
            let f = tape_fn(move |x| x[0].constant_like(g.clone()).tanh_grad(x[0].tanh()).square());
            check(&f, &[rand(seed + 3, r, c)], seed)?;
        }

        /// The value, and the cotangents a sweep adds into `g` and `y`, are those of the
        /// chain `g - g.mul_elem(y).mul_elem(y)`, bit for bit.
        #[test]
        fn tanh_grad_rounds_as_the_chain_it_replaces(r in 1usize..6, c in 1usize..6,
                                                     seed in 0u64..1_000_000) {
            let tape = crate::tape::Tape::<f32>::new();
            let draw = |k: u64, s: f64| tape.param(rand(seed + k, r, c).map(|a| (a * s) as f32));
            let (g, y, w) = (draw(0, 100.0), draw(1, 1.0), draw(2, 10.0));
            let fused = g.tanh_grad(y);
            let chain = g - g.mul_elem(y).mul_elem(y);
            prop_assert_eq!(fused.value(), chain.value());
            let fused_grads = tape.grad(&[fused.mul_elem(w).sum()], &[g, y], false);
            let chain_grads = tape.grad(&[chain.mul_elem(w).sum()], &[g, y], false);
            for (a, b) in fused_grads.iter().zip(&chain_grads) {
                prop_assert_eq!(a.value(), b.value());
            }
        }
    }

    /// f32 goes through the tanh kernel (the C library's `tanhf` bits, on any platform), f64
    /// through the C library's `tanh`.
    #[test]
    fn each_type_takes_its_tanh() {
        use crate::kernels::tanh_of;
        use crate::tape::Tape;
        use nalgebra::DMatrix;
        let values = [-30.0f32, -1.0, -0.3, 0.0, 1e-30, 0.5, 2.0, 9.0];
        let m = DMatrix::from_row_slice(2, 4, &values);
        let y = Tape::<f32>::new().constant(m.clone()).tanh().value();
        assert_eq!(y.as_slice(), &tanh_of(m.as_slice())[..]);
        let m64 = m.map(f64::from);
        let y64 = Tape::<f64>::new().constant(m64.clone()).tanh().value();
        assert_eq!(y64, m64.map(f64::tanh));
    }
}
