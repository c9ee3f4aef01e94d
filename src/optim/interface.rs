//! The one optimizer interface (learned_optimization's `Optimizer{init, update}` and
//! `LearnedOptimizer.opt_fn`), and what an update may ask of the problem ([`Oracle`]).
//!
//! A run evaluates `f` and `∇f` at the optimizer's query point, hands them to
//! [`Optimizer::update`], which moves the state to the next iterate; the same code runs
//! recorded (meta-training differentiates through it) and unrecorded (evaluation, with the tape
//! truncated after each step).

use super::{HyperError, OptState};
use crate::models::{Bound, Params, ParamsError};
use crate::problems::Problem;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use std::fmt;

/// `f` and `∇f` at a point.
#[derive(Clone, Copy)]
pub struct Evaluation<'t, T: Scalar> {
    /// The point.
    pub point: Var<'t, T>,
    /// `f(point)` (1 x 1).
    pub loss: Var<'t, T>,
    /// `∇f(point)`.
    pub grad: Var<'t, T>,
}

/// How a run is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recording {
    /// Off the record: values only, the tape is truncated between steps (evaluation, ES).
    Off,
    /// Recorded for a meta-gradient; `second_order` keeps the dependence of `∇f` on the
    /// meta-parameters (the paper), without it `∇f` is a constant (Andrychowicz et al.'s
    /// first-order approximation).
    On {
        /// Differentiate through `∇f`.
        second_order: bool,
    },
}

/// The problem as an update sees it at one inner step, with the run's recording built in: every
/// `f` and `∇f` an optimizer asks for (at its query point, a line-search trial, an
/// extrapolated point) is recorded or not, second order or not, as the run says.
#[derive(Clone, Copy)]
pub struct Oracle<'a, 't, T: Scalar> {
    problem: &'a dyn Problem<T>,
    tape: &'t Tape<T>,
    step: usize,
    recording: Recording,
}

impl<'a, 't, T: Scalar> Oracle<'a, 't, T> {
    /// The oracle of `problem` at inner step `step` on `tape`.
    pub fn new(
        problem: &'a dyn Problem<T>,
        tape: &'t Tape<T>,
        step: usize,
        recording: Recording,
    ) -> Self {
        Oracle {
            problem,
            tape,
            step,
            recording,
        }
    }

    /// The problem.
    pub fn problem(&self) -> &'a dyn Problem<T> {
        self.problem
    }

    /// The tape of the run.
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// The inner step `t` (the minibatch a stochastic problem shows).
    pub fn step(&self) -> usize {
        self.step
    }

    /// How the run is recorded.
    pub fn recording(&self) -> Recording {
        self.recording
    }

    /// Whether the run is recorded (meta-gradients flow through the update).
    pub fn is_recorded(&self) -> bool {
        matches!(self.recording, Recording::On { .. })
    }

    /// The same oracle at another inner step.
    pub fn at_step(&self, step: usize) -> Self {
        Oracle { step, ..*self }
    }

    /// `f` and `∇f` at `x` at this step. Recorded: `∇f` is differentiable again when the run
    /// is second order, a constant otherwise. Unrecorded: both are constants.
    pub fn evaluate(&self, x: Var<'t, T>) -> Evaluation<'t, T> {
        match self.recording {
            Recording::On { second_order } => {
                // The gradient needs a differentiable point; a constant point (a start built
                // from data alone) depends on no meta-parameter, so a fresh leaf is the same.
                let at = if x.requires_grad() {
                    x
                } else {
                    self.tape.param(x.value())
                };
                let (loss, grad) = self.problem.loss_and_grad(at, self.step, second_order);
                let grad = if second_order {
                    grad
                } else {
                    grad.stop_gradient()
                };
                Evaluation {
                    point: x,
                    loss,
                    grad,
                }
            }
            Recording::Off => {
                let was = self.tape.set_recording(true);
                let at = self.tape.param(x.value());
                let (loss, grad) = self.problem.loss_and_grad(at, self.step, false);
                let loss = loss.value();
                // The default `loss_and_grad`'s unrecorded gradient is a constant already, kept
                // without a copy; a problem's own may hand back a recorded one, cut here.
                let grad = if grad.requires_grad() {
                    self.tape.constant(grad.value())
                } else {
                    grad
                };
                self.tape.set_recording(was);
                Evaluation {
                    point: x,
                    loss: self.tape.constant(loss),
                    grad,
                }
            }
        }
    }

    /// `f(x)` at this step as a number, off the record (line-search trials); the tape does not
    /// grow.
    pub fn value(&self, x: &DMatrix<T>) -> f64 {
        let mark = self.tape.mark();
        let f = self
            .tape
            .no_grad(|| self.problem.loss(self.tape.constant(x.clone()), self.step));
        let v = f.scalar().as_f64();
        self.tape.truncate(mark);
        v
    }
}

