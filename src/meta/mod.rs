//! Meta-training: tasks (optimizees), data, the meta-loss and unrolling, the meta-trainer,
//! checkpoints, the paper's classifier, and evaluation (runs, learning-rate grid search,
//! tables).

mod checkpoint;
pub mod classifier;
mod convex;
pub mod data;
mod evaluate;
mod learned;
mod sampler;
mod structured;
mod tasks;
mod train;
mod unroll;

pub use checkpoint::{load_checkpoint, save_checkpoint, CheckpointError};
pub use convex::{LoaQuadratics, Objective, Ridge, SyntheticLogistic};
pub use evaluate::{
    accuracy_csv, accuracy_table, curves_csv, default_lr_grid, grid_search, mean_std,
    run_from_each, run_optimizer, series_csv, Candidate, ClassifierMetrics, EvalConfig, EvalError,
    Evaluated, GridSearch, Run, Trace,
};
pub use learned::{Learned, Rollout};
pub use sampler::SequentialClassifierTasks;
pub use structured::{
    pa_meta_loss, reference_optimum, relative_error, CompositeProblem, L1Logistic, Lasso,
    LassoConfig, LogisticConfig, PaError, PaStepReport, PaTrainConfig, PaTrainer, ProblemError,
};
pub use tasks::{Classifier, InitialPoint, Logistic, Quadratic, Task};
pub use train::{MetaError, MetaStepReport, MetaTrainConfig, MetaTrainer, TaskSampler};
pub use unroll::{unroll, MetaLoss, Unroll, Unrolled};

/// Whether every entry is finite; without an early exit the check runs vectorized (finite
/// values are the common case).
pub(crate) fn all_finite<T: crate::tape::Scalar>(m: &nalgebra::DMatrix<T>) -> bool {
    m.as_slice().iter().fold(true, |ok, v| ok & v.is_finite())
}
