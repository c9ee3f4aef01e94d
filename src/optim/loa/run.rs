//! LOA trajectories: recorded (meta-gradients to the 216 parameters) and unrecorded.

use super::{armijo, Iterates, LoaBfgs, LoaError, Start};
use crate::meta::Task;
use crate::models::Bound;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::{DMatrix, DVector};

/// How step sizes are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineSearch {
    /// The original's Armijo backtracking ([`armijo`]), outside the graph.
    Armijo,
    /// A fixed step size (a smooth meta-loss, for gradient checks).
    Fixed(f64),
}

/// Which dependencies of a recorded unroll on the parameters are differentiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerGradients {
    /// Everything: `∇f(x_k)` is differentiated (second-order terms through the tape), and so
    /// are the features, `Δg` and `s`. The exact gradient of the meta-loss (with the step
    /// sizes held constant), checked against finite differences.
    Exact,
    /// As the original: features, `Δg`, `s` and `g_k` are constants (`no_grad`/`detach`);
    /// only `u` and the chain of `H_k` and `x_k` carry the parameters. Cheaper, biased.
    Detached,
}

/// Settings of an LOA unroll.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoaConfig {
    /// Number of steps `T`.
    pub steps: usize,
    /// Step sizes.
    pub line_search: LineSearch,
    /// What a recorded unroll differentiates.
    pub gradients: InnerGradients,
    /// The floor `ε` in the meta-loss `mean_k log(r_k + ε)`.
    pub floor: f64,
}

impl LoaConfig {
    /// `steps` steps, Armijo, exact gradients, floor `1e-12`.
    pub fn new(steps: usize) -> Self {
        LoaConfig {
            steps,
            line_search: LineSearch::Armijo,
            gradients: InnerGradients::Exact,
            floor: 1e-12,
        }
    }
}

/// A recorded unroll: the meta-loss on the tape and the iterates' values.
pub struct LoaUnrolled<'t, T: Scalar> {
    /// `1/T Σ_{k=1..T} log((f(x_k) - F*)/(f(x_0) - F*) + ε)` (1 x 1).
    pub meta_loss: Var<'t, T>,
    /// The values and points of the run.
    pub iterates: Iterates,
}

fn to_vec<T: Scalar>(m: &DMatrix<T>) -> DVector<f64> {
    DVector::from_iterator(m.len(), m.iter().map(|v| v.as_f64()))
}

fn to_mat<T: Scalar>(v: &DVector<f64>) -> DMatrix<T> {
    DMatrix::from_iterator(v.len(), 1, v.iter().map(|&x| T::cast(x)))
}

fn finite<T: Scalar>(m: &DMatrix<T>, step: usize, what: &str) -> Result<(), LoaError> {
    if m.iter().all(|v| v.as_f64().is_finite()) {
        Ok(())
    } else {
        Err(LoaError::NonFinite {
            meta_step: None,
            step,
            quantity: what.to_string(),
        })
    }
}

