//! The append-only arena of recorded nodes.

use super::{Op, Scalar, Var};
use nalgebra::DMatrix;
use smallvec::SmallVec;
use std::cell::{Cell, OnceCell, Ref, RefCell};
use std::ops::Deref;
use std::sync::Arc;

/// The transpose a constant keeps, shared with the caller: a whole matrix, or columns of a
/// larger one picked by index (a minibatch drawn from a split stored one sample per column,
/// read in place instead of copied).
#[derive(Clone, Debug)]
pub(crate) enum StoredTranspose<T: Scalar> {
    Whole(Arc<DMatrix<T>>),
    Columns {
        source: Arc<DMatrix<T>>,
        index: Arc<[usize]>,
    },
}

impl<T: Scalar> StoredTranspose<T> {
    /// The transpose's shape.
    pub(crate) fn shape(&self) -> (usize, usize) {
        match self {
            StoredTranspose::Whole(t) => t.shape(),
            StoredTranspose::Columns { source, index } => (source.nrows(), index.len()),
        }
    }

    /// The matrix whose transpose this is, formed.
    fn untransposed(&self) -> DMatrix<T> {
        match self {
            StoredTranspose::Whole(t) => t.transpose(),
            StoredTranspose::Columns { source, index } => {
                DMatrix::from_fn(index.len(), source.nrows(), |r, c| source[(c, index[r])])
            }
        }
    }
}

/// A node's matrix: owned, or shared with the caller so that large constant data (a dataset's
/// minibatches, reused by many steps and trajectories) is neither copied nor held twice.
/// A shared matrix may carry its transpose, so that products reading it transposed stream
/// contiguous columns; a matrix known only by its transpose is formed on first read, which
/// the products that read the transpose never do.
pub(crate) enum Value<T: Scalar> {
    Owned(DMatrix<T>),
    Shared(Arc<DMatrix<T>>, Option<Arc<DMatrix<T>>>),
    /// The transpose, and the matrix itself once something reads it.
    Transposed(StoredTranspose<T>, OnceCell<DMatrix<T>>),
}

impl<T: Scalar> Value<T> {
    /// Moves the matrix out (copying only a shared one), leaving an empty one behind.
    pub(crate) fn take(&mut self) -> DMatrix<T> {
        match std::mem::replace(self, Value::Owned(DMatrix::zeros(0, 0))) {
            Value::Owned(m) => m,
            Value::Shared(m, _) => Arc::unwrap_or_clone(m),
            Value::Transposed(t, plain) => plain.into_inner().unwrap_or_else(|| t.untransposed()),
        }
    }

    /// The stored transpose of a shared matrix, if any.
    pub(crate) fn transpose(&self) -> Option<StoredTranspose<T>> {
        match self {
            Value::Shared(_, t) => t.clone().map(StoredTranspose::Whole),
            Value::Transposed(t, _) => Some(t.clone()),
            Value::Owned(_) => None,
        }
    }

    /// The shape, without forming a matrix known only by its transpose.
    pub(crate) fn shape(&self) -> (usize, usize) {
        match self {
            Value::Transposed(t, _) => {
                let (rows, cols) = t.shape();
                (cols, rows)
            }
            other => (**other).shape(),
        }
    }
}

impl<T: Scalar> Deref for Value<T> {
    type Target = DMatrix<T>;
    fn deref(&self) -> &DMatrix<T> {
        match self {
            Value::Owned(m) => m,
            Value::Shared(m, _) => m,
            Value::Transposed(t, plain) => plain.get_or_init(|| t.untransposed()),
        }
    }
}

/// A recorded value: the output of one operation, or a leaf.
pub(crate) struct Node<T: Scalar> {
    pub(crate) value: Value<T>,
    /// `None` for leaves and for values that need no gradient. Boxed, not shared: most ops
    /// are zero-sized, and a box of one allocates nothing.
    pub(crate) op: Option<Box<dyn Op<T>>>,
    /// Up to four inputs are stored inline: one allocation fewer for almost every node.
    pub(crate) inputs: SmallVec<[u32; 4]>,
    pub(crate) requires_grad: bool,
    /// Truncation generation the node was created in; lets stale handles be detected.
    pub(crate) epoch: u32,
}