/// What an update reports besides the new state: named tensors (ConvergentL2O's `v_t`, the
/// REN's output `z_t`) and numbers (the step size `η_t`, a line search's `α`), for probes and
/// certificates.
#[derive(Clone, Default)]
pub struct StepInfo<'t, T: Scalar> {
    /// Named tensors.
    pub tensors: Vec<(&'static str, Var<'t, T>)>,
    /// Named numbers.
    pub numbers: Vec<(&'static str, f64)>,
}

impl<'t, T: Scalar> StepInfo<'t, T> {
    /// Nothing to report.
    pub fn none() -> Self {
        StepInfo {
            tensors: Vec::new(),
            numbers: Vec::new(),
        }
    }

    /// The tensor `name`, if reported.
    pub fn tensor(&self, name: &str) -> Option<Var<'t, T>> {
        self.tensors
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }

    /// The number `name`, if reported.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.numbers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// Why an optimizer cannot run on a problem or could not take a step.
#[derive(Clone, Debug, PartialEq)]
pub enum OptimError {
    /// A hyperparameter is inadmissible (for this problem: a step size at or above `1/β`
    /// where a guarantee is claimed).
    Hyper(HyperError),
    /// The optimizer is built for another dimension.
    Dimension {
        /// The optimizer.
        optimizer: String,
        /// The dimension it needs.
        expected: usize,
        /// The problem's.
        found: usize,
    },
    /// The problem does not provide what the optimizer needs (its smoothness, its infimum).
    Requires {
        /// The optimizer.
        optimizer: String,
        /// What is missing.
        what: &'static str,
    },
    /// A step could not be taken (a non-finite direction, say).
    Step {
        /// The optimizer.
        optimizer: String,
        /// What went wrong.
        detail: String,
    },
}

impl fmt::Display for OptimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptimError::Hyper(e) => write!(f, "{e}"),
            OptimError::Dimension {
                optimizer,
                expected,
                found,
            } => write!(
                f,
                "{optimizer} is built for dimension {expected}, the problem has dimension {found}"
            ),
            OptimError::Requires { optimizer, what } => {
                write!(
                    f,
                    "{optimizer} needs the problem's {what}, which it does not give"
                )
            }
            OptimError::Step { optimizer, detail } => write!(f, "{optimizer}: {detail}"),
        }
    }
}

impl std::error::Error for OptimError {}

impl From<HyperError> for OptimError {
    fn from(e: HyperError) -> Self {
        OptimError::Hyper(e)
    }
}

/// An optimizer on a tape: a state from `x0` ([`Optimizer::init`]) and steps
/// ([`Optimizer::update`]), recorded or not as the [`Oracle`] says.
///
/// The run loop (meta-training's unroll, evaluation's run) takes `f` and `∇f` at
/// [`Optimizer::query`] of the state, calls `update`, then counts the step
/// ([`OptState::advance`]).
pub trait Optimizer<'t, T: Scalar> {
    /// A short name for tables ("Adam", "ConvergentL2O", ...).
    fn name(&self) -> String;

    /// The state of a trajectory from `x0` (a `dim x 1` column on the oracle's tape); errors
    /// if the optimizer does not fit the problem (a dimension, a step size at or above `1/β`
    /// where a guarantee is claimed, a constant the problem does not give).
    fn init(
        &self,
        x0: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError>;

    /// Where `f` and `∇f` are taken for the next update: the iterate by default, an
    /// extrapolated point for FISTA-like methods.
    fn query(&self, state: &OptState<'t, T>) -> Var<'t, T> {
        state.x()
    }

    /// One update from `f` and `∇f` at the query point (`at`): moves the state's iterate to
    /// `x_{t+1}` and its other parts along, and reports what probes may read.
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError>;
}

/// A learned optimizer: meta-parameters in one [`Params`], and for meta-parameters bound on a
/// tape the [`Optimizer`] they define (learned_optimization's `LearnedOptimizer.opt_fn`).
///
/// `Sync` because meta-training and evaluation run trajectories in parallel, each on a tape of
/// its own.
pub trait LearnedOptimizer<T: Scalar>: Sync {
    /// A short name for tables and progress lines.
    fn name(&self) -> String;

    /// The meta-parameters.
    fn params(&self) -> &Params<T>;

    /// Replaces the meta-parameters, refusing (with the tensor's name) a missing, extra or
    /// misshapen tensor; values are matched by name.
    fn set_params(&mut self, params: Params<T>) -> Result<(), ParamsError>;

    /// The optimizer the meta-parameters `theta` define (bound on a tape as leaves for
    /// meta-gradients, or as constants for evaluation); work that depends only on `theta` (a
    /// REN's parameter map) is done here, once for all trajectories.
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, T>) -> Box<dyn Optimizer<'t, T> + 'a>;
}

