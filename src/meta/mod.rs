//! Meta-training: tasks (optimizees), data, meta-loss, unrolling, evaluation.

pub mod classifier;
pub mod data;
