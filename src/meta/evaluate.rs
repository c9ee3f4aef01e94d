//! Evaluation of optimizers, unrecorded: runs of a hand-crafted rule or a frozen learned
//! optimizer on a task recording, per step, the training loss `f(x_t)`, `|x_t|`,
//! `|x_{t+1} - x_t|` and the classifier's test accuracy at chosen steps; the paper's
//! learning-rate grid search for the baselines (footnote 6 of Martin & Furieri: the rate that
//! minimizes the training loss); mean ± std over runs; CSV files and the paper's tables.
//!
//! A run never panics on divergence: the first step whose `f`, `∇f` or update is not finite
//! ends it and is recorded in [`Trace::non_finite_at`] (a diverging baseline at some learning
//! rate is just a bad score for the grid search).

use super::classifier::ClassifierShape;
use super::data::Subset;
use super::{all_finite, Learned, Task};
use crate::models::Activation;
use crate::ops::{gemm_into, DenseRef};
use crate::optim::{HyperError, Rule, Stepper};
use crate::tape::{Scalar, Tape};
use nalgebra::DMatrix;
use rayon::prelude::*;
use std::fmt;
use std::fmt::Write as _;

/// Accuracy and mean cross-entropy of the paper's classifier on a whole data split.
#[derive(Clone, Debug)]
pub struct ClassifierMetrics<T: Scalar> {
    shape: ClassifierShape,
    activation: Activation,
    /// The images transposed (features x samples): the product with the weights then reads
    /// contiguous columns (the dot kernel).
    images_t: DMatrix<T>,
    labels: Vec<usize>,
}

impl<T: Scalar> ClassifierMetrics<T> {
    /// Metrics of the 784 -> 10 classifier with `activation` on every sample of `data`.
    pub fn new(data: Subset<'_>, activation: Activation) -> Self {
        let batch = data.batch::<T>(0, data.len());
        ClassifierMetrics {
            shape: ClassifierShape::MNIST,
            activation,
            images_t: batch.images.transpose(),
            labels: batch.labels,
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The classifier's outputs `act(X Wᵀ + b)`, one row per sample.
    pub fn outputs(&self, params: &DMatrix<T>) -> DMatrix<T> {
        let (f, c) = (self.shape.features, self.shape.classes);
        assert!(
            params.shape() == (self.shape.num_params(), 1),
            "ClassifierMetrics: parameters must be {} x 1, found {:?}",
            self.shape.num_params(),
            params.shape()
        );
        // Row-major W read column-major is Wᵀ, as in `ClassifierShape::outputs`; the product is
        // taken off the tape so the test images are not copied onto one at every call.
        let w_t = DenseRef::new(params.as_slice(), f, c);
        let mut logits = DMatrix::zeros(self.len(), c);
        gemm_into(
            DenseRef::from(&self.images_t),
            true,
            w_t,
            false,
            logits.as_mut_slice(),
        );
        for (j, mut col) in logits.column_iter_mut().enumerate() {
            col.add_scalar_mut(params[f * c + j]);
        }
        let tape = Tape::new();
        self.activation.apply(tape.constant(logits)).value()
    }

    /// Fraction of samples whose label is the first index of the largest output (the paper's
    /// argmax rule; ReLU outputs tie at 0 and then give the first class, as `torch.argmax`).
    pub fn accuracy(&self, params: &DMatrix<T>) -> f64 {
        let out = self.outputs(params);
        let correct = out
            .row_iter()
            .zip(&self.labels)
            .filter(|(row, &label)| {
                let mut best = 0;
                for j in 1..row.len() {
                    if row[j] > row[best] {
                        best = j;
                    }
                }
                best == label
            })
            .count();
        correct as f64 / self.len().max(1) as f64
    }

    /// Mean softmax cross-entropy of the outputs (the training loss on the whole split);
    /// not finite when the parameters are not.
    pub fn loss(&self, params: &DMatrix<T>) -> f64 {
        let out = self.outputs(params);
        let total: f64 = out
            .row_iter()
            .zip(&self.labels)
            .map(|(row, &label)| {
                let o: Vec<f64> = row.iter().map(|v| v.as_f64()).collect();
                let max = o.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = max + o.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
                lse - o[label]
            })
            .sum();
        total / self.len().max(1) as f64
    }
}

/// An optimizer under evaluation.
#[derive(Clone, Copy)]
pub enum Candidate<'a, T: Scalar> {
    /// A hand-crafted rule with its learning rate.
    Rule {
        /// The rule (its other hyperparameters at their values).
        rule: Rule,
        /// The learning rate.
        lr: f64,
    },
    /// A learned optimizer with frozen meta-parameters.
    Learned(&'a (dyn Learned<T> + Sync)),
}

impl<T: Scalar> Candidate<'_, T> {
    /// Name for tables: the rule's ("SGD", "NAG", "Adam", "RMSprop") or the learned
    /// optimizer's.
    pub fn name(&self) -> String {
        match self {
            Candidate::Rule { rule, .. } => rule.to_string(),
            Candidate::Learned(opt) => opt.name(),
        }
    }

    /// The learning rate of a hand-crafted rule.
    pub fn lr(&self) -> Option<f64> {
        match self {
            Candidate::Rule { lr, .. } => Some(*lr),
            Candidate::Learned(_) => None,
        }
    }
}

/// What a run records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalConfig {
    /// Number of steps S: `f(x_t)` is recorded for `t = 0..S`, and `x_S` is reached.
    pub steps: usize,
    /// Steps `t <= S` at which the accuracy of `x_t` is measured.
    pub accuracy_at: Vec<usize>,
}

