//! The bound a ConvergentL2O's REN implies *before* running (Theorem 1's mechanism made
//! quantitative). Summing the REN's dissipation inequality
//! `V(Δx+) - V(Δx) ≤ γ|Δu|² - |Δy|²/γ` along the impulse response, against the trajectory
//! with zero input, zero state and zero biases (whose output is 0), gives
//! `Σ_t |z_t|² ≤ γ² |x0|² + γ V(ξ0)` with `ξ0` the REN's initial state; and `|v_t| ≤ |z_t|`.
//! Lemma 1 then bounds `Σ_t |∇f(x_t)|²`.
//!
//! Assumptions (checked): the REN's biases are zero (decaying biases add a term this bound
//! does not cover), the step size is Theorem 1's constant `η < 1/β`, the activation maps 0 to
//! 0 (tanh, ReLU).

use super::{ConvergentL2O, MagnitudeRen, StepSize};
use crate::models::ren::Supply;
use crate::optim::{LearnedOptimizer, Lemma1};
use crate::tape::{Scalar, Tape};
use nalgebra::DMatrix;

/// A priori bounds for one initial point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct APrioriBound {
    /// Bound on `Σ_t |v_t|²`: `γ² |x0|² + γ V(ξ0)`.
    pub sum_v_sq: f64,
    /// Bound on `Σ_t |∇f(x_t)|²` from Lemma 1 with that `Σ|v|²`.
    pub sum_grad_sq: f64,
    /// The REN's gain γ.
    pub gamma: f64,
}

impl<T: Scalar> ConvergentL2O<T> {
    /// The a priori bounds for initial point `x0`, `f` with smoothness `beta`, and
    /// `gap = f(x0) - inf f`; an error says which assumption fails.
    pub fn a_priori_bound(
        &self,
        beta: f64,
        gap: f64,
        x0: &DMatrix<T>,
    ) -> Result<APrioriBound, String> {
        let StepSize::Constant { eta } = self.step_size() else {
            return Err("the a priori bound needs Theorem 1's constant step size".into());
        };
        let lemma = Lemma1::new(beta, eta).map_err(|e| e.to_string())?;
        for bias in ["bx", "bv", "bu"] {
            let name = format!("REN.{bias}");
            if let Some(b) = self.params().try_get(&name) {
                if b.iter().any(|v| *v != T::zero()) {
                    return Err(format!(
                        "{name} is not zero: biases add a term the a priori bound does not cover"
                    ));
                }
            }
        }
        let gamma = match self.ren() {
            MagnitudeRen::Tied(r) => r.gamma(),
            MagnitudeRen::Dense(r) => match r.supply() {
                Supply::Lipschitz { gamma } => *gamma,
                _ => return Err("the magnitude REN must be l2-stable (Lipschitz)".into()),
            },
        };
        let tape = Tape::<T>::new();
        let bound = self.params().bind_constants(&tape);
        let model = self.ren().build(&bound);
        let xi0 = model.initial_state();
        let v0 = xi0.dot(model.lyapunov().matmul(xi0)).scalar().as_f64();
        let x0_sq = x0.iter().map(|v| v.as_f64().powi(2)).sum::<f64>();
        let sum_v_sq = gamma * gamma * x0_sq + gamma * v0;
        let (sum_grad_sq, _) = lemma.best_bound(gap, sum_v_sq);
        Ok(APrioriBound {
            sum_v_sq,
            sum_grad_sq,
            gamma,
        })
    }
}
