//! Meta-training: N initial points per meta-step, the meta-gradient through the unrolled
//! trajectories, Adam on the meta-parameters (off the tape), optional gradient clipping, and a
//! clear error, saying where, when a NaN or Inf appears.

use super::{unroll, Learned, Task, Unroll};
use crate::models::Params;
use crate::optim::{Adam, AdamState, HyperError};
use crate::tape::{Scalar, Tape};
use nalgebra::DMatrix;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rayon::prelude::*;
use std::fmt;

/// Settings of meta-training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetaTrainConfig {
    /// Trajectories per meta-step (the paper: 10).
    pub initial_points: usize,
    /// The unroll (the paper: T = 50, second order, full BPTT).
    pub unroll: Unroll,
    /// Adam's learning rate on the meta-parameters (the paper: 1e-2).
    pub lr: f64,
    /// Clip the meta-gradient's global norm to this value.
    pub clip: Option<f64>,
    /// Seed of everything random (tasks, initial points): meta-step k uses a generator
    /// derived from (seed, k), so a resumed run repeats an uninterrupted one.
    pub seed: u64,
}

impl MetaTrainConfig {
    /// The paper's settings (10 initial points, T = 50, Adam 1e-2, no clipping).
    pub fn paper(seed: u64) -> Self {
        MetaTrainConfig {
            initial_points: 10,
            unroll: Unroll::PAPER,
            lr: 1e-2,
            clip: None,
            seed,
        }
    }
}

/// Draws the task and initial point of trajectory `index` of meta-step `meta_step`.
///
/// `Sync` because the trajectories of a meta-step are sampled and run in parallel.
pub trait TaskSampler<T: Scalar>: Sync {
    /// The task and `x0`.
    fn sample<'a>(
        &'a self,
        meta_step: usize,
        index: usize,
        rng: &mut StdRng,
    ) -> (Box<dyn Task<T> + 'a>, DMatrix<T>);
}

/// What went wrong in a meta-step.
#[derive(Debug)]
pub enum MetaError {
    /// A NaN or Inf appeared; the message says where.
    NonFinite {
        /// The meta-step.
        meta_step: usize,
        /// Where: the inner step and trajectory, or the meta-parameter.
        location: String,
    },
    /// Invalid settings.
    Config(HyperError),
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::NonFinite {
                meta_step,
                location,
            } => write!(f, "meta-step {meta_step}: non-finite value in {location}"),
            MetaError::Config(e) => write!(f, "meta-training settings: {e}"),
        }
    }
}

impl std::error::Error for MetaError {}

/// The outcome of one meta-step.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaStepReport {
    /// Index of the meta-step (from 0).
    pub meta_step: usize,
    /// Mean meta-loss over the initial points (before the update).
    pub meta_loss: f64,
    /// Global norm of the meta-gradient (before clipping).
    pub grad_norm: f64,
    /// Mean `f(x_T)` of the trajectories.
    pub final_loss: f64,
}

/// One trajectory's share of a meta-step.
struct Trajectory<T: Scalar> {
    meta_loss: f64,
    final_loss: f64,
    grads: Vec<DMatrix<T>>,
}

/// Meta-training state: the settings, Adam's state per meta-parameter and the step count.
pub struct MetaTrainer<T: Scalar> {
    config: MetaTrainConfig,
    adam: Adam,
    states: Vec<AdamState<DMatrix<T>>>,
    meta_step: usize,
}

