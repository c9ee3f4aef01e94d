//! A split cut once into normalized minibatches, shared (not copied) by every task and tape
//! that reads them.

use super::{Subset, NUM_CLASSES};
use crate::problems::ProblemError;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use std::sync::{Arc, OnceLock};

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
    images_t: Vec<Images<T>>,
    one_hot: Vec<Arc<DMatrix<T>>>,
}

/// One minibatch's images, kept transposed (`features x size`).
#[derive(Clone, Debug)]
enum Images<T: Scalar> {
    /// Converted into a matrix of their own.
    Stored(Arc<DMatrix<T>>),
    /// Columns `index` of a split shared with other minibatches, read in place; formed only
    /// if [`Batches::images_transposed`] asks for them.
    Picked {
        source: Arc<DMatrix<T>>,
        index: Arc<[usize]>,
        formed: OnceLock<Arc<DMatrix<T>>>,
    },
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
            images_t.push(Images::Stored(Arc::new(batch.images.transpose())));
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
    /// or larger than `indices.len()`, or an index or a label is out of range. Each minibatch
    /// is copied out of `samples`; [`Batches::gathered_shared`] reads them in place.
    pub fn gathered(
        samples: &DMatrix<T>,
        labels: &[usize],
        indices: &[usize],
        size: usize,
    ) -> Result<Self, ProblemError> {
        check_gather(samples.ncols(), labels, indices, size)?;
        let features = samples.nrows();
        let columns = samples.as_slice();
        let images_t = indices
            .chunks_exact(size)
            .map(|chunk| {
                // Column `r` of the transposed batch is sample `chunk[r]`: one contiguous copy
                // each, into memory that is written once, never zeroed first (an element-wise
                // gather into a zeroed matrix took several times longer).
                let mut flat = Vec::with_capacity(features * size);
                for &i in chunk {
                    flat.extend_from_slice(&columns[i * features..(i + 1) * features]);
                }
                Images::Stored(Arc::new(DMatrix::from_vec(features, size, flat)))
            })
            .collect();
        Ok(Batches {
            size,
            images_t,
            one_hot: one_hots(labels, indices, size),
        })
    }

    /// [`Batches::gathered`] without copying the images: each minibatch reads its samples in
    /// place from `samples`, shared by every minibatch and tape (a trajectory on the notebooks'
    /// reshuffled stream gathered a whole epoch, 20 MB of MNIST, per meta-step). The products
    /// read the same values in the same order, so they give the same bits.
    ///
    /// ```
    /// use convergent_l2o::problems::data::Batches;
    /// use nalgebra::DMatrix;
    /// use std::sync::Arc;
    ///
    /// let samples = DMatrix::from_fn(4, 6, |i, j| (10 * j + i) as f32); // 6 samples as columns
    /// let labels = [0, 1, 2, 3, 4, 5];
    /// let order = [5, 0, 3, 1];
    /// let copied = Batches::gathered(&samples, &labels, &order, 2).unwrap();
    /// let shared = Batches::gathered_shared(Arc::new(samples), &labels, &order, 2).unwrap();
    /// assert_eq!(shared.len(), 2);
    /// assert_eq!(shared.images(1), copied.images(1));
    /// assert_eq!(shared.one_hot(0), copied.one_hot(0));
    /// ```
    pub fn gathered_shared(
        samples: Arc<DMatrix<T>>,
        labels: &[usize],
        indices: &[usize],
        size: usize,
    ) -> Result<Self, ProblemError> {
        check_gather(samples.ncols(), labels, indices, size)?;
        let images_t = indices
            .chunks_exact(size)
            .map(|chunk| Images::Picked {
                source: Arc::clone(&samples),
                index: Arc::from(chunk),
                formed: OnceLock::new(),
            })
            .collect();
        Ok(Batches {
            size,
            images_t,
            one_hot: one_hots(labels, indices, size),
        })
    }

    /// Features per sample (pixels per image).
    pub fn num_features(&self) -> usize {
        match &self.images_t[0] {
            Images::Stored(m) => m.nrows(),
            Images::Picked { source, .. } => source.nrows(),
        }
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
    /// ([`Tape::constant_transposed`], or [`Tape::constant_gathered`] for minibatches read in
    /// place); the one-hot labels).
    pub fn on_tape<'t>(&self, tape: &'t Tape<T>, index: usize) -> (Var<'t, T>, Var<'t, T>) {
        let images = match &self.images_t[index % self.len()] {
            Images::Stored(m) => tape.constant_transposed(Arc::clone(m)),
            Images::Picked { source, index, .. } => {
                tape.constant_gathered(Arc::clone(source), Arc::clone(index))
            }
        };
        (images, tape.constant_shared(self.one_hot(index).clone()))
    }

    /// The transposed images (`features x size`) of minibatch `index mod len()`; formed on the
    /// first call for a minibatch read in place ([`Batches::gathered_shared`]).
    pub fn images_transposed(&self, index: usize) -> &Arc<DMatrix<T>> {
        match &self.images_t[index % self.len()] {
            Images::Stored(m) => m,
            Images::Picked {
                source,
                index,
                formed,
            } => formed.get_or_init(|| Arc::new(source.select_columns(index.iter()))),
        }
    }

    /// The one-hot labels (`size x classes`) of minibatch `index mod len()`.
    pub fn one_hot(&self, index: usize) -> &Arc<DMatrix<T>> {
        &self.one_hot[index % self.len()]
    }
}

/// Checks a gather of `indices` in minibatches of `size` from `n` samples with classes
/// `labels`.
fn check_gather(
    n: usize,
    labels: &[usize],
    indices: &[usize],
    size: usize,
) -> Result<(), ProblemError> {
    let fail = |detail: String| Err(ProblemError::new("minibatches", detail));
    if size == 0 || size > indices.len() {
        return fail(format!(
            "a batch size of {size} does not fit {} samples (need 1 to {})",
            indices.len(),
            indices.len()
        ));
    }
    let n = n.min(labels.len());
    if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
        return fail(format!("sample {bad} is out of range for {n} samples"));
    }
    if let Some(&bad) = labels.iter().find(|&&c| c >= NUM_CLASSES) {
        return fail(format!(
            "class {bad} is out of range (0 to {})",
            NUM_CLASSES - 1
        ));
    }
    Ok(())
}

/// The one-hot labels of each full minibatch of `indices` (checked by [`check_gather`]).
fn one_hots<T: Scalar>(labels: &[usize], indices: &[usize], size: usize) -> Vec<Arc<DMatrix<T>>> {
    indices
        .chunks_exact(size)
        .map(|chunk| {
            Arc::new(DMatrix::from_fn(size, NUM_CLASSES, |r, c| {
                if labels[chunk[r]] == c {
                    T::one()
                } else {
                    T::zero()
                }
            }))
        })
        .collect()
}
