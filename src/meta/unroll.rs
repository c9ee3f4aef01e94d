//! Recording a learned optimizer's trajectory on a task and its meta-loss (7) of Martin &
//! Furieri: `L = Σ_t α |∇f(x_t)|² + γ_t f(x_t)`, with `γ_t = decay^(T-1-t)` (the paper: α = 0,
//! decay 0.95). The inner gradients are taken on the tape, so the meta-gradient includes the
//! second-order terms, unless the first-order switch cuts them (`stop_gradient` on `∇f`).

use super::{Learned, Task};
use crate::models::Bound;
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;

/// Weights of the meta-loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetaLoss {
    /// α: weight of `|∇f(x_t)|²` (constant in t).
    pub grad_weight: f64,
    /// γ_t = decay^(T-1-t): later iterates weigh more when decay < 1.
    pub decay: f64,
}

impl MetaLoss {
    /// The paper's: α = 0, γ_t = 0.95^(T-1-t).
    pub const PAPER: MetaLoss = MetaLoss {
        grad_weight: 0.0,
        decay: 0.95,
    };

    /// γ_t for a horizon of `horizon` steps.
    pub fn gamma(&self, t: usize, horizon: usize) -> f64 {
        self.decay.powi((horizon - 1 - t) as i32)
    }
}

/// How a trajectory is unrolled for the meta-gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unroll {
    /// Number of inner steps T.
    pub horizon: usize,
    /// The meta-loss weights.
    pub meta_loss: MetaLoss,
    /// Drop the second-order terms (Andrychowicz et al.'s approximation).
    pub first_order: bool,
    /// Truncated BPTT: cut gradient paths every this many steps (`None`: full BPTT).
    pub truncation: Option<usize>,
}

impl Unroll {
    /// The paper's: T = 50, its meta-loss, second-order terms, full BPTT.
    pub const PAPER: Unroll = Unroll {
        horizon: 50,
        meta_loss: MetaLoss::PAPER,
        first_order: false,
        truncation: None,
    };
}

/// A recorded unroll.
pub struct Unrolled<'t, T: Scalar> {
    /// The meta-loss (1 x 1), differentiable w.r.t. the bound meta-parameters.
    pub meta_loss: Var<'t, T>,
    /// `f(x_t)` for t = 0..T.
    pub losses: Vec<f64>,
    /// The last iterate `x_T`.
    pub last: DMatrix<T>,
    /// The first inner step whose `f` or `∇f` was not finite, if any.
    pub non_finite_at: Option<usize>,
}

/// Records `cfg.horizon` steps of `opt` (meta-parameters `bound`) on `task` from `x0`.
pub fn unroll<'t, T: Scalar, L: Learned<T> + ?Sized>(
    opt: &L,
    bound: &Bound<'t, T>,
    task: &dyn Task<T>,
    x0: &DMatrix<T>,
    cfg: &Unroll,
) -> Unrolled<'t, T> {
    let tape = bound.vars().first().expect("meta-parameters").tape();
    let mut x = tape.param(x0.clone());
    let mut rollout = opt.begin(bound, x);
    let mut meta_loss = tape.scalar(T::zero());
    let mut losses = Vec::with_capacity(cfg.horizon);
    let mut non_finite_at = None;
    for t in 0..cfg.horizon {
        if let Some(k) = cfg.truncation {
            if t > 0 && t % k == 0 {
                x = tape.param(x.value());
                rollout.detach();
            }
        }
        let f = task.loss(x, t);
        let mut g = tape.grad(&[f], &[x], !cfg.first_order)[0];
        if cfg.first_order {
            g = g.stop_gradient();
        }
        let fv = f.scalar();
        losses.push(fv.as_f64());
        if non_finite_at.is_none() && (!fv.is_finite() || !super::all_finite(&g.value_ref())) {
            non_finite_at = Some(t);
        }
        let gamma = cfg.meta_loss.gamma(t, cfg.horizon);
        meta_loss = meta_loss + f.scale(T::cast(gamma));
        if cfg.meta_loss.grad_weight != 0.0 {
            meta_loss = meta_loss + g.square().sum().scale(T::cast(cfg.meta_loss.grad_weight));
        }
        x = x + rollout.step(x, g, f);
    }
    Unrolled {
        meta_loss,
        losses,
        last: x.value(),
        non_finite_at,
    }
}