/// The record of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// `f(x_t)` on the minibatch of step `t`.
    pub loss: Vec<f64>,
    /// `|x_t|`.
    pub param_norm: Vec<f64>,
    /// `|x_{t+1} - x_t|`.
    pub update_norm: Vec<f64>,
    /// `(t, accuracy of x_t)` at the requested steps that were reached.
    pub accuracy: Vec<(usize, f64)>,
    /// The step whose `f`, `∇f` or update was first not finite: the run stopped there and the
    /// series hold the steps before it.
    pub non_finite_at: Option<usize>,
}

impl Trace {
    /// The accuracy measured at step `t`, if any.
    pub fn accuracy_at(&self, t: usize) -> Option<f64> {
        self.accuracy.iter().find(|(s, _)| *s == t).map(|(_, a)| *a)
    }
}

/// A finished run: its record and its last point (`x_S`, or the last finite iterate).
#[derive(Clone, Debug)]
pub struct Run<T: Scalar> {
    /// The record.
    pub trace: Trace,
    /// The last point reached.
    pub last: DMatrix<T>,
}

/// Why an evaluation could not run.
#[derive(Debug)]
pub enum EvalError {
    /// A rule's hyperparameters or learning rate are not admissible.
    Hyper(HyperError),
    /// The settings contradict themselves.
    Config(String),
    /// Every learning rate of a grid search diverged.
    NoFiniteScore {
        /// The rule searched.
        rule: Rule,
    },
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Hyper(e) => write!(f, "evaluation: {e}"),
            EvalError::Config(m) => write!(f, "evaluation settings: {m}"),
            EvalError::NoFiniteScore { rule } => {
                write!(f, "grid search of {rule}: every learning rate diverged")
            }
        }
    }
}

impl std::error::Error for EvalError {}

fn norm<T: Scalar>(m: &DMatrix<T>) -> f64 {
    // Eight running sums, added in order at the end: one sum would wait on every addition.
    let mut lanes = [0.0f64; 8];
    let chunks = m.as_slice().chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|v| v.as_f64().powi(2)).sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v.as_f64().powi(2);
        }
    }
    (lanes.iter().sum::<f64>() + tail).sqrt()
}

/// Runs `candidate` on `task` from `x0` for `cfg.steps` steps, unrecorded, measuring the
/// accuracy with `probe` at `cfg.accuracy_at`. Memory stays flat whatever the number of steps:
/// the tape is truncated after every step (a learned optimizer's state is carried over as
/// values, [`super::Rollout::restore_state`]).
pub fn run_optimizer<T: Scalar>(
    candidate: Candidate<'_, T>,
    task: &dyn Task<T>,
    x0: &DMatrix<T>,
    cfg: &EvalConfig,
    probe: Option<&ClassifierMetrics<T>>,
) -> Result<Run<T>, EvalError> {
    if let Some(&t) = cfg.accuracy_at.iter().find(|&&t| t > cfg.steps) {
        return Err(EvalError::Config(format!(
            "accuracy requested at step {t}, past the {} steps",
            cfg.steps
        )));
    }
    if probe.is_none() && !cfg.accuracy_at.is_empty() {
        return Err(EvalError::Config(
            "accuracy requested without a data split to measure it on".into(),
        ));
    }
    if x0.shape() != (task.dim(), 1) {
        return Err(EvalError::Config(format!(
            "x0 is {:?}, the task has dimension {}",
            x0.shape(),
            task.dim()
        )));
    }
    match candidate {
        Candidate::Rule { rule, lr } => {
            let stepper = Stepper::new(rule, lr).map_err(EvalError::Hyper)?;
            Ok(run_rule(stepper, task, x0, cfg, probe))
        }
        Candidate::Learned(opt) => Ok(run_learned(opt, task, x0, cfg, probe)),
    }
}

