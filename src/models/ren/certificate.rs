//! Numerical certificates of a REN's guarantee for given parameters, in f64: `H ≻ 0`, the
//! identity between `H` and an independent re-computation of its construction, and the
//! one-step dissipation inequality on pairs of states and inputs (the note's §3).

use super::config::RenDims;
use super::dense::DenseRen;
use super::supply::Supply;
use super::tied::TiedRen;
use crate::models::Params;
use crate::tape::{Scalar, Tape};
use nalgebra::{DMatrix, DVector};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::fmt;

/// Two states and two inputs: trajectory `a` steps from `x_a` with `u_a`, `b` from `x_b`
/// with `u_b`, at the same time (same biases).
#[derive(Clone, Debug)]
pub struct Pair {
    /// State of trajectory `a` (n).
    pub x_a: DVector<f64>,
    /// Input of trajectory `a` (m).
    pub u_a: DVector<f64>,
    /// State of trajectory `b` (n).
    pub x_b: DVector<f64>,
    /// Input of trajectory `b` (m); ignored (taken equal to `u_a`) for contracting RENs.
    pub u_b: DVector<f64>,
}

/// The pairs a certificate checks the dissipation inequality on.
#[derive(Clone, Debug)]
pub enum Pairs {
    /// `count` pairs with entries `scale · N(0, 1)`, from `seed`.
    Random {
        /// Number of pairs.
        count: usize,
        /// Standard deviation of the entries (large values probe the nonlinearity's tails).
        scale: f64,
        /// Random seed.
        seed: u64,
    },
    /// These pairs.
    Given(Vec<Pair>),
}

/// What a certificate found; [`Certificate::holds`] is the pass/fail verdict.
#[derive(Clone, Debug)]
pub struct Certificate {
    /// Smallest eigenvalue of the symmetrised `H` (at least `ε` in exact arithmetic).
    pub h_min_eigenvalue: f64,
    /// Largest eigenvalue of the symmetrised `H` (large when `𝓡` is nearly singular).
    pub h_max_eigenvalue: f64,
    /// Whether a Cholesky factorization of the symmetrised `H` succeeds.
    pub h_positive_definite: bool,
    /// `|H(E, F, B1, Λ, C1, D11, P) - (H_X + Γ_R - Γ_Q)|_F / |H|_F`: the model's matrices
    /// against an independent plain-f64 computation from the direct parameters (roundoff,
    /// growing with the conditioning of `H`).
    pub identity_error: f64,
    /// Smallest relative margin `(s - V(Δx+) + ᾱ² V(Δx)) / scale` over the pairs (≥ 0 when
    /// the inequality holds; `+inf` without pairs). `scale` sums the magnitudes of the terms.
    pub dissipation_margin: f64,
    /// Index of the pair with the smallest margin.
    pub worst_pair: Option<usize>,
    /// Number of pairs checked.
    pub pairs: usize,
}

impl Certificate {
    /// Condition number `λ_max(H) / λ_min(H)`.
    pub fn h_condition(&self) -> f64 {
        self.h_max_eigenvalue / self.h_min_eigenvalue
    }

    /// True if `H ≻ 0`, the identity error is at most
    /// `tol · max(1, cond(H)) · max(1, λ_max(H))` and no pair violates the dissipation
    /// inequality by more than `tol` (relative).
    pub fn holds(&self, tol: f64) -> bool {
        self.h_positive_definite
            && self.h_min_eigenvalue > 0.0
            // Roundoff of the rebuild scales with |H| and with the conditioning of 𝓡 (and H).
            && self.identity_error
                <= tol * self.h_condition().max(1.0) * self.h_max_eigenvalue.max(1.0)
            && self.dissipation_margin >= -tol
    }
}

impl fmt::Display for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "H positive definite: {} (eigenvalues in [{:e}, {:e}]); identity error {:e}; \
             dissipation margin {:e} over {} pairs",
            self.h_positive_definite,
            self.h_min_eigenvalue,
            self.h_max_eigenvalue,
            self.identity_error,
            self.dissipation_margin,
            self.pairs
        )
    }
}

fn to_f64<T: Scalar>(params: &Params<T>) -> Params<f64> {
    let mut out = Params::new();
    for (name, m) in params.iter() {
        out.insert(name, m.map(|v| v.as_f64()));
    }
    out
}

