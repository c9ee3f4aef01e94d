//! What the REN tests share: random parameters and options, rollouts, norms.
#![allow(dead_code, unused_imports)]

pub use convergent_l2o::models::ren::{
    BiasPlacement, BlockLayout, DenseRen, Pairs, RenDims, RenError, RenModel, RenOptions, Supply,
    TiedRen,
};
pub use convergent_l2o::models::{Activation, Params};
pub use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn};
pub use convergent_l2o::tape::{Tape, Var};
pub use nalgebra::{DMatrix, DVector};
pub use proptest::prelude::*;
pub use rand::{rngs::StdRng, Rng, SeedableRng};
pub use rand_distr::StandardNormal;

// ---------------------------------------------------------------------------------------
// Random models

/// `cases` cases; failures are reported, not persisted to files next to the tests.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

pub fn normal(rng: &mut StdRng, rows: usize, cols: usize, std: f64) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| {
        std * rng.sample::<f64, _>(StandardNormal)
    })
}

/// Options drawn at random: every combination must keep the guarantees. `smooth` options
/// suit finite differences (smooth activation, moderate ε).
pub fn random_options(rng: &mut StdRng, smooth: bool) -> RenOptions {
    let acts = if smooth {
        vec![Activation::Tanh, Activation::Sigmoid]
    } else {
        vec![
            Activation::Tanh,
            Activation::Relu,
            Activation::Sigmoid,
            Activation::Identity,
        ]
    };
    RenOptions {
        activation: acts[rng.gen_range(0..acts.len())],
        alpha_bar: if rng.gen_bool(0.5) {
            1.0
        } else {
            rng.gen_range(0.3..1.0)
        },
        // Finite differences need a well-conditioned map: a small ε lets |N| approach 1, and
        // then 𝓡 = γ(I - NᵀN) is nearly singular.
        eps: if smooth {
            [0.05, 0.1][rng.gen_range(0..2)]
        } else {
            [1e-6, 1e-3, 0.1][rng.gen_range(0..3)]
        },
        polar: rng.gen_bool(0.5),
        biases: rng.gen_bool(0.8),
        bias_placement: if rng.gen_bool(0.5) {
            BiasPlacement::Implicit
        } else {
            BiasPlacement::Explicit
        },
        bias_decay: if rng.gen_bool(0.5) {
            1.0
        } else {
            rng.gen_range(0.8..1.0)
        },
        learn_x0: rng.gen_bool(0.5),
    }
}

/// A random valid (Q, S, R): `R - S Q⁻¹ Sᵀ = BᵀB + I/10 ≻ 0` by construction.
pub fn random_qsr(rng: &mut StdRng, m: usize, p: usize) -> Supply {
    let a = normal(rng, p, p, 1.0);
    let q = -(a.transpose() * &a + DMatrix::identity(p, p) * 0.1);
    let s = normal(rng, m, p, 0.5);
    let b = normal(rng, m, m, 1.0);
    let q_inv = q.clone().try_inverse().unwrap();
    let r = &s * q_inv * s.transpose() + b.transpose() * b + DMatrix::identity(m, m) * 0.1;
    let r = (&r + r.transpose()) * 0.5;
    Supply::Qsr { q, s, r }
}

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Contracting,
    Lipschitz,
    Qsr,
}

pub const KINDS: [Kind; 3] = [Kind::Contracting, Kind::Lipschitz, Kind::Qsr];

/// A dense REN of the given sizes and kind with random options and parameters.
pub fn dense_case(dims: RenDims, kind: Kind, seed: u64, smooth: bool) -> (DenseRen, Params<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let supply = match kind {
        Kind::Contracting => Supply::Contracting,
        Kind::Lipschitz => Supply::Lipschitz {
            gamma: rng.gen_range(-2.3f64..2.3).exp(),
        },
        Kind::Qsr => random_qsr(&mut rng, dims.m, dims.p),
    };
    let options = random_options(&mut rng, smooth);
    let std = if smooth {
        0.5
    } else {
        [0.1, 0.5, 1.0, 2.0][rng.gen_range(0..4)]
    };
    let ren = DenseRen::new(dims, supply, options).unwrap();
    let params = ren.init_params(&mut rng, std);
    (ren, params)
}

pub fn dims_strategy() -> impl Strategy<Value = RenDims> {
    (1usize..4, 1usize..4, 1usize..5, 1usize..5).prop_map(|(n, l, m, p)| RenDims::new(n, l, m, p))
}

/// A small tied-block REN with random options and parameters.
pub fn tied_case(
    n: usize,
    l: usize,
    layout: BlockLayout,
    seed: u64,
    smooth: bool,
) -> (TiedRen, Params<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let gamma = rng.gen_range(-2.3f64..2.3).exp();
    let options = random_options(&mut rng, smooth);
    let ren = TiedRen::new(n, l, layout, gamma, options).unwrap();
    let std = if smooth {
        0.5
    } else {
        [0.1, 0.5, 1.0][rng.gen_range(0..3)]
    };
    let params = ren.init_params(&mut rng, std);
    (ren, params)
}

pub fn layout_strategy() -> impl Strategy<Value = BlockLayout> {
    (1usize..4, 1usize..4, 0usize..3).prop_map(|(count, size, corner)| BlockLayout {
        count,
        size,
        corner,
    })
}

// ---------------------------------------------------------------------------------------
// Rollout helpers (f64, unrecorded)

pub fn col<'t>(tape: &'t Tape<f64>, v: &DVector<f64>) -> Var<'t, f64> {
    tape.constant(DMatrix::from_column_slice(v.len(), 1, v.as_slice()))
}

pub fn vecof(v: Var<'_, f64>) -> DVector<f64> {
    DVector::from_column_slice(v.value().as_slice())
}

/// Outputs and states (x_0..x_T) of a rollout from `x0` with `inputs`.
pub fn rollout(
    model: &RenModel<'_, f64>,
    x0: &DVector<f64>,
    inputs: &[DVector<f64>],
) -> (Vec<DVector<f64>>, Vec<DVector<f64>>) {
    let tape = model.initial_state().tape();
    let mut x = col(tape, x0);
    let mut ys = Vec::new();
    let mut xs = vec![x0.clone()];
    for (t, u) in inputs.iter().enumerate() {
        let (y, next) = model.step(x, Some(col(tape, u)), t);
        ys.push(vecof(y));
        xs.push(vecof(next));
        x = next;
    }
    (ys, xs)
}

pub fn sum_sq(vs: &[DVector<f64>]) -> f64 {
    vs.iter().map(|v| v.norm_squared()).sum()
}

pub fn diffs(a: &[DVector<f64>], b: &[DVector<f64>]) -> Vec<DVector<f64>> {
    a.iter().zip(b).map(|(a, b)| a - b).collect()
}

pub fn random_inputs(rng: &mut StdRng, m: usize, steps: usize, scale: f64) -> Vec<DVector<f64>> {
    (0..steps)
        .map(|_| DVector::from_fn(m, |_, _| scale * rng.sample::<f64, _>(StandardNormal)))
        .collect()
}

pub fn quad(p: &DMatrix<f64>, x: &DVector<f64>) -> f64 {
    x.dot(&(p * x))
}

pub fn gamma_of(supply: &Supply) -> f64 {
    match supply {
        Supply::Lipschitz { gamma } => *gamma,
        _ => unreachable!(),
    }
}
