//! Recording a window of a learned optimizer's trajectory and its meta-loss. The inner
//! gradients are taken on the tape, so the meta-gradient includes the second-order terms unless
//! the run is first order (`∇f` a constant then).

use super::loss::{MetaLoss, TermContext};
use crate::optim::{Evaluation, OptState, OptimError, Optimizer, Oracle, Recording};
use crate::problems::{all_finite, Problem};
use crate::tape::{Scalar, Var};

/// A recorded window of inner steps.
pub struct Window<'t, T: Scalar> {
    /// The window's meta-loss (1 x 1): the sum, or the mean, of its terms.
    pub loss: Var<'t, T>,
    /// `f` at every evaluated point of the window, in step order.
    pub losses: Vec<f64>,
    /// How many terms the window's loss has.
    pub terms: usize,
}

/// Why a window could not be recorded.
#[derive(Debug)]
pub enum WindowError {
    /// `f` or `∇f` was not finite at this inner step.
    NonFinite {
        /// The inner step.
        step: usize,
    },
    /// The optimizer refused the problem or a step.
    Optim {
        /// The inner step.
        step: usize,
        /// Why.
        error: OptimError,
    },
    /// The meta-loss cannot score this trajectory.
    Loss(String),
}

/// What a window needs besides the state.
pub struct WindowSpec<'a, T: Scalar> {
    /// The problem.
    pub problem: &'a dyn Problem<T>,
    /// The meta-loss.
    pub meta_loss: &'a dyn MetaLoss<T>,
    /// The trajectory's horizon `T` (the window stops there).
    pub horizon: usize,
    /// At most this many updates.
    pub length: usize,
    /// Differentiate through `∇f`.
    pub second_order: bool,
}

/// Records up to `spec.length` updates of `opt` from `state` (stopping at the horizon) and
/// the window's meta-loss; `start_loss` is `f` at the trajectory's first point (set here when
/// the window starts the trajectory).
pub fn unroll_window<'t, T: Scalar>(
    opt: &dyn Optimizer<'t, T>,
    state: &mut OptState<'t, T>,
    spec: &WindowSpec<'_, T>,
    start_loss: &mut Option<f64>,
) -> Result<Window<'t, T>, WindowError> {
    let tape = state.x().tape();
    let recording = Recording::On {
        second_order: spec.second_order,
    };
    let oracle = |t: usize| Oracle::new(spec.problem, tape, t, recording);
    let after = spec.meta_loss.after_update();
    let from = state.step();
    let to = (from + spec.length).min(spec.horizon);
    let mut loss = tape.scalar(T::zero());
    let mut terms = 0;
    let mut losses = Vec::with_capacity(to.saturating_sub(from) + 1);
    let mut add_term = |loss: &mut Var<'t, T>, ctx: &TermContext<'_, 't, T>| {
        if let Some(term) = spec.meta_loss.term(ctx) {
            *loss = *loss + term;
            terms += 1;
        }
    };
    let mut at = oracle(from).evaluate(opt.query(state));
    let f = finite_loss(&at, from, true)?;
    losses.push(f);
    let start = match *start_loss {
        Some(s) => s,
        None => {
            spec.meta_loss
                .check(spec.problem, f)
                .map_err(WindowError::Loss)?;
            *start_loss = Some(f);
            f
        }
    };
    let context = |t: usize, at: &Evaluation<'t, T>, grad: bool| TermContext {
        step: t,
        horizon: spec.horizon,
        point: at.point,
        loss: at.loss,
        grad: grad.then_some(at.grad),
        start_loss: start,
        problem: spec.problem,
    };
    for t in from..to {
        if !after {
            add_term(&mut loss, &context(t, &at, true));
        }
        opt.update(state, &at, &oracle(t))
            .map_err(|error| WindowError::Optim { step: t, error })?;
        state.advance();
        let next = t + 1;
        if next < to {
            at = oracle(next).evaluate(opt.query(state));
            losses.push(finite_loss(&at, next, true)?);
            if after {
                add_term(&mut loss, &context(next, &at, true));
            }
        } else if after {
            // The window's last point: its loss is scored, its gradient is the next window's.
            let point = opt.query(state);
            let f = spec.problem.loss(point, next);
            let last = Evaluation {
                point,
                loss: f,
                grad: f,
            };
            losses.push(finite_loss(&last, next, false)?);
            add_term(&mut loss, &context(next, &last, false));
        }
    }
    if spec.meta_loss.mean() && terms > 0 {
        loss = loss.scale(T::cast(1.0 / terms as f64));
    }
    Ok(Window {
        loss,
        losses,
        terms,
    })
}

