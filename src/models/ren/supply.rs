//! The robustness property a dense REN is built for: contraction, an incremental ℓ2 gain, or
//! a general incremental (Q, S, R) supply rate.

use super::config::{validate_gamma, RenError};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// The guarantee a REN has for every parameter value (the note's §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Supply {
    /// Contracting: `V(Δx+) ≤ ᾱ² V(Δx)` for equal inputs; the output layer is free.
    Contracting,
    /// Incremental ℓ2 gain `γ` (Lipschitz): `|y_a - y_b| ≤ γ |u_a - u_b|` from a common state.
    Lipschitz {
        /// The gain bound `γ > 0`.
        gamma: f64,
    },
    /// Incremental (Q, S, R) dissipativity with supply `Δyᵀ Q Δy + 2 Δuᵀ S Δy + Δuᵀ R Δu`;
    /// needs `Q ≺ 0` (p x p), `S` (m x p), `R` (m x m) with `R - S Q⁻¹ Sᵀ ≻ 0`.
    Qsr {
        /// `Q` (p x p, symmetric negative definite).
        q: DMatrix<f64>,
        /// `S` (m x p).
        s: DMatrix<f64>,
        /// `R` (m x m, symmetric).
        r: DMatrix<f64>,
    },
}

impl Supply {
    /// The supply rate `s(Δy, Δu)` (0 for a contracting REN).
    pub fn rate(&self, dy: &DVector<f64>, du: &DVector<f64>) -> f64 {
        match self {
            Supply::Contracting => 0.0,
            Supply::Lipschitz { gamma } => gamma * du.norm_squared() - dy.norm_squared() / gamma,
            Supply::Qsr { q, s, r } => {
                dy.dot(&(q * dy)) + 2.0 * du.dot(&(s * dy)) + du.dot(&(r * du))
            }
        }
    }

    /// The sum of the magnitudes of the supply's terms: the scale a margin is relative to.
    pub fn rate_scale(&self, dy: &DVector<f64>, du: &DVector<f64>) -> f64 {
        match self {
            Supply::Contracting => 0.0,
            Supply::Lipschitz { gamma } => gamma * du.norm_squared() + dy.norm_squared() / gamma,
            Supply::Qsr { q, s, r } => {
                dy.dot(&(q * dy)).abs() + 2.0 * du.dot(&(s * dy)).abs() + du.dot(&(r * du)).abs()
            }
        }
    }
}

/// Constants of a validated (Q, S, R): `L_Q⁻¹` with `L_Qᵀ L_Q = -Q`, `L_R` with
/// `L_Rᵀ L_R = R - S Q⁻¹ Sᵀ`, and `-Q⁻¹ Sᵀ`.
#[derive(Clone, Debug)]
pub(crate) struct QsrConstants {
    pub q: DMatrix<f64>,
    pub s: DMatrix<f64>,
    pub r: DMatrix<f64>,
    pub lq_inv: DMatrix<f64>,
    pub lr: DMatrix<f64>,
    pub d22_offset: DMatrix<f64>,
}

/// Checks `γ` or (Q, S, R) against the sizes `m`, `p`; returns the (Q, S, R) constants.
pub(crate) fn validate(
    supply: &Supply,
    m: usize,
    p: usize,
) -> Result<Option<QsrConstants>, RenError> {
    match supply {
        Supply::Contracting => Ok(None),
        Supply::Lipschitz { gamma } => validate_gamma(*gamma).map(|_| None),
        Supply::Qsr { q, s, r } => qsr_constants(q, s, r, m, p).map(Some),
    }
}

fn qsr_constants(
    q: &DMatrix<f64>,
    s: &DMatrix<f64>,
    r: &DMatrix<f64>,
    m: usize,
    p: usize,
) -> Result<QsrConstants, RenError> {
    let err = |msg: String| RenError::new("(Q, S, R)", msg);
    for (name, mat, shape) in [("Q", q, (p, p)), ("S", s, (m, p)), ("R", r, (m, m))] {
        if mat.shape() != shape {
            return Err(err(format!(
                "{name} is {} x {}, expected {} x {} (m = {m}, p = {p})",
                mat.nrows(),
                mat.ncols(),
                shape.0,
                shape.1
            )));
        }
        if mat.iter().any(|v| !v.is_finite()) {
            return Err(err(format!("{name} has a non-finite entry")));
        }
    }
    for (name, mat) in [("Q", q), ("R", r)] {
        let asym = (mat - mat.transpose()).amax();
        if asym > 1e-12 * mat.amax().max(1.0) {
            return Err(err(format!(
                "{name} must be symmetric (max |{name} - {name}ᵀ| = {asym:e})"
            )));
        }
    }
    let sym = |a: &DMatrix<f64>| (a + a.transpose()) * 0.5;
    let (q, r) = (sym(q), sym(r));
    let lq = (-&q)
        .cholesky()
        .ok_or_else(|| err("Q must be negative definite".into()))?
        .l()
        .transpose();
    let q_inv = q
        .clone()
        .try_inverse()
        .ok_or_else(|| err("Q is singular".into()))?;
    let schur = sym(&(&r - s * &q_inv * s.transpose()));
    let lr = schur
        .cholesky()
        .ok_or_else(|| err("R - S Q⁻¹ Sᵀ must be positive definite".into()))?
        .l()
        .transpose();
    let lq_inv = lq
        .try_inverse()
        .ok_or_else(|| err("Q is singular".into()))?;
    Ok(QsrConstants {
        d22_offset: -(&q_inv * s.transpose()),
        q,
        s: s.clone(),
        r,
        lq_inv,
        lr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lipschitz_supply_as_qsr_gives_square_root_factors() {
        let (m, p, gamma) = (2, 3, 0.25);
        let q = DMatrix::identity(p, p) * (-1.0 / gamma);
        let r = DMatrix::identity(m, m) * gamma;
        let k = qsr_constants(&q, &DMatrix::zeros(m, p), &r, m, p).unwrap();
        assert!((k.lq_inv - DMatrix::identity(p, p) * gamma.sqrt()).norm() < 1e-15);
        assert!((k.lr - DMatrix::identity(m, m) * gamma.sqrt()).norm() < 1e-15);
        assert_eq!(k.d22_offset, DMatrix::zeros(p, m));
    }

    #[test]
    fn asymmetric_q_is_refused() {
        let q = DMatrix::from_row_slice(2, 2, &[-1.0, 0.5, 0.0, -1.0]);
        let e =
            qsr_constants(&q, &DMatrix::zeros(1, 2), &DMatrix::identity(1, 1), 1, 2).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid REN (Q, S, R): Q must be symmetric"),
            "{e}"
        );
    }
}
