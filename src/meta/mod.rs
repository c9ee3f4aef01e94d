//! Meta-training: tasks (optimizees), data, the meta-loss and unrolling, the meta-trainer,
//! checkpoints, and the paper's classifier.

mod checkpoint;
pub mod classifier;
pub mod data;
mod learned;
mod tasks;
mod train;
mod unroll;

pub use checkpoint::{load_checkpoint, save_checkpoint, CheckpointError};
pub use learned::{Learned, Rollout};
pub use tasks::{Classifier, InitialPoint, Logistic, Quadratic, Task};
pub use train::{MetaError, MetaStepReport, MetaTrainConfig, MetaTrainer, TaskSampler};
pub use unroll::{unroll, MetaLoss, Unroll, Unrolled};
