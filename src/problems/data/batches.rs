//! A split cut once into normalized minibatches, shared (not copied) by every task and tape
//! that reads them.

use super::{Subset, NUM_CLASSES};
use crate::problems::ProblemError;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use std::sync::Arc;

/// The full minibatches of a [`Subset`], normalized and converted to `T` once: meta-training
/// reads 500 minibatches per meta-step, and converting each on every read cost as much as a
/// sixth of the meta-step. Each is kept only transposed (`features x size`, one contiguous
/// column per sample), the layout every product of the classifiers reads: keeping the rows
/// too doubled the memory, and transposing each gathered batch took a tenth of the LSTM's
/// meta-training.
///
/// ```
/// use convergent_l2o::problems::data::{Batches, Mnist, Split};
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
/// let mnist = Mnist::load(dir.as_ref()).unwrap();
/// let split = mnist.split(Split::MetaTrain);
/// let batches = Batches::<f32>::new(split, 128).unwrap();
/// assert_eq!(batches.len(), split.num_batches(128));
/// // Index 0 and index len() are the same minibatch: sequential reads wrap around.
/// assert_eq!(batches.images(0), batches.images(batches.len()));
/// assert_eq!(batches.images(1), split.batch::<f32>(128, 128).images);
/// ```
#[derive(Clone, Debug)]
pub struct Batches<T: Scalar> {
    size: usize,
    images_t: Vec<Arc<DMatrix<T>>>,
    one_hot: Vec<Arc<DMatrix<T>>>,
}

impl<T: Scalar> Batches<T> {
    /// Every full minibatch of `size` samples of `data`, in order (a trailing partial batch is
    /// dropped, as [`Subset::num_batches`]); errors if `size` is 0 or larger than the subset.
    pub fn new(data: Subset<'_>, size: usize) -> Result<Self, ProblemError> {
        if size == 0 || size > data.len() {
            return Err(ProblemError::new(
                "minibatches",
                format!(
                    "a batch size of {size} does not fit a split of {} samples (need 1 to {})",
                    data.len(),
                    data.len()
                ),
            ));
        }
        let n = data.num_batches(size);
        let (mut images_t, mut one_hot) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for k in 0..n {
            let batch = data.batch::<T>(k * size, size);
            images_t.push(Arc::new(batch.images.transpose()));
            one_hot.push(Arc::new(batch.one_hot));
        }
        debug_assert!(one_hot.iter().all(|m| m.ncols() == NUM_CLASSES));
        Ok(Batches {
            size,
            images_t,
            one_hot,
        })
    }

    /// The minibatches `indices[k * size..(k + 1) * size]` of the samples stored as the columns
    /// of `samples` (`features x n`, normalized) with classes `labels`, in order (samples in any
    /// order, e.g. a shuffled epoch; a trailing partial batch is dropped); errors if `size` is 0
    /// or larger than `indices.len()`, or an index or a label is out of range.
    pub fn gathered(
        samples: &DMatrix<T>,
        labels: &[usize],
        indices: &[usize],
        size: usize,
    ) -> Result<Self, ProblemError> {
        let fail = |detail: String| Err(ProblemError::new("minibatches", detail));
        if size == 0 || size > indices.len() {
            return fail(format!(
                "a batch size of {size} does not fit {} samples (need 1 to {})",
                indices.len(),
                indices.len()
            ));
        }
        let n = samples.ncols().min(labels.len());
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return fail(format!("sample {bad} is out of range for {n} samples"));
        }
        if let Some(&bad) = labels.iter().find(|&&c| c >= NUM_CLASSES) {
            return fail(format!(
                "class {bad} is out of range (0 to {})",
                NUM_CLASSES - 1
            ));
        }
        let count = indices.len() / size;
        let (mut images_t, mut one_hot) = (Vec::with_capacity(count), Vec::with_capacity(count));
        let features = samples.nrows();
        let columns = samples.as_slice();
        for chunk in indices.chunks_exact(size) {
            // Column `r` of the transposed batch is sample `chunk[r]`: one contiguous copy each,
            // into memory that is written once, never zeroed first (an element-wise gather
            // into a zeroed matrix took several times longer).
            let mut flat = Vec::with_capacity(features * size);
            for &i in chunk {
                flat.extend_from_slice(&columns[i * features..(i + 1) * features]);
            }
            images_t.push(Arc::new(DMatrix::from_vec(features, size, flat)));
            one_hot.push(Arc::new(DMatrix::from_fn(size, NUM_CLASSES, |r, c| {
                if labels[chunk[r]] == c {
                    T::one()
                } else {
                    T::zero()
                }
            })));
        }
        Ok(Batches {
            size,
            images_t,
            one_hot,
        })
    }

    /// Features per sample (pixels per image).
    pub fn num_features(&self) -> usize {
        self.images_t[0].nrows()
    }

    /// Number of minibatches.
    pub fn len(&self) -> usize {
        self.images_t.len()
    }

    /// Always false: construction refuses an empty split.
    pub fn is_empty(&self) -> bool {
        self.images_t.is_empty()
    }

    /// Samples per minibatch.
    pub fn batch_size(&self) -> usize {
        self.size
    }

    /// The images (`size x features`, one row per sample) of minibatch `index mod len()`, a
    /// new matrix (the set keeps them transposed: [`Batches::images_transposed`]).
    pub fn images(&self, index: usize) -> DMatrix<T> {
        self.images_transposed(index).transpose()
    }

    /// Minibatch `index mod len()` on `tape` as constants shared with this set, not copied:
    /// (the images, `size x features`, known by their transpose
    /// ([`Tape::constant_transposed`]); the one-hot labels).
    pub fn on_tape<'t>(&self, tape: &'t Tape<T>, index: usize) -> (Var<'t, T>, Var<'t, T>) {
        let images = tape.constant_transposed(self.images_transposed(index).clone());
        (images, tape.constant_shared(self.one_hot(index).clone()))
    }

    /// The transposed images (`features x size`) of minibatch `index mod len()`.
    pub fn images_transposed(&self, index: usize) -> &Arc<DMatrix<T>> {
        &self.images_t[index % self.len()]
    }

    /// The one-hot labels (`size x classes`) of minibatch `index mod len()`.
    pub fn one_hot(&self, index: usize) -> &Arc<DMatrix<T>> {
        &self.one_hot[index % self.len()]
    }
}
