//! The one meta-trainer: whatever the learned optimizer, the problem family, the meta-loss or
//! the gradient estimator, a meta-step is an estimate of the meta-gradient, its check for
//! NaN/Inf (saying where), optional clipping, and an Adam step on the meta-parameters, matched
//! by name.

use super::estimator::{Estimate, EstimateContext, FullBptt, GradientEstimator};
use super::loss::{MetaLoss, WeightedLoss};
use super::workers::{Communicator, Workers};
use crate::models::Params;
use crate::optim::{check_positive, Adam, HyperError, LearnedOptimizer, OptimError};
use crate::problems::{ProblemError, ProblemFamily};
use crate::tape::{Scalar, Tape};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Settings of the outer loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetaTrainConfig {
    /// Adam's learning rate on the meta-parameters (the paper: 1e-2).
    pub lr: f64,
    /// Clip the meta-gradient's global norm to this value.
    pub clip: Option<f64>,
    /// Seed of everything random: draw `i` of meta-step `k` uses a generator derived from
    /// (seed, k, i), so a resumed run repeats an uninterrupted one.
    pub seed: u64,
}

impl MetaTrainConfig {
    /// The paper's outer loop: Adam 1e-2, no clipping.
    pub fn paper(seed: u64) -> Self {
        MetaTrainConfig {
            lr: 1e-2,
            clip: None,
            seed,
        }
    }
}

/// What went wrong in meta-training.
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
    Config(String),
    /// A problem could not be drawn.
    Problem {
        /// The meta-step.
        meta_step: usize,
        /// Why.
        error: ProblemError,
    },
    /// A computation failed (an operation refused its input: a singular matrix in a model's
    /// parameter map, say); the message is the operation's.
    Failed {
        /// The meta-step.
        meta_step: usize,
        /// Where.
        location: String,
        /// The operation's message.
        message: String,
    },
    /// The learned optimizer refused a problem or a step.
    Optim {
        /// The meta-step.
        meta_step: usize,
        /// Where.
        location: String,
        /// Why.
        error: OptimError,
    },
    /// In a distributed run, a rank failed (its samples' error, a NaN or Inf in its results,
    /// or meta-parameters that differ from the others'); every rank reports the same.
    Rank {
        /// The rank that failed.
        rank: usize,
        /// The meta-step.
        meta_step: usize,
        /// What went wrong there.
        message: String,
    },
    /// In a distributed run, the ranks could not exchange their results.
    Communication {
        /// The meta-step.
        meta_step: usize,
        /// What failed.
        detail: String,
    },
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::NonFinite {
                meta_step,
                location,
            } => write!(f, "meta-step {meta_step}: non-finite value in {location}"),
            MetaError::Config(e) => write!(f, "meta-training settings: {e}"),
            MetaError::Problem { meta_step, error } => write!(f, "meta-step {meta_step}: {error}"),
            MetaError::Failed {
                meta_step,
                location,
                message,
            } => write!(f, "meta-step {meta_step}, {location}: {message}"),
            MetaError::Optim {
                meta_step,
                location,
                error,
            } => write!(f, "meta-step {meta_step}, {location}: {error}"),
            MetaError::Rank {
                rank,
                meta_step,
                message,
            } => write!(f, "rank {rank} failed at meta-step {meta_step}: {message}"),
            MetaError::Communication { meta_step, detail } => {
                write!(
                    f,
                    "meta-step {meta_step}: communication between ranks failed: {detail}"
                )
            }
        }
    }
}

impl std::error::Error for MetaError {}

impl From<HyperError> for MetaError {
    fn from(e: HyperError) -> Self {
        MetaError::Config(e.to_string())
    }
}

/// The outcome of one meta-step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetaStepReport {
    /// Index of the meta-step (from 0).
    pub meta_step: usize,
    /// Mean meta-loss over the samples (before the update).
    pub meta_loss: f64,
    /// Global norm of the meta-gradient (before clipping).
    pub grad_norm: f64,
    /// Mean `f` at the last evaluated point of the samples.
    pub final_loss: f64,
    /// A warning (the meta-loss grew by orders of magnitude: a meta learning rate too large?).
    pub warning: Option<String>,
}

/// The outer Adam's first and second moments, by meta-parameter name.
pub(crate) type Moments<T> = (Params<T>, Params<T>);

