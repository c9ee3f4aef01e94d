//! The per-coordinate direction network of [`super::ConvergentAnyL2O`] (learned_optimization's
//! small_fc_lopt shape): the same small MLP on every coordinate's features, written as
//! whole-matrix products over the `n x k` feature matrix, so its cost is a few passes over the
//! parameter vector whatever the model.

use crate::models::{Init, Spec};
use crate::optim::OptState;
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;

/// Decays of the gradient's running averages (momenta at three time scales).
pub(crate) const MOMENTUM_DECAYS: [f64; 3] = [0.5, 0.9, 0.99];
/// Decay of the running average of the squared gradient.
pub(crate) const SECOND_MOMENT_DECAY: f64 = 0.999;
/// Per-coordinate features: `g`, the three momenta, `g` and the two slower momenta over the
/// root mean square gradient (Adam's direction among them), and the parameter `x`.
pub(crate) const FEATURES: [&str; 8] = [
    "grad",
    "mom_0.5",
    "mom_0.9",
    "mom_0.99",
    "grad/rms",
    "mom_0.9/rms",
    "mom_0.99/rms",
    "param",
];
/// Index of Adam's direction `m̂/√v̂` (decay 0.9) among [`FEATURES`].
pub(crate) const ADAM_FEATURE: usize = 5;
/// Features shared by every coordinate: `tanh(t/10)`, `tanh(t/100)`, `tanh(t/1000)` and
/// `tanh(f/f0)` (the paper's `f`, relative to the start).
pub(crate) const SCALAR_FEATURES: usize = 4;

const STATE_M: [&str; 3] = ["any.m0", "any.m1", "any.m2"];
const STATE_R: &str = "any.r";

/// The tensors of the network (names under `net.`): `w_in` (k x h), `b_in` (1 x h), `w_time`
/// (scalar features x h), `w_out` (h x 1), and the linear skip `w_lin` (k x 1), initialized
/// to minus Adam's direction.
pub(crate) fn specs(hidden: usize) -> Vec<Spec> {
    let k = FEATURES.len();
    vec![
        Spec::new("w_in", (k, hidden), Init::Uniform(1.0 / (k as f64).sqrt())),
        Spec::new("b_in", (1, hidden), Init::Zeros),
        Spec::new("w_time", (SCALAR_FEATURES, hidden), Init::Uniform(0.5)),
        Spec::new(
            "w_out",
            (hidden, 1),
            Init::Uniform(0.1 / (hidden as f64).sqrt()),
        ),
        Spec::new("w_lin", (k, 1), Init::Zeros),
    ]
}

/// Sets `w_lin` to minus Adam's direction (the untrained optimizer then steps along Adam's).
pub(crate) fn adam_start<T: Scalar>(w_lin: &mut DMatrix<T>) {
    w_lin.fill(T::zero());
    w_lin[ADAM_FEATURE] = T::cast(-1.0);
}

/// Zero momenta for a trajectory at `x0`.
pub(crate) fn start<'t, T: Scalar>(x0: Var<'t, T>, state: &mut OptState<'t, T>) {
    for name in STATE_M {
        state.set(name, x0.zeros_like());
    }
    state.set(STATE_R, x0.zeros_like());
}

/// The `n x m` indicator of which tensor (of `sizes`) each coordinate belongs to.
pub(crate) fn segments<T: Scalar>(sizes: &[usize]) -> DMatrix<T> {
    let n: usize = sizes.iter().sum();
    let mut s = DMatrix::zeros(n, sizes.len());
    let mut row = 0;
    for (j, &len) in sizes.iter().enumerate() {
        for r in row..row + len {
            s[(r, j)] = T::one();
        }
        row += len;
    }
    s
}

/// Each column of `f` (n x k) divided by its root mean square within each tensor:
/// `f ⊙ S (Sᵀ f² / counts + tiny)^(-1/2)`, two products with the indicator `S`.
pub(crate) fn normalize_per_tensor<'t, T: Scalar>(
    f: Var<'t, T>,
    s: Var<'t, T>,
    sizes: &[usize],
) -> Var<'t, T> {
    let tape = f.tape();
    let k = f.ncols();
    let inv_counts = DMatrix::from_fn(sizes.len(), k, |j, _| T::cast(1.0 / sizes[j] as f64));
    let mean_sq = s.tr_matmul(f.square()).mul_elem(tape.constant(inv_counts));
    let inv_rms = mean_sq.add_scalar(T::cast(1e-30)).sqrt().recip_or_zero();
    f.mul_elem(s.matmul(inv_rms))
}

/// The direction `w_t` (n x 1) from the gradient `g` at `x`, the loss ratio `f/f0`, step `t`
/// and the tensor layout; advances the running averages in `state`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn propose<'t, T: Scalar>(
    get: &dyn Fn(&str) -> Var<'t, T>,
    x: Var<'t, T>,
    g: Var<'t, T>,
    loss_ratio: Var<'t, T>,
    t: usize,
    sizes: &[usize],
    state: &mut OptState<'t, T>,
) -> Var<'t, T> {
    let tape: &'t Tape<T> = x.tape();
    let mut moms = Vec::with_capacity(3);
    for (name, beta) in STATE_M.iter().zip(MOMENTUM_DECAYS) {
        let m = state.expect(name).scale(T::cast(beta)) + g.scale(T::cast(1.0 - beta));
        state.set(name, m);
        moms.push(m);
    }
    let b2 = SECOND_MOMENT_DECAY;
    let r = state.expect(STATE_R).scale(T::cast(b2)) + g.square().scale(T::cast(1.0 - b2));
    state.set(STATE_R, r);
    let correct = |beta: f64| 1.0 / (1.0 - beta.powi(t as i32 + 1));
    // √(v̂ + 1e-12): finite derivative where a coordinate has seen no gradient.
    let rms = r
        .scale(T::cast(correct(b2)))
        .add_scalar(T::cast(1e-12))
        .sqrt();
    let feats = Var::concat_cols(&[
        g,
        moms[0],
        moms[1],
        moms[2],
        g.div_elem(rms),
        moms[1]
            .scale(T::cast(correct(MOMENTUM_DECAYS[1])))
            .div_elem(rms),
        moms[2]
            .scale(T::cast(correct(MOMENTUM_DECAYS[2])))
            .div_elem(rms),
        x,
    ]);
    let s = tape.constant(segments(sizes));
    let feats = normalize_per_tensor(feats, s, sizes);
    let tf = t as f64;
    let time = tape.constant(DMatrix::from_row_slice(
        1,
        3,
        &[
            T::cast((tf / 10.0).tanh()),
            T::cast((tf / 100.0).tanh()),
            T::cast((tf / 1000.0).tanh()),
        ],
    ));
    let scalars = Var::concat_cols(&[time, loss_ratio.tanh()]);
    let bias = get("b_in") + scalars.matmul(get("w_time"));
    let hidden = feats.matmul(get("w_in")).add_broadcast(bias).relu();
    hidden.matmul(get("w_out")) + feats.matmul(get("w_lin"))
}