/// A position on the tape returned by [`Tape::mark`]; [`Tape::truncate`] drops everything after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark(pub(crate) usize);

/// The reverse-mode tape: an arena of nodes whose creation order is a topological order.
///
/// Values are handled through copyable [`Var`] handles that borrow the tape. Gradients are
/// computed by [`Tape::grad`], optionally recording the backward pass so it can be
/// differentiated again.
///
/// ```
/// use convergent_l2o::tape::Tape;
/// use nalgebra::dmatrix;
///
/// let tape = Tape::<f64>::new();
/// let x = tape.param(dmatrix![1.0, 2.0; 3.0, 4.0]);
/// let loss = x.mul_elem(x).sum(); // sum of squares
/// let g = tape.grad(&[loss], &[x], false);
/// assert_eq!(g[0].value(), dmatrix![2.0, 4.0; 6.0, 8.0]);
/// ```
pub struct Tape<T: Scalar> {
    pub(crate) nodes: RefCell<Vec<Node<T>>>,
    recording: Cell<bool>,
    epoch: Cell<u32>,
}

impl<T: Scalar> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Scalar> Tape<T> {
    /// An empty tape that records operations on variables that need gradients.
    pub fn new() -> Self {
        Tape {
            nodes: RefCell::new(Vec::new()),
            recording: Cell::new(true),
            epoch: Cell::new(0),
        }
    }

