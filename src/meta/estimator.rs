//! Gradient estimators: how the meta-trainer gets the gradient of the meta-loss with respect to
//! the meta-parameters. Each is a value behind [`GradientEstimator`]: the full unroll
//! ([`FullBptt`]) and truncated backpropagation over windows of persistent trajectories
//! ([`TruncatedBptt`]).
//!
//! Every random draw of meta-step `k` comes from a generator derived from (seed, k, index), and
//! per-trajectory gradients are summed in trajectory order, so an estimate is the same, bit for
//! bit, on any number of threads, and of ranks: each computes the share of the sample indices
//! that `EstimateContext::workers` gives it (see `workers.rs`).

use super::loss::MetaLoss;
use super::unroll::{unroll_window, WindowError, WindowSpec};
use super::workers::{reduce_persistent, reduce_samples, Workers};
use super::MetaError;
use crate::models::Params;
use crate::optim::{LearnedOptimizer, OptState, Oracle, Recording, StateValues};
use crate::problems::{Draw, Problem, ProblemFamily};
use crate::tape::{Scalar, Tape};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What an estimator is given at a meta-step.
pub struct EstimateContext<'a, T: Scalar> {
    /// The meta-step.
    pub meta_step: usize,
    /// The run's seed.
    pub seed: u64,
    /// The learned optimizer (its current meta-parameters).
    pub optimizer: &'a dyn LearnedOptimizer<T>,
    /// The problems to meta-train on.
    pub family: &'a dyn ProblemFamily<T>,
    /// The meta-loss.
    pub meta_loss: &'a dyn MetaLoss<T>,
    /// Which samples this process computes (all of them unless the run is distributed).
    pub workers: Workers<'a>,
}

/// The generator of draw `index` of meta-step `meta_step` under `seed`: each draw has its own,
/// so draws can be made in any order, on any thread, and repeated.
pub fn draw_rng(seed: u64, meta_step: usize, index: usize) -> StdRng {
    let mut seeder = StdRng::seed_from_u64(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(meta_step as u64),
    );
    let base: u64 = seeder.gen();
    StdRng::seed_from_u64(base.wrapping_add((index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)))
}

impl<T: Scalar> EstimateContext<'_, T> {
    /// The problem and initial point of `draw` (deterministic in the seed and the draw).
    pub fn sample(&self, draw: Draw) -> Result<crate::problems::Sampled<T>, MetaError> {
        let mut rng = draw_rng(self.seed, draw.meta_step, draw.index);
        self.family
            .sample(draw, &mut rng)
            .map_err(|e| MetaError::Problem {
                meta_step: self.meta_step,
                error: e,
            })
    }
}

/// An estimate of the meta-gradient.
#[derive(Clone, Debug)]
pub struct Estimate<T: Scalar> {
    /// The mean meta-loss of the samples.
    pub meta_loss: f64,
    /// The mean `f` at the last evaluated point of the samples.
    pub final_loss: f64,
    /// The gradient, by meta-parameter name.
    pub gradient: Params<T>,
    /// How many samples (trajectories, antithetic pairs) it averages.
    pub samples: usize,
    /// The spread of the per-sample gradients, `sqrt(mean |g_i|² - |mean g_i|²)`: the
    /// standard error of the estimate is `spread / sqrt(samples)`.
    pub spread: f64,
}

/// The part of an estimator that persists across meta-steps (trajectories carried over,
/// PES accumulators), for checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct EstimatorState<T: Scalar> {
    /// The estimator's name (checked when restoring).
    pub estimator: String,
    /// One entry per persistent trajectory (none for estimators without memory).
    pub particles: Vec<ParticleState<T>>,
}

/// A persistent trajectory off the tape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ParticleState<T: Scalar> {
    /// The draw of its current inner problem (re-drawn from the seed on restore).
    pub draw: Draw,
    /// The optimizer's state.
    pub state: StateValues<T>,
    /// `f` at the inner problem's first point.
    pub start_loss: Option<f64>,
    /// Estimator-specific tensors (a PES particle's accumulated perturbation).
    pub extra: Params<T>,
}

