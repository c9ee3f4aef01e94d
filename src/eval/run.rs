//! One run loop for any optimizer on any problem, unrecorded and in flat memory, recording
//! what the caller's probes read at each step.
//!
//! A run never panics on divergence: the first step whose `f`, `∇f` or update is not finite
//! ends it and is recorded in [`Trace::non_finite_at`] (a diverging baseline at some learning
//! rate is just a bad score for a grid search).

use super::probes::{self, Probe, Steps};
use crate::optim::{Algorithm, OptState, OptimError, Oracle, Recording};
use crate::problems::{all_finite, Problem};
use crate::tape::{Scalar, Tape};
use nalgebra::DMatrix;
use rayon::prelude::*;
use std::fmt;

/// What a run does: how many steps, and what it records.
pub struct RunConfig<'p, T: Scalar> {
    /// Number of updates S: the run goes from `x_0` to `x_S`.
    pub steps: usize,
    /// What is recorded, and when.
    pub probes: Vec<Probe<'p, T>>,
}

impl<'p, T: Scalar> RunConfig<'p, T> {
    /// `steps` updates recording, at every step, `loss` (`f` at the query point),
    /// `param_norm` (`|x_t|`) and `update_norm` (`|x_{t+1} - x_t|`).
    pub fn new(steps: usize) -> Self {
        RunConfig {
            steps,
            probes: vec![probes::loss(), probes::param_norm(), probes::update_norm()],
        }
    }

    /// `steps` updates recording nothing (the last point is still returned).
    pub fn bare(steps: usize) -> Self {
        RunConfig {
            steps,
            probes: Vec::new(),
        }
    }

    /// The same with one more probe.
    pub fn with(mut self, probe: Probe<'p, T>) -> Self {
        self.probes.push(probe);
        self
    }
}

/// One named series of a run: `(step, value)` points in increasing step order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The probe's name.
    pub name: String,
    /// `(t, value)`.
    pub points: Vec<(usize, f64)>,
}

/// The record of one run.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Trace {
    /// One series per probe, in the order of the probes.
    pub series: Vec<Series>,
    /// The step whose `f`, `∇f` or update was first not finite: the run stopped there and the
    /// series hold the steps before it.
    pub non_finite_at: Option<usize>,
}

impl Trace {
    /// The series `name`, if recorded.
    pub fn series(&self, name: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.name == name)
    }

    /// The values of series `name` in step order (empty if not recorded).
    pub fn values(&self, name: &str) -> Vec<f64> {
        self.series(name)
            .map(|s| s.points.iter().map(|(_, v)| *v).collect())
            .unwrap_or_default()
    }

    /// The value of series `name` at step `t`, if recorded there.
    pub fn at(&self, name: &str, t: usize) -> Option<f64> {
        self.series(name)?
            .points
            .iter()
            .find(|(s, _)| *s == t)
            .map(|(_, v)| *v)
    }

    /// Appends `(t, value)` to series `name` (created on first use).
    pub fn push(&mut self, name: &str, t: usize, value: f64) {
        match self.series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((t, value)),
            None => self.series.push(Series {
                name: name.to_string(),
                points: vec![(t, value)],
            }),
        }
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
    /// The optimizer refused the problem or a step (a hyperparameter, a dimension).
    Optim(OptimError),
    /// The settings contradict themselves.
    Config(String),
    /// A computation failed (an operation refused its input); the message is the operation's.
    Failed(String),
    /// Every learning rate of a grid search diverged.
    NoFiniteScore {
        /// The optimizer searched.
        optimizer: String,
    },
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Optim(e) => write!(f, "evaluation: {e}"),
            EvalError::Config(m) => write!(f, "evaluation settings: {m}"),
            EvalError::Failed(m) => write!(f, "evaluation failed: {m}"),
            EvalError::NoFiniteScore { optimizer } => {
                write!(
                    f,
                    "grid search of {optimizer}: every learning rate diverged"
                )
            }
        }
    }
}

