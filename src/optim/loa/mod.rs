//! LOA learned BFGS of Castera & Ochs ("From Learning to Optimize to Learning Optimization
//! Algorithms", AISTATS 2025) and its classical baselines with the original scripts' step
//! sizes, initialization and Armijo line search, all behind the one [`Optimizer`] interface:
//! [`LoaBfgs`] is a [`LearnedOptimizer`] (meta-trained by the one meta-trainer, evaluated by
//! the one run loop), [`Bfgs`] and [`Nesterov`] are hand-crafted optimizers, and gradient
//! descent and heavy ball are the library's [`HeavyBall`] ([`loa_gradient_descent`],
//! [`loa_heavy_ball`]).
//!
//! The original's protocol (the warm-up step from `x_{-1}` to `x_0`, which the quasi-Newton
//! methods take in their `init`) is documented on [`loa_warm_up`].
//!
//! [`Optimizer`]: crate::optim::Optimizer
//! [`LearnedOptimizer`]: crate::optim::LearnedOptimizer
//! [`HeavyBall`]: crate::optim::HeavyBall

mod baselines;
mod model;
mod start;

pub use baselines::{loa_gradient_descent, loa_heavy_ball, loa_nesterov, Bfgs, Nesterov};
pub use model::{generalized_bfgs, LoaBfgs, FEATURE_D_PREV, LOA_PARAMS};
pub use start::{
    armijo, backtrack, curvature_condition, is_descent_direction, loa_warm_up, SAFEGUARD_EPS,
};

/// How LOA chooses its step sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LineSearch {
    /// The original's Armijo backtracking, safeguarded ([`backtrack`], restarts along the
    /// gradient, rejected steps; see [`LoaBfgs`]), off the record: the accepted step size is a
    /// constant of the meta-gradient.
    Armijo,
    /// A fixed step size `> 0` (a smooth meta-loss, for gradient checks).
    Fixed(f64),
}

/// Which dependencies of a recorded LOA trajectory on the meta-parameters are differentiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerGradients {
    /// Everything the run records: the features, `Δg`, `s` and `∇f(x_k)` (differentiable
    /// again when the run is second order). With a fixed step size, the exact gradient of the
    /// meta-loss, checked against finite differences.
    Exact,
    /// As the original: the features, `Δg`, `s` and `∇f(x_k)` are constants
    /// (`no_grad`/`detach`); only `u` and the chain of `H_k` and `x_k` carry the
    /// meta-parameters. Cheaper, biased.
    Detached,
}
