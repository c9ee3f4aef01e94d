//! MNIST-style datasets (MNIST, Fashion-MNIST) with the paper's splits and minibatching.
//!
//! The paper meta-trains on the first 80% of the training set, trains the evaluated
//! optimizees on the remaining 20%, and reports test accuracy on the test set.

use std::path::{Path, PathBuf};

use nalgebra::{DMatrix, RealField};

use super::idx::{read_idx, DataError};

/// Number of classes; every label must be below it.
pub const NUM_CLASSES: usize = 10;

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Pixel normalization `(x / 255 - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalization {
    /// Mean of the pixels scaled to `[0, 1]`.
    pub mean: f64,
    /// Standard deviation of the pixels scaled to `[0, 1]`.
    pub std: f64,
}

impl Normalization {
    /// The MNIST statistics used by the paper: mean 0.1307, std 0.3081.
    pub const MNIST: Normalization = Normalization {
        mean: 0.1307,
        std: 0.3081,
    };

    /// Maps a raw pixel byte to its normalized value, computed in f64 (then rounded once to
    /// the working precision, as the reference implementations do).
    pub fn apply(&self, pixel: u8) -> f64 {
        (pixel as f64 / 255.0 - self.mean) / self.std
    }

    fn table(&self) -> [f64; 256] {
        std::array::from_fn(|p| self.apply(p as u8))
    }
}

impl Default for Normalization {
    /// [`Normalization::MNIST`].
    fn default() -> Self {
        Normalization::MNIST
    }
}

/// One of the paper's three data splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// The first `floor(0.8 * n_train)` training samples, used to meta-train optimizers.
    MetaTrain,
    /// The remaining training samples, used to train optimizees during evaluation.
    EvalTrain,
    /// The test set.
    Test,
}

/// A loaded MNIST-style dataset: raw pixel bytes (sample-major, row-major), labels, and the
/// normalization applied when batches are built.
#[derive(Clone, Debug)]
pub struct Mnist {
    rows: usize,
    cols: usize,
    normalization: Normalization,
    train_images: Vec<u8>,
    train_labels: Vec<u8>,
    test_images: Vec<u8>,
    test_labels: Vec<u8>,
}

/// One images/labels file pair after validation.
struct Part {
    images_file: String,
    rows: usize,
    cols: usize,
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Mnist {
    /// Loads the four standard files from `dir` with [`Normalization::MNIST`].
    ///
    /// Each file may be gzip (`name.gz`, preferred) or raw (`name`).
    ///
    /// ```no_run
    /// use std::path::Path;
    /// use convergent_l2o::problems::data::{Mnist, Split};
    ///
    /// let mnist = Mnist::load(Path::new("../shared/data/mnist-10k"))?;
    /// let train = mnist.split(Split::MetaTrain);
    /// let batch = train.sequential_batch::<f64>(0, 128);
    /// assert_eq!(batch.images.shape(), (128, 784));
    /// assert_eq!(batch.one_hot.shape(), (128, 10));
    /// # Ok::<(), convergent_l2o::problems::data::DataError>(())
    /// ```
    pub fn load(dir: &Path) -> Result<Mnist, DataError> {
        Mnist::load_with(dir, Normalization::MNIST)
    }

    /// Loads the four standard files from `dir`, normalizing pixels with `normalization`
    /// (refused unless its mean is finite and its std finite and positive).
    pub fn load_with(dir: &Path, normalization: Normalization) -> Result<Mnist, DataError> {
        let Normalization { mean, std } = normalization;
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(DataError::BadNormalization { mean, std });
        }
        let train = load_part(dir, TRAIN_IMAGES, TRAIN_LABELS)?;
        let test = load_part(dir, TEST_IMAGES, TEST_LABELS)?;
        if (test.rows, test.cols) != (train.rows, train.cols) {
            return Err(DataError::BadShape {
                file: test.images_file,
                expected: format!(
                    "images of {} x {} pixels like {}",
                    train.rows, train.cols, train.images_file
                ),
                dims: vec![test.labels.len(), test.rows, test.cols],
            });
        }
        Ok(Mnist {
            rows: train.rows,
            cols: train.cols,
            normalization,
            train_images: train.images,
            train_labels: train.labels,
            test_images: test.images,
            test_labels: test.labels,
        })
    }

    /// Image height in pixels.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width in pixels.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixels per image (`rows * cols`).
    pub fn num_features(&self) -> usize {
        self.rows * self.cols
    }

    /// The normalization applied when batches are built.
    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    /// Number of samples in the full training file.
    pub fn num_train(&self) -> usize {
        self.train_labels.len()
    }

    /// Number of samples in the test file.
    pub fn num_test(&self) -> usize {
        self.test_labels.len()
    }

    /// Size of the meta-training split: `floor(0.8 * num_train())`.
    pub fn meta_train_len(&self) -> usize {
        // Integer arithmetic so the boundary is exact, not subject to 0.8's rounding.
        self.num_train() * 4 / 5
    }

    /// A borrowed view of one split.
    pub fn split(&self, which: Split) -> Subset<'_> {
        let nf = self.num_features();
        let m = self.meta_train_len();
        let (images, labels) = match which {
            Split::MetaTrain => (&self.train_images[..m * nf], &self.train_labels[..m]),
            Split::EvalTrain => (&self.train_images[m * nf..], &self.train_labels[m..]),
            Split::Test => (&self.test_images[..], &self.test_labels[..]),
        };
        Subset {
            pixels: images,
            labels,
            num_features: nf,
            table: self.normalization.table(),
        }
    }
}

