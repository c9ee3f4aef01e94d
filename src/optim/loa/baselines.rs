//! The original's classical baselines (`utils/true_algos.py`): BFGS with the Armijo search,
//! Nesterov's method with friction, and gradient descent and heavy ball as [`HeavyBall`]
//! with the scripts' step size and momentum.

use super::start::{
    curvature_condition, dot, guarded_step, quasi_newton_start, restart_scale, Guarded,
    INVERSE_HESSIAN, PREV_GRAD, PREV_STEP,
};
use crate::optim::interface::{hand_crafted_algorithm, tunable};
use crate::optim::{
    check_positive, Evaluation, HeavyBall, HyperError, OptState, OptimError, Optimizer, Oracle,
    StepInfo,
};
use crate::problems::{all_finite, Problem};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;

/// The original scripts' step size `1.99/(2 λmax)` (just under `1/λmax`, so that their bound
/// `λmax`, often loose, still gives a fast stable step).
fn loa_step<T: Scalar>(optimizer: &str, problem: &dyn Problem<T>) -> Result<f64, OptimError> {
    let beta = problem.smoothness().ok_or(OptimError::Requires {
        optimizer: optimizer.into(),
        what: "smoothness",
    })?;
    let lr = 1.99 / (2.0 * beta);
    check_positive("LOA baseline", "step size 1.99/(2 λmax)", lr, 0.0)?;
    Ok(lr)
}

/// Gradient descent with the original's step `1.99/(2 λmax)`: [`HeavyBall`] with `β = 0`.
/// Errors if the problem gives no smoothness.
///
/// ```
/// use convergent_l2o::optim::loa_gradient_descent;
/// use convergent_l2o::problems::Ridge;
/// use nalgebra::{dmatrix, dvector};
///
/// let p = Ridge::new(dmatrix![1.0], dvector![0.0], 1.0).unwrap(); // λmax = 2
/// let gd = loa_gradient_descent::<f64>(&p).unwrap();
/// assert_eq!((gd.lr, gd.beta), (1.99 / 4.0, 0.0));
/// ```
pub fn loa_gradient_descent<T: Scalar>(problem: &dyn Problem<T>) -> Result<HeavyBall, OptimError> {
    Ok(HeavyBall::gd(loa_step("GD", problem)?)?)
}

/// Polyak's heavy ball as the original: step `γ = 1.99/(2 λmax)` and momentum
/// `β = 1 - 2 √(λmin γ)` (`λmin` the problem's strong convexity; β may be negative on
/// well-conditioned problems, as in the original). Errors if the problem gives no smoothness
/// or no strong convexity.
pub fn loa_heavy_ball<T: Scalar>(problem: &dyn Problem<T>) -> Result<HeavyBall, OptimError> {
    let lr = loa_step("heavy ball", problem)?;
    let mu = problem.strong_convexity().ok_or(OptimError::Requires {
        optimizer: "heavy ball".into(),
        what: "strong convexity",
    })?;
    Ok(HeavyBall::new(lr, 1.0 - 2.0 * (mu * lr).sqrt())?)
}

/// [`Nesterov`] with the original's step `1.99/(2 λmax)` and friction 3.01. Errors if the
/// problem gives no smoothness.
pub fn loa_nesterov<T: Scalar>(problem: &dyn Problem<T>) -> Result<Nesterov, OptimError> {
    Ok(Nesterov::new(loa_step("Nesterov", problem)?, 3.01)?)
}

/// Nesterov's method with friction `α`:
/// `x_{k+1} = y_k - lr ∇f(y_k)`, `y_{k+1} = x_{k+1} + (k+1)/(k+1+α) (x_{k+1} - x_k)`,
/// `y_0 = x_0`. The gradient is taken at the query point `y_k` (state tensor `query`); the
/// iterate is `x_k`. (The original's code evaluates the gradient at `x_k` with momentum
/// `(k+1-α)/(k+1)`; this is the standard form.)
///
/// ```
/// use convergent_l2o::eval::{run, RunConfig};
/// use convergent_l2o::optim::Nesterov;
/// use convergent_l2o::problems::Quadratic;
/// use nalgebra::{dmatrix, DMatrix};
///
/// let q = Quadratic::<f64>::new(dmatrix![1.0, 0.0; 0.0, 0.1], DMatrix::zeros(2, 1)).unwrap();
/// let out = run(&Nesterov::new(0.99, 3.01).unwrap(), &q, &dmatrix![1.0; 1.0], &RunConfig::new(200));
/// assert!(out.unwrap().last.norm() < 1e-3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nesterov {
    /// The step size.
    pub lr: f64,
    /// The friction `α > 0` (3.01 in the original).
    pub friction: f64,
}

/// The query point `y_k` in Nesterov's state.
const QUERY: &str = "query";

impl Nesterov {
    /// Nesterov's method with step `lr > 0` and friction `α > 0`, checked.
    pub fn new(lr: f64, friction: f64) -> Result<Nesterov, HyperError> {
        Nesterov { lr, friction }.validated()
    }

    /// `self` if its hyperparameters are admissible, else an error naming the offender.
    pub fn validated(self) -> Result<Nesterov, HyperError> {
        check_positive("Nesterov", "lr", self.lr, 0.0)?;
        check_positive("Nesterov", "friction", self.friction, 0.0)?;
        Ok(self)
    }
}