impl DenseRen {
    /// Certifies the model of `params` (of any precision, evaluated in f64) on `pairs`.
    ///
    /// ```
    /// use convergent_l2o::models::ren::{DenseRen, Pairs, RenDims, RenOptions};
    /// use rand::{rngs::StdRng, SeedableRng};
    ///
    /// let ren = DenseRen::lipschitz(RenDims::new(2, 3, 2, 2), 2.0, RenOptions::default())?;
    /// let params = ren.init_params::<f64>(&mut StdRng::seed_from_u64(1), 1.0);
    /// let cert = ren.certify(&params, &Pairs::Random { count: 100, scale: 3.0, seed: 2 });
    /// assert!(cert.holds(1e-9), "{cert}");
    /// # Ok::<(), convergent_l2o::models::ren::RenError>(())
    /// ```
    ///
    /// Panics if `params` does not fit the model or a pair has the wrong sizes.
    pub fn certify<T: Scalar>(&self, params: &Params<T>, pairs: &Pairs) -> Certificate {
        let p = to_f64(params);
        if let Err(e) = self.check_params(&p) {
            panic!("DenseRen::certify: {e}");
        }
        let tape = Tape::<f64>::new();
        let model = self.build(&p.bind_constants(&tape));
        let im = model.implicit();
        let h = im.h.value();
        let sym = (&h + h.transpose()) * 0.5;
        let eigenvalues = sym.clone().symmetric_eigen().eigenvalues;
        let h_positive_definite = sym.cholesky().is_some();
        let rebuilt = rebuild_h(
            &im.e.value(),
            &im.f.value(),
            &im.b1.value(),
            &im.lambda.value(),
            &im.c1.value(),
            &im.d11.value(),
            &im.p.value(),
            self.options().alpha_bar,
        );
        let reference = reference_h(self, &p);
        let identity_error =
            (&rebuilt - &reference).norm() / reference.norm().max(f64::MIN_POSITIVE);
        let pairs = match pairs {
            Pairs::Given(v) => v.clone(),
            Pairs::Random { count, scale, seed } => {
                random_pairs(self.dims(), *count, *scale, *seed)
            }
        };
        let lyap = model.lyapunov().value();
        let a2 = self.options().alpha_bar.powi(2);
        let contracting = matches!(self.supply(), Supply::Contracting);
        let (n, m) = (self.dims().n, self.dims().m);
        let col = |v: &DVector<f64>, len: usize, what: &str| {
            assert!(
                v.len() == len,
                "DenseRen::certify: {what} has {} entries, expected {len}",
                v.len()
            );
            tape.constant(DMatrix::from_column_slice(len, 1, v.as_slice()))
        };
        let mut margin = f64::INFINITY;
        let mut worst_pair = None;
        for (k, pair) in pairs.iter().enumerate() {
            let u_b = if contracting { &pair.u_a } else { &pair.u_b };
            let (ya, xa1) = model.step(col(&pair.x_a, n, "x_a"), Some(col(&pair.u_a, m, "u_a")), 0);
            let (yb, xb1) = model.step(col(&pair.x_b, n, "x_b"), Some(col(u_b, m, "u_b")), 0);
            let dx = &pair.x_a - &pair.x_b;
            let du = &pair.u_a - u_b;
            let dx1 = DVector::from_column_slice((xa1.value() - xb1.value()).as_slice());
            let dy = DVector::from_column_slice((ya.value() - yb.value()).as_slice());
            let v1 = dx1.dot(&(&lyap * &dx1));
            let v0 = a2 * dx.dot(&(&lyap * &dx));
            let s = self.supply().rate(&dy, &du);
            let scale = self.supply().rate_scale(&dy, &du) + v1.abs() + v0.abs();
            let rel = (s - v1 + v0) / scale.max(f64::MIN_POSITIVE);
            if rel < margin {
                margin = rel;
                worst_pair = Some(k);
            }
        }
        Certificate {
            h_min_eigenvalue: eigenvalues.min(),
            h_max_eigenvalue: eigenvalues.max(),
            h_positive_definite,
            identity_error,
            dissipation_margin: margin,
            worst_pair,
            pairs: pairs.len(),
        }
    }
}

impl TiedRen {
    /// Certifies the model of `params` by expanding it to a [`DenseRen`] (small sizes only).
    ///
    /// Panics if `m` exceeds 2048 (the expansion forms m x m matrices) or `params` does not fit.
    pub fn certify<T: Scalar>(&self, params: &Params<T>, pairs: &Pairs) -> Certificate {
        let m = self.dims().m;
        assert!(
            m <= 2048,
            "TiedRen::certify: expanding to dense forms {m} x {m} matrices; use m <= 2048"
        );
        if let Err(e) = self.check_params(params) {
            panic!("TiedRen::certify: {e}");
        }
        let (dense, p) = self.to_dense(params);
        dense.certify(&p, pairs)
    }
}

fn random_pairs(dims: RenDims, count: usize, scale: f64, seed: u64) -> Vec<Pair> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut vec =
        |len: usize| DVector::from_fn(len, |_, _| scale * rng.sample::<f64, _>(StandardNormal));
    (0..count)
        .map(|_| Pair {
            x_a: vec(dims.n),
            u_a: vec(dims.m),
            x_b: vec(dims.n),
            u_b: vec(dims.m),
        })
        .collect()
}

