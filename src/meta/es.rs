//! Evolution strategies: gradient estimates from meta-losses alone, without a backward pass
//! through the unroll (so optimizers that are not differentiable can be meta-trained, in f32
//! and with the memory of one inner step).
//!
//! - [`Es`]: antithetic ES on one unroll window. With `ε ~ N(0, σ² I)` over every
//!   meta-parameter, `ĝ = ε (L(θ + ε) - L(θ - ε)) / (2σ²)` is an unbiased estimate of the
//!   gradient of the Gaussian-smoothed meta-loss `E_ε[L(θ + ε)]`. Cost: two unrecorded unrolls
//!   per pair.
//! - [`Pes`]: Persistent ES (Vicol, Metz & Sohl-Dickstein, ICML 2021). Antithetic pairs of
//!   persistent trajectories advance by one truncation window per meta-step, each window with a
//!   fresh perturbation `ε_w`; each pair keeps `ξ = Σ_{windows so far} ε_w` since its inner
//!   problem started, and the window's estimate is `ξ (L_w⁺ - L_w⁻) / (2σ²)`. Summed over the
//!   windows of an inner problem, these are an unbiased estimate of the gradient of the
//!   smoothed full-horizon meta-loss `E[Σ_w L_w(θ + ε_1, ..., θ + ε_w)]` (each window's
//!   loss depends on the perturbations of all windows before it), whereas truncated BPTT drops
//!   that dependence and is biased toward short horizons. Memory: one window, whatever `T`.
//!
//! Perturbations of pair `j` at meta-step `k` come from a generator derived from
//! (seed, k, j), separate from the problem draws, so estimates are the same on any number of
//! threads and a PES run resumes exactly from a checkpoint.

use super::estimator::{
    check_name, draw_rng, positive, EstimateContext, EstimatorState, GradientEstimator,
    ParticleState, Sample,
};
use super::unroll::{score_window, WindowError, WindowSpec};
use super::workers::{reduce_scaled, ScaledSample, Workers};
use super::{Estimate, MetaError};
use crate::models::Params;
use crate::optim::{OptState, Oracle, Recording, StateValues};
use crate::problems::{Draw, Problem};
use crate::tape::{Scalar, Tape};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use std::sync::Arc;

/// Salt separating the perturbations' generators from the problem draws'.
const NOISE: u64 = 0x05EE_D0FE_50AD_D1E5;

/// `ε ~ N(0, σ² I)` shaped like `theta`, for pair `pair` of meta-step `k`.
fn perturbation<T: Scalar>(
    theta: &Params<T>,
    seed: u64,
    k: usize,
    pair: usize,
    sigma: f64,
) -> Params<T> {
    let mut rng = draw_rng(seed ^ NOISE, k, pair);
    let mut eps = Params::new();
    for (name, m) in theta.iter() {
        let e = DMatrix::from_fn(m.nrows(), m.ncols(), |_, _| {
            let z: f64 = rng.sample(StandardNormal);
            T::cast(sigma * z)
        });
        eps.insert(name, e);
    }
    eps
}

/// `c ε`, tensor by tensor, in the order of the meta-parameters.
fn scaled<T: Scalar>(eps: &Params<T>, c: f64) -> Vec<DMatrix<T>> {
    eps.iter().map(|(_, e)| e * T::cast(c)).collect()
}

/// `a + s b`, tensor by tensor (same names).
fn axpy<T: Scalar>(a: &Params<T>, s: f64, b: &Params<T>) -> Params<T> {
    let mut out = Params::new();
    let s = T::cast(s);
    for (name, m) in a.iter() {
        out.insert(name, m + b.get(name) * s);
    }
    out
}