/// The per-step bookkeeping shared by both kinds of optimizer.
struct Recorder<'p, T: Scalar> {
    trace: Trace,
    cfg: &'p EvalConfig,
    probe: Option<&'p ClassifierMetrics<T>>,
}

impl<'p, T: Scalar> Recorder<'p, T> {
    fn new(cfg: &'p EvalConfig, probe: Option<&'p ClassifierMetrics<T>>) -> Self {
        let n = cfg.steps;
        Recorder {
            trace: Trace {
                loss: Vec::with_capacity(n),
                param_norm: Vec::with_capacity(n),
                update_norm: Vec::with_capacity(n),
                accuracy: Vec::new(),
                non_finite_at: None,
            },
            cfg,
            probe,
        }
    }

    /// Records step `t` at `x` with loss `f` and update `u`; false (and the run's end) if any
    /// of them is not finite.
    fn step(&mut self, t: usize, x: &DMatrix<T>, f: f64, g_finite: bool, u: &DMatrix<T>) -> bool {
        if !(f.is_finite() && g_finite && all_finite(u)) {
            self.trace.non_finite_at = Some(t);
            return false;
        }
        self.measure(t, x);
        self.trace.loss.push(f);
        self.trace.param_norm.push(norm(x));
        self.trace.update_norm.push(norm(u));
        true
    }

    fn measure(&mut self, t: usize, x: &DMatrix<T>) {
        if let Some(p) = self.probe.filter(|_| self.cfg.accuracy_at.contains(&t)) {
            self.trace.accuracy.push((t, p.accuracy(x)));
        }
    }

    fn finish(mut self, last: DMatrix<T>) -> Run<T> {
        if self.trace.non_finite_at.is_none() {
            self.measure(self.cfg.steps, &last);
        }
        Run {
            trace: self.trace,
            last,
        }
    }
}

fn run_rule<T: Scalar>(
    mut stepper: Stepper<T>,
    task: &dyn Task<T>,
    x0: &DMatrix<T>,
    cfg: &EvalConfig,
    probe: Option<&ClassifierMetrics<T>>,
) -> Run<T> {
    let tape = Tape::<T>::new();
    let mark = tape.mark();
    let mut rec = Recorder::new(cfg, probe);
    let mut x = x0.clone();
    for t in 0..cfg.steps {
        let xv = tape.param(x.clone());
        let f = task.loss(xv, t);
        let fv = f.scalar().as_f64();
        let g = tape.grad(&[f], &[xv], false)[0].value();
        tape.truncate(mark);
        let g_finite = all_finite(&g);
        let next = if g_finite {
            stepper.step(&x, &g)
        } else {
            x.clone()
        };
        let u = &next - &x;
        if !rec.step(t, &x, fv, g_finite, &u) {
            return rec.finish(x);
        }
        x = next;
    }
    rec.finish(x)
}

fn run_learned<T: Scalar>(
    opt: &(dyn Learned<T> + Sync),
    task: &dyn Task<T>,
    x0: &DMatrix<T>,
    cfg: &EvalConfig,
    probe: Option<&ClassifierMetrics<T>>,
) -> Run<T> {
    let tape = Tape::<T>::new();
    let bound = opt.params().bind_constants(&tape);
    let mut rollout = opt.begin(&bound, tape.constant(x0.clone()));
    // Everything before the mark (meta-parameters, the REN's explicit model, x0) lives for the
    // whole run; everything after it is one step's and is dropped at the step's end.
    let mark = tape.mark();
    let mut rec = Recorder::new(cfg, probe);
    let mut x = x0.clone();
    for t in 0..cfg.steps {
        let xv = tape.param(x.clone());
        let f = task.loss(xv, t);
        let fv = f.scalar().as_f64();
        let g = tape.grad(&[f], &[xv], false)[0];
        let g_finite = all_finite(&g.value_ref());
        let u = if g_finite {
            tape.no_grad(|| rollout.step(xv, g, f)).value()
        } else {
            DMatrix::zeros(x.nrows(), 1)
        };
        let state = rollout.state_values();
        tape.truncate(mark);
        rollout.restore_state(&tape, &state);
        if !rec.step(t, &x, fv, g_finite, &u) {
            return rec.finish(x);
        }
        x += u;
    }
    rec.finish(x)
}