/// Meta-training state: settings, estimator, meta-loss, the outer Adam's moments (by name),
/// the meta-step count, the history of reports and, in a distributed run, the communicator.
pub struct MetaTrainer<T: Scalar> {
    config: MetaTrainConfig,
    estimator: Box<dyn GradientEstimator<T>>,
    meta_loss: Box<dyn MetaLoss<T>>,
    outer: Adam,
    pub(crate) moments: Option<Moments<T>>,
    pub(crate) meta_step: usize,
    pub(crate) history: Vec<MetaStepReport>,
    comm: Option<Arc<dyn Communicator>>,
}

impl<T: Scalar> MetaTrainer<T> {
    /// A trainer at meta-step 0; every setting is checked.
    ///
    /// ```
    /// use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
    /// let trainer = MetaTrainer::<f32>::new(MetaTrainConfig::paper(0), FullBptt::PAPER, WeightedLoss::PAPER);
    /// assert!(trainer.is_ok());
    /// let bad = MetaTrainConfig { lr: -1.0, ..MetaTrainConfig::paper(0) };
    /// assert!(MetaTrainer::<f32>::new(bad, FullBptt::PAPER, WeightedLoss::PAPER).is_err());
    /// ```
    pub fn new(
        config: MetaTrainConfig,
        estimator: impl GradientEstimator<T> + 'static,
        meta_loss: impl MetaLoss<T> + 'static,
    ) -> Result<Self, MetaError> {
        check_positive("meta-training", "lr", config.lr, 0.0)?;
        if let Some(c) = config.clip {
            check_positive("meta-training", "clip", c, 0.0)?;
        }
        estimator.validate()?;
        meta_loss.validate().map_err(MetaError::Config)?;
        Ok(MetaTrainer {
            config,
            estimator: Box::new(estimator),
            meta_loss: Box::new(meta_loss),
            outer: Adam::new(config.lr)?,
            moments: None,
            meta_step: 0,
            history: Vec::new(),
            comm: None,
        })
    }

    /// The same trainer on the ranks of `comm`: every rank holds the same meta-parameters,
    /// computes its share of each meta-step's samples and gets the single-process estimate,
    /// bit for bit; [`save_checkpoint`](super::save_checkpoint) and
    /// [`load_checkpoint`](super::load_checkpoint) become collective (rank 0 reads and writes
    /// the file). Every rank must make the same calls.
    pub fn with_communicator(mut self, comm: Arc<dyn Communicator>) -> Self {
        self.comm = Some(comm);
        self
    }

    /// The communicator of a distributed run.
    pub fn communicator(&self) -> Option<&dyn Communicator> {
        self.comm.as_deref()
    }