/// One unrecorded window of the learned optimizer with meta-parameters `theta`, started (at
/// `start`) or resumed (from `resume`): its meta-loss and the state reached.
#[allow(clippy::too_many_arguments)]
fn scored_window<T: Scalar>(
    ctx: &EstimateContext<'_, T>,
    theta: &Params<T>,
    problem: &dyn Problem<T>,
    start: Option<(&DMatrix<T>, usize)>,
    resume: Option<&StateValues<T>>,
    horizon: usize,
    length: usize,
    start_loss: &mut Option<f64>,
    sample: usize,
) -> Result<(f64, f64, StateValues<T>), MetaError> {
    let k = ctx.meta_step;
    let tape = Tape::<T>::new();
    let opt = ctx.optimizer.optimizer(theta.bind_constants(&tape));
    let mut state = match (start, resume) {
        (Some((x0, offset)), _) => {
            let oracle = Oracle::new(problem, &tape, 0, Recording::Off);
            let mut s = tape
                .no_grad(|| opt.init(tape.constant(x0.clone()), &oracle))
                .map_err(|error| MetaError::Optim {
                    meta_step: k,
                    location: format!("the start of trajectory {sample}"),
                    error,
                })?;
            s.set_step(offset);
            s
        }
        (None, Some(values)) => OptState::restore(&tape, values, false),
        (None, None) => unreachable!("a window starts or resumes a trajectory"),
    };
    let spec = WindowSpec {
        problem,
        meta_loss: ctx.meta_loss,
        horizon,
        length,
        second_order: false,
    };
    let scored = score_window(&*opt, &mut state, &spec, start_loss).map_err(|e| match e {
        WindowError::NonFinite { step } => MetaError::NonFinite {
            meta_step: k,
            location: format!("f or grad f at inner step {step} of trajectory {sample}"),
        },
        WindowError::Optim { step, error } => MetaError::Optim {
            meta_step: k,
            location: format!("inner step {step} of trajectory {sample}"),
            error,
        },
        WindowError::Loss(detail) => MetaError::Config(format!("trajectory {sample}: {detail}")),
    })?;
    let last = scored.losses.last().copied().unwrap_or(f64::NAN);
    Ok((scored.loss, last, state.values()))
}

/// Antithetic evolution strategies on one window of `horizon` steps: `pairs` fresh problems per
/// meta-step, each run with `θ + ε` and `θ - ε`. Estimates the gradient of the
/// Gaussian-smoothed meta-loss `E_ε[L(θ + ε)]` (unbiased); needs no backward pass.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Es {
    /// Standard deviation σ of the perturbations.
    pub sigma: f64,
    /// Antithetic pairs per meta-step.
    pub pairs: usize,
    /// Inner steps of the window.
    pub horizon: usize,
}

fn check_sigma(sigma: f64) -> Result<(), MetaError> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(())
    } else {
        Err(MetaError::Config(format!(
            "sigma = {sigma} must be positive and finite"
        )))
    }
}

impl<T: Scalar> GradientEstimator<T> for Es {
    fn name(&self) -> String {
        "ES".into()
    }
    fn validate(&self) -> Result<(), MetaError> {
        check_sigma(self.sigma)?;
        positive("pairs", self.pairs)?;
        positive("horizon", self.horizon)
    }
    fn estimate(&mut self, ctx: &EstimateContext<'_, T>) -> Result<Estimate<T>, MetaError> {
        let theta = ctx.optimizer.params();
        let (k, sigma) = (ctx.meta_step, self.sigma);
        let samples: Vec<ScaledSample<T>> = ctx
            .workers
            .share(self.pairs)
            .into_par_iter()
            .map(|j| {
                let sampled = ctx.sample(Draw {
                    meta_step: ctx.meta_step,
                    index: j,
                })?;
                let eps = perturbation(theta, ctx.seed, ctx.meta_step, j, self.sigma);
                let run = |sign: f64| {
                    scored_window(
                        ctx,
                        &axpy(theta, sign, &eps),
                        &*sampled.problem,
                        Some((&sampled.x0, 0)),
                        None,
                        self.horizon,
                        self.horizon,
                        &mut None,
                        j,
                    )
                };
                let (plus, f_plus, _) = run(1.0)?;
                let (minus, f_minus, _) = run(-1.0)?;
                let c = (plus - minus) / (2.0 * self.sigma * self.sigma);
                let sample = Sample {
                    meta_loss: 0.5 * (plus + minus),
                    final_loss: 0.5 * (f_plus + f_minus),
                    gradient: scaled(&eps, c),
                };
                Ok((sample, c, true))
            })
            .collect();
        // Another rank's pair: its perturbation from the seed, times its coefficient.
        let rebuild = |j, c, _| scaled(&perturbation(theta, ctx.seed, k, j, sigma), c);
        reduce_scaled(ctx, self.pairs, samples, rebuild)
    }
    fn save(&self) -> EstimatorState<T> {
        EstimatorState {
            estimator: GradientEstimator::<T>::name(self),
            particles: Vec::new(),
        }
    }
    fn restore(&mut self, state: EstimatorState<T>) -> Result<(), String> {
        check_name(&GradientEstimator::<T>::name(self), &state)?;
        if state.particles.is_empty() {
            Ok(())
        } else {
            Err("ES carries no trajectories".into())
        }
    }
}

