//! Meta-training: one [`MetaTrainer`] for every learned optimizer and problem family. A
//! meta-step asks a [`GradientEstimator`] for the gradient of a [`MetaLoss`] (full
//! backpropagation through the unroll, or truncated windows of persistent trajectories),
//! checks it, clips it and takes an Adam step on the meta-parameters, matched by name;
//! [`save_checkpoint`] / [`load_checkpoint`] make a run resumable bit for bit. Given a
//! [`Communicator`] ([`MetaTrainer::with_communicator`]: MPI ranks with the feature `mpi`, or
//! [`ThreadRanks`]), the samples of each meta-step are shared among processes and every rank
//! gets the single-process estimate, bit for bit (see `workers.rs`).
//!
//! ```
//! use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
//! use convergent_l2o::optim::{ConvergentL2O, LearnedOptimizer, MagnitudeRen, StepSize};
//! use convergent_l2o::problems::{FamilyFn, InitialPoint, Quadratic, Sampled};
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let family = FamilyFn::new("quadratics", |_, rng: &mut StdRng| {
//!     Sampled::new(Quadratic::<f64>::random(3, 0.1, 1.0, rng), InitialPoint::Normal { std: 1.0 }.sample(3, rng))
//! });
//! let ren = MagnitudeRen::dense(3, 4, 4, 1.0).unwrap();
//! let mut opt = ConvergentL2O::new(3, ren, 8, StepSize::Constant { eta: 0.5 }, &mut StdRng::seed_from_u64(0)).unwrap();
//! let estimator = FullBptt { trajectories: 4, horizon: 10, second_order: true };
//! let config = MetaTrainConfig { lr: 1e-2, clip: None, seed: 0 };
//! let mut trainer = MetaTrainer::new(config, estimator, WeightedLoss::PAPER).unwrap();
//! let report = trainer.step(&mut opt, &family).unwrap();
//! assert!(report.meta_loss.is_finite() && trainer.meta_step() == 1);
//! ```

mod checkpoint;
mod es;
mod estimator;
mod loss;
mod restarts;
mod thread_ranks;
mod trainer;
mod unroll;
mod workers;

pub use checkpoint::{load_checkpoint, save_checkpoint, save_checkpoint_in, CheckpointError};
pub use es::{Es, Pes};
pub use estimator::{
    draw_rng, Estimate, EstimateContext, EstimatorState, FullBptt, GradientEstimator,
    ParticleState, TruncatedBptt,
};
pub use loss::{LogRelative, MeanObjective, MetaLoss, TermContext, WeightedLoss};
pub use restarts::{best_restart, trailing_meta_loss};
pub use thread_ranks::ThreadRanks;
pub use trainer::{MetaError, MetaStepReport, MetaTrainConfig, MetaTrainer};
pub use unroll::{score_window, unroll_window, Scored, Window, WindowError, WindowSpec};
pub use workers::{CommError, Communicator, Workers};

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "mpi")]
pub use self::mpi::MpiCommunicator;