/// The outcome of a learning-rate grid search.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSearch {
    /// The rule searched.
    pub rule: Rule,
    /// The chosen learning rate.
    pub lr: f64,
    /// Its score.
    pub score: f64,
    /// `(lr, score)` for every rate of the grid (`+inf`: some run diverged).
    pub scores: Vec<(f64, f64)>,
}

/// The learning-rate grid of the reproduction: {1, 2.5, 5, 7.5} x 10^k for k = -4..0, then
/// 10 (21 rates; the original code's tuned rates 1e-3, 5e-3, 1e-2, 7.5e-2 are on it).
pub fn default_lr_grid() -> Vec<f64> {
    let mut grid: Vec<f64> = (-4..=0)
        .flat_map(|k| [1.0, 2.5, 5.0, 7.5].map(|m| m * 10f64.powi(k)))
        .collect();
    grid.push(10.0);
    grid
}

/// [`run_optimizer`] from each of `x0s`, in parallel (rayon); the runs come back in the order
/// of `x0s` and each is computed exactly as alone, so results do not depend on the threads.
pub fn run_from_each<T: Scalar>(
    candidate: Candidate<'_, T>,
    task: &dyn Task<T>,
    x0s: &[DMatrix<T>],
    cfg: &EvalConfig,
    probe: Option<&ClassifierMetrics<T>>,
) -> Result<Vec<Run<T>>, EvalError> {
    x0s.par_iter()
        .map(|x0| run_optimizer(candidate, task, x0, cfg, probe))
        .collect()
}

/// The paper's protocol: for every rate of `grid`, runs `rule` on `task` from each of `x0s`
/// for `steps` steps and scores the rate by the mean of `final_loss(x_S)` over the runs
/// (`+inf` if a run diverged or the loss is not finite); returns the rate of lowest score
/// (the smaller rate on a tie).
pub fn grid_search<T: Scalar>(
    rule: Rule,
    grid: &[f64],
    task: &dyn Task<T>,
    x0s: &[DMatrix<T>],
    steps: usize,
    final_loss: &(dyn Fn(&DMatrix<T>) -> f64 + Sync),
) -> Result<GridSearch, EvalError> {
    if grid.is_empty() || x0s.is_empty() {
        return Err(EvalError::Config(
            "a grid search needs learning rates and initial points".into(),
        ));
    }
    let cfg = EvalConfig {
        steps,
        accuracy_at: Vec::new(),
    };
    let mut scores = Vec::with_capacity(grid.len());
    for &lr in grid {
        let mut total = 0.0;
        for run in run_from_each(Candidate::Rule { rule, lr }, task, x0s, &cfg, None)? {
            let f = match run.trace.non_finite_at {
                Some(_) => f64::INFINITY,
                None => final_loss(&run.last),
            };
            total += if f.is_finite() { f } else { f64::INFINITY };
        }
        scores.push((lr, total / x0s.len() as f64));
    }
    let (lr, score) = scores
        .iter()
        .copied()
        .filter(|(_, s)| s.is_finite())
        .fold(None, |best: Option<(f64, f64)>, (lr, s)| match best {
            Some((_, b)) if b <= s => best,
            _ => Some((lr, s)),
        })
        .ok_or(EvalError::NoFiniteScore { rule })?;
    Ok(GridSearch {
        rule,
        lr,
        score,
        scores,
    })
}

/// Mean and standard deviation (population, ddof = 0, numpy's default) of `values`; NaN for
/// an empty slice or when a value is NaN.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The runs of one optimizer in one scenario, as tables and CSV files see them.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    /// The optimizer's name.
    pub optimizer: String,
    /// The scenario (the classifier's activation, say).
    pub scenario: String,
    /// The learning rate of a hand-crafted rule.
    pub lr: Option<f64>,
    /// One trace per run.
    pub traces: Vec<Trace>,
}

