//! L2O-PA wrapped so that every value of its meta-parameters gives a convergent algorithm: the
//! learned point is used as a bounded perturbation of a FISTA step, with a geometrically
//! decaying budget.

use super::l2o_pa::L2oPa;
use super::proximal::{default_step, fista_next, pa_update, Y};
use crate::models::{Bound, Params, ParamsError};
use crate::optim::hyper::{check_range, HyperError};
use crate::optim::{
    load_lstm, store_lstm, Evaluation, LearnedOptimizer, OptState, OptimError, Optimizer, Oracle,
    StepInfo,
};
use crate::problems::all_finite;
use crate::tape::{Scalar, Var};

/// Convergent L2O-PA: FISTA whose prox outputs are moved towards L2O-PA's proposal by at most
/// `budget * decay^k` (Euclidean norm):
///
/// ```text
/// x̂_k = x_k + β_{k-1} (x_k - x_{k-1});          x^F = prox_{sρ}(x̂_k - s ∇f(x̂_k))   (FISTA)
/// ŷ_k = x_k + A_{k-1} ⊙ (x_k - x_{k-1});         x^PA = L2O-PA's prox step from ŷ_k, P_k
/// x_{k+1} = x^F + d_k,   d_k = clip(x^PA - x^F, budget decay^k)
/// ```
///
/// While the clip is inactive the iterates are exactly L2O-PA's (`ŷ_k` is its `y_k`); with
/// `budget = 0` they are FISTA's.
///
/// **Guarantee.** `x_{k+1} = p + d_k` with `p` the exact prox point is an `ε_k`-minimizer of the
/// prox subproblem `z ↦ |z - v|²/(2s) + ρ|z|_1` with `ε_k ≤ |d_k|²/(2s) + 2ρ|d_k|_1 ≤
/// B_k²/(2s) + 2ρ sqrt(n) B_k`, `B_k = budget decay^k`. Schmidt, Le Roux and Bach ("Convergence
/// rates of inexact proximal-gradient methods for convex optimization", NeurIPS 2011,
/// Proposition 2) show that accelerated proximal gradient with `ε_k`-approximate proxes keeps
/// `F(x_k) - F* ≤ 2/(s (k+1)²) (|x_0 - x*| + 2 Ã_k + sqrt(2 B̃_k))²`, with
/// `Ã_k = Σ_i i sqrt(2 s ε_i)` and `B̃_k = Σ_i i² s ε_i` — bounded here because the `ε_k` decay
/// geometrically, for every value of the meta-parameters. So the rate is `O(1/k²)` whatever the
/// network outputs (`1/s = β / 0.9999` upper-bounds the Lipschitz constant). A magnitude that
/// is merely square-summable (the ℓ2 signal of [`crate::optim::MagnitudeRen`]) would not do:
/// the proposition needs `Σ k sqrt(ε_k) < ∞`, hence the geometric budget. The learned
/// accelerator `A_k` only acts through `d_k`; the momentum of the guaranteed part is FISTA's.
/// A non-finite proposal is dropped (`d_k = 0`), and a non-finite `ŷ_{k+1}` is replaced by
/// FISTA's point, so a run never stops on the network's account.
/// Cost: two gradients per iteration (the second through [`Oracle::evaluate`]).
///
/// Its meta-parameters are the wrapped L2O-PA's (same names), so it is meta-trained and
/// evaluated as any [`LearnedOptimizer`]. The query point is `ŷ_k`; the state holds the iterate,
/// `y` (`ŷ_k`), `y_fista` (`x̂_k`), the LSTM state and the numbers `t` (FISTA's) and `budget`
/// (`B_k`). Each update reports the next query point `y`, the deviation `d` and the budget.
///
/// ```
/// use convergent_l2o::eval::{probes, run, RunConfig};
/// use convergent_l2o::optim::{ConvergentPa, Frozen, L2oPa, PaConfig, ProxGradient};
/// use convergent_l2o::problems::{Lasso, LassoConfig};
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let pa = L2oPa::<f64>::new(PaConfig::lasso(), &mut rng).unwrap();
/// let problem = Lasso::random(LassoConfig::toy(), &mut rng).unwrap();
/// let cfg = RunConfig::bare(30).with(probes::objective(30));
/// let x0 = DMatrix::zeros(40, 1);
/// // Budget 0: exactly FISTA.
/// let fista = run(&ProxGradient::fista(), &problem, &x0, &cfg).unwrap();
/// let zero = ConvergentPa::new(pa, 0.0, 0.5).unwrap();
/// let wrapped = run(&Frozen(&zero), &problem, &x0, &cfg).unwrap();
/// assert_eq!(fista.trace.values("objective"), wrapped.trace.values("objective"));
/// ```
#[derive(Clone, Debug)]
pub struct ConvergentPa<T: Scalar> {
    pa: L2oPa<T>,
    budget: f64,
    decay: f64,
}

