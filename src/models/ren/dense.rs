//! The dense REN: any sizes, contracting, ℓ2-gain or (Q, S, R) robust, by direct
//! parametrization.

use super::config::{RenDims, RenError, RenOptions};
use super::model::{Biases, IoSpec, RenModel};
use super::param_map::{cayley, h_x, implicit_from_h, lipschitz_terms};
use super::shapes::{fetch, random, template, Shapes};
use super::supply::{self, QsrConstants, Supply};
use crate::models::{Bound, Params, ParamsError};
use crate::tape::{Scalar, Var};
use rand::Rng;

/// An acyclic REN with dense matrices whose every parameter value has the guarantee of its
/// [`Supply`].
///
/// Parameters (names of the paper's PyTorch code): `x0` (1 x n, with `learn_x0`), `X`
/// ((2n+l) x (2n+l)), `Y` (n x n), `X3`, `Y3` (d x d, d = min(m, p)) and `Z3` (|p-m| x d,
/// only if m ≠ p) for robust RENs or `D22` (p x m) for contracting ones, `B2` (n x m),
/// `D12` (l x m), `C2` (p x n), `D21` (p x l), `bx`, `bv`, `bu` (columns, with `biases`),
/// `polar` (1 x 1, with `polar`).
///
/// ```
/// use convergent_l2o::models::ren::{DenseRen, RenDims, RenOptions};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let ren = DenseRen::lipschitz(RenDims::new(3, 4, 2, 5), 0.5, RenOptions::default())?;
/// let params = ren.init_params::<f64>(&mut StdRng::seed_from_u64(0), 0.5);
/// let tape = Tape::new();
/// let model = ren.build(&params.bind(&tape)); // once per parameter update
/// let u = tape.constant(DMatrix::from_element(2, 1, 1.0));
/// let (y, x1) = model.step(model.initial_state(), Some(u), 0);
/// assert_eq!((y.shape(), x1.shape()), ((5, 1), (3, 1)));
/// # Ok::<(), convergent_l2o::models::ren::RenError>(())
/// ```
#[derive(Clone, Debug)]
pub struct DenseRen {
    dims: RenDims,
    supply: Supply,
    options: RenOptions,
    qsr: Option<QsrConstants>,
}

impl DenseRen {
    /// A REN of the given sizes and guarantee; refuses invalid sizes or hyperparameters.
    pub fn new(dims: RenDims, supply: Supply, options: RenOptions) -> Result<Self, RenError> {
        dims.validate()?;
        options.validate()?;
        let qsr = supply::validate(&supply, dims.m, dims.p)?;
        Ok(DenseRen {
            dims,
            supply,
            options,
            qsr,
        })
    }

    /// A contracting REN (free output layer).
    pub fn contracting(dims: RenDims, options: RenOptions) -> Result<Self, RenError> {
        Self::new(dims, Supply::Contracting, options)
    }

    /// A REN with incremental ℓ2 gain (Lipschitz bound) `gamma`.
    pub fn lipschitz(dims: RenDims, gamma: f64, options: RenOptions) -> Result<Self, RenError> {
        Self::new(dims, Supply::Lipschitz { gamma }, options)
    }

    /// Sizes `n`, `l`, `m`, `p`.
    pub fn dims(&self) -> RenDims {
        self.dims
    }

    /// The guarantee.
    pub fn supply(&self) -> &Supply {
        &self.supply
    }

    /// The options.
    pub fn options(&self) -> &RenOptions {
        &self.options
    }

    pub(crate) fn shapes(&self) -> Shapes {
        let RenDims { n, l, m, p } = self.dims;
        let o = &self.options;
        let d = m.min(p);
        let mut s: Shapes = Vec::new();
        if o.learn_x0 {
            s.push(("x0", (1, n)));
        }
        s.push(("X", (2 * n + l, 2 * n + l)));
        s.push(("Y", (n, n)));
        if !matches!(self.supply, Supply::Contracting) {
            s.push(("X3", (d, d)));
            s.push(("Y3", (d, d)));
            if m != p {
                s.push(("Z3", (m.abs_diff(p), d)));
            }
        }
        s.extend([
            ("B2", (n, m)),
            ("D12", (l, m)),
            ("C2", (p, n)),
            ("D21", (p, l)),
        ]);
        if matches!(self.supply, Supply::Contracting) {
            s.push(("D22", (p, m)));
        }
        if o.biases {
            s.extend([("bx", (n, 1)), ("bv", (l, 1)), ("bu", (p, 1))]);
        }
        if o.polar {
            s.push(("polar", (1, 1)));
        }
        s
    }

    /// Zero parameters of the right names and shapes (a template for checks and loading).
    pub fn template<T: Scalar>(&self) -> Params<T> {
        template(&self.shapes())
    }

    /// Random parameters, entries `N(0, std²)` (the paper: 0.01); `polar` starts at `|X|_F`.
    pub fn init_params<T: Scalar>(&self, rng: &mut impl Rng, std: f64) -> Params<T> {
        random(&self.shapes(), rng, std)
    }

    /// Checks that `params` (e.g. from [`Params::load`]) has exactly this model's names and
    /// shapes.
    pub fn check_params<T: Scalar>(&self, params: &Params<T>) -> Result<(), ParamsError> {
        params.check_matches(&self.template())
    }

