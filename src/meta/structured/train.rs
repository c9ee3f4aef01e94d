//! Meta-training of L2O-PA as the original code does it: truncated backpropagation through
//! time over `K` iterations in segments, the segment loss `(1/len) Σ_j F(y_j)`, Adam on the
//! meta-parameters after every segment, state detached between segments.

use super::{CompositeProblem, ProblemError};
use crate::optim::{check_positive, Adam, AdamState, HyperError, L2oPa, PaValues};
use crate::tape::{Scalar, Tape};
use nalgebra::DMatrix;
use std::fmt;

/// Settings of [`PaTrainer`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaTrainConfig {
    /// Iterations `K` per trajectory (100 in the original).
    pub iterations: usize,
    /// Iterations per truncation segment (20 in the original).
    pub segment: usize,
    /// Adam's learning rate (1e-2 for LASSO, 3e-3 for logistic in the original).
    pub lr: f64,
}

impl PaTrainConfig {
    /// The original LASSO settings: K = 100 in segments of 20, Adam 1e-2.
    pub fn lasso() -> Self {
        PaTrainConfig {
            iterations: 100,
            segment: 20,
            lr: 1e-2,
        }
    }

    /// The original logistic settings: K = 100 in segments of 20, Adam 3e-3.
    pub fn logistic() -> Self {
        PaTrainConfig {
            lr: 3e-3,
            ..Self::lasso()
        }
    }
}

/// Why meta-training stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum PaError {
    /// A setting is out of range.
    Config(HyperError),
    /// A problem could not be built.
    Problem(ProblemError),
    /// A NaN or infinity appeared.
    NonFinite {
        /// The meta-step (0-based).
        meta_step: usize,
        /// The segment within it (0-based).
        segment: usize,
        /// The instance of the batch (0-based).
        instance: usize,
        /// Where: an iterate at some iteration, the loss, or the meta-gradient of a tensor.
        location: String,
    },
}

impl fmt::Display for PaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaError::Config(e) => write!(f, "L2O-PA meta-training: {e}"),
            PaError::Problem(e) => write!(f, "L2O-PA meta-training: {e}"),
            PaError::NonFinite {
                meta_step,
                segment,
                instance,
                location,
            } => write!(
                f,
                "L2O-PA meta-training: non-finite value at meta-step {meta_step}, segment \
                 {segment}, instance {instance}: {location}"
            ),
        }
    }
}

impl std::error::Error for PaError {}

impl From<ProblemError> for PaError {
    fn from(e: ProblemError) -> Self {
        PaError::Problem(e)
    }
}

/// What one meta-step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaStepReport {
    /// The meta-step (0-based).
    pub meta_step: usize,
    /// Mean over segments and instances of the segment loss `(1/len) Σ_j F(y_j)`.
    pub loss: f64,
    /// Norm of the meta-gradients of all segments together (`sqrt(Σ_segments |g|²)`).
    pub grad_norm: f64,
}

/// Meta-training state: settings, Adam's per-tensor state, the step count.
#[derive(Clone, Debug)]
pub struct PaTrainer<T: Scalar> {
    config: PaTrainConfig,
    adam: Adam,
    states: Vec<AdamState<DMatrix<T>>>,
    meta_step: usize,
}