/// An antithetic pair of persistent trajectories (its accumulated perturbation `ξ` is kept
/// apart, in [`Pes`], on every rank; the checkpoint stores it as the `+` particle's extra).
#[derive(Clone)]
struct Pair<T: Scalar> {
    plus: ParticleState<T>,
    minus: ParticleState<T>,
    problem: Option<Arc<dyn Problem<T>>>,
}

/// Persistent evolution strategies over truncation windows of length `segment` of inner
/// problems of `horizon` steps: `pairs` antithetic pairs of persistent trajectories, each
/// advanced by one window per meta-step with a fresh perturbation, accumulating the
/// perturbations since their inner problem started; a pair that reaches the horizon starts
/// over on a fresh draw. Pair `j` first starts at inner step `j·horizon/pairs` rounded down to
/// a window (staggered, so a meta-step sees trajectories at many inner steps). Unbiased for
/// the smoothed full-horizon meta-loss; memory of one window.
pub struct Pes<T: Scalar> {
    /// Standard deviation σ of the perturbations.
    pub sigma: f64,
    /// Antithetic pairs.
    pub pairs: usize,
    /// Updates per window.
    pub segment: usize,
    /// Inner steps of an inner problem.
    pub horizon: usize,
    /// Stagger the pairs' first inner problems (the default; off: every pair starts at 0).
    pub stagger: bool,
    /// Pair `j` at index `j` (in a distributed run, only this rank's share).
    state: Vec<Option<Pair<T>>>,
    /// Pair `j`'s accumulated perturbation `ξ_j` (of every pair, on every rank: rebuilt from
    /// the seeds where another rank runs the pair).
    xi: Vec<Option<Params<T>>>,
}

impl<T: Scalar> Pes<T> {
    /// `pairs` antithetic pairs with perturbations of standard deviation `sigma`, windows of
    /// `segment` updates, inner problems of `horizon` steps.
    pub fn new(sigma: f64, pairs: usize, segment: usize, horizon: usize) -> Self {
        Pes {
            sigma,
            pairs,
            segment,
            horizon,
            stagger: true,
            state: Vec::new(),
            xi: Vec::new(),
        }
    }

    /// The same, every pair starting its first inner problem at step 0 (aligned windows).
    pub fn aligned(mut self) -> Self {
        self.stagger = false;
        self
    }

    /// The first inner step of pair `j`'s first inner problem (staggered starts).
    fn offset(&self, j: usize) -> usize {
        if !self.stagger {
            return 0;
        }
        let raw = j * self.horizon / self.pairs.max(1);
        raw / self.segment * self.segment
    }

    /// The two particles of pair `j` as a checkpoint stores them (`ξ` on the `+` one).
    fn saved(&self, j: usize, pair: &Pair<T>) -> [ParticleState<T>; 2] {
        let mut plus = pair.plus.clone();
        plus.extra = self.xi.get(j).cloned().flatten().unwrap_or_default();
        [plus, pair.minus.clone()]
    }