impl<T: Scalar> LoaBfgs<T> {
    /// Records `cfg.steps` LOA steps from `x_{-1}` on `bound`'s tape and the meta-loss
    /// (see [`LoaUnrolled`]); needs the task's `smoothness` (for `x_0`) and `infimum`.
    ///
    /// Meta-loss: the mean log relative suboptimality weighs every instance and every step
    /// equally whatever the scale of `f` (a sum of `f` would be dominated by the first steps of
    /// the worst-scaled instance) and rewards the rate, which is what a quasi-Newton method is
    /// judged on; `ε` keeps it finite at convergence, and a rounding-negative gap contributes
    /// the constant `log ε`.
    pub fn unroll<'t>(
        &self,
        bound: &Bound<'t, T>,
        task: &dyn Task<T>,
        x_minus1: &DVector<f64>,
        cfg: &LoaConfig,
    ) -> Result<LoaUnrolled<'t, T>, LoaError> {
        if cfg.steps == 0 || !(cfg.floor > 0.0) {
            return Err(LoaError::Config(format!(
                "an unroll needs steps >= 1 and floor > 0 (got {} and {})",
                cfg.steps, cfg.floor
            )));
        }
        let f_star = task.infimum().ok_or(LoaError::MissingConstant("infimum"))?;
        let (loss, iterates) = self.trajectory(bound, task, x_minus1, cfg, Some(f_star))?;
        Ok(LoaUnrolled {
            meta_loss: loss.expect("recorded"),
            iterates,
        })
    }

    /// Runs `steps` LOA steps without recording anything, on a fresh tape.
    pub fn run(
        &self,
        task: &dyn Task<T>,
        x_minus1: &DVector<f64>,
        steps: usize,
        line_search: LineSearch,
    ) -> Result<Iterates, LoaError> {
        let tape = Tape::new();
        self.run_on(
            &self.params().bind_constants(&tape),
            task,
            x_minus1,
            steps,
            line_search,
        )
    }

    /// [`LoaBfgs::run`] with parameters already bound: each step is truncated away, so the
    /// tape does not grow.
    pub fn run_on(
        &self,
        bound: &Bound<'_, T>,
        task: &dyn Task<T>,
        x_minus1: &DVector<f64>,
        steps: usize,
        line_search: LineSearch,
    ) -> Result<Iterates, LoaError> {
        let cfg = LoaConfig {
            line_search,
            ..LoaConfig::new(steps)
        };
        Ok(self.trajectory(bound, task, x_minus1, &cfg, None)?.1)
    }

    fn trajectory<'t>(
        &self,
        bound: &Bound<'t, T>,
        task: &dyn Task<T>,
        x_minus1: &DVector<f64>,
        cfg: &LoaConfig,
        record: Option<f64>,
    ) -> Result<(Option<Var<'t, T>>, Iterates), LoaError> {
        if x_minus1.len() != task.dim() {
            return Err(LoaError::Dimension {
                expected: task.dim(),
                got: x_minus1.len(),
            });
        }
        let tape: &'t Tape<T> = bound.vars()[0].tape();
        let lambda_max = task
            .smoothness()
            .ok_or(LoaError::MissingConstant("smoothness"))?;
        let value = |x: &DMatrix<T>, k: usize| -> f64 {
            tape.no_grad(|| {
                let mark = tape.mark();
                let v = task.loss(tape.constant(x.clone()), k).scalar().as_f64();
                tape.truncate(mark);
                v
            })
        };
        let gradient = |x: &DVector<f64>| -> DVector<f64> {
            let mark = tape.mark();
            let p = tape.param(to_mat::<T>(x));
            let g = tape.grad(&[task.loss(p, 0)], &[p], false)[0].value();
            tape.truncate(mark);
            to_vec(&g)
        };
        let start = Start::new(x_minus1, lambda_max, gradient)?;
        let detach = cfg.gradients == InnerGradients::Detached;
        let exact = record.is_some() && !detach;
        let mut h = tape.constant(start.h0().map(T::cast));
        let mut x = tape.param(to_mat::<T>(&start.x0));
        let mut g_prev = tape.constant(to_mat::<T>(&start.g_prev));
        let mut d_prev = tape.constant(to_mat::<T>(&(&start.x0 - &start.x_prev)));
        let mut alpha_prev = 1.0;
        let mut out = Iterates::default();
        let mut terms: Vec<Var<'t, T>> = Vec::new();
        let mark = tape.mark();
        for k in 0..=cfg.steps {
            let fx = task.loss(x, k);
            let f = fx.scalar().as_f64();
            finite(&fx.value(), k, "f(x_k)")?;
            out.values.push(f);
            out.points.push(to_vec(&x.value()));
            if let (Some(f_star), true) = (record, k > 0) {
                let gap0 = out.values[0] - f_star;
                if !(gap0 > 0.0) {
                    return Err(LoaError::Start(format!(
                        "f(x_0) - F* = {gap0} is not positive: nothing to optimize"
                    )));
                }
                let r = fx.add_scalar(T::cast(-f_star)).scale(T::cast(1.0 / gap0));
                let term = if (f - f_star) / gap0 + cfg.floor > 0.0 {
                    r.add_scalar(T::cast(cfg.floor)).log()
                } else {
                    tape.scalar(T::cast(cfg.floor.ln()))
                };
                terms.push(term);
            }
            if k == cfg.steps {
                break;
            }
            let g = if exact {
                tape.grad(&[fx], &[x], true)[0]
            } else {
                tape.constant(tape.grad(&[fx], &[x], false)[0].value())
            };
            let (h_new, d, skipped) =
                self.step(bound, h, g, g_prev, d_prev, T::cast(alpha_prev), detach);
            out.skipped_updates += skipped as usize;
            let d_val = d.value();
            finite(&d_val, k, "the direction d_k = -H_k g_k")?;
            let slope: f64 = to_vec(&d_val).dot(&to_vec(&g.value()));
            let x_val = x.value();
            let alpha = match cfg.line_search {
                LineSearch::Armijo => armijo(
                    |a| value(&(&x_val + d_val.map(|v| v * T::cast(a))), k),
                    f,
                    slope,
                ),
                LineSearch::Fixed(a) => a,
            };
            out.step_sizes.push(alpha);
            let step = d.scale(T::cast(alpha));
            if record.is_some() {
                (h, g_prev, d_prev, x) = (h_new, g, step, x + step);
            } else {
                let (h_val, g_val, s_val) = (h_new.value(), g.value(), step.value());
                tape.truncate(mark);
                h = tape.constant(h_val);
                g_prev = tape.constant(g_val);
                x = tape.param(&x_val + &s_val);
                d_prev = tape.constant(s_val);
            }
            alpha_prev = alpha;
        }
        let loss = record.map(|_| {
            let n = terms.len().max(1);
            let first = terms[0];
            terms[1..]
                .iter()
                .fold(first, |acc, &t| acc + t)
                .scale(T::cast(1.0 / n as f64))
        });
        Ok((loss, out))
    }
}