/// Finds `name.gz` or else `name` in `dir`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let candidates = [format!("{name}.gz"), name.to_string()];
    candidates
        .iter()
        .map(|c| dir.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| DataError::MissingFile {
            dir: dir.to_path_buf(),
            candidates: candidates.to_vec(),
        })
}

fn load_part(dir: &Path, images_name: &str, labels_name: &str) -> Result<Part, DataError> {
    let images_path = locate(dir, images_name)?;
    let labels_path = locate(dir, labels_name)?;
    let images_file = images_path.display().to_string();
    let labels_file = labels_path.display().to_string();

    let images = read_idx(&images_path)?;
    let &[count, rows, cols] = images.dims.as_slice() else {
        return Err(DataError::BadShape {
            file: images_file,
            expected: "3 dimensions (count x rows x cols)".to_string(),
            dims: images.dims,
        });
    };
    let labels = read_idx(&labels_path)?;
    if labels.dims.len() != 1 {
        return Err(DataError::BadShape {
            file: labels_file,
            expected: "1 dimension (count)".to_string(),
            dims: labels.dims,
        });
    }
    if labels.dims[0] != count {
        return Err(DataError::CountMismatch {
            images_file,
            images: count,
            labels_file,
            labels: labels.dims[0],
        });
    }
    if let Some((index, &value)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &v)| v as usize >= NUM_CLASSES)
    {
        return Err(DataError::BadLabel {
            file: labels_file,
            index,
            value,
            num_classes: NUM_CLASSES,
        });
    }
    Ok(Part {
        images_file,
        rows,
        cols,
        images: images.data,
        labels: labels.data,
    })
}

/// A borrowed split of a dataset.
#[derive(Clone, Copy, Debug)]
pub struct Subset<'a> {
    pixels: &'a [u8],
    labels: &'a [u8],
    num_features: usize,
    table: [f64; 256],
}

/// A minibatch: one sample per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<T> {
    /// Normalized pixels, `size x num_features`.
    pub images: DMatrix<T>,
    /// Class of each row.
    pub labels: Vec<usize>,
    /// One-hot labels, `size x NUM_CLASSES`.
    pub one_hot: DMatrix<T>,
}

impl<'a> Subset<'a> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the subset has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per sample.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// All labels, in sample order.
    pub fn labels(&self) -> &'a [u8] {
        self.labels
    }

    /// All raw pixel bytes, sample-major (`len() * num_features()` values).
    pub fn pixels(&self) -> &'a [u8] {
        self.pixels
    }

    /// The normalized pixels of sample `i`; panics if `i >= len()`.
    pub fn image(&self, i: usize) -> Vec<f64> {
        assert!(
            i < self.len(),
            "sample {i} out of range for a subset of {} samples",
            self.len()
        );
        self.pixels[i * self.num_features..(i + 1) * self.num_features]
            .iter()
            .map(|&p| self.table[p as usize])
            .collect()
    }

    /// Samples `start..start + size` as matrices; panics if the range exceeds `len()`.
    pub fn batch<T: RealField + Copy>(&self, start: usize, size: usize) -> Batch<T> {
        let end = start.checked_add(size).filter(|&e| e <= self.len());
        let Some(end) = end else {
            panic!(
                "batch of {size} samples starting at {start} is out of range for a subset of {} \
                 samples",
                self.len()
            );
        };
        let nf = self.num_features;
        let pixels = self.pixels[start * nf..end * nf].iter();
        let table = self.table;
        let images = DMatrix::from_row_iterator(
            size,
            nf,
            pixels.map(|&p| nalgebra::convert::<f64, T>(table[p as usize])),
        );
        let labels: Vec<usize> = self.labels[start..end]
            .iter()
            .map(|&l| l as usize)
            .collect();
        let one_hot = DMatrix::from_fn(size, NUM_CLASSES, |i, c| {
            if labels[i] == c {
                T::one()
            } else {
                T::zero()
            }
        });
        Batch {
            images,
            labels,
            one_hot,
        }
    }

    /// Every sample as a column (`num_features() x len()`, normalized): one sample contiguous,
    /// for gathering minibatches in any order without a second copy of the split.
    pub fn samples_as_columns<T: RealField + Copy>(&self) -> DMatrix<T> {
        let table = self.table;
        DMatrix::from_iterator(
            self.num_features,
            self.len(),
            self.pixels
                .iter()
                .map(|&p| nalgebra::convert::<f64, T>(table[p as usize])),
        )
    }

    /// Number of full batches of `size` (a trailing partial batch is dropped); panics if `size == 0`.
    pub fn num_batches(&self, size: usize) -> usize {
        assert!(size > 0, "batch size must be positive");
        self.len() / size
    }

    /// Batch number `index mod num_batches(size)`, so sequential indices wrap around.
    ///
    /// Panics if the subset holds fewer than `size` samples.
    pub fn sequential_batch<T: RealField + Copy>(&self, index: usize, size: usize) -> Batch<T> {
        let n = self.num_batches(size);
        assert!(
            n > 0,
            "batch size {size} exceeds the subset size {}",
            self.len()
        );
        self.batch((index % n) * size, size)
    }
}