/// How the meta-trainer gets a meta-gradient.
pub trait GradientEstimator<T: Scalar>: Send + Sync {
    /// A short name (also the key checked when a checkpoint is restored).
    fn name(&self) -> String;
    /// Checks the settings.
    fn validate(&self) -> Result<(), MetaError>;
    /// The estimate at `ctx.meta_step` (advances persistent trajectories).
    fn estimate(&mut self, ctx: &EstimateContext<'_, T>) -> Result<Estimate<T>, MetaError>;
    /// The persistent part, for a checkpoint.
    fn save(&self) -> EstimatorState<T>;
    /// Restores the persistent part of a checkpoint; the message says what does not fit.
    fn restore(&mut self, state: EstimatorState<T>) -> Result<(), String>;
    /// In a distributed run, the persistent part of the samples this process computes
    /// (`workers.share(n)`), in order, for the checkpoint that rank 0 assembles from every
    /// rank's share; `None` (the default) when [`GradientEstimator::save`] is complete on
    /// every rank.
    fn save_share(&self, _workers: Workers<'_>) -> Option<Vec<ParticleState<T>>> {
        None
    }
}

/// A boxed estimator is an estimator (to choose one at run time).
impl<T: Scalar> GradientEstimator<T> for Box<dyn GradientEstimator<T>> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn validate(&self) -> Result<(), MetaError> {
        (**self).validate()
    }
    fn estimate(&mut self, ctx: &EstimateContext<'_, T>) -> Result<Estimate<T>, MetaError> {
        (**self).estimate(ctx)
    }
    fn save(&self) -> EstimatorState<T> {
        (**self).save()
    }
    fn restore(&mut self, state: EstimatorState<T>) -> Result<(), String> {
        (**self).restore(state)
    }
    fn save_share(&self, workers: Workers<'_>) -> Option<Vec<ParticleState<T>>> {
        (**self).save_share(workers)
    }
}

/// One trajectory's (or antithetic pair's) share of an estimate.
pub(crate) struct Sample<T: Scalar> {
    /// Its meta-loss.
    pub meta_loss: f64,
    /// `f` at its last evaluated point.
    pub final_loss: f64,
    /// Its gradient, in the order of the meta-parameters.
    pub gradient: Vec<DMatrix<T>>,
}

/// Says where a window failed.
fn window_error(meta_step: usize, sample: usize, e: WindowError) -> MetaError {
    match e {
        WindowError::NonFinite { step } => MetaError::NonFinite {
            meta_step,
            location: format!("f or grad f at inner step {step} of trajectory {sample}"),
        },
        WindowError::Optim { step, error } => MetaError::Optim {
            meta_step,
            location: format!("inner step {step} of trajectory {sample}"),
            error,
        },
        WindowError::Loss(detail) => MetaError::Optim {
            meta_step,
            location: format!("the meta-loss of trajectory {sample}"),
            error: crate::optim::OptimError::Step {
                optimizer: "meta-loss".into(),
                detail,
            },
        },
    }
}

/// One window of a trajectory on a tape of its own: starts it (from `start`, a fresh problem)
/// or continues it (from `resume`), records `length` updates and returns its sample and the
/// state reached.
struct WindowRun<'a, T: Scalar> {
    ctx: &'a EstimateContext<'a, T>,
    problem: &'a dyn Problem<T>,
    horizon: usize,
    length: usize,
    second_order: bool,
    sample: usize,
}

impl<T: Scalar> WindowRun<'_, T> {
    /// [`WindowRun::record`], with a panic inside it (a singular matrix in a model's parameter
    /// map, say) turned into an error naming the meta-step, the trajectory and the message.
    fn run(
        &self,
        start: Option<&DMatrix<T>>,
        resume: Option<&StateValues<T>>,
        start_loss: &mut Option<f64>,
    ) -> Result<(Sample<T>, StateValues<T>), MetaError> {
        // Unwind safety: everything the closure touches is either owned by it (its tape) or
        // only read (the meta-parameters, the problem), except `start_loss`, which the caller
        // discards with the failed trajectory.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.record(start, resume, start_loss)
        }));
        outcome.unwrap_or_else(|payload| {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            Err(MetaError::Failed {
                meta_step: self.ctx.meta_step,
                location: format!("trajectory {}", self.sample),
                message,
            })
        })
    }

    fn record(
        &self,
        start: Option<&DMatrix<T>>,
        resume: Option<&StateValues<T>>,
        start_loss: &mut Option<f64>,
    ) -> Result<(Sample<T>, StateValues<T>), MetaError> {
        let k = self.ctx.meta_step;
        let tape = Tape::<T>::new();
        let theta = self.ctx.optimizer.params().bind(&tape);
        let vars = theta.vars();
        let opt = self.ctx.optimizer.optimizer(theta);
        let mut state = match (start, resume) {
            (Some(x0), _) => {
                let recording = Recording::On {
                    second_order: self.second_order,
                };
                let oracle = Oracle::new(self.problem, &tape, 0, recording);
                opt.init(tape.param(x0.clone()), &oracle)
                    .map_err(|error| MetaError::Optim {
                        meta_step: k,
                        location: format!("the start of trajectory {}", self.sample),
                        error,
                    })?
            }
            (None, Some(values)) => OptState::restore(&tape, values, true),
            (None, None) => unreachable!("a window starts or resumes a trajectory"),
        };
        let spec = WindowSpec {
            problem: self.problem,
            meta_loss: self.ctx.meta_loss,
            horizon: self.horizon,
            length: self.length,
            second_order: self.second_order,
        };
        let window = unroll_window(&*opt, &mut state, &spec, start_loss)
            .map_err(|e| window_error(k, self.sample, e))?;
        let gradient = tape
            .grad(&[window.loss], &vars, false)
            .iter()
            .map(|g| g.value())
            .collect();
        let sample = Sample {
            meta_loss: window.loss.scalar().as_f64(),
            final_loss: window.losses.last().copied().unwrap_or(f64::NAN),
            gradient,
        };
        Ok((sample, state.values()))
    }
}

