//! Evaluation: one run loop for any optimizer (hand-crafted, or learned with its
//! meta-parameters frozen) on any problem, recording what the caller's probes read
//! ([`run`], [`probes`]); the paper's learning-rate grid search ([`grid_search`]); mean ± std
//! over runs, CSV files and Markdown tables ([`Evaluated`]).

mod grid;
pub mod probes;
mod report;
mod run;

pub use grid::{default_lr_grid, grid_search, GridSearch};
pub use probes::{Probe, Steps};
pub use report::{accuracy_csv, accuracy_table, curves_csv, mean_std, series_csv, Evaluated};
pub use run::{run, run_from_each, EvalError, Run, RunConfig, Series, StepView, Trace};