impl<T: Scalar> MetaTrainer<T> {
    /// A trainer starting at meta-step 0; settings are checked.
    pub fn new(config: MetaTrainConfig) -> Result<Self, MetaError> {
        let owner = "meta-training";
        let check = |name: &str, v: f64, lo: f64| {
            crate::optim::check_positive(owner, name, v, lo).map_err(MetaError::Config)
        };
        check("lr", config.lr, 0.0)?;
        if let Some(c) = config.clip {
            check("clip", c, 0.0)?;
        }
        check("initial_points", config.initial_points as f64, 0.0)?;
        check("horizon", config.unroll.horizon as f64, 0.0)?;
        Ok(MetaTrainer {
            config,
            adam: Adam::default(),
            states: Vec::new(),
            meta_step: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &MetaTrainConfig {
        &self.config
    }

    /// Meta-steps taken.
    pub fn meta_step(&self) -> usize {
        self.meta_step
    }

    /// Adam's per-parameter states (for checkpoints).
    pub(crate) fn adam_states(&self) -> &[AdamState<DMatrix<T>>] {
        &self.states
    }

    /// Restores a trainer from a checkpoint's parts.
    pub(crate) fn restore(
        config: MetaTrainConfig,
        meta_step: usize,
        states: Vec<AdamState<DMatrix<T>>>,
    ) -> Result<Self, MetaError> {
        let mut trainer = Self::new(config)?;
        trainer.meta_step = meta_step;
        trainer.states = states;
        Ok(trainer)
    }

    /// The generator of meta-step `k`.
    pub fn rng_for(&self, meta_step: usize) -> StdRng {
        StdRng::seed_from_u64(
            self.config
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(meta_step as u64),
        )
    }

    /// The generator of trajectory `index` of meta-step `k`: each trajectory has its own, so
    /// that trajectories can run in any order, on any thread, and still draw the same numbers.
    pub fn rng_for_trajectory(&self, meta_step: usize, index: usize) -> StdRng {
        let mut seeder = self.rng_for(meta_step);
        let base: u64 = seeder.gen();
        StdRng::seed_from_u64(base.wrapping_add((index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)))
    }

    /// The meta-loss (mean over the initial points) and its gradient w.r.t. every
    /// meta-parameter, without updating anything; returns (meta-loss, mean `f(x_T)`,
    /// gradients).
    ///
    /// Trajectories are independent, so each is recorded on its own tape and they run in
    /// parallel (rayon); their gradients are summed in trajectory order, so the result is the
    /// same, bit for bit, whatever the number of threads.
    pub fn meta_gradient<L: Learned<T> + ?Sized>(
        &self,
        opt: &L,
        tasks: &dyn TaskSampler<T>,
    ) -> Result<(f64, f64, Vec<DMatrix<T>>), MetaError> {
        let k = self.meta_step;
        let n = self.config.initial_points;
        let runs: Vec<Result<Trajectory<T>, MetaError>> = (0..n)
            .into_par_iter()
            .map(|i| self.trajectory(opt, tasks, i))
            .collect();
        let mut meta_loss = 0.0;
        let mut final_loss = 0.0;
        let mut grads: Vec<DMatrix<T>> = Vec::new();
        for run in runs {
            let run = run?;
            meta_loss += run.meta_loss / n as f64;
            final_loss += run.final_loss / n as f64;
            if grads.is_empty() {
                grads = run.grads;
            } else {
                for (total, g) in grads.iter_mut().zip(&run.grads) {
                    *total += g;
                }
            }
        }
        let scale = T::one() / T::from_count(n);
        grads.iter_mut().for_each(|g| *g *= scale);
        if !meta_loss.is_finite() {
            return Err(MetaError::NonFinite {
                meta_step: k,
                location: "the meta-loss".into(),
            });
        }
        for ((name, _), g) in opt.params().iter().zip(&grads) {
            if g.iter().any(|v| !v.is_finite()) {
                return Err(MetaError::NonFinite {
                    meta_step: k,
                    location: format!("the meta-gradient of parameter '{name}'"),
                });
            }
        }
        Ok((meta_loss, final_loss, grads))
    }

    /// Unrolls trajectory `i` of the current meta-step on a tape of its own and returns its
    /// meta-loss, `f(x_T)` and meta-gradient.
    fn trajectory<L: Learned<T> + ?Sized>(
        &self,
        opt: &L,
        tasks: &dyn TaskSampler<T>,
        i: usize,
    ) -> Result<Trajectory<T>, MetaError> {
        let k = self.meta_step;
        let mut rng = self.rng_for_trajectory(k, i);
        let tape = Tape::<T>::new();
        let bound = opt.params().bind(&tape);
        let (task, x0) = tasks.sample(k, i, &mut rng);
        let run = unroll(opt, &bound, task.as_ref(), &x0, &self.config.unroll);
        if let Some(t) = run.non_finite_at {
            return Err(MetaError::NonFinite {
                meta_step: k,
                location: format!("f or grad f at inner step {t} of trajectory {i}"),
            });
        }
        let grads = tape
            .grad(&[run.meta_loss], &bound.vars(), false)
            .iter()
            .map(|g| g.value())
            .collect();
        Ok(Trajectory {
            meta_loss: run.meta_loss.scalar().as_f64(),
            final_loss: run.losses.last().copied().unwrap_or(f64::NAN),
            grads,
        })
    }

    /// One meta-step: meta-gradient, clipping, Adam update of `opt`'s meta-parameters.
    pub fn step<L: Learned<T> + ?Sized>(
        &mut self,
        opt: &mut L,
        tasks: &dyn TaskSampler<T>,
    ) -> Result<MetaStepReport, MetaError> {
        let (meta_loss, final_loss, mut grads) = self.meta_gradient(&*opt, tasks)?;
        let grad_norm = grads
            .iter()
            .map(|g| g.iter().map(|v| v.as_f64().powi(2)).sum::<f64>())
            .sum::<f64>()
            .sqrt();
        if let Some(c) = self.config.clip {
            if grad_norm > c {
                let s = T::cast(c / grad_norm);
                grads.iter_mut().for_each(|g| *g *= s);
            }
        }
        apply_adam(
            &self.adam,
            &mut self.states,
            opt.params_mut(),
            &grads,
            self.config.lr,
        );
        let report = MetaStepReport {
            meta_step: self.meta_step,
            meta_loss,
            grad_norm,
            final_loss,
        };
        self.meta_step += 1;
        Ok(report)
    }
}

fn apply_adam<T: Scalar>(
    adam: &Adam,
    states: &mut Vec<AdamState<DMatrix<T>>>,
    params: &mut Params<T>,
    grads: &[DMatrix<T>],
    lr: f64,
) {
    if states.is_empty() {
        states.resize_with(grads.len(), AdamState::default);
    }
    let lr = T::cast(lr);
    for ((value, g), state) in params.values_mut().zip(grads).zip(states.iter_mut()) {
        *value = adam.step(state, value, g, &lr);
    }
}