    /// A leaf that gradients can be taken with respect to (a parameter or a meta-parameter).
    pub fn param(&self, value: DMatrix<T>) -> Var<'_, T> {
        self.push_leaf(value, true)
    }

    /// A leaf that never receives a gradient (data, targets, fixed hyperparameters).
    pub fn constant(&self, value: DMatrix<T>) -> Var<'_, T> {
        self.push_leaf(value, false)
    }

    /// A constant leaf that shares `value` instead of copying it: for data used by many steps
    /// (minibatches), the tape holds a reference count, not another copy.
    pub fn constant_shared(&self, value: Arc<DMatrix<T>>) -> Var<'_, T> {
        self.push_shared(value, None)
    }

    /// [`Tape::constant_shared`] for a matrix that products also read transposed (a minibatch
    /// in a gradient `Xᵀ G`): `transpose` must be `valueᵀ`; products then read its contiguous
    /// columns instead of `value`'s strided rows.
    ///
    /// Panics if the shapes are not transposed to each other.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::DMatrix;
    /// use std::sync::Arc;
    ///
    /// let x = DMatrix::from_fn(40, 3, |i, j| (i * 3 + j) as f64);
    /// let tape = Tape::<f64>::new();
    /// let data = tape.constant_shared_with_transpose(Arc::new(x.clone()), Arc::new(x.transpose()));
    /// let g = tape.constant(DMatrix::from_element(40, 2, 1.0));
    /// assert_eq!(data.tr_matmul(g).value(), x.transpose() * DMatrix::from_element(40, 2, 1.0));
    /// ```
    pub fn constant_shared_with_transpose(
        &self,
        value: Arc<DMatrix<T>>,
        transpose: Arc<DMatrix<T>>,
    ) -> Var<'_, T> {
        assert!(
            transpose.shape() == (value.ncols(), value.nrows()),
            "Tape::constant_shared_with_transpose: a {:?} matrix cannot be the transpose of a {:?} one",
            transpose.shape(),
            value.shape()
        );
        debug_assert!(
            value.transpose() == *transpose,
            "the transpose differs from valueᵀ"
        );
        self.push_shared(value, Some(transpose))
    }

    /// A constant whose value is `transposeᵀ`, holding only `transpose` (shared, not copied):
    /// a minibatch kept as one contiguous column per sample. The products that read it
    /// transposed ([`Var::flat_linear`], [`Var::flat_linear_adjoint`], [`Var::tr_matmul`])
    /// never form `transposeᵀ`; any other read forms it once, on this tape.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::DMatrix;
    /// use std::sync::Arc;
    ///
    /// let x_t = DMatrix::from_fn(3, 40, |i, j| (i * 40 + j) as f64); // 40 samples as columns
    /// let tape = Tape::<f64>::new();
    /// let data = tape.constant_transposed(Arc::new(x_t.clone()));
    /// assert_eq!(data.shape(), (40, 3));
    /// let p = tape.param(DMatrix::from_element(2 * 3 + 2, 1, 0.5));
    /// let rows = tape.constant(x_t.transpose());
    /// assert_eq!(data.flat_linear(p).value(), rows.flat_linear(p).value());
    /// assert_eq!(data.value(), x_t.transpose());
    /// ```
    pub fn constant_transposed(&self, transpose: Arc<DMatrix<T>>) -> Var<'_, T> {
        self.push_with(
            Value::Transposed(StoredTranspose::Whole(transpose), OnceCell::new()),
            false,
        )
    }

    /// [`Tape::constant_transposed`] for the transpose made of columns `index` of `source`,
    /// in that order, read in place: a minibatch drawn from a split stored one sample per
    /// column costs no copy. The products that read it transposed give the same bits as on
    /// the columns copied out first.
    ///
    /// Panics if an index is not a column of `source`.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::DMatrix;
    /// use std::sync::Arc;
    ///
    /// let split = DMatrix::from_fn(3, 40, |i, j| (i * 40 + j) as f64); // 40 samples as columns
    /// let picked = [7, 2, 31];
    /// let tape = Tape::<f64>::new();
    /// let data = tape.constant_gathered(Arc::new(split.clone()), Arc::from(&picked[..]));
    /// assert_eq!(data.shape(), (3, 3));
    /// let rows = tape.constant(split.select_columns(&picked).transpose());
    /// let p = tape.param(DMatrix::from_element(2 * 3 + 2, 1, 0.5));
    /// assert_eq!(data.flat_linear(p).value(), rows.flat_linear(p).value());
    /// assert_eq!(data.value(), rows.value());
    /// ```
    pub fn constant_gathered(&self, source: Arc<DMatrix<T>>, index: Arc<[usize]>) -> Var<'_, T> {
        if let Some(&bad) = index.iter().find(|&&j| j >= source.ncols()) {
            panic!(
                "Tape::constant_gathered: column {bad} of a matrix of {} columns",
                source.ncols()
            );
        }
        self.push_with(
            Value::Transposed(StoredTranspose::Columns { source, index }, OnceCell::new()),
            false,
        )
    }

    /// [`Tape::param`] that also keeps `valueᵀ`, for a weight products read transposed: a wide
    /// `3 x 15701` weight times a short cotangent then runs as a tall product over the stored
    /// transpose's contiguous columns instead of a strided loop.
    ///
    /// ```
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::DMatrix;
    ///
    /// let w = DMatrix::from_fn(3, 40, |i, j| (i + 2 * j) as f64);
    /// let tape = Tape::<f64>::new();
    /// let (plain, kept) = (tape.param(w.clone()), tape.param_with_transpose(w.clone()));
    /// let g = tape.constant(DMatrix::from_element(3, 1, 0.5));
    /// assert_eq!(kept.tr_matmul(g).value(), plain.tr_matmul(g).value());
    /// let dw = tape.grad(&[kept.tr_matmul(g).sum()], &[kept], false)[0].value();
    /// assert_eq!(dw, DMatrix::from_element(3, 40, 0.5));
    /// ```
    pub fn param_with_transpose(&self, value: DMatrix<T>) -> Var<'_, T> {
        let transpose = Arc::new(value.transpose());
        self.push_with(Value::Shared(Arc::new(value), Some(transpose)), true)
    }

    fn push_shared(
        &self,
        value: Arc<DMatrix<T>>,
        transpose: Option<Arc<DMatrix<T>>>,
    ) -> Var<'_, T> {
        self.push_with(Value::Shared(value, transpose), false)
    }

    fn push_with(&self, value: Value<T>, requires_grad: bool) -> Var<'_, T> {
        self.push(Node {
            value,
            op: None,
            inputs: SmallVec::new(),
            requires_grad,
            epoch: self.epoch.get(),
        })
    }

    /// A 1 x 1 parameter leaf.
    pub fn scalar_param(&self, value: T) -> Var<'_, T> {
        self.param(DMatrix::from_element(1, 1, value))
    }

    /// A 1 x 1 constant leaf.
    pub fn scalar(&self, value: T) -> Var<'_, T> {
        self.constant(DMatrix::from_element(1, 1, value))
    }

    /// Number of nodes currently on the tape.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total number of scalars held by the tape's values (a memory measure).
    pub fn num_scalars(&self) -> usize {
        self.nodes
            .borrow()
            .iter()
            .map(|n| {
                let (rows, cols) = n.value.shape();
                rows * cols
            })
            .sum()
    }

    /// The current end of the tape, to pass to [`Tape::truncate`] later.
    pub fn mark(&self) -> Mark {
        Mark(self.len())
    }

    /// Drops every node recorded after `mark`, freeing its memory.
    ///
    /// Handles to dropped nodes become invalid: using one panics with a clear message instead of
    /// silently reading a newer node that reuses the slot.
    pub fn truncate(&self, mark: Mark) {
        let mut nodes = self.nodes.borrow_mut();
        assert!(
            mark.0 <= nodes.len(),
            "Tape::truncate: mark {} is past the end of the tape ({} nodes)",
            mark.0,
            nodes.len()
        );
        nodes.truncate(mark.0);
        self.epoch.set(self.epoch.get().wrapping_add(1));
    }

    /// Runs `f` without recording: every value it creates is a constant, so no gradient flows
    /// through it (evaluation of optimizers when no meta-gradient is wanted).
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        let previous = self.recording.replace(false);
        let result = f();
        self.recording.set(previous);
        result
    }

    /// Whether new operations are being recorded.
    pub fn is_recording(&self) -> bool {
        self.recording.get()
    }

    pub(crate) fn set_recording(&self, on: bool) -> bool {
        self.recording.replace(on)
    }

    fn push_leaf(&self, value: DMatrix<T>, requires_grad: bool) -> Var<'_, T> {
        self.push_with(Value::Owned(value), requires_grad)
    }

    fn push(&self, node: Node<T>) -> Var<'_, T> {
        let mut nodes = self.nodes.borrow_mut();
        let id = u32::try_from(nodes.len()).expect("tape holds more than u32::MAX nodes");
        let epoch = node.epoch;
        nodes.push(node);
        Var::new(self, id, epoch)
    }

    /// Records the result `value` of `op` applied to `inputs`.
    ///
    /// The node keeps its operation only if recording is on and some input needs a gradient;
    /// otherwise it is stored as a constant and costs nothing in backward passes.
    pub fn record(&self, op: impl Op<T>, inputs: &[Var<'_, T>], value: DMatrix<T>) -> Var<'_, T> {
        let requires_grad = self.recording.get() && inputs.iter().any(|v| v.requires_grad());
        let epoch = self.epoch.get();
        if requires_grad {
            self.push(Node {
                value: Value::Owned(value),
                op: Some(Box::new(op)),
                inputs: inputs.iter().map(|v| v.id).collect(),
                requires_grad,
                epoch,
            })
        } else {
            self.push(Node {
                value: Value::Owned(value),
                op: None,
                inputs: SmallVec::new(),
                requires_grad,
                epoch,
            })
        }
    }

    /// Borrows the node behind a handle, checking that the handle is still valid.
    pub(crate) fn node(&self, id: u32, epoch: u32) -> Ref<'_, Node<T>> {
        let nodes = self.nodes.borrow();
        Ref::map(nodes, |nodes| {
            let node = nodes
                .get(id as usize)
                .unwrap_or_else(|| panic!("stale Var: node {id} was dropped by Tape::truncate"));
            assert!(
                node.epoch == epoch,
                "stale Var: node {id} was dropped by Tape::truncate and its slot reused"
            );
            node
        })
    }
}