impl<'t, T: Scalar> Optimizer<'t, T> for Nesterov {
    fn name(&self) -> String {
        "Nesterov".into()
    }
    fn init(&self, x0: Var<'t, T>, _: &Oracle<'_, 't, T>) -> Result<OptState<'t, T>, OptimError> {
        self.validated()?;
        let mut state = OptState::new(x0);
        state.set(QUERY, x0);
        Ok(state)
    }
    fn query(&self, state: &OptState<'t, T>) -> Var<'t, T> {
        state.tensor(QUERY).unwrap_or_else(|| state.x())
    }
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        _: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let (x, y) = (state.x(), at.point);
        let next = y - at.grad.scale(T::cast(self.lr));
        let k = (state.step() + 1) as f64;
        let momentum = k / (k + self.friction);
        state.set(QUERY, next + (next - x).scale(T::cast(momentum)));
        state.set_x(next);
        Ok(StepInfo {
            tensors: Vec::new(),
            numbers: vec![("momentum", momentum)],
        })
    }
}

hand_crafted_algorithm!(Nesterov);
tunable!(Nesterov);

/// BFGS on the inverse Hessian as the original (`true_algos.BFGS` with `BB_init=True,
/// Wolfe_LS=True`): started at `x_{-1}`, its `init` takes the warm-up step to
/// `x_0 = x_{-1} - ∇f(x_{-1})/(2 λmax)` and sets `H = 0.8 BB I` (the original's protocol,
/// see [`loa_warm_up`](crate::optim::loa_warm_up)); each update first updates `H` with the last step `d` and gradient
/// change `Δg`, then steps along `-H ∇f` with the original's Armijo search, safeguarded so
/// that `f` never increases: an update failing the
/// [`curvature_condition`](crate::optim::curvature_condition) (or giving a non-finite `H`) is
/// skipped; when `-H ∇f` is not a descent direction or the 5 Armijo tries fail, `H` restarts
/// at `γ I` (`γ` the last Barzilai–Borwein step, else `1/λmax`) and the step is searched along
/// `-γ ∇f` ([`backtrack`](crate::optim::backtrack)); when that fails too, the step is
/// rejected (`x` stays). Identical to the original whenever none of these triggers.
///
/// Reports `alpha` (the accepted step size, 0 when rejected), `fallback` (0: the quasi-Newton
/// step; 1: a restart along the gradient because `-H ∇f` was not a descent direction; 2: a
/// restart because the Armijo tries along it failed; 3: rejected) and `skipped` (1 when the update of `H` was
/// skipped, else 0). Errors at `init` if the problem gives no smoothness or `x_{-1}` is
/// stationary.
///
/// ```
/// use convergent_l2o::eval::{probes, run, RunConfig};
/// use convergent_l2o::optim::Bfgs;
/// use convergent_l2o::problems::Ridge;
/// use nalgebra::{dmatrix, dvector};
///
/// let p = Ridge::new(dmatrix![1.0, 0.0; 1.0, 2.0], dvector![1.0, -1.0], 0.1).unwrap();
/// let cfg = RunConfig::bare(10).with(probes::objective(10)).with(probes::reported("alpha"));
/// let out = run(&Bfgs, &p, &dmatrix![3.0; -2.0], &cfg).unwrap();
/// // f(x_0), ..., f(x_10): BFGS solves a 2-dimensional quadratic in a few steps.
/// assert!(out.trace.values("objective")[10] - p.minimum() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bfgs;

impl<'t, T: Scalar> Optimizer<'t, T> for Bfgs {
    fn name(&self) -> String {
        "BFGS".into()
    }
    /// Takes the warm-up step from `x_{-1}` (`x0` here) to `x_0`.
    fn init(
        &self,
        x_minus1: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError> {
        quasi_newton_start("BFGS", x_minus1, oracle)
    }
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let (x, g) = (state.x(), at.grad);
        let mut h = state.expect(INVERSE_HESSIAN);
        let d = state.expect(PREV_STEP);
        let dg = g - state.expect(PREV_GRAD);
        let (d_val, dg_val) = (d.value(), dg.value());
        let mut skipped = !curvature_condition(&d_val, &dg_val);
        if !skipped {
            let rho = 1.0 / dot(&d_val, &dg_val);
            let hdg = h.matmul(dg);
            let c = T::cast(rho * (1.0 + rho * dot(&dg_val, &hdg.value())));
            let r = T::cast(rho);
            let updated = h
                + (d.matmul_tr(d).scale(c) - hdg.matmul_tr(d).scale(r) - d.matmul_tr(hdg).scale(r));
            if all_finite(&updated.value()) {
                h = updated;
            } else {
                skipped = true;
            }
        }
        let step = -h.matmul(g);
        let (x_val, g_val) = (x.value(), g.value());
        let f0 = at.loss.scalar().as_f64();
        let gamma = restart_scale(oracle.problem(), &d_val, &dg_val);
        let guarded = guarded_step(oracle, &x_val, &step.value(), &g_val, f0, gamma);
        let tape = oracle.tape();
        let n = x_val.nrows();
        let (alpha, next) = match guarded {
            Guarded::Direction(alpha) => (alpha, x + step.scale(T::cast(alpha))),
            Guarded::Restart { alpha, .. } => {
                h = tape.constant(DMatrix::identity(n, n) * T::cast(gamma));
                (alpha, x - g.scale(T::cast(alpha * gamma)))
            }
            Guarded::Rejected => {
                h = tape.constant(DMatrix::identity(n, n) * T::cast(gamma));
                (0.0, x)
            }
        };
        state.set(INVERSE_HESSIAN, h);
        state.set(PREV_STEP, next - x);
        state.set(PREV_GRAD, g);
        state.set_x(next);
        Ok(StepInfo {
            tensors: Vec::new(),
            numbers: vec![
                ("alpha", alpha),
                ("skipped", f64::from(u8::from(skipped))),
                ("fallback", guarded.code()),
            ],
        })
    }
}

hand_crafted_algorithm!(Bfgs);