    /// Advances pair `j` by one window with perturbation `eps`: its sample, the pair and its
    /// new `ξ`.
    fn advance(
        &self,
        ctx: &EstimateContext<'_, T>,
        j: usize,
        eps: Params<T>,
    ) -> Result<Advanced<T>, MetaError> {
        let theta = ctx.optimizer.params();
        let (sigma, horizon, segment) = (self.sigma, self.horizon, self.segment);
        let fresh = |offset: usize| -> Result<(Pair<T>, DMatrix<T>, usize), MetaError> {
            let draw = Draw {
                meta_step: ctx.meta_step,
                index: j,
            };
            let sampled = ctx.sample(draw)?;
            let empty = ParticleState {
                draw,
                state: StateValues {
                    step: offset as u64,
                    tensors: Params::new(),
                    numbers: Vec::new(),
                },
                start_loss: None,
                extra: Params::new(),
            };
            let pair = Pair {
                plus: empty.clone(),
                minus: empty,
                problem: Some(sampled.problem),
            };
            Ok((pair, sampled.x0, offset))
        };
        // Start over at the horizon (or at the first meta-step, staggered).
        let (mut pair, start) = match self.state.get(j).and_then(Option::as_ref) {
            Some(p) if (p.plus.state.step as usize) < horizon => (p.clone(), None),
            Some(_) => {
                let (pair, x0, off) = fresh(0)?;
                (pair, Some((x0, off)))
            }
            None => {
                let (pair, x0, off) = fresh(self.offset(j))?;
                (pair, Some((x0, off)))
            }
        };
        let problem = match &pair.problem {
            Some(p) => p.clone(),
            None => ctx.sample(pair.plus.draw)?.problem,
        };
        let old = self.xi.get(j).and_then(Option::as_ref);
        let restarted = start.is_some() || old.is_none();
        let xi = match old {
            Some(x) if !restarted => axpy(x, 1.0, &eps),
            _ => eps.clone(),
        };
        let run = |sign: f64, particle: &mut ParticleState<T>| {
            let resume = start.is_none().then_some(&particle.state);
            let from = start.as_ref().map(|(x0, off)| (x0, *off));
            let (loss, last, values) = scored_window(
                ctx,
                &axpy(theta, sign, &eps),
                &*problem,
                from,
                resume,
                horizon,
                segment,
                &mut particle.start_loss,
                j,
            )?;
            particle.state = values;
            Ok::<_, MetaError>((loss, last))
        };
        let (plus, f_plus) = run(1.0, &mut pair.plus)?;
        let (minus, f_minus) = run(-1.0, &mut pair.minus)?;
        let c = (plus - minus) / (2.0 * sigma * sigma);
        pair.problem = Some(problem);
        let sample = Sample {
            meta_loss: 0.5 * (plus + minus),
            final_loss: 0.5 * (f_plus + f_minus),
            gradient: scaled(&xi, c),
        };
        Ok(Advanced {
            sample,
            coefficient: c,
            restarted,
            pair,
            xi,
        })
    }
}

/// A pair advanced by one window.
struct Advanced<T: Scalar> {
    /// Its share of the estimate.
    sample: Sample<T>,
    /// Its gradient is `coefficient ξ`.
    coefficient: f64,
    /// Its `ξ` started over.
    restarted: bool,
    /// The pair after the window.
    pair: Pair<T>,
    /// Its new `ξ`.
    xi: Params<T>,
}

