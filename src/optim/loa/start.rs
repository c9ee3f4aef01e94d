//! The original's common start (the warm-up gradient step and the Barzilai–Borwein scaling of
//! the first inverse Hessian) and its Armijo search, shared by BFGS and LOA.

use crate::optim::{OptState, OptimError, Oracle};
use crate::problems::{all_finite, Problem};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;

/// The inverse-Hessian estimate `H_k` (`n x n`) in a quasi-Newton state.
pub(super) const INVERSE_HESSIAN: &str = "inverse_hessian";
/// The gradient `∇f(x_{k-1})` of the previous iterate.
pub(super) const PREV_GRAD: &str = "prev_grad";
/// The previous step `x_k - x_{k-1}`.
pub(super) const PREV_STEP: &str = "prev_step";
/// The previous step size (a number; 1 before the first step).
pub(super) const PREV_ALPHA: &str = "prev_alpha";

/// `⟨a, b⟩` in `f64`.
pub(super) fn dot<T: Scalar>(a: &DMatrix<T>, b: &DMatrix<T>) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|(u, v)| u.as_f64() * v.as_f64())
        .sum()
}

/// `|a|` in `f64`.
pub(super) fn norm<T: Scalar>(a: &DMatrix<T>) -> f64 {
    dot(a, a).sqrt()
}

/// `x_0` and `∇f(x_{-1})` from `x_{-1}` (checked), off the tape, at inner step `step`.
fn warm_up<T: Scalar>(
    optimizer: &str,
    problem: &dyn Problem<T>,
    x_minus1: &DMatrix<T>,
    step: usize,
) -> Result<(DMatrix<T>, DMatrix<T>), OptimError> {
    if x_minus1.shape() != (problem.dim(), 1) {
        return Err(OptimError::Dimension {
            optimizer: optimizer.into(),
            expected: problem.dim(),
            found: x_minus1.nrows(),
        });
    }
    let beta = problem.smoothness().ok_or(OptimError::Requires {
        optimizer: optimizer.into(),
        what: "smoothness",
    })?;
    if !(beta > 0.0 && beta.is_finite()) {
        return Err(OptimError::Step {
            optimizer: optimizer.into(),
            detail: format!("the problem's smoothness {beta} must be positive and finite"),
        });
    }
    let (_, g) = problem.value_and_grad(x_minus1, step);
    if !(all_finite(x_minus1) && all_finite(&g)) {
        return Err(OptimError::Step {
            optimizer: optimizer.into(),
            detail: "x_-1 or the gradient there is not finite".into(),
        });
    }
    let two_beta = T::cast(2.0 * beta);
    let x0 = x_minus1 - g.map(|v| v / two_beta);
    Ok((x0, g))
}

/// The original's first point `x_0 = x_{-1} - ∇f(x_{-1})/(2 λmax)` (`λmax` the problem's
/// smoothness), where the baselines without a warm-up of their own start. Errors on a point of
/// another dimension, a problem without smoothness, or a non-finite gradient.
///
/// The original's protocol (`main_*.py`) starts every method from a random `x_{-1}` with this
/// one gradient step; the quasi-Newton methods start from `H_0 = 0.8 BB I`, with the
/// Barzilai–Borwein step `BB = ⟨Δg, Δx⟩/⟨Δg, Δg⟩` of that step, and are updated once before
/// their first step. **The warm-up is part of the quasi-Newton methods' `init`:**
/// [`Bfgs`](crate::optim::Bfgs) and [`LoaBfgs`](crate::optim::LoaBfgs)'s optimizer are
/// started at `x_{-1}` and take the step themselves, so the state's iterate after `init` is
/// `x_0` (and `f` at inner step 0 is `f(x_0)`, the original's indexing); they keep
/// `∇f(x_{-1})` and `x_0 - x_{-1}` for their first update. The other baselines
/// ([`Nesterov`](crate::optim::Nesterov), [`loa_gradient_descent`](crate::optim::loa_gradient_descent),
/// [`loa_heavy_ball`](crate::optim::loa_heavy_ball)) are started at the `x_0` this function
/// returns, so step `k` of every method is the original's `x_k`, and a meta-loss relative to
/// `f` at the first evaluated point (`meta::LogRelative`) is relative to `f(x_0)`, as the
/// original's.
///
/// ```
/// use convergent_l2o::optim::loa_warm_up;
/// use convergent_l2o::problems::Ridge;
/// use nalgebra::{dmatrix, dvector};
///
/// // f(x) = x²/2 + x²/2 = x² (λmax = 2): x_0 = x_{-1} - 2 x_{-1}/4 = x_{-1}/2.
/// let p = Ridge::new(dmatrix![1.0], dvector![0.0], 1.0).unwrap();
/// assert_eq!(loa_warm_up(&p, &dmatrix![3.0]).unwrap(), dmatrix![1.5]);
/// ```
pub fn loa_warm_up<T: Scalar>(
    problem: &dyn Problem<T>,
    x_minus1: &DMatrix<T>,
) -> Result<DMatrix<T>, OptimError> {
    Ok(warm_up("LOA warm-up", problem, x_minus1, 0)?.0)
}