/// `[[E+Eᵀ-P/ᾱ², -C1ᵀ, Fᵀ], [-C1, 2Λ-D11-D11ᵀ, B1ᵀ], [F, B1, P]]` (the note's §2.1).
#[allow(clippy::too_many_arguments)]
fn rebuild_h(
    e: &DMatrix<f64>,
    f: &DMatrix<f64>,
    b1: &DMatrix<f64>,
    lambda: &DMatrix<f64>,
    c1: &DMatrix<f64>,
    d11: &DMatrix<f64>,
    p: &DMatrix<f64>,
    alpha_bar: f64,
) -> DMatrix<f64> {
    let (n, l) = (e.nrows(), c1.nrows());
    let w = DMatrix::from_diagonal(&lambda.column(0)) * 2.0 - d11 - d11.transpose();
    let mut h = DMatrix::zeros(2 * n + l, 2 * n + l);
    h.view_mut((0, 0), (n, n))
        .copy_from(&(e + e.transpose() - p / (alpha_bar * alpha_bar)));
    h.view_mut((0, n), (n, l)).copy_from(&(-c1.transpose()));
    h.view_mut((0, n + l), (n, n)).copy_from(&f.transpose());
    h.view_mut((n, 0), (l, n)).copy_from(&(-c1));
    h.view_mut((n, n), (l, l)).copy_from(&w);
    h.view_mut((n, n + l), (l, n)).copy_from(&b1.transpose());
    h.view_mut((n + l, 0), (n, n)).copy_from(f);
    h.view_mut((n + l, n), (n, l)).copy_from(b1);
    h.view_mut((n + l, n + l), (n, n)).copy_from(p);
    h
}

/// `H_X + Γ_R - Γ_Q` from the direct parameters, written independently of the tape code
/// (explicit inverses and the general (Q, S, R) formulas for every robust REN).
fn reference_h(ren: &DenseRen, p: &Params<f64>) -> DMatrix<f64> {
    let RenDims { n, l, m, p: out } = ren.dims();
    let o = ren.options();
    let inv = |a: DMatrix<f64>| a.try_inverse().expect("reference_h: singular matrix");
    let x = p.get("X");
    let scale = if o.polar {
        p.get("polar")[(0, 0)].powi(2) / x.norm_squared()
    } else {
        1.0
    };
    let mut h = x.transpose() * x * scale + DMatrix::identity(2 * n + l, 2 * n + l) * o.eps;
    let (q, s, r) = match ren.supply() {
        Supply::Contracting => return h,
        Supply::Lipschitz { gamma } => (
            DMatrix::identity(out, out) * (-1.0 / gamma),
            DMatrix::zeros(m, out),
            DMatrix::identity(m, m) * *gamma,
        ),
        Supply::Qsr { q, s, r } => (q.clone(), s.clone(), r.clone()),
    };
    let d = m.min(out);
    let (x3, y3) = (p.get("X3"), p.get("Y3"));
    let z3 = p
        .try_get("Z3")
        .cloned()
        .unwrap_or_else(|| DMatrix::zeros(0, d));
    let id = DMatrix::<f64>::identity(d, d);
    let mm = x3.transpose() * x3 + y3 - y3.transpose() + z3.transpose() * &z3 + &id * o.eps;
    let g = inv(&id + &mm);
    let top = (&id - &mm) * &g;
    let nmat = if out > m {
        let mut nm = DMatrix::zeros(out, m);
        nm.view_mut((0, 0), (d, d)).copy_from(&top);
        nm.view_mut((d, 0), (out - d, d))
            .copy_from(&(&z3 * &g * -2.0));
        nm
    } else if out < m {
        let mut nm = DMatrix::zeros(out, m);
        nm.view_mut((0, 0), (d, d)).copy_from(&top);
        nm.view_mut((0, d), (d, m - d))
            .copy_from(&(&g * z3.transpose() * -2.0));
        nm
    } else {
        top
    };
    let lq = (-&q)
        .cholesky()
        .expect("reference_h: Q ≺ 0")
        .l()
        .transpose();
    let q_inv = inv(q.clone());
    let schur = &r - &s * &q_inv * s.transpose();
    let lr = schur
        .cholesky()
        .expect("reference_h: R - S Q⁻¹ Sᵀ ≻ 0")
        .l()
        .transpose();
    let d22 = -(&q_inv * s.transpose()) + inv(lq) * nmat * lr;
    let (b2, d12, c2, d21) = (p.get("B2"), p.get("D12"), p.get("C2"), p.get("D21"));
    let gq = d22.transpose() * &q + &s;
    let r_cal = &r + &s * &d22 + d22.transpose() * s.transpose() + d22.transpose() * &q * &d22;
    let mut v_r = DMatrix::zeros(m, 2 * n + l);
    v_r.view_mut((0, 0), (m, n)).copy_from(&(&gq * c2));
    v_r.view_mut((0, n), (m, l))
        .copy_from(&(&gq * d21 - d12.transpose()));
    v_r.view_mut((0, n + l), (m, n)).copy_from(&b2.transpose());
    let mut v_q = DMatrix::zeros(out, 2 * n + l);
    v_q.view_mut((0, 0), (out, n)).copy_from(c2);
    v_q.view_mut((0, n), (out, l)).copy_from(d21);
    h += v_r.transpose() * inv(r_cal) * &v_r - v_q.transpose() * &q * &v_q;
    h
}
