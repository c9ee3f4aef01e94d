//! Differentiable operations on [`Var`]: one file per operation, holding its forward, its VJP
//! (written with recording operations, so it is differentiable again), its derivative formula
//! and its gradient checks.
//!
//! Shape errors panic with a message naming the operation and the shapes involved.

use crate::tape::{Op, Scalar, Var};
use nalgebra::DMatrix;

mod abs;
mod add;
mod broadcast;
mod concat;
mod cross_entropy;
mod diag;
mod div;
mod exp;
mod flat_linear;
mod gather;
mod inverse;
mod log;
mod log_softmax;
mod lower;
mod matmul;
mod mul;
mod mul_scalar;
mod neg;
mod norm;
mod powi;
mod relu;
mod reshape;
mod scale;
mod sigmoid;
mod slice;
mod soft_threshold;
mod softmax;
mod softplus;
mod solve;
mod sqrt;
mod stop_gradient;
mod sub;
mod sum;
mod tanh;
mod transpose;
mod weighted_sum;

pub use gather::RowIndex;
pub use matmul::gemm;
pub use soft_threshold::soft_threshold_matrix;

impl<'t, T: Scalar> Var<'t, T> {
    /// Records `op` with the elementwise image of this variable under `f`.
    pub(crate) fn map_op(self, op: impl Op<T>, f: impl Fn(T) -> T) -> Self {
        let value = {
            let a = self.value_ref();
            // Over the contiguous storage: nalgebra's `map` goes through its generic iterators.
            let data = a.as_slice().iter().map(|&x| f(x)).collect();
            DMatrix::from_vec(a.nrows(), a.ncols(), data)
        };
        self.tape.record(op, &[self], value)
    }

    /// Records `op` with the elementwise combination of two same-shape variables under `f`.
    pub(crate) fn zip_op(
        self,
        other: Self,
        op: impl Op<T>,
        name: &str,
        f: impl Fn(T, T) -> T,
    ) -> Self {
        same_tape(name, self, other);
        let value = {
            let (a, b) = (self.value_ref(), other.value_ref());
            crate::tape::assert_same_shape(name, &a, &b);
            let data = a
                .as_slice()
                .iter()
                .zip(b.as_slice())
                .map(|(&x, &y)| f(x, y))
                .collect();
            DMatrix::from_vec(a.nrows(), a.ncols(), data)
        };
        self.tape.record(op, &[self, other], value)
    }

    /// Records `op` whose value is computed from the borrowed values of `inputs`.
    pub(crate) fn record_with(
        op: impl Op<T>,
        inputs: &[Self],
        f: impl FnOnce(&[&DMatrix<T>]) -> DMatrix<T>,
    ) -> Self {
        let tape = inputs[0].tape;
        for v in &inputs[1..] {
            same_tape(op.name(), inputs[0], *v);
        }
        let value = Var::with_values(inputs, f);
        tape.record(op, inputs, value)
    }
}

/// Panics unless both variables live on the same tape.
pub(crate) fn same_tape<T: Scalar>(name: &str, a: Var<'_, T>, b: Var<'_, T>) {
    assert!(
        std::ptr::eq(a.tape(), b.tape()),
        "{name}: the operands live on different tapes"
    );
}

#[cfg(test)]
pub(crate) mod testing {
    //! Shared helpers for the per-op gradient checks.
    pub use crate::tape::gradcheck::{signed_away_from_zero, tape_fn, uniform};
    use nalgebra::DMatrix;
    use proptest::test_runner::{Config, TestCaseError};
    use rand::{rngs::StdRng, SeedableRng};

    /// Few cases per op: each case runs many finite differences.
    pub fn config() -> Config {
        Config::with_cases(12)
    }

    pub fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    /// Entries in [-1, 1).
    pub fn rand(seed: u64, rows: usize, cols: usize) -> DMatrix<f64> {
        uniform(&mut rng(seed), rows, cols, -1.0, 1.0)
    }

    /// First- and second-order finite-difference checks, as a proptest result.
    pub fn check(
        f: &impl crate::tape::gradcheck::TapeFn,
        inputs: &[DMatrix<f64>],
        seed: u64,
    ) -> Result<(), TestCaseError> {
        crate::tape::gradcheck::check_gradients(f, inputs, seed)
            .map(|_| ())
            .map_err(TestCaseError::fail)
    }
}
