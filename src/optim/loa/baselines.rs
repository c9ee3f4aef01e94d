//! The original's classical baselines (`utils/true_algos.py`), unrecorded, in `f64`.

use super::LoaError;
use crate::meta::Objective;
use crate::optim::{HeavyBall, HeavyBallState};
use nalgebra::{DMatrix, DVector};

/// The iterates of a run: `values[k] = f(x_k)` and `points[k] = x_k` for `k = 0..=steps`, the
/// accepted step sizes, and how many quasi-Newton updates were skipped.
#[derive(Clone, Debug, Default)]
pub struct Iterates {
    /// `f(x_k)`.
    pub values: Vec<f64>,
    /// `x_k`.
    pub points: Vec<DVector<f64>>,
    /// Step size `α_k` of step `k` (line search or fixed); empty for fixed-step methods.
    pub step_sizes: Vec<f64>,
    /// Quasi-Newton updates skipped because `uᵀΔg ≈ 0`.
    pub skipped_updates: usize,
}

impl Iterates {
    fn push(&mut self, obj_value: f64, x: &DVector<f64>) {
        self.values.push(obj_value);
        self.points.push(x.clone());
    }

    /// `(f(x_k) - F*)/(f(x_0) - F*)`, the paper's metric.
    pub fn relative(&self, f_star: f64) -> Vec<f64> {
        let gap = self.values[0] - f_star;
        self.values.iter().map(|v| (v - f_star) / gap).collect()
    }

    /// The meta-loss of a run: the mean over `k = 1..=T` of `log(r_k + floor)`, `r_k` the
    /// relative suboptimality (the same formula `unroll` records).
    pub fn log_relative_loss(&self, f_star: f64, floor: f64) -> f64 {
        let r = self.relative(f_star);
        let t = r.len().saturating_sub(1).max(1);
        r[1..]
            .iter()
            .map(|r| (r + floor).max(floor).ln())
            .sum::<f64>()
            / t as f64
    }
}

/// The common start: `x_{-1}`, `x_0 = x_{-1} - g_{-1}/(2 λmax)`, their gradients, and the
/// Barzilai–Borwein step `BB = ⟨Δg, Δx⟩/⟨Δg, Δg⟩` of that step.
#[derive(Clone, Debug)]
pub struct Start {
    /// `x_{-1}`.
    pub x_prev: DVector<f64>,
    /// `∇f(x_{-1})`.
    pub g_prev: DVector<f64>,
    /// `x_0`.
    pub x0: DVector<f64>,
    /// `∇f(x_0)`.
    pub g0: DVector<f64>,
    /// The BB step; quasi-Newton methods start from `0.8 BB I`.
    pub bb: f64,
}

impl Start {
    /// The start from `x_{-1}` with the Hessian bound `lambda_max` and gradient oracle `grad`;
    /// errors on a non-positive `lambda_max`, a stationary `x_{-1}` or non-finite values.
    pub fn new(
        x_minus1: &DVector<f64>,
        lambda_max: f64,
        grad: impl Fn(&DVector<f64>) -> DVector<f64>,
    ) -> Result<Start, LoaError> {
        if !(lambda_max > 0.0 && lambda_max.is_finite()) {
            return Err(LoaError::Start(format!(
                "lambda_max = {lambda_max} must be positive and finite"
            )));
        }
        let g_prev = grad(x_minus1);
        let x0 = x_minus1 - &g_prev / (2.0 * lambda_max);
        let dx = (&x0 - x_minus1).norm();
        if !(dx > 1e-12 * x_minus1.norm().max(1.0)) {
            return Err(LoaError::Start(format!(
                "x_-1 is (numerically) stationary: |x_0 - x_-1| = {dx:e}, so no \
                 Barzilai-Borwein step can be formed"
            )));
        }
        let g0 = grad(&x0);
        let dg = &g0 - &g_prev;
        let bb = dg.dot(&(&x0 - x_minus1)) / dg.norm_squared();
        if !(bb.is_finite() && bb > 0.0) {
            return Err(LoaError::Start(format!(
                "the Barzilai-Borwein step is {bb} (is x_-1 stationary, or f not convex?)"
            )));
        }
        Ok(Start {
            x_prev: x_minus1.clone(),
            g_prev,
            x0,
            g0,
            bb,
        })
    }

    /// [`Start::new`] for an [`Objective`], checking the dimension.
    pub fn for_objective(obj: &dyn Objective, x_minus1: &DVector<f64>) -> Result<Start, LoaError> {
        if x_minus1.len() != obj.dim() {
            return Err(LoaError::Dimension {
                expected: obj.dim(),
                got: x_minus1.len(),
            });
        }
        Start::new(x_minus1, obj.lambda_max(), |x| obj.gradient(x))
    }

