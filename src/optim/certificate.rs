//! Lemma 1 of Martin & Furieri as a certificate: for `f` with β-Lipschitz gradient and
//! `0 < η < 1/β`, the updates `x_{t+1} = x_t - η ∇f(x_t) + v_t` satisfy, for every `T` and
//! every `ε > 1 / (2η(1 - βη))`,
//!
//! ```text
//! Σ_{t≤T} |∇f(x_t)|² ≤ (2ε/ρ) (f(x0) - inf f) + (ε/ρ)(ε + 2β) Σ_{t≤T} |v_t|²,
//! ρ = 2ηε(1 - βη) - 1 > 0.
//! ```

use super::hyper::{check_range, HyperError};

/// The constants of Lemma 1: smoothness β and step size η with `0 < η < 1/β`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lemma1 {
    beta: f64,
    eta: f64,
}

/// The outcome of checking a trajectory against Lemma 1's bound.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Certificate {
    /// Realized `Σ |∇f(x_t)|²`.
    pub sum_grad_sq: f64,
    /// The bound, minimized over ε.
    pub bound: f64,
    /// The minimizing ε (infinite when `Σ |v_t|² = 0`, where the bound is a limit).
    pub epsilon: f64,
}

impl Certificate {
    /// Whether the realized sum stays below the bound (with a relative slack for rounding).
    pub fn holds(&self) -> bool {
        self.sum_grad_sq <= self.bound * (1.0 + 1e-9) + 1e-12
    }
}

impl Lemma1 {
    /// Checks `β > 0` and `0 < η < 1/β` (the condition of the guarantee).
    ///
    /// ```
    /// use convergent_l2o::optim::Lemma1;
    /// assert!(Lemma1::new(2.0, 0.4).is_ok());
    /// let err = Lemma1::new(2.0, 0.6).unwrap_err();
    /// assert!(err.to_string().contains("eta = 0.6"));
    /// ```
    pub fn new(beta: f64, eta: f64) -> Result<Lemma1, HyperError> {
        check_range("Lemma 1", "beta", beta, 0.0, false, f64::INFINITY, false)?;
        check_range(
            "Lemma 1 (needs 0 < eta < 1/beta)",
            "eta",
            eta,
            0.0,
            false,
            1.0 / beta,
            false,
        )?;
        Ok(Lemma1 { beta, eta })
    }

    /// `a = 2η(1 - βη)`: ρ = aε - 1, so admissible ε are those above `1/a`.
    fn a(&self) -> f64 {
        2.0 * self.eta * (1.0 - self.beta * self.eta)
    }

    /// The smallest admissible ε, `1 / (2η(1 - βη))` (excluded).
    pub fn min_epsilon(&self) -> f64 {
        1.0 / self.a()
    }

    /// The right-hand side for a given ε (`+inf` for an inadmissible ε).
    pub fn bound_at(&self, epsilon: f64, gap: f64, sum_v_sq: f64) -> f64 {
        let rho = self.a() * epsilon - 1.0;
        if rho <= 0.0 {
            return f64::INFINITY;
        }
        2.0 * epsilon / rho * gap + epsilon / rho * (epsilon + 2.0 * self.beta) * sum_v_sq
    }

    /// The right-hand side minimized over ε, with the minimizer.
    ///
    /// With `S = Σ|v|²`, `c = 2 gap + 2βS`, the bound is `ε(c + εS)/(aε - 1)`, whose
    /// derivative vanishes at `aSε² - 2Sε - c = 0`; for `S = 0` it decreases to `gap / (η(1-βη))`.
    pub fn best_bound(&self, gap: f64, sum_v_sq: f64) -> (f64, f64) {
        let a = self.a();
        if sum_v_sq <= 0.0 {
            return (2.0 * gap / a, f64::INFINITY);
        }
        let s = sum_v_sq;
        let c = 2.0 * gap + 2.0 * self.beta * s;
        let epsilon = (s + (s * s + a * s * c).sqrt()) / (a * s);
        (self.bound_at(epsilon, gap, s), epsilon)
    }

    /// Checks a realized trajectory: `grad_norms_sq[t] = |∇f(x_t)|²`, `v_norms_sq[t] = |v_t|²`
    /// for `t = 0..=T`, and `gap = f(x0) - inf f` (an upper bound on it is fine).
    pub fn check(&self, gap: f64, grad_norms_sq: &[f64], v_norms_sq: &[f64]) -> Certificate {
        let sum_grad_sq = grad_norms_sq.iter().sum();
        let (bound, epsilon) = self.best_bound(gap, v_norms_sq.iter().sum());
        Certificate {
            sum_grad_sq,
            bound,
            epsilon,
        }
    }
}