impl<T: Scalar> PaTrainer<T> {
    /// A trainer; errors on zero sizes, a segment longer than `iterations` or a bad rate.
    pub fn new(config: PaTrainConfig) -> Result<Self, PaError> {
        let bad = |detail: String| {
            Err(PaError::Config(HyperError {
                owner: "PaTrainConfig",
                detail,
            }))
        };
        if config.segment == 0 || config.iterations == 0 {
            return bad("iterations and segment must be positive".into());
        }
        if config.segment > config.iterations {
            return bad(format!(
                "segment {} is longer than iterations {}",
                config.segment, config.iterations
            ));
        }
        check_positive("PaTrainConfig", "lr", config.lr, 0.0).map_err(PaError::Config)?;
        Ok(PaTrainer {
            config,
            adam: Adam::default(),
            states: Vec::new(),
            meta_step: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> PaTrainConfig {
        self.config
    }

    /// Meta-steps taken.
    pub fn meta_step(&self) -> usize {
        self.meta_step
    }

    /// One meta-step on a batch of instances: `iterations` steps of every trajectory, split in
    /// segments; after each segment, the mean segment loss's gradient and an Adam update.
    /// Deterministic: same model, problems and settings give the same numbers.
    pub fn step<P: CompositeProblem<T>>(
        &mut self,
        model: &mut L2oPa<T>,
        problems: &[P],
    ) -> Result<PaStepReport, PaError> {
        let meta_step = self.meta_step;
        let mut states: Vec<_> = problems.iter().map(|p| model.start_values(p)).collect();
        let (mut loss_total, mut segments, mut grad_sq) = (0.0, 0, 0.0);
        let mut done = 0;
        let scale = T::cast(1.0 / (problems.len().max(1) as f64 * self.config.segment as f64));
        while done < self.config.iterations {
            let len = self.config.segment.min(self.config.iterations - done);
            let mut grads: Option<Vec<DMatrix<T>>> = None;
            let mut segment_loss = 0.0;
            for (instance, (problem, values)) in problems.iter().zip(&mut states).enumerate() {
                let non_finite = |location: String| PaError::NonFinite {
                    meta_step,
                    segment: segments,
                    instance,
                    location,
                };
                let tape = Tape::new();
                let bound = model.params().bind(&tape);
                let mut state = values.to_tape(&tape);
                let mut loss = None;
                for _ in 0..len {
                    model.step(&bound, problem, &mut state);
                    if state.y.value_ref().iter().any(|v| !v.is_finite()) {
                        return Err(non_finite(format!("iterate y_{}", state.k)));
                    }
                    let f = problem.objective_var(state.y);
                    loss = Some(loss.map_or(f, |l| l + f));
                }
                let loss = loss.expect("segments are non-empty").scale(scale);
                let value = loss.scalar().as_f64();
                if !value.is_finite() {
                    return Err(non_finite(format!("segment loss = {value}")));
                }
                segment_loss += value;
                let g = tape.grad(&[loss], &bound.vars(), false);
                for (gv, (name, _)) in g.iter().zip(model.params().iter()) {
                    if gv.value_ref().iter().any(|v| !v.is_finite()) {
                        return Err(non_finite(format!("meta-gradient of '{name}'")));
                    }
                }
                let g: Vec<DMatrix<T>> = g.iter().map(|v| v.value()).collect();
                grads = Some(match grads {
                    None => g,
                    Some(acc) => acc.into_iter().zip(g).map(|(a, b)| a + b).collect(),
                });
                *values = PaValues::of(&state);
            }
            let grads = grads.unwrap_or_default();
            grad_sq += grads.iter().map(|g| g.norm_squared().as_f64()).sum::<f64>();
            self.apply_adam(model, &grads);
            loss_total += segment_loss;
            segments += 1;
            done += len;
        }
        self.meta_step += 1;
        Ok(PaStepReport {
            meta_step,
            loss: loss_total / segments as f64,
            grad_norm: grad_sq.sqrt(),
        })
    }

    fn apply_adam(&mut self, model: &mut L2oPa<T>, grads: &[DMatrix<T>]) {
        if grads.is_empty() {
            return;
        }
        if self.states.is_empty() {
            self.states.resize_with(grads.len(), AdamState::default);
        }
        let lr = T::cast(self.config.lr);
        let values = model.params_mut().values_mut();
        for ((value, g), state) in values.zip(grads).zip(self.states.iter_mut()) {
            *value = self.adam.step(state, value, g, &lr);
        }
    }
}

/// The held-out meta-loss, unrecorded: the mean over `problems` of `(1/K) Σ_{j=1..K} F(y_j)`
/// along `K = iterations` steps of `model`.
pub fn pa_meta_loss<T: Scalar, P: CompositeProblem<T>>(
    model: &L2oPa<T>,
    problems: &[P],
    iterations: usize,
) -> f64 {
    let total: f64 = problems
        .iter()
        .map(|p| {
            let mut sum = 0.0;
            model.run(p, iterations, |k, _, y| {
                if k > 0 {
                    sum += p.objective(y).as_f64();
                }
            });
            sum / iterations as f64
        })
        .sum();
    total / problems.len() as f64
}
