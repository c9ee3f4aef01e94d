//! The gradient step size `η_t` of a convergent learned optimizer, and whether the learned
//! term is scaled by it: the three variants of Martin & Furieri.

use crate::optim::hyper::{check_range, HyperError};

/// How `x_{t+1} = x_t - η_t ∇f(x_t) + s_t v_t` chooses `η_t` and `s_t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepSize {
    /// Theorem 1 (full gradients): constant `0 < η < 1/β`, `s_t = 1`.
    Constant {
        /// The step size η.
        eta: f64,
    },
    /// Theorem 2, updates (16)-(17) (minibatch or cyclic partial gradients):
    /// `η_t = scale / (offset + t)^power` with `1/2 < power <= 1` (square-summable, not
    /// summable), and `s_t = η_t²`: (16) is `x_{t+1} = x_t - η_t (∇f_i(x_t) + v'_t)` with
    /// (17) `v'_t = η_t |z_t| w_t / |w_t|`, so the learned term is `η_t² v_t` in this type's
    /// notation (`v_t = |z_t| w_t / |w_t|`), and (15) `|v'_t| <= η_t C` holds with
    /// `C = max_t |z_t|`.
    Decaying {
        /// Numerator of η_t.
        scale: f64,
        /// Offset of t (the paper's code: 100).
        offset: f64,
        /// Exponent of (offset + t).
        power: f64,
    },
    /// The authors' published code: `η_t = 1/(100 + t)` and `s_t = 1` (v_t is *not* scaled by
    /// η_t² as (16)-(17) would); Theorem 2's bound on |v_t| then rests on the REN's decaying
    /// output.
    OriginalCode,
}

impl StepSize {
    /// Theorem 2's schedule as in the paper's code (`1/(100 + t)`), with the learned term
    /// scaled as (16)-(17).
    pub const THEOREM2_PAPER: StepSize = StepSize::Decaying {
        scale: 1.0,
        offset: 100.0,
        power: 1.0,
    };

    /// Checks the conditions of the matching theorem; `beta` (the smoothness of `f`, if known)
    /// is needed to check Theorem 1's `η < 1/β`.
    ///
    /// ```
    /// use convergent_l2o::optim::StepSize;
    /// assert!(StepSize::Constant { eta: 0.5 }.validated(Some(1.0)).is_ok());
    /// let err = StepSize::Constant { eta: 1.5 }.validated(Some(1.0)).unwrap_err();
    /// assert!(err.to_string().contains("eta = 1.5"));
    /// ```
    pub fn validated(self, beta: Option<f64>) -> Result<StepSize, HyperError> {
        match self {
            StepSize::Constant { eta } => {
                let max = beta.map_or(f64::INFINITY, |b| 1.0 / b);
                check_range(
                    "Theorem 1 (needs 0 < eta < 1/beta)",
                    "eta",
                    eta,
                    0.0,
                    false,
                    max,
                    false,
                )?;
            }
            StepSize::Decaying {
                scale,
                offset,
                power,
            } => {
                let owner = "Theorem 2 step sizes";
                check_range(owner, "scale", scale, 0.0, false, f64::INFINITY, false)?;
                check_range(owner, "offset", offset, 0.0, false, f64::INFINITY, false)?;
                check_range(
                    owner,
                    "power (square-summable, not summable)",
                    power,
                    0.5,
                    false,
                    1.0,
                    true,
                )?;
            }
            StepSize::OriginalCode => {}
        }
        Ok(self)
    }

    /// `η_t`.
    pub fn eta(&self, t: usize) -> f64 {
        match *self {
            StepSize::Constant { eta } => eta,
            StepSize::Decaying {
                scale,
                offset,
                power,
            } => scale / (offset + t as f64).powf(power),
            StepSize::OriginalCode => 1.0 / (100.0 + t as f64),
        }
    }

    /// `s_t`, the factor of the learned term (`η_t²` for Theorem 2's (16)-(17)).
    pub fn v_scale(&self, t: usize) -> f64 {
        match self {
            StepSize::Decaying { .. } => self.eta(t).powi(2),
            StepSize::Constant { .. } | StepSize::OriginalCode => 1.0,
        }
    }
}
