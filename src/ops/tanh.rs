//! Elementwise hyperbolic tangent `y = tanh(x)`.
//!
//! Derivative: `dy/dx = 1 - y^2`; VJP `g - g ∘ y ∘ y`.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

struct TanhOp;

impl<T: Scalar> Op<T> for TanhOp {
    fn name(&self) -> &'static str {
        "tanh"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], y: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g - g.mul_elem(y).mul_elem(y))]
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
