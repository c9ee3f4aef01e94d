//! Meta-training LOA on random quadratics ([`LoaQuadratics`]) with Adam.

use super::{LoaBfgs, LoaConfig, LoaError};
use crate::meta::{LoaQuadratics, Ridge};
use crate::optim::{check_positive, Adam, AdamState};
use crate::tape::Tape;
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Settings of LOA meta-training.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaTrainConfig {
    /// Dimension of the training quadratics.
    pub dim: usize,
    /// Problems per meta-step.
    pub batch: usize,
    /// The unroll: horizon, line search, what is differentiated, meta-loss floor.
    pub unroll: LoaConfig,
    /// Adam's learning rate.
    pub lr: f64,
    /// Clip the meta-gradient to this norm, if set.
    pub clip: Option<f64>,
    /// Seed: meta-step `k` draws its problems from `(seed, k)`.
    pub seed: u64,
}

impl LoaTrainConfig {
    /// Quadratics in `dim` variables, 8 per meta-step, horizon `dim/2` (shorter than the `dim`
    /// steps BFGS needs, so the model has something to gain), Armijo, exact gradients, Adam
    /// 1e-3 with clipping at 1.
    pub fn new(dim: usize, seed: u64) -> Self {
        LoaTrainConfig {
            dim,
            batch: 8,
            unroll: LoaConfig::new((dim / 2).max(1)),
            lr: 1e-3,
            clip: Some(1.0),
            seed,
        }
    }
}

/// One meta-step's outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoaStepReport {
    /// Index of the meta-step.
    pub meta_step: usize,
    /// Mean meta-loss over the batch (before the update).
    pub meta_loss: f64,
    /// Norm of the meta-gradient (before clipping).
    pub grad_norm: f64,
}

/// Adam on the 216 parameters, a fresh tape and batch of quadratics per meta-step.
#[derive(Debug)]
pub struct LoaTrainer {
    config: LoaTrainConfig,
    distribution: LoaQuadratics,
    adam: Adam,
    states: Vec<AdamState<DMatrix<f64>>>,
    meta_step: usize,
}

/// `x_{-1} ~ N(0, I)`, as `main_logistic_synthetic.py`.
pub fn standard_normal_point(dim: usize, rng: &mut StdRng) -> DVector<f64> {
    DVector::from_fn(dim, |_, _| {
        <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    })
}

impl LoaTrainer {
    /// A trainer; errors on a zero dimension, batch or horizon, or a bad learning rate.
    pub fn new(config: LoaTrainConfig) -> Result<Self, LoaError> {
        check_positive("LOA meta-training", "lr", config.lr, 0.0)?;
        if let Some(c) = config.clip {
            check_positive("LOA meta-training", "clip", c, 0.0)?;
        }
        if config.batch == 0 || config.unroll.steps == 0 {
            return Err(LoaError::Config(format!(
                "batch = {} and steps = {} must both be positive",
                config.batch, config.unroll.steps
            )));
        }
        let distribution =
            LoaQuadratics::new(config.dim).map_err(|e| LoaError::Config(e.to_string()))?;
        Ok(LoaTrainer {
            config,
            distribution,
            adam: Adam::default(),
            states: Vec::new(),
            meta_step: 0,
        })
    }

    /// The next meta-step's index.
    pub fn meta_step(&self) -> usize {
        self.meta_step
    }

    /// The problems and starting points `x_{-1}` of meta-step `k` (deterministic in
    /// `(seed, k)`).
    pub fn batch_for(&self, k: usize) -> Vec<(Ridge, DVector<f64>)> {
        let mut rng = StdRng::seed_from_u64(
            self.config
                .seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(k as u64),
        );
        (0..self.config.batch)
            .map(|_| {
                let p = self.distribution.sample(&mut rng).expect("valid dimension");
                let x = standard_normal_point(self.config.dim, &mut rng);
                (p, x)
            })
            .collect()
    }

    /// One meta-step: the mean meta-loss over a fresh batch, its gradient w.r.t. the 216
    /// parameters, clipping and Adam. A NaN or Inf is an error naming the meta-step and where.
    pub fn step(&mut self, model: &mut LoaBfgs<f64>) -> Result<LoaStepReport, LoaError> {
        let k = self.meta_step;
        let tag = |e: LoaError| match e {
            LoaError::NonFinite { step, quantity, .. } => LoaError::NonFinite {
                meta_step: Some(k),
                step,
                quantity,
            },
            other => other,
        };
        let batch = self.batch_for(k);
        let tape = Tape::new();
        let bound = model.params().bind(&tape);
        let mut total = None;
        for (problem, x) in &batch {
            let un = model
                .unroll(&bound, problem, x, &self.config.unroll)
                .map_err(tag)?;
            total = Some(match total {
                None => un.meta_loss,
                Some(t) => t + un.meta_loss,
            });
        }
        let loss = total.expect("batch > 0").scale(1.0 / batch.len() as f64);
        let meta_loss = loss.scalar();
        if !meta_loss.is_finite() {
            return Err(tag(LoaError::NonFinite {
                meta_step: None,
                step: self.config.unroll.steps,
                quantity: "the meta-loss".into(),
            }));
        }
        let mut grads: Vec<DMatrix<f64>> = tape
            .grad(&[loss], &bound.vars(), false)
            .iter()
            .map(|g| g.value())
            .collect();
        for ((name, _), g) in model.params().iter().zip(&grads) {
            if g.iter().any(|v| !v.is_finite()) {
                return Err(tag(LoaError::NonFinite {
                    meta_step: None,
                    step: self.config.unroll.steps,
                    quantity: format!("the meta-gradient of '{name}'"),
                }));
            }
        }
        let grad_norm = grads.iter().map(|g| g.norm_squared()).sum::<f64>().sqrt();
        if let Some(c) = self.config.clip {
            if grad_norm > c {
                grads.iter_mut().for_each(|g| *g *= c / grad_norm);
            }
        }
        if self.states.is_empty() {
            self.states.resize_with(grads.len(), AdamState::default);
        }
        for ((value, g), state) in model
            .params_mut()
            .values_mut()
            .zip(&grads)
            .zip(self.states.iter_mut())
        {
            *value = self.adam.step(state, value, g, &self.config.lr);
        }
        self.meta_step += 1;
        Ok(LoaStepReport {
            meta_step: k,
            meta_loss,
            grad_norm,
        })
    }

    /// The mean meta-loss of `model` on `problems` (unrecorded, same line search and horizon):
    /// for held-out evaluation.
    pub fn evaluate(
        &self,
        model: &LoaBfgs<f64>,
        problems: &[(Ridge, DVector<f64>)],
    ) -> Result<f64, LoaError> {
        let cfg = &self.config.unroll;
        let mut sum = 0.0;
        for (p, x) in problems {
            let it = model.run(p, x, cfg.steps, cfg.line_search)?;
            sum += it.log_relative_loss(crate::meta::Objective::minimum(p), cfg.floor);
        }
        Ok(sum / problems.len().max(1) as f64)
    }
}