impl<T: Scalar> GradientEstimator<T> for Pes<T> {
    fn name(&self) -> String {
        "PES".into()
    }
    fn validate(&self) -> Result<(), MetaError> {
        check_sigma(self.sigma)?;
        positive("pairs", self.pairs)?;
        positive("segment", self.segment)?;
        positive("horizon", self.horizon)
    }
    fn estimate(&mut self, ctx: &EstimateContext<'_, T>) -> Result<Estimate<T>, MetaError> {
        let theta = ctx.optimizer.params();
        let (k, n, sigma) = (ctx.meta_step, self.pairs, self.sigma);
        let share = ctx.workers.share(n);
        let this = &*self;
        let results: Vec<_> = share
            .clone()
            .into_par_iter()
            .map(|j| this.advance(ctx, j, perturbation(theta, ctx.seed, k, j, sigma)))
            .collect();
        let mut samples = Vec::with_capacity(results.len());
        let mut pairs = Vec::with_capacity(results.len());
        let mut xi: Vec<Option<Params<T>>> = (0..n).map(|_| None).collect();
        for (j, r) in share.clone().zip(results) {
            match r {
                Ok(a) => {
                    samples.push(Ok((a.sample, a.coefficient, a.restarted)));
                    pairs.push(a.pair);
                    xi[j] = Some(a.xi);
                }
                Err(e) => samples.push(Err(e)),
            }
        }
        // Another rank's pair: its ξ from the seeds (every rank keeps every ξ), times its
        // coefficient.
        let rebuild = |j: usize, c: f64, restarted: bool| {
            let eps = perturbation(theta, ctx.seed, k, j, sigma);
            let x = match this.xi.get(j).and_then(Option::as_ref) {
                Some(old) if !restarted => axpy(old, 1.0, &eps),
                _ => eps,
            };
            let g = scaled(&x, c);
            xi[j] = Some(x);
            g
        };
        let estimate = reduce_scaled(ctx, n, samples, rebuild)?;
        self.state = (0..n).map(|_| None).collect();
        for (j, pair) in share.zip(pairs) {
            self.state[j] = Some(pair);
        }
        self.xi = xi;
        Ok(estimate)
    }
    fn save(&self) -> EstimatorState<T> {
        EstimatorState {
            estimator: GradientEstimator::<T>::name(self),
            particles: self
                .state
                .iter()
                .enumerate()
                .filter_map(|(j, p)| p.as_ref().map(|p| self.saved(j, p)))
                .flatten()
                .collect(),
        }
    }
    fn save_share(&self, workers: Workers<'_>) -> Option<Vec<ParticleState<T>>> {
        let share = workers.share(self.pairs);
        Some(
            share
                .filter_map(|j| {
                    self.state
                        .get(j)
                        .and_then(Option::as_ref)
                        .map(|p| self.saved(j, p))
                })
                .flatten()
                .collect(),
        )
    }
    fn restore(&mut self, state: EstimatorState<T>) -> Result<(), String> {
        check_name(&GradientEstimator::<T>::name(self), &state)?;
        if !state.particles.len().is_multiple_of(2) || state.particles.len() / 2 > self.pairs {
            return Err(format!(
                "{} trajectories in the checkpoint for {} antithetic pairs",
                state.particles.len(),
                self.pairs
            ));
        }
        let mut pairs = Vec::new();
        let mut xi = Vec::new();
        for (i, chunk) in state.particles.chunks(2).enumerate() {
            let (mut plus, minus) = (chunk[0].clone(), chunk[1].clone());
            for p in [&plus, &minus] {
                let finite = p.state.is_finite()
                    && p.start_loss.is_none_or(f64::is_finite)
                    && p.extra.iter().all(|(_, m)| crate::problems::all_finite(m));
                if !finite || p.state.tensors.try_get("x").is_none() {
                    return Err(format!("pair {i} holds a NaN, an Inf or no iterate"));
                }
            }
            if plus.draw != minus.draw || plus.state.step != minus.state.step {
                return Err(format!("pair {i}: its two trajectories disagree"));
            }
            let extra = std::mem::take(&mut plus.extra);
            xi.push((!extra.is_empty()).then_some(extra));
            pairs.push(Some(Pair {
                plus,
                minus,
                problem: None,
            }));
        }
        self.state = pairs;
        self.xi = xi;
        Ok(())
    }
}