impl std::error::Error for EvalError {}

impl From<OptimError> for EvalError {
    fn from(e: OptimError) -> Self {
        EvalError::Optim(e)
    }
}

/// What a probe sees at step `t`: the iterate before the update, and (except at the final
/// step `S`, where only `x_S` is known) the loss and gradient at the query point, the next
/// iterate and what the update reported.
pub struct StepView<'a, T: Scalar> {
    /// The step `t`.
    pub step: usize,
    /// `x_t`.
    pub x: &'a DMatrix<T>,
    /// `x_{t+1}` (none at the final step).
    pub next: Option<&'a DMatrix<T>>,
    /// `f` at the query point (none at the final step).
    pub loss: Option<f64>,
    /// `∇f` at the query point (none at the final step).
    pub grad: Option<&'a DMatrix<T>>,
    /// The tensors the update reported (ConvergentL2O's `v`, `z`), as values.
    pub tensors: &'a [(&'static str, DMatrix<T>)],
    /// The numbers the update reported (a step size `eta`, a line search's `alpha`).
    pub numbers: &'a [(&'static str, f64)],
    /// The problem.
    pub problem: &'a dyn Problem<T>,
}

impl<T: Scalar> StepView<'_, T> {
    /// The reported tensor `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&DMatrix<T>> {
        self.tensors
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| m)
    }

    /// The reported number `name`, if any.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.numbers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// Runs `algorithm` on `problem` from `x0` for `cfg.steps` updates, unrecorded, calling the
/// probes. Memory stays flat whatever the number of steps: the tape is truncated after every
/// step and the optimizer's state carried over as values.
///
/// ```
/// use convergent_l2o::eval::{probes, run, RunConfig};
/// use convergent_l2o::optim::Adam;
/// use convergent_l2o::problems::Quadratic;
/// use nalgebra::{dmatrix, DMatrix};
///
/// let q = Quadratic::<f64>::new(DMatrix::identity(2, 2), DMatrix::zeros(2, 1)).unwrap();
/// let cfg = RunConfig::new(200).with(probes::grad_norm_sq());
/// let out = run(&Adam::new(0.1).unwrap(), &q, &dmatrix![1.0; -2.0], &cfg).unwrap();
/// assert_eq!(out.trace.values("loss").len(), 200);
/// assert!(out.last.norm() < 1e-2);
/// ```
pub fn run<T: Scalar>(
    algorithm: &(impl Algorithm<T> + ?Sized),
    problem: &dyn Problem<T>,
    x0: &DMatrix<T>,
    cfg: &RunConfig<'_, T>,
) -> Result<Run<T>, EvalError> {
    for p in &cfg.probes {
        if let Steps::At(ts) = p.steps() {
            if let Some(t) = ts.iter().find(|&&t| t > cfg.steps) {
                return Err(EvalError::Config(format!(
                    "probe '{}' requested at step {t}, past the {} steps",
                    p.name(),
                    cfg.steps
                )));
            }
        }
    }
    if x0.shape() != (problem.dim(), 1) {
        return Err(EvalError::Config(format!(
            "x0 is {:?}, the problem has dimension {}",
            x0.shape(),
            problem.dim()
        )));
    }
    // A panic inside an operation (a singular matrix in a learned optimizer's parameter map,
    // say) is an error naming it, not an abort of the caller. Unwind safety: the run owns its
    // tape and only reads the algorithm, the problem and the settings.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_unchecked(algorithm, problem, x0, cfg)
    }));
    outcome.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into());
        Err(EvalError::Failed(message))
    })
}

