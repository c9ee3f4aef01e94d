//! L2O-PA wrapped so that every value of its meta-parameters gives a convergent algorithm: the
//! learned point is used as a bounded perturbation of a FISTA step, with a geometrically
//! decaying budget.

use super::l2o_pa::L2oPa;
use super::proximal::pa_update;
use crate::meta::CompositeProblem;
use crate::optim::hyper::check_range;
use crate::optim::HyperError;
use crate::tape::{Scalar, Tape};
use nalgebra::DMatrix;

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
/// network outputs (`1/s = L / 0.9999` upper-bounds the Lipschitz constant). A magnitude that
/// is merely square-summable (the ℓ2 signal of [`crate::optim::MagnitudeRen`]) would not do:
/// the proposition needs `Σ k sqrt(ε_k) < ∞`, hence the geometric budget. The learned
/// accelerator `A_k` only acts through `d_k`; the momentum of the guaranteed part is FISTA's.
/// Cost: two gradients per iteration.
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

    /// Runs `iterations` unrecorded steps from `x_0 = 0`, calling `visit(k, x_k)` for
    /// `k = 0..=iterations`.
    pub fn run<P: CompositeProblem<T> + ?Sized>(
        &self,
        problem: &P,
        iterations: usize,
        mut visit: impl FnMut(usize, &DMatrix<T>),
    ) {
        let n = problem.dim();
        let s = problem.step_size();
        let tape = Tape::new();
        let bound = self.pa.params().bind_constants(&tape);
        let mark = tape.mark();
        let start = self.pa.start_values(problem);
        let (mut x, mut lstm) = (start.x, start.lstm);
        let mut x_prev = DMatrix::<T>::zeros(n, 1);
        let mut a_prev = DMatrix::<T>::zeros(n, 1);
        let (mut t, mut beta_prev) = (1.0f64, 0.0f64);
        let mut budget = self.budget;
        visit(0, &x);
        for k in 1..=iterations {
            let diff = &x - &x_prev;
            let y_pa = &x + a_prev.component_mul(&diff);
            let g = problem.smooth_grad(&y_pa);
            let lstm_v = lstm.to_tape(&tape);
            let (g_v, y_v, x_v) = (
                tape.constant(g),
                tape.constant(y_pa),
                tape.constant(x.clone()),
            );
            let (p, a, lstm_out) = self.pa.coefficients(&bound, g_v, y_v, &lstm_v);
            let (x_pa, _) = pa_update(x_v, y_v, g_v, p, a, s, problem.rho());
            let (x_pa, a_now, lstm_next) = (x_pa.value(), a.value(), lstm_out.values());
            tape.truncate(mark);

            let y_f = &x + &diff * T::cast(beta_prev);
            let step = T::cast(s);
            let x_f = problem.prox(&(&y_f - problem.smooth_grad(&y_f) * step), step);
            let mut d = x_pa - &x_f;
            let norm = d.norm().as_f64();
            // A NaN proposal is dropped rather than propagated.
            if norm.is_nan() || norm > budget {
                d = if norm.is_finite() {
                    d * T::cast(budget / norm)
                } else {
                    DMatrix::zeros(n, 1)
                };
            }
            let t_next = (1.0 + (1.0 + 4.0 * t * t).sqrt()) / 2.0;
            beta_prev = (t - 1.0) / t_next;
            t = t_next;
            budget *= self.decay;
            a_prev = a_now;
            lstm = lstm_next;
            x_prev = std::mem::replace(&mut x, x_f + d);
            visit(k, &x);
        }
    }

    /// `F(x_k)` for `k = 0..=iterations`, unrecorded.
    pub fn objectives<P: CompositeProblem<T> + ?Sized>(
        &self,
        problem: &P,
        iterations: usize,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(iterations + 1);
        self.run(problem, iterations, |_, x| {
            out.push(problem.objective(x).as_f64())
        });
        out
    }
}
