//! Copyable handles to values on the tape.

use super::arena::StoredTranspose;
use super::{Scalar, Tape};
use nalgebra::DMatrix;
use smallvec::SmallVec;
use std::cell::Ref;
use std::fmt;

/// A handle to a matrix recorded on a [`Tape`]; cheap to copy.
///
/// Operations are methods (`a.matmul(b)`, `x.tanh()`) and the operators `+`, `-` (binary and
/// unary) and `* scalar`; see the `ops` module for the full list and their derivatives.
#[derive(Clone, Copy)]
pub struct Var<'t, T: Scalar> {
    pub(crate) tape: &'t Tape<T>,
    pub(crate) id: u32,
    pub(crate) epoch: u32,
}

impl<'t, T: Scalar> Var<'t, T> {
    pub(crate) fn new(tape: &'t Tape<T>, id: u32, epoch: u32) -> Self {
        Var { tape, id, epoch }
    }

    /// The tape this variable lives on.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// Position of the node on its tape (creation order).
    pub fn id(&self) -> usize {
        self.id as usize
    }

    /// Borrows the value. Do not hold the borrow while recording new operations.
    pub fn value_ref(&self) -> Ref<'t, DMatrix<T>> {
        Ref::map(self.tape.node(self.id, self.epoch), |n| &*n.value)
    }

    /// The stored transpose of a constant made by [`Tape::constant_shared_with_transpose`],
    /// [`Tape::constant_transposed`] or [`Tape::constant_gathered`].
    pub(crate) fn stored_transpose(&self) -> Option<StoredTranspose<T>> {
        self.tape.node(self.id, self.epoch).value.transpose()
    }

    /// A copy of the value.
    pub fn value(&self) -> DMatrix<T> {
        self.value_ref().clone()
    }

    /// The value of a 1 x 1 variable.
    ///
    /// Panics if the variable is not 1 x 1.
    pub fn scalar(&self) -> T {
        let v = self.value_ref();
        assert!(
            v.shape() == (1, 1),
            "Var::scalar: expected a 1 x 1 value, found {} x {}",
            v.nrows(),
            v.ncols()
        );
        v[(0, 0)]
    }

    /// (rows, columns) of the value.
    pub fn shape(&self) -> (usize, usize) {
        self.tape.node(self.id, self.epoch).value.shape()
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.shape().0
    }

    /// Number of columns.
    pub fn ncols(&self) -> usize {
        self.shape().1
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        let (r, c) = self.shape();
        r * c
    }

    /// True for a value with no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether gradients can flow back through this variable.
    pub fn requires_grad(&self) -> bool {
        self.tape.node(self.id, self.epoch).requires_grad
    }

    /// A constant on the same tape.
    pub fn constant_like(&self, value: DMatrix<T>) -> Var<'t, T> {
        self.tape.constant(value)
    }

    /// A constant of zeros with this variable's shape.
    pub fn zeros_like(&self) -> Var<'t, T> {
        let (r, c) = self.shape();
        self.tape.constant(DMatrix::zeros(r, c))
    }

    /// Applies `f` to the values of `inputs` (borrowed together) and returns its result.
    pub(crate) fn with_values<R>(inputs: &[Var<'t, T>], f: impl FnOnce(&[&DMatrix<T>]) -> R) -> R {
        // Inline for up to four inputs: no allocation for almost every op.
        let refs: SmallVec<[Ref<'t, DMatrix<T>>; 4]> =
            inputs.iter().map(|v| v.value_ref()).collect();
        let plain: SmallVec<[&DMatrix<T>; 4]> = refs.iter().map(|r| &**r).collect();
        f(&plain)
    }
}

impl<T: Scalar> fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, c) = self.shape();
        write!(f, "Var#{}({} x {})", self.id, r, c)
    }
}

/// Panics with a message naming the operation and both shapes unless they are equal.
pub(crate) fn assert_same_shape<T: Scalar>(op: &str, a: &DMatrix<T>, b: &DMatrix<T>) {
    assert!(
        a.shape() == b.shape(),
        "{op}: shape mismatch, left is {} x {}, right is {} x {}",
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
}