/// The state of a quasi-Newton method started at `x_{-1}`: the warm-up step taken (the
/// iterate is `x_0`, a fresh leaf when `x_{-1}` is one, else a constant), `H_0 = 0.8 BB I`,
/// `∇f(x_{-1})`, `x_0 - x_{-1}` and the previous step size 1, all computed off the tape (they
/// depend on no meta-parameter). Errors on a stationary `x_{-1}` or a non-positive BB step.
pub(super) fn quasi_newton_start<'t, T: Scalar>(
    optimizer: &str,
    x_minus1: Var<'t, T>,
    oracle: &Oracle<'_, 't, T>,
) -> Result<OptState<'t, T>, OptimError> {
    let problem = oracle.problem();
    let xm = x_minus1.value();
    let (x0, g_prev) = warm_up(optimizer, problem, &xm, oracle.step())?;
    let dx = &x0 - &xm;
    let moved = norm(&dx);
    if moved.is_nan() || moved <= 1e-12 * norm(&xm).max(1.0) {
        return Err(OptimError::Step {
            optimizer: optimizer.into(),
            detail: format!(
                "x_-1 is (numerically) stationary: |x_0 - x_-1| = {moved:e}, so no \
                 Barzilai-Borwein step can be formed"
            ),
        });
    }
    let (_, g0) = problem.value_and_grad(&x0, oracle.step());
    let dg = &g0 - &g_prev;
    let bb = dot(&dg, &dx) / dot(&dg, &dg);
    if !(bb.is_finite() && bb > 0.0) {
        return Err(OptimError::Step {
            optimizer: optimizer.into(),
            detail: format!(
                "the Barzilai-Borwein step is {bb} (is x_-1 stationary, or f not convex?)"
            ),
        });
    }
    let tape = oracle.tape();
    let n = x0.nrows();
    let x = if x_minus1.requires_grad() {
        tape.param(x0)
    } else {
        tape.constant(x0)
    };
    let mut state = OptState::new(x);
    let h0 = DMatrix::<T>::identity(n, n) * T::cast(0.8 * bb);
    state.set(INVERSE_HESSIAN, tape.constant(h0));
    state.set(PREV_GRAD, tape.constant(g_prev));
    state.set(PREV_STEP, tape.constant(dx));
    state.set_number(PREV_ALPHA, 1.0);
    Ok(state)
}