/// Backpropagation through the whole unroll: `trajectories` fresh problems per meta-step,
/// each run for `horizon` steps on a tape of its own, in parallel. Estimates the exact gradient
/// of the mean meta-loss (with `second_order`; without, Andrychowicz et al.'s first-order
/// approximation). Memory grows linearly with the horizon.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FullBptt {
    /// Trajectories per meta-step (the paper: 10).
    pub trajectories: usize,
    /// Inner steps `T` (the paper: 50).
    pub horizon: usize,
    /// Differentiate through `∇f` (the paper: yes).
    pub second_order: bool,
}

impl FullBptt {
    /// The paper's: 10 trajectories of T = 50 steps, second order.
    pub const PAPER: FullBptt = FullBptt {
        trajectories: 10,
        horizon: 50,
        second_order: true,
    };
}

pub(crate) fn positive(name: &str, value: usize) -> Result<(), MetaError> {
    if value == 0 {
        Err(MetaError::Config(format!("{name} must be positive")))
    } else {
        Ok(())
    }
}

impl<T: Scalar> GradientEstimator<T> for FullBptt {
    fn name(&self) -> String {
        "full BPTT".into()
    }
    fn validate(&self) -> Result<(), MetaError> {
        positive("trajectories", self.trajectories)?;
        positive("horizon", self.horizon)
    }
    fn estimate(&mut self, ctx: &EstimateContext<'_, T>) -> Result<Estimate<T>, MetaError> {
        let samples: Vec<Result<Sample<T>, MetaError>> = ctx
            .workers
            .share(self.trajectories)
            .into_par_iter()
            .map(|i| {
                let sampled = ctx.sample(Draw {
                    meta_step: ctx.meta_step,
                    index: i,
                })?;
                let window = WindowRun {
                    ctx,
                    problem: &*sampled.problem,
                    horizon: self.horizon,
                    length: self.horizon,
                    second_order: self.second_order,
                    sample: i,
                };
                Ok(window.run(Some(&sampled.x0), None, &mut None)?.0)
            })
            .collect();
        reduce_samples(ctx, self.trajectories, samples)
    }
    fn save(&self) -> EstimatorState<T> {
        EstimatorState {
            estimator: GradientEstimator::<T>::name(self),
            particles: Vec::new(),
        }
    }
    fn restore(&mut self, state: EstimatorState<T>) -> Result<(), String> {
        check_name(&GradientEstimator::<T>::name(self), &state)?;
        if !state.particles.is_empty() {
            return Err("full BPTT carries no trajectories".into());
        }
        Ok(())
    }
}

pub(crate) fn check_name<T: Scalar>(name: &str, state: &EstimatorState<T>) -> Result<(), String> {
    if state.estimator == name {
        Ok(())
    } else {
        Err(format!(
            "the checkpoint's estimator is {}, this run's is {name}",
            state.estimator
        ))
    }
}

/// A persistent trajectory with its problem.
struct Particle<T: Scalar> {
    saved: ParticleState<T>,
    problem: Option<Arc<dyn Problem<T>>>,
}

/// Truncated backpropagation through time over persistent trajectories (what L2O-PA's original
/// code does): `particles` trajectories each advance by one window of `segment` updates per
/// meta-step, with gradients cut at window boundaries; a trajectory that reaches `horizon`
/// starts over on a fresh problem. Memory is that of one window; the estimate is biased toward
/// short horizons (gradients do not see past the window).
pub struct TruncatedBptt<T: Scalar> {
    /// Persistent trajectories.
    pub particles: usize,
    /// Inner steps of a trajectory before it starts over.
    pub horizon: usize,
    /// Updates per window.
    pub segment: usize,
    /// Differentiate through `∇f`.
    pub second_order: bool,
    /// Trajectory `i` at index `i` (in a distributed run, only this rank's share).
    state: Vec<Option<Particle<T>>>,
}

