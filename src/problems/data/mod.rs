//! Datasets: the IDX file reader and the MNIST loader with the paper's train/eval/test splits.
mod batches;
mod design;
pub mod idx;
pub mod mnist;

pub use batches::Batches;
pub use design::binary_design;
pub use idx::{parse_idx, read_idx, DataError, IdxArray};
pub use mnist::{Batch, Mnist, Normalization, Split, Subset, NUM_CLASSES};