/// The original's Armijo search ("Wolfe_LS"): `α = 1, 0.1, ...`, at most 5 tries, accepting
/// when `φ(α) <= f0 + c1 α slope` with `c1 = 1e-2`; after 5 failures `α = 1e-5` is used
/// anyway (as the original). A NaN or Inf `φ(α)` counts as a failure. Kept for reference:
/// it can increase `f` (an ascent direction passes the test, and the last `α` is taken
/// whatever `φ` is); [`Bfgs`](crate::optim::Bfgs) and LOA use [`backtrack`] in a safeguarded
/// step instead.
///
/// ```
/// use convergent_l2o::optim::armijo;
/// // f(x) = x², x = 1, d = -10: α = 1 overshoots, α = 0.1 lands at 0.
/// let alpha = armijo(|a| (1.0 - 10.0 * a).powi(2), 1.0, -20.0);
/// assert_eq!(alpha, 0.1);
/// ```
pub fn armijo(mut phi: impl FnMut(f64) -> f64, f0: f64, slope: f64) -> f64 {
    let mut alpha = 1.0;
    for _ in 0..5 {
        let crit = phi(alpha) - f0 - 1e-2 * alpha * slope;
        if crit <= 0.0 {
            return alpha;
        }
        alpha *= 0.1;
    }
    alpha
}

/// Relative tolerance of the safeguards: the curvature condition `sᵀy > ε |s| |y|` and the
/// descent condition `dᵀg < -ε |d| |g|`.
pub const SAFEGUARD_EPS: f64 = 1e-10;

/// Tries of the Armijo search along the quasi-Newton direction (the original's 5).
const DIRECTION_TRIES: usize = 5;
/// Tries of the Armijo search along the restarted direction `-γ g` (`α` down to `1e-19`).
const RESTART_TRIES: usize = 20;

/// The curvature condition of a quasi-Newton update: `sᵀy > ε |s| |y|` with
/// [`SAFEGUARD_EPS`], all finite. An update with `sᵀy <= 0` cannot keep the inverse Hessian
/// positive definite, so BFGS and LOA skip it.
///
/// ```
/// use convergent_l2o::optim::curvature_condition;
/// use nalgebra::dmatrix;
/// assert!(curvature_condition(&dmatrix![1.0; 0.0], &dmatrix![2.0; 1.0]));
/// assert!(!curvature_condition(&dmatrix![1.0; 0.0], &dmatrix![-2.0; 1.0]));
/// assert!(!curvature_condition(&dmatrix![0.0; 0.0], &dmatrix![1.0; 1.0]));
/// ```
pub fn curvature_condition<T: Scalar>(s: &DMatrix<T>, y: &DMatrix<T>) -> bool {
    let c = dot(s, y);
    c.is_finite() && c > SAFEGUARD_EPS * norm(s) * norm(y)
}

/// Whether `d` is a descent direction at a point with gradient `g`: `dᵀg < -ε |d| |g|` with
/// [`SAFEGUARD_EPS`], all finite.
///
/// ```
/// use convergent_l2o::optim::is_descent_direction;
/// use nalgebra::dmatrix;
/// assert!(is_descent_direction(&dmatrix![-1.0; 0.5], &dmatrix![1.0; 0.0]));
/// assert!(!is_descent_direction(&dmatrix![0.0; 1.0], &dmatrix![1.0; 0.0]));
/// assert!(!is_descent_direction(&dmatrix![f64::NAN; 1.0], &dmatrix![1.0; 0.0]));
/// ```
pub fn is_descent_direction<T: Scalar>(d: &DMatrix<T>, g: &DMatrix<T>) -> bool {
    let slope = dot(d, g);
    let scale = norm(d) * norm(g);
    slope.is_finite() && scale.is_finite() && slope < -SAFEGUARD_EPS * scale
}