/// The run of [`run`], its settings checked.
fn run_unchecked<T: Scalar>(
    algorithm: &(impl Algorithm<T> + ?Sized),
    problem: &dyn Problem<T>,
    x0: &DMatrix<T>,
    cfg: &RunConfig<'_, T>,
) -> Result<Run<T>, EvalError> {
    let tape = Tape::<T>::new();
    let opt = algorithm.instantiate(&tape);
    // Everything before the mark (meta-parameters, a REN's explicit model) lives for the whole
    // run; everything after it is one step's and is dropped at the step's end.
    let mark = tape.mark();
    let oracle = Oracle::new(problem, &tape, 0, Recording::Off);
    let state = opt.init(tape.constant(x0.clone()), &oracle)?;
    let mut carried = Some(state.values());
    tape.truncate(mark);
    let mut trace = Trace::default();
    for p in &cfg.probes {
        trace.series.push(Series {
            name: p.name().to_string(),
            points: Vec::new(),
        });
    }
    // The state moves onto the tape at each step and comes back as values after the update;
    // x_t stays readable on the tape for the probes and the tape is truncated afterwards, so
    // nothing is copied but the carried state.
    let mut stopped_at = None;
    for t in 0..cfg.steps {
        let values = carried.take().expect("the state is carried until a stop");
        let mut state = OptState::restore_owned(&tape, values, false);
        let x_t = state.x();
        let oracle = Oracle::new(problem, &tape, t, Recording::Off);
        let at = oracle.evaluate(opt.query(&state));
        let loss = at.loss.scalar().as_f64();
        if !(loss.is_finite() && all_finite(&at.grad.value_ref())) {
            trace.non_finite_at = Some(t);
            stopped_at = Some(x_t.value());
            break;
        }
        let info = tape.no_grad(|| opt.update(&mut state, &at, &oracle))?;
        state.advance();
        let next_values = state.values();
        if !all_finite(next_values.x()) {
            trace.non_finite_at = Some(t);
            stopped_at = Some(x_t.value());
            break;
        }
        let tensors: Vec<(&'static str, DMatrix<T>)> =
            info.tensors.iter().map(|(n, v)| (*n, v.value())).collect();
        {
            let (x, grad) = (x_t.value_ref(), at.grad.value_ref());
            let view = StepView {
                step: t,
                x: &x,
                next: Some(next_values.x()),
                loss: Some(loss),
                grad: Some(&grad),
                tensors: &tensors,
                numbers: &info.numbers,
                problem,
            };
            record(&mut trace, &cfg.probes, &view, false);
        }
        carried = Some(next_values);
        tape.truncate(mark);
    }
    let last = match (stopped_at, carried) {
        (Some(x), _) => x,
        (None, None) => unreachable!("a run that did not stop carries its state"),
        (None, Some(values)) => {
            let last = values.x().clone();
            let view = StepView {
                step: cfg.steps,
                x: &last,
                next: None,
                loss: None,
                grad: None,
                tensors: &[],
                numbers: &[],
                problem,
            };
            record(&mut trace, &cfg.probes, &view, true);
            last
        }
    };
    Ok(Run { trace, last })
}

/// Calls every probe due at `view.step` and appends its value.
fn record<T: Scalar>(
    trace: &mut Trace,
    probes: &[Probe<'_, T>],
    view: &StepView<'_, T>,
    last: bool,
) {
    for (p, series) in probes.iter().zip(trace.series.iter_mut()) {
        let due = match p.steps() {
            Steps::Every => !last,
            Steps::At(ts) => ts.contains(&view.step),
        };
        if due {
            series.points.push((view.step, p.read(view)));
        }
    }
}

/// [`run`] from each of `x0s`, in parallel (rayon); the runs come back in the order of `x0s`
/// and each is computed exactly as alone, so results do not depend on the threads.
pub fn run_from_each<T: Scalar>(
    algorithm: &(impl Algorithm<T> + ?Sized),
    problem: &dyn Problem<T>,
    x0s: &[DMatrix<T>],
    cfg: &RunConfig<'_, T>,
) -> Result<Vec<Run<T>>, EvalError> {
    x0s.par_iter()
        .map(|x0| run(algorithm, problem, x0, cfg))
        .collect()
}