/// What evaluation runs: a hand-crafted optimizer, or a learned one with its meta-parameters
/// frozen ([`Frozen`]), made into an [`Optimizer`] on a run's tape.
pub trait Algorithm<T: Scalar>: Sync {
    /// A short name for tables.
    fn name(&self) -> String;
    /// The optimizer on `tape` (a learned one binds its meta-parameters there as constants).
    fn instantiate<'a, 't: 'a>(&'a self, tape: &'t Tape<T>) -> Box<dyn Optimizer<'t, T> + 'a>;
}

/// A learned optimizer with its meta-parameters as they are, for evaluation.
pub struct Frozen<'a, L: ?Sized>(pub &'a L);

impl<T: Scalar, L: LearnedOptimizer<T> + ?Sized> Algorithm<T> for Frozen<'_, L> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn instantiate<'a, 't: 'a>(&'a self, tape: &'t Tape<T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        self.0.optimizer(self.0.params().bind_constants(tape))
    }
}

/// A hand-crafted optimizer of one's own (any `Clone` type implementing [`Optimizer`] on every
/// tape) as an [`Algorithm`]; the library's own implement [`Algorithm`] directly.
#[derive(Clone, Debug)]
pub struct Fixed<O>(pub O);

impl<T: Scalar, O> Algorithm<T> for Fixed<O>
where
    O: for<'t> Optimizer<'t, T> + Sync,
{
    fn name(&self) -> String {
        self.0.name()
    }
    fn instantiate<'a, 't: 'a>(&'a self, _tape: &'t Tape<T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        Box::new(Borrowed(&self.0))
    }
}

/// An optimizer used by reference.
struct Borrowed<'a, O>(&'a O);

impl<'t, T: Scalar, O: Optimizer<'t, T>> Optimizer<'t, T> for Borrowed<'_, O> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn init(
        &self,
        x0: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError> {
        self.0.init(x0, oracle)
    }
    fn query(&self, state: &OptState<'t, T>) -> Var<'t, T> {
        self.0.query(state)
    }
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        self.0.update(state, at, oracle)
    }
}

/// Implements [`Algorithm`] for hand-crafted optimizers (types implementing [`Optimizer`] on
/// every tape).
macro_rules! hand_crafted_algorithm {
    ($($ty:ty),* $(,)?) => {$(
        impl<T: $crate::tape::Scalar> $crate::optim::Algorithm<T> for $ty {
            fn name(&self) -> String {
                <Self as $crate::optim::Optimizer<'static, T>>::name(self)
            }
            fn instantiate<'a, 't: 'a>(
                &'a self,
                _tape: &'t $crate::tape::Tape<T>,
            ) -> Box<dyn $crate::optim::Optimizer<'t, T> + 'a> {
                Box::new(self.clone())
            }
        }
    )*};
}
pub(crate) use hand_crafted_algorithm;

/// Implements [`Tunable`] for hand-crafted optimizers with a `lr` field and a
/// `validated(self)` check.
macro_rules! tunable {
    ($($ty:ty),* $(,)?) => {$(
        impl<T: $crate::tape::Scalar> $crate::optim::Tunable<T> for $ty {
            fn lr(&self) -> f64 {
                self.lr
            }
            fn with_lr(
                &self,
                lr: f64,
            ) -> Result<Box<dyn $crate::optim::Tunable<T>>, $crate::optim::HyperError> {
                Ok(Box::new(Self { lr, ..self.clone() }.validated()?))
            }
        }
    )*};
}
pub(crate) use tunable;

/// A hand-crafted optimizer whose learning rate can be tuned (a grid search sets it).
pub trait Tunable<T: Scalar>: Algorithm<T> {
    /// The learning rate.
    fn lr(&self) -> f64;
    /// The same optimizer with learning rate `lr`, checked.
    fn with_lr(&self, lr: f64) -> Result<Box<dyn Tunable<T>>, HyperError>;
}

/// A hyperparameter of an update: a fixed number, or a variable on the tape (a meta-learned
/// step size or momentum, differentiated through).
#[derive(Clone, Copy)]
pub enum Rate<'t, T: Scalar> {
    /// A number.
    Fixed(f64),
    /// A 1 x 1 variable.
    Var(Var<'t, T>),
}

impl<'t, T: Scalar> Rate<'t, T> {
    /// `rate * v`.
    pub fn times(&self, v: Var<'t, T>) -> Var<'t, T> {
        match self {
            Rate::Fixed(c) => v.scale(T::cast(*c)),
            Rate::Var(r) => v.mul_scalar(*r),
        }
    }

    /// Whether the rate is the fixed number 0 (a term that can be skipped).
    pub fn is_zero(&self) -> bool {
        matches!(self, Rate::Fixed(c) if *c == 0.0)
    }
}
