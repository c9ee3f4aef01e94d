//! The parts of the direct parametrization shared by dense and tied-block RENs (the note's
//! §2.1-2.5), recorded on the tape so meta-gradients reach the direct parameters.

use super::model::ImplicitMatrices;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;

/// The k x k identity as a constant.
pub(crate) fn eye<'t, T: Scalar>(tape: &'t Tape<T>, k: usize) -> Var<'t, T> {
    tape.constant(DMatrix::identity(k, k))
}

/// `H_X = XᵀX + εI`, or `ρ² XᵀX / |X|_F² + εI` with the polar scalar `ρ`.
pub(crate) fn h_x<'t, T: Scalar>(x: Var<'t, T>, polar: Option<Var<'t, T>>, eps: f64) -> Var<'t, T> {
    let k = x.ncols();
    let xtx = x.tr_matmul(x);
    let base = match polar {
        None => xtx,
        // The tiny shift keeps X = 0 from giving 0/0 (JAX does the same inside the norm).
        Some(rho) => {
            let ratio = rho
                .square()
                .div_elem(x.square().sum().add_scalar(T::cast(1e-30)));
            xtx.mul_scalar(ratio)
        }
    };
    base + eye(x.tape(), k).scale(T::cast(eps))
}

/// Reads `E, F, B1, Λ, C1, D11, P` from the blocks of `H` (ordered `x, w, x+`).
pub(crate) fn implicit_from_h<'t, T: Scalar>(
    h: Var<'t, T>,
    y: Var<'t, T>,
    n: usize,
    l: usize,
    alpha_bar: f64,
) -> ImplicitMatrices<'t, T> {
    // Symmetrised first: the blocks read below assume an exactly symmetric H.
    let h = (h + h.t()).scale(T::cast(0.5));
    let h11 = h.slice(0, 0, n, n);
    let h21 = h.slice(n, 0, l, n);
    let h22 = h.slice(n, n, l, l);
    let p = h.slice(n + l, n + l, n, n);
    let e = (h11 + p.scale(T::cast(1.0 / (alpha_bar * alpha_bar))) + y - y.t()).scale(T::cast(0.5));
    ImplicitMatrices {
        h,
        e,
        f: h.slice(n + l, 0, n, n),
        b1: h.slice(n + l, n, n, l),
        lambda: h22.diag().scale(T::cast(0.5)),
        c1: -h21,
        d11: -h22.lower(true),
        p,
    }
}

/// The Cayley contraction `N` (p x m, `|N|₂ < 1`) of `M = X3ᵀX3 + Y3 - Y3ᵀ + Z3ᵀZ3 + εI`
/// (d x d, d = min(m, p)): `(I+M)⁻¹(I-M)`, with `-2 Z3 (I+M)⁻¹` stacked below when p > m or
/// `-2 (I+M)⁻¹ Z3ᵀ` beside it when p < m.
pub(crate) fn cayley<'t, T: Scalar>(
    x3: Var<'t, T>,
    y3: Var<'t, T>,
    z3: Option<Var<'t, T>>,
    eps: f64,
    m: usize,
    p: usize,
) -> Var<'t, T> {
    let d = m.min(p);
    let i = eye(x3.tape(), d);
    let mut mm = x3.tr_matmul(x3) + y3 - y3.t() + i.scale(T::cast(eps));
    if let Some(z) = z3 {
        mm = mm + z.tr_matmul(z);
    }
    let plus = i + mm;
    let minus = i - mm;
    if p == m {
        return plus.solve(minus);
    }
    let z = z3.expect("cayley: Z3 is required when m != p");
    if p > m {
        // (I-M) and (I+M)⁻¹ commute, so the top block is the same product as for p = m.
        let rhs = Var::concat_rows(&[minus, z.scale(T::cast(-2.0))]);
        plus.t().solve(rhs.t()).t()
    } else {
        plus.solve(Var::concat_cols(&[minus, z.t().scale(T::cast(-2.0))]))
    }
}

/// `Γ_R - Γ_Q` of an ℓ2-gain-`γ` REN (the note's §2.5) for the Cayley contraction `N`
/// (p x m), output matrices `C2` (p x n), `D21` (p x l) and implicit `B2` (n x m),
/// `D12` (l x m): `V_Rᵀ 𝓡⁻¹ V_R + V_Qᵀ V_Q / γ`, with `𝓡 = γ (I - NᵀN)` by a solve.
pub(crate) fn lipschitz_terms<'t, T: Scalar>(
    nmat: Var<'t, T>,
    c2: Var<'t, T>,
    d21: Var<'t, T>,
    b2: Var<'t, T>,
    d12: Var<'t, T>,
    gamma: f64,
) -> Var<'t, T> {
    let (n, l) = (c2.ncols(), d21.ncols());
    let size = 2 * n + l;
    let v_r = Var::concat_cols(&[-nmat.tr_matmul(c2), -nmat.tr_matmul(d21) - d12.t(), b2.t()]);
    let r_cal = (eye(nmat.tape(), nmat.ncols()) - nmat.tr_matmul(nmat)).scale(T::cast(gamma));
    let v_q = Var::concat_cols(&[c2, d21]);
    let minus_gamma_q = v_q
        .tr_matmul(v_q)
        .scale(T::cast(1.0 / gamma))
        .pad(size, size, 0, 0);
    v_r.tr_matmul(r_cal.solve(v_r)) + minus_gamma_q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::gradcheck::uniform;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn cayley_is_a_strict_contraction_for_every_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        for (m, p) in [(3, 3), (2, 4), (4, 2), (1, 3)] {
            let d = m.min(p);
            for scale in [0.01, 1.0, 10.0] {
                let tape = Tape::<f64>::new();
                let mut c = |r, k| tape.constant(uniform(&mut rng, r, k, -scale, scale));
                let (x3, y3, z3) = (c(d, d), c(d, d), c(m.abs_diff(p), d));
                let n = cayley(x3, y3, (m != p).then_some(z3), 1e-3, m, p).value();
                assert_eq!(n.shape(), (p, m));
                let norm = n.singular_values().max();
                assert!(norm < 1.0, "m = {m}, p = {p}, scale {scale}: |N| = {norm}");
            }
        }
    }

    #[test]
    fn polar_h_x_equals_plain_h_x_when_rho_is_the_norm() {
        let tape = Tape::<f64>::new();
        let x = tape.constant(uniform(&mut StdRng::seed_from_u64(1), 5, 5, -1.0, 1.0));
        let rho = tape.scalar(x.value().norm());
        let diff = h_x(x, Some(rho), 1e-3).value() - h_x(x, None, 1e-3).value();
        assert!(diff.norm() < 1e-12);
    }
}