    /// The explicit model for bound parameters, recorded on their tape: call once per
    /// parameter update and step it through a rollout.
    ///
    /// Panics if a parameter is missing or has the wrong shape (see [`DenseRen::check_params`]).
    pub fn build<'t, T: Scalar>(&self, bound: &Bound<'t, T>) -> RenModel<'t, T> {
        self.build_from(&|name| bound.get(name))
    }

    /// Like [`DenseRen::build`], with the parameters looked up by name through `get` (for
    /// parameters computed on the tape, e.g. a tied-block REN expanded to dense).
    pub fn build_from<'t, T: Scalar>(&self, get: &dyn Fn(&str) -> Var<'t, T>) -> RenModel<'t, T> {
        let shapes = self.shapes();
        let v = |name: &str| fetch(get, &shapes, name, "DenseRen");
        let RenDims { n, l, m, p } = self.dims;
        let o = &self.options;
        let mut h = h_x(v("X"), o.polar.then(|| v("polar")), o.eps);
        let (b2, d12, c2, d21) = (v("B2"), v("D12"), v("C2"), v("D21"));
        let z3 = || (m != p).then(|| v("Z3"));
        let d22 = match (&self.supply, &self.qsr) {
            (Supply::Contracting, _) => v("D22"),
            (Supply::Lipschitz { gamma }, _) => {
                let nmat = cayley(v("X3"), v("Y3"), z3(), o.eps, m, p);
                h = h + lipschitz_terms(nmat, c2, d21, b2, d12, *gamma);
                nmat.scale(T::cast(*gamma))
            }
            (Supply::Qsr { .. }, Some(k)) => {
                let nmat = cayley(v("X3"), v("Y3"), z3(), o.eps, m, p);
                let (terms, d22) = qsr_terms(k, nmat, c2, d21, b2, d12);
                h = h + terms;
                d22
            }
            (Supply::Qsr { .. }, None) => unreachable!("validated (Q, S, R) has constants"),
        };
        let implicit = implicit_from_h(h, v("Y"), n, l, o.alpha_bar);
        let biases = o.biases.then(|| Biases {
            bx: v("bx"),
            bv: v("bv"),
            bu: v("bu"),
        });
        let x0 = o.learn_x0.then(|| v("x0"));
        let io = IoSpec::Dense {
            b2,
            d12,
            c2,
            d21,
            d22,
        };
        RenModel::assemble(self.dims, o, implicit, biases, x0, io)
    }
}

/// `Γ_R - Γ_Q` and `D22` of a (Q, S, R) REN (the note's §2.4).
fn qsr_terms<'t, T: Scalar>(
    k: &QsrConstants,
    nmat: Var<'t, T>,
    c2: Var<'t, T>,
    d21: Var<'t, T>,
    b2: Var<'t, T>,
    d12: Var<'t, T>,
) -> (Var<'t, T>, Var<'t, T>) {
    let tape = nmat.tape();
    let c = |m: &nalgebra::DMatrix<f64>| tape.constant(m.map(T::cast));
    let (q, s, r) = (c(&k.q), c(&k.s), c(&k.r));
    let d22 = c(&k.d22_offset) + c(&k.lq_inv).matmul(nmat).matmul(c(&k.lr));
    let g = d22.tr_matmul(q) + s;
    let sd = s.matmul(d22);
    let r_cal = r + sd + sd.t() + d22.tr_matmul(q.matmul(d22));
    let v_r = Var::concat_cols(&[g.matmul(c2), g.matmul(d21) - d12.t(), b2.t()]);
    let size = v_r.ncols();
    let v_q = Var::concat_cols(&[c2, d21]);
    let gamma_q = v_q.tr_matmul(q.matmul(v_q)).pad(size, size, 0, 0);
    (v_r.tr_matmul(r_cal.solve(v_r)) - gamma_q, d22)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tape::Tape;
    use nalgebra::DMatrix;
    use rand::{rngs::StdRng, SeedableRng};

    /// The general (Q, S, R) path with `Q = -I/γ, S = 0, R = γI` gives the Lipschitz model.
    #[test]
    fn qsr_with_lipschitz_supply_matches_lipschitz() {
        let (dims, gamma) = (RenDims::new(2, 3, 2, 4), 0.7);
        let qsr = Supply::Qsr {
            q: DMatrix::identity(4, 4) * (-1.0 / gamma),
            s: DMatrix::zeros(2, 4),
            r: DMatrix::identity(2, 2) * gamma,
        };
        let a = DenseRen::lipschitz(dims, gamma, RenOptions::default()).unwrap();
        let b = DenseRen::new(dims, qsr, RenOptions::default()).unwrap();
        let params = a.init_params::<f64>(&mut StdRng::seed_from_u64(3), 0.8);
        let tape = Tape::new();
        let (ma, mb) = (
            a.build(&params.bind_constants(&tape)),
            b.build(&params.bind_constants(&tape)),
        );
        let ha = ma.implicit().h.value();
        assert!((ha - mb.implicit().h.value()).norm() < 1e-10 * ma.implicit().h.value().norm());
        let u = tape.constant(DMatrix::from_element(2, 1, 0.9));
        let x = tape.constant(DMatrix::from_element(2, 1, -0.4));
        let (ya, _) = ma.step(x, Some(u), 0);
        let (yb, _) = mb.step(x, Some(u), 0);
        assert!((ya.value() - yb.value()).norm() < 1e-10);
    }
}