    /// The ranks this trainer shares its samples with (a single process without a
    /// communicator).
    pub fn workers(&self) -> Workers<'_> {
        self.comm
            .as_deref()
            .map_or_else(Workers::single, Workers::new)
    }

    /// The paper's meta-training: full BPTT over 10 trajectories of 50 steps, second order,
    /// the weighted meta-loss (7), Adam 1e-2.
    pub fn paper(seed: u64) -> Self {
        Self::new(
            MetaTrainConfig::paper(seed),
            FullBptt::PAPER,
            WeightedLoss::PAPER,
        )
        .expect("the paper's settings are valid")
    }

    /// The settings.
    pub fn config(&self) -> &MetaTrainConfig {
        &self.config
    }

    /// Meta-steps taken.
    pub fn meta_step(&self) -> usize {
        self.meta_step
    }

    /// The report of every meta-step taken, in order.
    pub fn history(&self) -> &[MetaStepReport] {
        &self.history
    }

    /// The gradient estimator.
    pub fn estimator(&self) -> &dyn GradientEstimator<T> {
        &*self.estimator
    }

    pub(crate) fn estimator_mut(&mut self) -> &mut dyn GradientEstimator<T> {
        &mut *self.estimator
    }

    /// The meta-loss.
    pub fn meta_loss(&self) -> &dyn MetaLoss<T> {
        &*self.meta_loss
    }

    /// The estimate of the current meta-step (meta-loss, gradient by name), checked for
    /// NaN/Inf, without updating the meta-parameters (persistent trajectories do advance).
    pub fn meta_gradient(
        &mut self,
        opt: &dyn LearnedOptimizer<T>,
        family: &dyn ProblemFamily<T>,
    ) -> Result<Estimate<T>, MetaError> {
        let k = self.meta_step;
        if let Some(comm) = &self.comm {
            comm.begin_meta_step(k);
        }
        let ctx = EstimateContext {
            meta_step: k,
            seed: self.config.seed,
            optimizer: opt,
            family,
            meta_loss: &*self.meta_loss,
            workers: self
                .comm
                .as_deref()
                .map_or_else(Workers::single, Workers::new),
        };
        let estimate = self.estimator.estimate(&ctx)?;
        if !estimate.meta_loss.is_finite() {
            return Err(MetaError::NonFinite {
                meta_step: k,
                location: "the meta-loss".into(),
            });
        }
        for (name, g) in estimate.gradient.iter() {
            if !crate::problems::all_finite(g) {
                return Err(MetaError::NonFinite {
                    meta_step: k,
                    location: format!("the meta-gradient of parameter '{name}'"),
                });
            }
        }
        Ok(estimate)
    }

    /// One meta-step: the estimate, clipping, Adam on `opt`'s meta-parameters (matched by
    /// name). Non-finite meta-parameters after the step are an error naming the tensor, and
    /// `opt` keeps its previous values.
    pub fn step(
        &mut self,
        opt: &mut dyn LearnedOptimizer<T>,
        family: &dyn ProblemFamily<T>,
    ) -> Result<MetaStepReport, MetaError> {
        let k = self.meta_step;
        let estimate = self.meta_gradient(&*opt, family)?;
        let mut grads = estimate.gradient;
        let grad_norm = grads
            .iter()
            .map(|(_, g)| g.iter().map(|v| v.as_f64().powi(2)).sum::<f64>())
            .sum::<f64>()
            .sqrt();
        if let Some(c) = self.config.clip {
            if grad_norm > c {
                let s = T::cast(c / grad_norm);
                for (_, g) in grads.iter_mut() {
                    *g *= s;
                }
            }
        }
        let (params, moments) = self.outer_step(opt.params(), &grads)?;
        if let Some((name, _)) = params.iter().find(|(_, m)| !crate::problems::all_finite(m)) {
            return Err(MetaError::NonFinite {
                meta_step: k,
                location: format!(
                    "meta-parameter '{name}' after the outer step (is the meta learning rate \
                     {:e} too large?)",
                    self.config.lr
                ),
            });
        }
        opt.set_params(params)
            .map_err(|e| MetaError::Config(e.to_string()))?;
        self.moments = Some(moments);
        let warning = self.divergence_warning(estimate.meta_loss);
        let report = MetaStepReport {
            meta_step: k,
            meta_loss: estimate.meta_loss,
            grad_norm,
            final_loss: estimate.final_loss,
            warning,
        };
        self.history.push(report.clone());
        self.meta_step += 1;
        Ok(report)
    }

    /// A warning when the meta-loss has grown by more than two orders of magnitude over the
    /// smallest one seen.
    fn divergence_warning(&self, meta_loss: f64) -> Option<String> {
        let smallest = self
            .history
            .iter()
            .map(|r| r.meta_loss.abs())
            .fold(f64::INFINITY, f64::min);
        (smallest.is_finite() && meta_loss.abs() > 100.0 * smallest.max(1e-300)).then(|| {
            format!(
                "the meta-loss {meta_loss:.3e} is over 100 times the smallest so far \
                 ({smallest:.3e}): meta-training may be diverging (meta learning rate {:e})",
                self.config.lr
            )
        })
    }

    /// Adam on every meta-parameter, matched by name: the new values and moments.
    fn outer_step(
        &self,
        params: &Params<T>,
        grads: &Params<T>,
    ) -> Result<(Params<T>, Moments<T>), MetaError> {
        let (mut new, mut first, mut second) = (Params::new(), Params::new(), Params::new());
        let tape = Tape::<T>::new();
        for (name, value) in params.iter() {
            let g = grads.try_get(name).ok_or_else(|| {
                MetaError::Config(format!("the estimate has no gradient for '{name}'"))
            })?;
            let mark = tape.mark();
            let x = tape.constant(value.clone());
            let previous = self.moments.as_ref().map(|(m, v)| {
                (
                    tape.constant(m.get(name).clone()),
                    tape.constant(v.get(name).clone()),
                )
            });
            let (step, (m, v)) =
                self.outer
                    .direction(x, tape.constant(g.clone()), self.meta_step + 1, previous);
            new.insert(name, (x + step).value());
            first.insert(name, m.value());
            second.insert(name, v.value());
            tape.truncate(mark);
        }
        Ok((new, (first, second)))
    }
}
