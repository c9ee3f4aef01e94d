//! Hyperparameters shared by every REN, their validation, and the error for invalid ones.

use crate::models::Activation;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An invalid REN hyperparameter: which one, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenError {
    /// The hyperparameter (`"gamma"`, `"alpha_bar"`, `"eps"`, ...).
    pub what: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl RenError {
    pub(crate) fn new(what: &'static str, message: impl Into<String>) -> Self {
        RenError {
            what,
            message: message.into(),
        }
    }
}

impl fmt::Display for RenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid REN {}: {}", self.what, self.message)
    }
}

impl std::error::Error for RenError {}

/// State, neuron, input and output sizes of a REN (`n`, `l`, `m`, `p` of the REN paper).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenDims {
    /// State dimension `n`.
    pub n: usize,
    /// Number of neurons `l` (size of `v_t`, `w_t`).
    pub l: usize,
    /// Input dimension `m`.
    pub m: usize,
    /// Output dimension `p`.
    pub p: usize,
}

impl RenDims {
    /// `n` states, `l` neurons, `m` inputs, `p` outputs.
    pub fn new(n: usize, l: usize, m: usize, p: usize) -> Self {
        RenDims { n, l, m, p }
    }

    /// Side of the matrix `H` (and of the parameter `X`): `2n + l`.
    pub fn h_size(&self) -> usize {
        2 * self.n + self.l
    }

    pub(crate) fn validate(&self) -> Result<(), RenError> {
        for (name, v) in [("n", self.n), ("l", self.l), ("m", self.m), ("p", self.p)] {
            if v == 0 {
                return Err(RenError::new(
                    "dimensions",
                    format!(
                        "{name} must be at least 1 (got n = {}, l = {}, m = {}, p = {})",
                        self.n, self.l, self.m, self.p
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Where the biases `b_x`, `b_v` enter the model equations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BiasPlacement {
    /// `x+ = A x + ... + b_x`, `v = Ĉ1 x + ... + b_v` (Julia/JAX libraries).
    Explicit,
    /// `E x+ = F x + ... + b_x`, `Λ v = C1 x + ... + b_v` (the paper's PyTorch code).
    Implicit,
}

/// Options common to all RENs; [`RenOptions::paper`] is Martin & Furieri's choice.
///
/// Every option keeps the guarantees: they hold for any parameter value under any option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenOptions {
    /// Neuron nonlinearity; every [`Activation`] is monotone with slope in [0, 1].
    pub activation: Activation,
    /// Contraction-rate bound `ᾱ ∈ (0, 1]`: `V(Δx+) ≤ ᾱ² V(Δx)` (plus supply).
    pub alpha_bar: f64,
    /// `ε > 0` added to `H` (and to the Cayley matrices): what makes `H` strictly definite.
    pub eps: f64,
    /// Polar form `H_X = ρ² XᵀX / |X|_F² + εI` with a learnable `ρ` (parameter `polar`)
    /// instead of `XᵀX + εI`.
    pub polar: bool,
    /// Learnable biases `bx`, `bv`, `bu`; without them the biases are zero.
    pub biases: bool,
    /// Where `bx` and `bv` enter.
    pub bias_placement: BiasPlacement,
    /// `ρ ∈ (0, 1]`: biases are multiplied by `ρ^t` at step `t` (the paper: 0.95, so an
    /// impulse response is square-summable); 1 keeps them constant.
    pub bias_decay: f64,
    /// Learnable initial state `x0` (a 1 x n parameter); otherwise the state starts at zero.
    pub learn_x0: bool,
}

impl Default for RenOptions {
    /// A standard REN: tanh, `ᾱ = 1`, `ε = 1e-6`, polar `H_X`, constant explicit biases, zero
    /// initial state.
    fn default() -> Self {
        RenOptions {
            activation: Activation::Tanh,
            alpha_bar: 1.0,
            eps: 1e-6,
            polar: true,
            biases: true,
            bias_placement: BiasPlacement::Explicit,
            bias_decay: 1.0,
            learn_x0: false,
        }
    }
}

impl RenOptions {
    /// The paper's REN: tanh, `ᾱ = 1`, `ε = 1e-3` without polar scaling, implicit biases
    /// decaying with `0.95^t`, learnable `x0`.
    pub fn paper() -> Self {
        RenOptions {
            activation: Activation::Tanh,
            alpha_bar: 1.0,
            eps: 1e-3,
            polar: false,
            biases: true,
            bias_placement: BiasPlacement::Implicit,
            bias_decay: 0.95,
            learn_x0: true,
        }
    }

    /// Checks `alpha_bar ∈ (0, 1]`, `eps > 0` and `bias_decay ∈ (0, 1]`.
    pub fn validate(&self) -> Result<(), RenError> {
        let a = self.alpha_bar;
        if !(a > 0.0 && a <= 1.0) {
            return Err(RenError::new(
                "alpha_bar",
                format!("the contraction-rate bound must lie in (0, 1], got {a}"),
            ));
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(RenError::new(
                "eps",
                format!(
                    "must be finite and > 0 (it makes H positive definite), got {}",
                    self.eps
                ),
            ));
        }
        let r = self.bias_decay;
        if !(r > 0.0 && r <= 1.0) {
            return Err(RenError::new(
                "bias_decay",
                format!("the bias decay rate must lie in (0, 1], got {r}"),
            ));
        }
        Ok(())
    }
}

/// Checks a gain `γ`: finite and > 0.
pub(crate) fn validate_gamma(gamma: f64) -> Result<(), RenError> {
    if gamma > 0.0 && gamma.is_finite() {
        Ok(())
    } else {
        Err(RenError::new(
            "gamma",
            format!("the incremental gain bound must be finite and > 0, got {gamma}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_paper_options_are_valid() {
        RenOptions::default().validate().unwrap();
        RenOptions::paper().validate().unwrap();
    }

    #[test]
    fn errors_name_the_hyperparameter_and_the_value() {
        let e = validate_gamma(-2.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid REN gamma: the incremental gain bound must be finite and > 0, got -2"
        );
        let bad = RenOptions {
            alpha_bar: 1.5,
            ..RenOptions::default()
        };
        assert_eq!(bad.validate().unwrap_err().what, "alpha_bar");
    }
}