/// `f` at `at` as a number, if it (and `∇f` when `with_grad`) is finite.
fn finite_loss<T: Scalar>(
    at: &Evaluation<'_, T>,
    step: usize,
    with_grad: bool,
) -> Result<f64, WindowError> {
    let f = at.loss.scalar();
    if f.is_finite() && (!with_grad || all_finite(&at.grad.value_ref())) {
        Ok(f.as_f64())
    } else {
        Err(WindowError::NonFinite { step })
    }
}

/// A window scored off the record: its meta-loss as a number.
pub struct Scored {
    /// The window's meta-loss: the sum, or the mean, of its terms.
    pub loss: f64,
    /// `f` at every evaluated point of the window, in step order.
    pub losses: Vec<f64>,
}

/// [`unroll_window`] without recording (evolution strategies): the same steps and terms, with
/// values only; the tape is truncated after every step, so memory does not grow with the
/// window.
pub fn score_window<'t, T: Scalar>(
    opt: &dyn Optimizer<'t, T>,
    state: &mut OptState<'t, T>,
    spec: &WindowSpec<'_, T>,
    start_loss: &mut Option<f64>,
) -> Result<Scored, WindowError> {
    let tape = state.x().tape();
    let oracle = |t: usize| Oracle::new(spec.problem, tape, t, Recording::Off);
    let after = spec.meta_loss.after_update();
    let from = state.step();
    let to = (from + spec.length).min(spec.horizon);
    let mark = tape.mark();
    let (mut sum, mut terms) = (0.0, 0usize);
    let mut losses = Vec::with_capacity(to.saturating_sub(from) + 1);
    let mut start = *start_loss;
    let mut term =
        |t: usize, at: &Evaluation<'t, T>, grad: bool, start: f64| -> Result<(), WindowError> {
            let ctx = TermContext {
                step: t,
                horizon: spec.horizon,
                point: at.point,
                loss: at.loss,
                grad: grad.then_some(at.grad),
                start_loss: start,
                problem: spec.problem,
            };
            if let Some(v) = tape.no_grad(|| spec.meta_loss.term(&ctx)) {
                sum += v.scalar().as_f64();
                terms += 1;
            }
            Ok(())
        };
    for t in from..=to {
        let last = t == to;
        if last && !after {
            break;
        }
        let at = if last {
            // The window's last point is only scored.
            let point = opt.query(state);
            let f = tape.no_grad(|| spec.problem.loss(point, t));
            Evaluation {
                point,
                loss: f,
                grad: f,
            }
        } else {
            oracle(t).evaluate(opt.query(state))
        };
        let f = finite_loss(&at, t, !last)?;
        losses.push(f);
        let s = match start {
            Some(s) => s,
            None => {
                spec.meta_loss
                    .check(spec.problem, f)
                    .map_err(WindowError::Loss)?;
                start = Some(f);
                f
            }
        };
        if after && t > from {
            term(t, &at, !last, s)?;
        }
        if last {
            break;
        }
        if !after {
            term(t, &at, true, s)?;
        }
        tape.no_grad(|| opt.update(state, &at, &oracle(t)))
            .map_err(|error| WindowError::Optim { step: t, error })?;
        state.advance();
        let values = state.values();
        tape.truncate(mark);
        *state = OptState::restore(tape, &values, false);
    }
    *start_loss = start;
    if spec.meta_loss.mean() && terms > 0 {
        sum /= terms as f64;
    }
    Ok(Scored { loss: sum, losses })
}