/// Armijo backtracking that never accepts an increase: `α = 1, 0.1, ...`, at most `tries`
/// tries, the first `α` with a finite `φ(α) <= f0 + c1 α slope` (`c1 = 1e-2`) and
/// `φ(α) < f0` (in floating point: at `F*` to rounding no step is taken); `None` when the tries run out, when `slope` is not negative (not a descent
/// direction) or when `f0` is not finite.
///
/// ```
/// use convergent_l2o::optim::backtrack;
/// assert_eq!(backtrack(|a| (1.0 - 10.0 * a).powi(2), 1.0, -20.0, 5), Some(0.1));
/// assert_eq!(backtrack(|_| 2.0, 1.0, -20.0, 5), None); // never below f0: no step
/// assert_eq!(backtrack(|a| 1.0 - a, 1.0, 1.0, 5), None); // ascent direction
/// ```
pub fn backtrack(
    mut phi: impl FnMut(f64) -> f64,
    f0: f64,
    slope: f64,
    tries: usize,
) -> Option<f64> {
    if !(f0.is_finite() && slope.is_finite() && slope < 0.0) {
        return None;
    }
    let mut alpha = 1.0;
    for _ in 0..tries {
        let f = phi(alpha);
        if f.is_finite() && f <= f0 + 1e-2 * alpha * slope && f < f0 {
            return Some(alpha);
        }
        alpha *= 0.1;
    }
    None
}

/// What the safeguarded step of a quasi-Newton method did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Guarded {
    /// The quasi-Newton direction `d` was a descent direction and Armijo accepted `α`.
    Direction(f64),
    /// Restarted from `H = γ I`, Armijo accepted `α` along `-γ g`; `ascent` when `d` was not a
    /// descent direction, else Armijo along `d` ran out of tries.
    Restart { alpha: f64, ascent: bool },
    /// No decrease was found even along `-γ g`: the step is rejected and `x` stays.
    Rejected,
}

impl Guarded {
    /// The number reported as `fallback`: 0 the quasi-Newton step, 1 a restart because `d`
    /// was not a descent direction, 2 a restart because Armijo along `d` failed, 3 rejected.
    pub(super) fn code(self) -> f64 {
        match self {
            Guarded::Direction(_) => 0.0,
            Guarded::Restart { ascent: true, .. } => 1.0,
            Guarded::Restart { ascent: false, .. } => 2.0,
            Guarded::Rejected => 3.0,
        }
    }
}

/// The scale `γ` of a restarted inverse Hessian `γ I`: the Barzilai–Borwein step `sᵀy/yᵀy` of
/// the last step when it satisfies the curvature condition, else `1/λmax`.
pub(super) fn restart_scale<T: Scalar>(
    problem: &dyn Problem<T>,
    s: &DMatrix<T>,
    y: &DMatrix<T>,
) -> f64 {
    if curvature_condition(s, y) {
        let bb = dot(s, y) / dot(y, y);
        if bb.is_finite() && bb > 0.0 {
            return bb;
        }
    }
    match problem.smoothness() {
        Some(l) if l > 0.0 && l.is_finite() => 1.0 / l,
        _ => 1.0,
    }
}

/// The safeguarded step from `x` (where `f = f0`, `∇f = g`) along the quasi-Newton direction
/// `d`: the original's Armijo search ([`DIRECTION_TRIES`] tries) when `d` is a descent
/// direction; otherwise, or when it fails, a restart along `-γ g` ([`RESTART_TRIES`] tries);
/// otherwise no step. Trials are off the record at the oracle's step.
pub(super) fn guarded_step<T: Scalar>(
    oracle: &Oracle<'_, '_, T>,
    x: &DMatrix<T>,
    d: &DMatrix<T>,
    g: &DMatrix<T>,
    f0: f64,
    gamma: f64,
) -> Guarded {
    let along = |dir: &DMatrix<T>, tries: usize| {
        backtrack(
            |a| oracle.value(&(x + dir.map(|v| v * T::cast(a)))),
            f0,
            dot(dir, g),
            tries,
        )
    };
    let descent = is_descent_direction(d, g);
    if descent {
        if let Some(alpha) = along(d, DIRECTION_TRIES) {
            return Guarded::Direction(alpha);
        }
    }
    let restart = g.map(|v| v * T::cast(-gamma));
    match along(&restart, RESTART_TRIES) {
        Some(alpha) => Guarded::Restart {
            alpha,
            ascent: !descent,
        },
        None => Guarded::Rejected,
    }
}
