//! Proximal-gradient baselines (ISTA, FISTA) behind the one [`Optimizer`] interface, the
//! L2O-PA update rule on the tape, and the reference optimum of a composite problem.

use crate::ops::soft_threshold_matrix;
use crate::optim::hyper::{check_positive, HyperError};
use crate::optim::interface::hand_crafted_algorithm;
use crate::optim::{Evaluation, OptState, OptimError, Optimizer, Oracle, StepInfo};
use crate::problems::Problem;
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;

/// The original code's step size relative to `1/β`.
const STEP_FRACTION: f64 = 0.9999;

/// Name of the extrapolated point (the query point) in the state of the methods of this module.
pub(crate) const Y: &str = "y";

/// The default step `0.9999 / β` of `problem`; an error naming `optimizer` if the problem does
/// not give its smoothness β.
pub(crate) fn default_step<T: Scalar>(
    problem: &dyn Problem<T>,
    optimizer: &str,
) -> Result<f64, OptimError> {
    match problem.smoothness() {
        Some(beta) if beta.is_finite() && beta > 0.0 => Ok(STEP_FRACTION / beta),
        Some(beta) => Err(OptimError::Step {
            optimizer: optimizer.into(),
            detail: format!("the problem's smoothness {beta} is not positive and finite"),
        }),
        None => Err(OptimError::Requires {
            optimizer: optimizer.into(),
            what: "smoothness (the Lipschitz constant of its gradient)",
        }),
    }
}

/// ISTA or FISTA with the original code's step `s = 0.9999 / β` (β: the problem's
/// [`Problem::smoothness`]) unless another is set:
///
/// ```text
/// x_{k+1} = prox_{s ρ |.|_1}(y_k - s ∇f(y_k))
/// y_{k+1} = x_{k+1} + β_k (x_{k+1} - x_k)      β_k = 0 (ISTA) or (t_k - 1) / t_{k+1} (FISTA)
/// ```
///
/// with `y_0 = x_0`. The query point is `y_k`; the state holds the tensor `y` and the number
/// `t` (FISTA's `t_k`, from 1). Each update reports the next query point `y` and the momentum
/// `beta`.
///
/// ```
/// use convergent_l2o::eval::{probes, run, RunConfig};
/// use convergent_l2o::optim::{reference_optimum, ProxGradient};
/// use convergent_l2o::problems::{Lasso, LassoConfig, Problem};
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let problem = Lasso::<f64>::random(LassoConfig::toy(), &mut StdRng::seed_from_u64(0)).unwrap();
/// let x0 = DMatrix::zeros(problem.dim(), 1);
/// let cfg = RunConfig::bare(200).with(probes::objective(200));
/// let f = run(&ProxGradient::fista(), &problem, &x0, &cfg).unwrap().trace.values("objective");
/// assert_eq!(f.len(), 201); // F(x_0), ..., F(x_200)
/// let f_star = reference_optimum(&problem, 5000).unwrap();
/// assert!(f[200] - f_star < 1e-3 * (f[0] - f_star));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxGradient {
    accelerated: bool,
    step: Option<f64>,
}

impl ProxGradient {
    /// ISTA (no momentum).
    pub fn ista() -> Self {
        ProxGradient {
            accelerated: false,
            step: None,
        }
    }

    /// FISTA (Beck and Teboulle's momentum).
    pub fn fista() -> Self {
        ProxGradient {
            accelerated: true,
            ..Self::ista()
        }
    }

    /// The same method with step `step` instead of `0.9999 / β`; errors unless it is positive
    /// and finite (a problem with smoothness β refuses a step above `1/β` when a run starts).
    pub fn with_step(self, step: f64) -> Result<Self, HyperError> {
        check_positive("proximal gradient", "step", step, 0.0)?;
        Ok(ProxGradient {
            step: Some(step),
            ..self
        })
    }

    /// Whether this is FISTA.
    pub fn is_accelerated(&self) -> bool {
        self.accelerated
    }

    /// The step size on `problem`: the set one (checked against `1/β` when β is known), or
    /// `0.9999 / β`.
    pub fn step_size<T: Scalar>(&self, problem: &dyn Problem<T>) -> Result<f64, OptimError> {
        let name = self.label();
        match (self.step, problem.smoothness()) {
            (Some(s), Some(beta)) if s * beta > 1.0 => Err(OptimError::Hyper(HyperError {
                owner: "proximal gradient",
                detail: format!("step = {s} is above 1/β = {} of the problem", 1.0 / beta),
            })),
            (Some(s), _) => Ok(s),
            (None, _) => default_step(problem, name),
        }
    }

    fn label(&self) -> &'static str {
        if self.accelerated {
            "FISTA"
        } else {
            "ISTA"
        }
    }
}

/// FISTA's `t_{k+1} = (1 + sqrt(1 + 4 t_k²)) / 2` and momentum `β_k = (t_k - 1) / t_{k+1}`.
pub(crate) fn fista_next(t: f64) -> (f64, f64) {
    let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
    (t_next, (t - 1.0) / t_next)
}