impl Evaluated {
    /// Runs that stopped on a non-finite value.
    pub fn diverged(&self) -> usize {
        self.traces
            .iter()
            .filter(|t| t.non_finite_at.is_some())
            .count()
    }

    /// Mean ± std over runs of the accuracy at step `t`; `None` if it was measured in no run,
    /// NaN if some run stopped before `t`.
    pub fn accuracy(&self, t: usize) -> Option<(f64, f64)> {
        let values: Vec<Option<f64>> = self.traces.iter().map(|tr| tr.accuracy_at(t)).collect();
        if values.iter().all(Option::is_none) {
            return None;
        }
        let values: Vec<f64> = values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        Some(mean_std(&values))
    }

    /// Steps at which some run measured the accuracy, in increasing order.
    pub fn accuracy_steps(&self) -> Vec<usize> {
        let mut steps: Vec<usize> = self
            .traces
            .iter()
            .flat_map(|t| t.accuracy.iter().map(|(s, _)| *s))
            .collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    /// Per-step mean ± std over runs of a series (NaN at steps some run did not reach).
    pub fn per_step(&self, series: impl Fn(&Trace) -> &[f64]) -> Vec<(f64, f64)> {
        let len = self
            .traces
            .iter()
            .map(|t| series(t).len())
            .max()
            .unwrap_or(0);
        (0..len)
            .map(|s| {
                let values: Vec<f64> = self
                    .traces
                    .iter()
                    .map(|t| series(t).get(s).copied().unwrap_or(f64::NAN))
                    .collect();
                mean_std(&values)
            })
            .collect()
    }
}

/// `optimizer,activation,step,mean,std` rows: the accuracy (a fraction) at every measured
/// step.
pub fn accuracy_csv(results: &[Evaluated]) -> String {
    let mut out = String::from("optimizer,activation,step,mean,std\n");
    for r in results {
        for t in r.accuracy_steps() {
            if let Some((m, s)) = r.accuracy(t) {
                let _ = writeln!(out, "{},{},{t},{m:.6},{s:.6}", r.optimizer, r.scenario);
            }
        }
    }
    out
}

/// `optimizer,activation,step,{name}_mean,{name}_std` rows of a per-step series.
pub fn series_csv(
    results: &[Evaluated],
    name: &str,
    series: impl Fn(&Trace) -> &[f64] + Copy,
) -> String {
    let mut out = format!("optimizer,activation,step,{name}_mean,{name}_std\n");
    for r in results {
        for (t, (m, s)) in r.per_step(series).into_iter().enumerate() {
            let _ = writeln!(out, "{},{},{t},{m:.6e},{s:.6e}", r.optimizer, r.scenario);
        }
    }
    out
}

/// `optimizer,activation,step,loss_mean,loss_std`: the training curves (Fig. 1).
pub fn curves_csv(results: &[Evaluated]) -> String {
    series_csv(results, "loss", |t| &t.loss)
}

/// The paper's table at step `t` in Markdown: one row per optimizer, one column per scenario
/// (in order of first appearance), cells `mean ± std%` of the test accuracy.
pub fn accuracy_table(results: &[Evaluated], t: usize) -> String {
    let mut optimizers: Vec<&str> = Vec::new();
    let mut scenarios: Vec<&str> = Vec::new();
    for r in results {
        if !optimizers.contains(&r.optimizer.as_str()) {
            optimizers.push(&r.optimizer);
        }
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let mut out = format!("| Step t = {t} |");
    for s in &scenarios {
        let _ = write!(out, " {s} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(scenarios.len()));
    out.push('\n');
    for o in &optimizers {
        let _ = write!(out, "| {o} |");
        for s in &scenarios {
            let cell = results
                .iter()
                .find(|r| r.optimizer == *o && r.scenario == *s)
                .map_or("".to_string(), |r| match r.accuracy(t) {
                    None => "".into(),
                    Some((m, _)) if !m.is_finite() => {
                        format!("diverged ({}/{} runs)", r.diverged(), r.traces.len())
                    }
                    Some((m, sd)) => format!("{:.1} ± {:.1}%", 100.0 * m, 100.0 * sd),
                });
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}
