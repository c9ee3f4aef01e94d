//! Multiplication by a fixed scalar `c = s a`, and addition of one `c = a + s`.
//!
//! Derivatives: `d(s a)/da = s I`, VJP `s g`; `d(a + s)/da = I`, VJP `g`.

use crate::tape::{Op, Scalar, Var};
use std::ops::Mul;

struct ScaleOp<T>(T);

impl<T: Scalar> Op<T> for ScaleOp<T> {
    fn name(&self) -> &'static str {
        "scale"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g.scale(self.0))]
    }
}

struct AddScalarOp;

impl<T: Scalar> Op<T> for AddScalarOp {
    fn name(&self) -> &'static str {
        "add_scalar"
    }
    fn vjp<'t>(&self, _: &[Var<'t, T>], _: Var<'t, T>, g: Var<'t, T>) -> Vec<Option<Var<'t, T>>> {
        vec![Some(g)]
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    /// Every entry multiplied by the constant `s` (for a recorded scalar use [`Var::mul_scalar`]).
    pub fn scale(self, s: T) -> Self {
        self.map_op(ScaleOp(s), move |a| a * s)
    }

    /// The constant `s` added to every entry.
    pub fn add_scalar(self, s: T) -> Self {
        self.map_op(AddScalarOp, move |a| a + s)
    }
}

impl<'t, T: Scalar> Mul<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    /// Same as [`Var::scale`].
    fn mul(self, s: T) -> Self {
        self.scale(s)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn scale_gradients(r in 1usize..5, c in 1usize..5, seed in 0u64..1_000_000, s in -3.0f64..3.0) {
            let f = tape_fn(move |x| (x[0] * s).mul_elem(x[0].add_scalar(s)));
            check(&f, &[rand(seed, r, c)], seed)?;
        }
    }
}