    /// `H = 0.8 BB I`.
    pub fn h0(&self) -> DMatrix<f64> {
        let n = self.x0.len();
        DMatrix::identity(n, n) * (0.8 * self.bb)
    }
}

/// The original's Armijo search ("Wolfe_LS"): `α = 1, 0.1, ...`, at most 5 tries, accepting
/// when `φ(α) <= f0 + c1 α slope` with `c1 = 1e-2`; after 5 failures `α = 1e-5` is used
/// anyway (as the original). A NaN or Inf `φ(α)` counts as a failure.
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

fn gd_step(obj: &dyn Objective) -> f64 {
    1.99 / (2.0 * obj.lambda_max())
}

fn as_col(v: &DVector<f64>) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v.as_slice())
}

fn run_heavy_ball(obj: &dyn Objective, start: &Start, steps: usize, beta: f64) -> Iterates {
    let lr = gd_step(obj);
    let rule = HeavyBall { beta };
    let mut state = HeavyBallState::default();
    let mut x = as_col(&start.x0);
    let mut out = Iterates::default();
    for k in 0..=steps {
        let xv = DVector::from_column_slice(x.as_slice());
        out.push(obj.value(&xv), &xv);
        if k < steps {
            x = rule.step(&mut state, &x, &as_col(&obj.gradient(&xv)), &lr);
        }
    }
    out
}

/// Gradient descent from `x_0` with the original's step `1.99/(2 λmax)` (just under `1/λmax`,
/// so that the bound `λmax` of the scripts, often loose, still gives a fast stable step).
pub fn gradient_descent(obj: &dyn Objective, start: &Start, steps: usize) -> Iterates {
    run_heavy_ball(obj, start, steps, 0.0)
}

/// Polyak's heavy ball as the original: step `γ = 1.99/(2 λmax)` and momentum
/// `β = 1 - α√γ` with `α = 2√λmin` (reuses [`HeavyBall`]; β may be negative on well-conditioned
/// problems, as in the original).
pub fn heavy_ball(obj: &dyn Objective, start: &Start, steps: usize) -> Iterates {
    let beta = 1.0 - 2.0 * (obj.lambda_min() * gd_step(obj)).sqrt();
    run_heavy_ball(obj, start, steps, beta)
}

/// Nesterov's method with friction `α` (3.01 in the original):
/// `x_{k+1} = y_k - s ∇f(y_k)`, `y_{k+1} = x_{k+1} + k/(k+α) (x_{k+1} - x_k)`, `y_0 = x_0`,
/// `s = 1.99/(2 λmax)`. (The original's code evaluates the gradient at `x_k` with momentum
/// `(k+1-α)/(k+1)`; this is the standard form the brief asks for.)
pub fn nesterov(obj: &dyn Objective, start: &Start, steps: usize, alpha: f64) -> Iterates {
    let s = gd_step(obj);
    let mut x = start.x0.clone();
    let mut y = x.clone();
    let mut out = Iterates::default();
    for k in 0..=steps {
        out.push(obj.value(&x), &x);
        if k < steps {
            let next = &y - obj.gradient(&y) * s;
            let kk = (k + 1) as f64;
            y = &next + (&next - &x) * (kk / (kk + alpha));
            x = next;
        }
    }
    out
}

/// BFGS on the inverse Hessian with `H = 0.8 BB I` updated before each step (`true_algos.BFGS`
/// with `BB_init=True, Wolfe_LS=True`), steps from [`armijo`]. An update with `dᵀΔg ≈ 0` is
/// skipped (counted in [`Iterates::skipped_updates`]).
pub fn bfgs(obj: &dyn Objective, start: &Start, steps: usize) -> Iterates {
    let mut h = start.h0();
    let (mut x, mut x_prev) = (start.x0.clone(), start.x_prev.clone());
    let (mut g, mut g_prev) = (start.g0.clone(), start.g_prev.clone());
    let mut fx = obj.value(&x);
    let mut out = Iterates::default();
    for k in 0..=steps {
        out.push(fx, &x);
        if k == steps {
            break;
        }
        let d = &x - &x_prev;
        let dg = &g - &g_prev;
        let curvature = d.dot(&dg);
        if curvature.is_finite() && curvature.abs() > 1e-12 * d.norm() * dg.norm() {
            let rho = 1.0 / curvature;
            let hdg = &h * &dg;
            h += (&d * d.transpose()) * (rho * (1.0 + rho * dg.dot(&hdg)))
                - (&hdg * d.transpose()) * rho
                - (&d * hdg.transpose()) * rho;
        } else {
            out.skipped_updates += 1;
        }
        let step = -(&h * &g);
        let alpha = armijo(|a| obj.value(&(&x + &step * a)), fx, step.dot(&g));
        out.step_sizes.push(alpha);
        x_prev = x.clone();
        g_prev = g;
        x += step * alpha;
        g = obj.gradient(&x);
        fx = obj.value(&x);
    }
    out
}