impl<T: Scalar> TruncatedBptt<T> {
    /// `particles` trajectories of `horizon` steps in windows of `segment`, second order.
    pub fn new(particles: usize, horizon: usize, segment: usize) -> Self {
        TruncatedBptt {
            particles,
            horizon,
            segment,
            second_order: true,
            state: Vec::new(),
        }
    }

    /// The same, first order.
    pub fn first_order(mut self) -> Self {
        self.second_order = false;
        self
    }
}

impl<T: Scalar> GradientEstimator<T> for TruncatedBptt<T> {
    fn name(&self) -> String {
        "truncated BPTT".into()
    }
    fn validate(&self) -> Result<(), MetaError> {
        positive("particles", self.particles)?;
        positive("horizon", self.horizon)?;
        positive("segment", self.segment)
    }
    fn estimate(&mut self, ctx: &EstimateContext<'_, T>) -> Result<Estimate<T>, MetaError> {
        let (horizon, segment, second_order) = (self.horizon, self.segment, self.second_order);
        let old = &self.state;
        let share = ctx.workers.share(self.particles);
        type Advanced<T> = Result<(Sample<T>, Particle<T>), MetaError>;
        let results: Vec<Advanced<T>> = share
            .clone()
            .into_par_iter()
            .map(|i| {
                let slot = old.get(i).and_then(Option::as_ref);
                let finished = slot.is_none_or(|p| p.saved.state.step as usize >= horizon);
                if finished {
                    let draw = Draw {
                        meta_step: ctx.meta_step,
                        index: i,
                    };
                    let sampled = ctx.sample(draw)?;
                    let mut start_loss = None;
                    let window = WindowRun {
                        ctx,
                        problem: &*sampled.problem,
                        horizon,
                        length: segment,
                        second_order,
                        sample: i,
                    };
                    let (sample, values) = window.run(Some(&sampled.x0), None, &mut start_loss)?;
                    let saved = ParticleState {
                        draw,
                        state: values,
                        start_loss,
                        extra: Params::new(),
                    };
                    let problem = Some(sampled.problem);
                    Ok((sample, Particle { saved, problem }))
                } else {
                    let p = slot.expect("an unfinished particle exists");
                    let problem = match &p.problem {
                        Some(problem) => problem.clone(),
                        // Restored from a checkpoint: the same draw gives the same problem.
                        None => ctx.sample(p.saved.draw)?.problem,
                    };
                    let window = WindowRun {
                        ctx,
                        problem: &*problem,
                        horizon,
                        length: segment,
                        second_order,
                        sample: i,
                    };
                    let mut start_loss = p.saved.start_loss;
                    let (sample, values) =
                        window.run(None, Some(&p.saved.state), &mut start_loss)?;
                    let saved = ParticleState {
                        state: values,
                        start_loss,
                        ..p.saved.clone()
                    };
                    let problem = Some(problem);
                    Ok((sample, Particle { saved, problem }))
                }
            })
            .collect();
        let n = self.particles;
        let (estimate, particles) = reduce_persistent(ctx, n, results)?;
        // Only this rank's share is kept: the others' trajectories live on their ranks.
        self.state = (0..n).map(|_| None).collect();
        for (i, p) in share.zip(particles) {
            self.state[i] = Some(p);
        }
        Ok(estimate)
    }
    fn save(&self) -> EstimatorState<T> {
        EstimatorState {
            estimator: GradientEstimator::<T>::name(self),
            particles: self
                .state
                .iter()
                .flatten()
                .map(|p| p.saved.clone())
                .collect(),
        }
    }
    fn save_share(&self, workers: Workers<'_>) -> Option<Vec<ParticleState<T>>> {
        let share = workers.share(self.particles);
        let owned = self
            .state
            .get(share.start.min(self.state.len())..share.end.min(self.state.len()));
        Some(
            owned
                .unwrap_or_default()
                .iter()
                .flatten()
                .map(|p| p.saved.clone())
                .collect(),
        )
    }
    fn restore(&mut self, state: EstimatorState<T>) -> Result<(), String> {
        check_name(&GradientEstimator::<T>::name(self), &state)?;
        if state.particles.len() > self.particles {
            return Err(format!(
                "{} trajectories in the checkpoint, {} in this run",
                state.particles.len(),
                self.particles
            ));
        }
        for (i, p) in state.particles.iter().enumerate() {
            if !p.state.is_finite() || p.start_loss.is_some_and(|f| !f.is_finite()) {
                return Err(format!("trajectory {i} holds a NaN or Inf"));
            }
            if p.state.tensors.try_get("x").is_none() {
                return Err(format!("trajectory {i} has no iterate"));
            }
        }
        self.state = state
            .particles
            .into_iter()
            .map(|saved| {
                Some(Particle {
                    saved,
                    problem: None,
                })
            })
            .collect();
        Ok(())
    }
}