impl<'t, T: Scalar> Optimizer<'t, T> for ProxGradient {
    fn name(&self) -> String {
        self.label().into()
    }
    fn init(
        &self,
        x0: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError> {
        self.step_size(oracle.problem())?;
        let mut state = OptState::new(x0);
        state.set(Y, x0);
        state.set_number("t", 1.0);
        Ok(state)
    }
    fn query(&self, state: &OptState<'t, T>) -> Var<'t, T> {
        state.expect(Y)
    }
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let problem = oracle.problem();
        let s = self.step_size(problem)?;
        let (x, y) = (state.x(), state.expect(Y));
        let x_next = problem.prox_var(
            y - at.grad.scale(T::cast(s)),
            oracle.tape().scalar(T::cast(s)),
        );
        let beta = if self.accelerated {
            let t = state.number("t").unwrap_or(1.0);
            let (t_next, beta) = fista_next(t);
            state.set_number("t", t_next);
            beta
        } else {
            0.0
        };
        let y_next = if self.accelerated {
            x_next + (x_next - x).scale(T::cast(beta))
        } else {
            x_next
        };
        state.set(Y, y_next);
        state.set_x(x_next);
        Ok(StepInfo {
            tensors: vec![(Y, y_next)],
            numbers: vec![("beta", beta)],
        })
    }
}

hand_crafted_algorithm!(ProxGradient);

/// FISTA's momenta `β_0, ..., β_{n-1}` with `β_k = (t_k - 1) / t_{k+1}`, `t_0 = 1`,
/// `t_{k+1} = (1 + sqrt(1 + 4 t_k²)) / 2` (so `β_0 = 0`).
///
/// ```
/// let b = convergent_l2o::optim::fista_momenta(3);
/// assert_eq!(b[0], 0.0);
/// assert!(b[1] > 0.0 && b[2] > b[1]);
/// ```
pub fn fista_momenta(n: usize) -> Vec<f64> {
    let mut t = 1.0f64;
    (0..n)
        .map(|_| {
            let (t_next, beta) = fista_next(t);
            t = t_next;
            beta
        })
        .collect()
}

/// One L2O-PA update (Liu et al., eq. 6 with `b = 0`) on the tape, elementwise preconditioner
/// `p` and accelerator `a` (`n x 1`), gradient `g = ∇f(y_k)`, step `s`:
///
/// ```text
/// x_{k+1} = prox_{ρ s p |.|_1}(y_k - s p ⊙ g) = soft_threshold(y_k - s p ⊙ g, ρ s p)
/// y_{k+1} = x_{k+1} + a ⊙ (x_{k+1} - x_k)
/// ```
///
/// (the prox is the problem's [`Problem::prox_var`] with per-coordinate steps `s p`). Returns
/// `(x_{k+1}, y_{k+1})`. With `p = 1` and `a = β_k` it is FISTA.
pub fn pa_update<'t, T: Scalar>(
    problem: &dyn Problem<T>,
    x: Var<'t, T>,
    y: Var<'t, T>,
    g: Var<'t, T>,
    p: Var<'t, T>,
    a: Var<'t, T>,
    step: f64,
) -> (Var<'t, T>, Var<'t, T>) {
    let sp = p.scale(T::cast(step));
    let x_next = problem.prox_var(y - sp.mul_elem(g), sp);
    let y_next = x_next + a.mul_elem(x_next - x);
    (x_next, y_next)
}

/// The reference optimum `F*` of a composite problem: the smallest `F(x_k)` over `iterations`
/// FISTA steps from `x_0 = 0` (the original code uses 5000), `F(0)` included. The iteration
/// is [`ProxGradient::fista`]'s, run off the tape on [`Problem::value_and_grad`] (a long run
/// costs no tape traffic); for deterministic problems (`f` read at step 0). Errors if the
/// problem does not give its smoothness.
///
/// ```
/// use convergent_l2o::optim::reference_optimum;
/// use convergent_l2o::problems::{Lasso, LassoConfig, Problem};
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let problem = Lasso::<f64>::random(LassoConfig::toy(), &mut StdRng::seed_from_u64(0)).unwrap();
/// let f_star = reference_optimum(&problem, 2000).unwrap();
/// assert!(f_star < problem.objective(&DMatrix::zeros(40, 1), 0));
/// ```
pub fn reference_optimum<T: Scalar>(
    problem: &dyn Problem<T>,
    iterations: usize,
) -> Result<f64, OptimError> {
    let s = ProxGradient::fista().step_size(problem)?;
    let (step, threshold) = (T::cast(s), T::cast(s) * T::cast(problem.l1_weight()));
    let mut x = DMatrix::zeros(problem.dim(), 1);
    let mut y = x.clone();
    let mut t = 1.0;
    let mut best = problem.objective(&x, 0);
    for _ in 0..iterations {
        let (_, g) = problem.value_and_grad(&y, 0);
        let x_next = soft_threshold_matrix(&(&y - g * step), threshold);
        let (t_next, beta) = fista_next(t);
        t = t_next;
        y = &x_next + (&x_next - &x) * T::cast(beta);
        x = x_next;
        best = best.min(problem.objective(&x, 0));
    }
    Ok(best)
}