impl<T: Scalar> ConvergentPa<T> {
    /// Wraps `pa`; errors unless `budget >= 0` is finite and `0 <= decay < 1`.
    pub fn new(pa: L2oPa<T>, budget: f64, decay: f64) -> Result<Self, HyperError> {
        check_range("ConvergentPa", "budget", budget, 0.0, true, f64::MAX, true)?;
        check_range("ConvergentPa", "decay", decay, 0.0, true, 1.0, false)?;
        Ok(ConvergentPa { pa, budget, decay })
    }

    /// The wrapped L2O-PA.
    pub fn inner(&self) -> &L2oPa<T> {
        &self.pa
    }

    /// The budget `B_0`.
    pub fn budget(&self) -> f64 {
        self.budget
    }

    /// The decay of the budget per iteration.
    pub fn decay(&self) -> f64 {
        self.decay
    }
}

impl<T: Scalar> LearnedOptimizer<T> for ConvergentPa<T> {
    fn name(&self) -> String {
        "Convergent L2O-PA".into()
    }
    fn params(&self) -> &Params<T> {
        self.pa.params()
    }
    fn set_params(&mut self, params: Params<T>) -> Result<(), ParamsError> {
        self.pa.set_params(params)
    }
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        Box::new(ConvergentPaRun { opt: self, theta })
    }
}

/// Convergent L2O-PA with its meta-parameters bound on a tape.
struct ConvergentPaRun<'a, 't, T: Scalar> {
    opt: &'a ConvergentPa<T>,
    theta: Bound<'t, T>,
}

/// FISTA's extrapolated point in the state.
const Y_FISTA: &str = "y_fista";
const NAME: &str = "Convergent L2O-PA";

/// `d` scaled to norm `budget` if longer (differentiably), zero if not finite.
fn clip<'t, T: Scalar>(d: Var<'t, T>, budget: f64) -> Var<'t, T> {
    let norm_var = d.norm();
    let norm = norm_var.scalar().as_f64();
    if !norm.is_finite() {
        d.zeros_like()
    } else if norm > budget {
        d.mul_scalar(norm_var.recip_or_zero().scale(T::cast(budget)))
    } else {
        d
    }
}

impl<'t, T: Scalar> Optimizer<'t, T> for ConvergentPaRun<'_, 't, T> {
    fn name(&self) -> String {
        NAME.into()
    }
    /// `ŷ_0 = x̂_0 = x_0`, a zero LSTM state, `t = 1`, the full budget; errors if the problem
    /// does not give its smoothness.
    fn init(
        &self,
        x0: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError> {
        default_step(oracle.problem(), NAME)?;
        let mut state = OptState::new(x0);
        state.set(Y, x0);
        state.set(Y_FISTA, x0);
        store_lstm(
            &mut state,
            &self.opt.pa.zero_state(oracle.tape(), x0.nrows()),
        );
        state.set_number("t", 1.0);
        state.set_number("budget", self.opt.budget);
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
        let s = default_step(problem, NAME)?;
        let (x, y, z) = (state.x(), state.expect(Y), state.expect(Y_FISTA));
        let lstm = load_lstm(state, self.opt.pa.layers());
        let (p, a, next) = self.opt.pa.coefficients(&self.theta, at.grad, y, &lstm);
        let (x_pa, _) = pa_update(problem, x, y, at.grad, p, a, s);
        // FISTA's step from its own extrapolated point.
        let g_fista = oracle.evaluate(z).grad;
        let step = oracle.tape().scalar(T::cast(s));
        let x_fista = problem.prox_var(z - g_fista.scale(T::cast(s)), step);
        let budget = state.number("budget").unwrap_or(self.opt.budget);
        let d = clip(x_pa - x_fista, budget);
        let x_next = x_fista + d;
        let t = state.number("t").unwrap_or(1.0);
        let (t_next, beta) = fista_next(t);
        let diff = x_next - x;
        let z_next = x_next + diff.scale(T::cast(beta));
        let mut y_next = x_next + a.mul_elem(diff);
        if !all_finite(&y_next.value_ref()) {
            y_next = z_next;
        }
        store_lstm(state, &next);
        state.set(Y, y_next);
        state.set(Y_FISTA, z_next);
        state.set_number("t", t_next);
        state.set_number("budget", budget * self.opt.decay);
        state.set_x(x_next);
        Ok(StepInfo {
            tensors: vec![(Y, y_next), ("d", d)],
            numbers: vec![("budget", budget)],
        })
    }
}
