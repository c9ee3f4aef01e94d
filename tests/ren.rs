//! RENs: the guarantees of the direct parametrization on random parameters (the note's §3),
//! tied-block == dense, gradients through the parameter map, the paper's instance.

use convergent_l2o::models::ren::{
    BiasPlacement, BlockLayout, DenseRen, Pairs, RenDims, RenError, RenModel, RenOptions, Supply,
    TiedRen,
};
use convergent_l2o::models::{Activation, Params};
use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

// ---------------------------------------------------------------------------------------
// Random models

/// `cases` cases; failures are reported, not persisted to files next to the tests.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn normal(rng: &mut StdRng, rows: usize, cols: usize, std: f64) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| {
        std * rng.sample::<f64, _>(StandardNormal)
    })
}

/// Options drawn at random: every combination must keep the guarantees. `smooth` options
/// suit finite differences (smooth activation, moderate ε).
fn random_options(rng: &mut StdRng, smooth: bool) -> RenOptions {
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
fn random_qsr(rng: &mut StdRng, m: usize, p: usize) -> Supply {
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
enum Kind {
    Contracting,
    Lipschitz,
    Qsr,
}

const KINDS: [Kind; 3] = [Kind::Contracting, Kind::Lipschitz, Kind::Qsr];

/// A dense REN of the given sizes and kind with random options and parameters.
fn dense_case(dims: RenDims, kind: Kind, seed: u64, smooth: bool) -> (DenseRen, Params<f64>) {
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

fn dims_strategy() -> impl Strategy<Value = RenDims> {
    (1usize..4, 1usize..4, 1usize..5, 1usize..5).prop_map(|(n, l, m, p)| RenDims::new(n, l, m, p))
}

/// A small tied-block REN with random options and parameters.
fn tied_case(
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

fn layout_strategy() -> impl Strategy<Value = BlockLayout> {
    (1usize..4, 1usize..4, 0usize..3).prop_map(|(count, size, corner)| BlockLayout {
        count,
        size,
        corner,
    })
}

// ---------------------------------------------------------------------------------------
// Rollout helpers (f64, unrecorded)

fn col<'t>(tape: &'t Tape<f64>, v: &DVector<f64>) -> Var<'t, f64> {
    tape.constant(DMatrix::from_column_slice(v.len(), 1, v.as_slice()))
}

fn vecof(v: Var<'_, f64>) -> DVector<f64> {
    DVector::from_column_slice(v.value().as_slice())
}

/// Outputs and states (x_0..x_T) of a rollout from `x0` with `inputs`.
fn rollout(
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

fn sum_sq(vs: &[DVector<f64>]) -> f64 {
    vs.iter().map(|v| v.norm_squared()).sum()
}

fn diffs(a: &[DVector<f64>], b: &[DVector<f64>]) -> Vec<DVector<f64>> {
    a.iter().zip(b).map(|(a, b)| a - b).collect()
}

fn random_inputs(rng: &mut StdRng, m: usize, steps: usize, scale: f64) -> Vec<DVector<f64>> {
    (0..steps)
        .map(|_| DVector::from_fn(m, |_, _| scale * rng.sample::<f64, _>(StandardNormal)))
        .collect()
}

fn quad(p: &DMatrix<f64>, x: &DVector<f64>) -> f64 {
    x.dot(&(p * x))
}

fn gamma_of(supply: &Supply) -> f64 {
    match supply {
        Supply::Lipschitz { gamma } => *gamma,
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------
// The guarantees on random parameters

proptest! {
    #![proptest_config(config(128))]

    /// H ≻ 0 with λ_min(H) ≥ ε; the model's matrices rebuild H = H_X + Γ_R − Γ_Q (computed
    /// independently); one-step dissipation V(Δx+) − ᾱ²V(Δx) ≤ s(Δy, Δu) on random pairs.
    #[test]
    fn certificate_holds_on_random_parameters(dims in dims_strategy(), kind in 0usize..3,
                                              seed in any::<u64>()) {
        let (ren, params) = dense_case(dims, KINDS[kind], seed, false);
        let eps = ren.options().eps;
        let tape = Tape::new();
        let h = ren.build(&params.bind_constants(&tape)).implicit().h.value();
        for scale in [0.1, 3.0, 30.0] {
            let cert = ren.certify(&params, &Pairs::Random { count: 100, scale, seed });
            prop_assert!(cert.h_positive_definite, "{cert}");
            prop_assert!(cert.h_min_eigenvalue >= eps - 1e-12 * h.norm(), "{cert}, eps {eps}");
            // Roundoff in Γ_R grows with the conditioning of 𝓡, hence of H.
            let scale_h = cert.h_max_eigenvalue.max(1.0);
            prop_assert!(cert.identity_error < 1e-13 * cert.h_condition().max(100.0) * scale_h, "{cert}");
            prop_assert!(cert.dissipation_margin >= -1e-9, "{cert}");
        }
    }

    /// Same certificate for tied-block RENs, through their dense expansion.
    #[test]
    fn tied_certificate_holds(n in 1usize..3, l in 1usize..4, layout in layout_strategy(),
                              seed in any::<u64>()) {
        let (ren, params) = tied_case(n, l, layout, seed, false);
        let cert = ren.certify(&params, &Pairs::Random { count: 100, scale: 5.0, seed });
        prop_assert!(cert.holds(1e-12), "{cert}");
    }
}

proptest! {
    #![proptest_config(config(96))]

    /// From a common initial state: |y_a − y_b|_2 ≤ γ |u_a − u_b|_2 over 60 steps.
    #[test]
    fn lipschitz_trajectory_gain(dims in dims_strategy(), seed in any::<u64>()) {
        let (ren, params) = dense_case(dims, Kind::Lipschitz, seed, false);
        let gamma = gamma_of(ren.supply());
        let mut rng = StdRng::seed_from_u64(seed ^ 1);
        let tape = Tape::new();
        let model = ren.build(&params.bind_constants(&tape));
        let x0 = vecof(model.initial_state());
        let scale = [0.1, 1.0, 10.0][rng.gen_range(0..3)];
        let ua = random_inputs(&mut rng, dims.m, 60, scale);
        let ub: Vec<_> = ua.iter().zip(random_inputs(&mut rng, dims.m, 60, scale * 0.3))
            .map(|(a, d)| a + d).collect();
        let (ya, _) = rollout(&model, &x0, &ua);
        let (yb, _) = rollout(&model, &x0, &ub);
        let dy = sum_sq(&diffs(&ya, &yb)).sqrt();
        let du = sum_sq(&diffs(&ua, &ub)).sqrt();
        prop_assert!(dy <= gamma * du * (1.0 + 1e-9), "ratio {}", dy / (gamma * du));
    }

    /// Different initial states: Σ|Δy|² ≤ γ² Σ|Δu|² + γ V(Δx_0); for (Q, S, R) RENs
    /// Σ s(Δy, Δu) ≥ −V(Δx_0).
    #[test]
    fn dissipation_over_trajectories(dims in dims_strategy(), qsr: bool, seed in any::<u64>()) {
        let kind = if qsr { Kind::Qsr } else { Kind::Lipschitz };
        let (ren, params) = dense_case(dims, kind, seed, false);
        let mut rng = StdRng::seed_from_u64(seed ^ 2);
        let tape = Tape::new();
        let model = ren.build(&params.bind_constants(&tape));
        let lyap = model.lyapunov().value();
        let xa = DVector::from_fn(dims.n, |_, _| rng.gen_range(-3.0..3.0));
        let xb = DVector::from_fn(dims.n, |_, _| rng.gen_range(-3.0..3.0));
        let ua = random_inputs(&mut rng, dims.m, 50, 2.0);
        let ub = random_inputs(&mut rng, dims.m, 50, 2.0);
        let (ya, _) = rollout(&model, &xa, &ua);
        let (yb, _) = rollout(&model, &xb, &ub);
        let v0 = quad(&lyap, &(&xa - &xb));
        let (dy, du) = (diffs(&ya, &yb), diffs(&ua, &ub));
        let supplied: f64 = dy.iter().zip(&du).map(|(y, u)| ren.supply().rate(y, u)).sum();
        let scale: f64 = dy.iter().zip(&du).map(|(y, u)| ren.supply().rate_scale(y, u)).sum();
        prop_assert!(supplied + v0 >= -1e-9 * (scale + v0), "Σs = {supplied}, V(Δx0) = {v0}");
        if !qsr {
            let gamma = gamma_of(ren.supply());
            let lhs = sum_sq(&dy);
            let rhs = gamma * gamma * sum_sq(&du) + gamma * v0;
            prop_assert!(lhs <= rhs * (1.0 + 1e-9), "{lhs} > {rhs}");
        }
    }

    /// Same inputs, different initial states: V(Δx_{t+1}) ≤ ᾱ² V(Δx_t) at every step (every
    /// kind of REN is contracting).
    #[test]
    fn contraction(dims in dims_strategy(), kind in 0usize..3, seed in any::<u64>()) {
        let (ren, params) = dense_case(dims, KINDS[kind], seed, false);
        let a2 = ren.options().alpha_bar.powi(2);
        let mut rng = StdRng::seed_from_u64(seed ^ 3);
        let tape = Tape::new();
        let model = ren.build(&params.bind_constants(&tape));
        let lyap = model.lyapunov().value();
        let xa = DVector::from_fn(dims.n, |_, _| rng.gen_range(-5.0..5.0));
        let xb = DVector::from_fn(dims.n, |_, _| rng.gen_range(-5.0..5.0));
        let u = random_inputs(&mut rng, dims.m, 50, 2.0);
        let (_, sa) = rollout(&model, &xa, &u);
        let (_, sb) = rollout(&model, &xb, &u);
        for t in 0..50 {
            let v = quad(&lyap, &(&sa[t] - &sb[t]));
            let v1 = quad(&lyap, &(&sa[t + 1] - &sb[t + 1]));
            // Once the states agree to roundoff, only an absolute tolerance makes sense.
            let floor = 1e-28 * lyap.norm() * (1.0 + sa[t].norm_squared() + sb[t].norm_squared());
            prop_assert!(v1 <= a2 * v * (1.0 + 1e-9) + floor, "t = {t}: {v1} > {a2} * {v}");
        }
    }
}

/// Gradient ascent on |Δy|²/|Δu|² over the input perturbation (through the tape) does not
/// get past γ².
#[test]
fn gain_survives_gradient_ascent() {
    for seed in 0..6u64 {
        let dims = RenDims::new(2, 3, 2, 3);
        let (ren, params) = dense_case(dims, Kind::Lipschitz, seed, true);
        let gamma = gamma_of(ren.supply());
        let mut rng = StdRng::seed_from_u64(seed);
        let steps = 20;
        let ua = random_inputs(&mut rng, dims.m, steps, 1.0);
        let mut du: Vec<DVector<f64>> = random_inputs(&mut rng, dims.m, steps, 0.1);
        let mut best: f64 = 0.0;
        for _ in 0..40 {
            let tape = Tape::new();
            let model = ren.build(&params.bind_constants(&tape));
            let x0 = model.initial_state();
            let dvars: Vec<_> = du
                .iter()
                .map(|d| tape.param(DMatrix::from_column_slice(d.len(), 1, d.as_slice())))
                .collect();
            let (mut xa, mut xb) = (x0, x0);
            let mut num = tape.scalar(0.0);
            for t in 0..steps {
                let u = col(&tape, &ua[t]);
                let (ya, na) = model.step(xa, Some(u), t);
                let (yb, nb) = model.step(xb, Some(u + dvars[t]), t);
                num = num + (ya - yb).square().sum();
                xa = na;
                xb = nb;
            }
            let den = dvars
                .iter()
                .map(|d| d.square().sum())
                .reduce(|a, b| a + b)
                .unwrap();
            let ratio = num.div_elem(den);
            best = best.max(ratio.scalar());
            let grads = tape.grad(&[ratio], &dvars, false);
            let gnorm: f64 = grads
                .iter()
                .map(|g| g.value().norm_squared())
                .sum::<f64>()
                .sqrt();
            let total: f64 = du.iter().map(|d| d.norm_squared()).sum::<f64>().sqrt();
            for (d, g) in du.iter_mut().zip(&grads) {
                *d += vecof(*g) * (0.2 * total / gnorm.max(1e-300));
            }
        }
        assert!(
            best <= gamma * gamma * (1.0 + 1e-9),
            "seed {seed}: ratio {best} > γ² = {}",
            gamma * gamma
        );
    }
}

// ---------------------------------------------------------------------------------------
// The model equations

fn act(a: Activation, v: f64) -> f64 {
    match a {
        Activation::Tanh => v.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        Activation::Relu => v.max(0.0),
        Activation::Identity => v,
    }
}

/// The step's (y, x+) satisfy the implicit equations of the note's §1, solved here
/// independently (neuron by neuron, off the tape), for both bias placements.
#[test]
fn step_solves_the_implicit_equations() {
    for seed in 0..40u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let dims = RenDims::new(
            rng.gen_range(1..4),
            rng.gen_range(1..5),
            rng.gen_range(1..4),
            rng.gen_range(1..4),
        );
        let (ren, params) = dense_case(dims, Kind::Contracting, seed, false);
        let o = ren.options().clone();
        let tape = Tape::new();
        let model = ren.build(&params.bind_constants(&tape));
        let im = model.implicit();
        let (e, f, b1, c1, d11) = (
            im.e.value(),
            im.f.value(),
            im.b1.value(),
            im.c1.value(),
            im.d11.value(),
        );
        let lambda = im.lambda.value();
        let get = |name: &str| params.get(name).clone();
        let zeros = |k: usize| DMatrix::<f64>::zeros(k, 1);
        let (bx, bv, bu) = if o.biases {
            (get("bx"), get("bv"), get("bu"))
        } else {
            (zeros(dims.n), zeros(dims.l), zeros(dims.p))
        };
        let t = 3;
        let dec = o.bias_decay.powi(t as i32);
        let x = normal(&mut rng, dims.n, 1, 2.0);
        let u = normal(&mut rng, dims.m, 1, 2.0);
        let (y, x1) = model.step(tape.constant(x.clone()), Some(tape.constant(u.clone())), t);
        let implicit = o.bias_placement == BiasPlacement::Implicit;
        let base = &c1 * &x + get("D12") * &u;
        let mut w = DMatrix::zeros(dims.l, 1);
        for i in 0..dims.l {
            let mut rhs = base[i] + (d11.row(i) * &w)[0];
            if implicit {
                rhs += dec * bv[i];
            }
            let mut v = rhs / lambda[i];
            if !implicit {
                v += dec * bv[i];
            }
            w[i] = act(o.activation, v);
        }
        let ex = &f * &x + &b1 * &w + get("B2") * &u;
        let x1_expected = if implicit {
            e.clone().lu().solve(&(ex + &bx * dec)).unwrap()
        } else {
            e.clone().lu().solve(&ex).unwrap() + &bx * dec
        };
        let y_expected = get("C2") * &x + get("D21") * &w + get("D22") * &u + &bu * dec;
        let tol = 1e-10 * (1.0 + x1_expected.norm() + y_expected.norm());
        assert!(
            (x1.value() - &x1_expected).norm() < tol * e.norm().max(1.0),
            "seed {seed}: x+ {} vs {}",
            x1.value(),
            x1_expected
        );
        assert!(
            (y.value() - &y_expected).norm() < tol,
            "seed {seed}: y {} vs {}",
            y.value(),
            y_expected
        );
    }
}

/// `None` is a zero input, for dense and tied-block RENs.
#[test]
fn none_input_is_zero_input() {
    let (tied, tp) = tied_case(
        2,
        3,
        BlockLayout {
            count: 3,
            size: 2,
            corner: 1,
        },
        5,
        false,
    );
    let (dense, dp) = dense_case(RenDims::new(2, 3, 3, 4), Kind::Lipschitz, 5, false);
    let tape = Tape::new();
    let models = [
        (tied.build(&tp.bind_constants(&tape)), 7),
        (dense.build(&dp.bind_constants(&tape)), 3),
    ];
    for (model, m) in &models {
        let x =
            model.initial_state() + tape.constant(DMatrix::from_element(model.dims().n, 1, 0.3));
        let zero = tape.constant(DMatrix::zeros(*m, 1));
        let (y0, x0) = model.step(x, None, 2);
        let (y1, x1) = model.step(x, Some(zero), 2);
        assert!((y0.value() - y1.value()).norm() < 1e-14);
        assert!((x0.value() - x1.value()).norm() < 1e-14);
    }
}

// ---------------------------------------------------------------------------------------
// Tied-block == dense, and gradients through the parametrization

/// Outputs of a rollout (input at t = 0 and t = 2 only) and the gradients of a weighted sum
/// of outputs and final state w.r.t. every tied parameter; through the dense expansion if
/// `dense`.
fn tied_rollout(
    ren: &TiedRen,
    params: &Params<f64>,
    dense: bool,
    inputs: &[DVector<f64>],
    weights: &[DVector<f64>],
) -> (Vec<DVector<f64>>, Vec<DMatrix<f64>>) {
    let tape = Tape::new();
    let bound = params.bind(&tape);
    let model = if dense {
        let (dense_ren, vars) = ren.expand_on_tape(&|n| bound.get(n));
        let lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).unwrap().1;
        dense_ren.build_from(&lookup)
    } else {
        ren.build(&bound)
    };
    let mut x = model.initial_state();
    let mut ys = Vec::new();
    let mut loss = tape.scalar(0.0);
    for (t, u) in inputs.iter().enumerate() {
        let u = (t % 2 == 0).then(|| col(&tape, u));
        let (y, next) = model.step(x, u, t);
        loss = loss + y.dot(col(&tape, &weights[t]));
        ys.push(vecof(y));
        x = next;
    }
    loss = loss + x.square().sum();
    let grads = tape.grad(&[loss], &bound.vars(), false);
    (ys, grads.iter().map(|g| g.value()).collect())
}

proptest! {
    #![proptest_config(config(96))]

    /// The tied-block REN equals the dense REN of its expanded matrices: outputs, and
    /// gradients w.r.t. the direct (tied) parameters.
    #[test]
    fn tied_equals_dense(n in 1usize..3, l in 1usize..4, layout in layout_strategy(),
                         seed in any::<u64>()) {
        let (ren, params) = tied_case(n, l, layout, seed, false);
        let mut rng = StdRng::seed_from_u64(seed ^ 4);
        let m = layout.dim();
        let inputs = random_inputs(&mut rng, m, 6, 2.0);
        let weights = random_inputs(&mut rng, m, 6, 1.0);
        let (ys_t, g_t) = tied_rollout(&ren, &params, false, &inputs, &weights);
        let (ys_d, g_d) = tied_rollout(&ren, &params, true, &inputs, &weights);
        for (a, b) in ys_t.iter().zip(&ys_d) {
            prop_assert!((a - b).norm() <= 1e-10 * (1.0 + b.norm()), "outputs {a} vs {b}");
        }
        for ((name, _), (a, b)) in params.iter().zip(g_t.iter().zip(&g_d)) {
            prop_assert!((a - b).norm() <= 1e-9 * (1.0 + b.norm()), "gradient of {name}: {a} vs {b}");
        }
    }
}

/// Finite-difference checks (first and second order) of a 3-step rollout as a function of
/// every direct parameter, for each kind of dense REN and for square, tall and wide ones.
#[test]
fn dense_rollout_gradients() {
    let shapes = [
        RenDims::new(2, 2, 2, 2),
        RenDims::new(1, 2, 2, 3),
        RenDims::new(2, 1, 3, 2),
    ];
    for (k, kind) in KINDS.iter().enumerate() {
        for (j, dims) in shapes.iter().enumerate() {
            let seed = (3 * k + j) as u64;
            let (ren, params) = dense_case(*dims, *kind, seed, true);
            let names: Vec<String> = params.iter().map(|(n, _)| n.to_string()).collect();
            let values: Vec<DMatrix<f64>> = params.iter().map(|(_, v)| v.clone()).collect();
            let inputs = random_inputs(&mut StdRng::seed_from_u64(seed), dims.m, 3, 1.0);
            let f = tape_fn(|x| {
                let get = |name: &str| x[names.iter().position(|n| n == name).unwrap()];
                rollout_outputs(&ren.build_from(&get), &inputs)
            });
            if let Err(e) = check_gradients(&f, &values, seed) {
                panic!("{kind:?} {dims:?} {:?}: {e}", ren.options());
            }
        }
    }
}

/// Outputs of a rollout (input skipped at t = 1, to exercise the zero-input path) and the
/// final state, stacked: the function whose gradients the rollout checks take.
fn rollout_outputs<'t>(model: &RenModel<'t, f64>, inputs: &[DVector<f64>]) -> Var<'t, f64> {
    let tape = model.initial_state().tape();
    let mut state = model.initial_state();
    let mut outs = Vec::new();
    for (t, u) in inputs.iter().enumerate() {
        let (y, next) = model.step(state, (t != 1).then(|| col(tape, u)), t);
        outs.push(y);
        state = next;
    }
    outs.push(state);
    Var::concat_rows(&outs)
}

/// The same checks through the tied-block parametrization.
#[test]
fn tied_rollout_gradients() {
    for seed in 0..3u64 {
        let layout = BlockLayout {
            count: 2,
            size: 2,
            corner: (seed % 2) as usize,
        };
        let (ren, params) = tied_case(2, 2, layout, seed, true);
        let names: Vec<String> = params.iter().map(|(n, _)| n.to_string()).collect();
        let values: Vec<DMatrix<f64>> = params.iter().map(|(_, v)| v.clone()).collect();
        let inputs = random_inputs(&mut StdRng::seed_from_u64(seed), layout.dim(), 3, 1.0);
        let f = tape_fn(|x| {
            let get = |name: &str| x[names.iter().position(|n| n == name).unwrap()];
            rollout_outputs(&ren.build_from(&get), &inputs)
        });
        if let Err(e) = check_gradients(&f, &values, seed) {
            panic!("{:?}: {e}", ren.options());
        }
    }
}

// ---------------------------------------------------------------------------------------
// The paper's instance

#[test]
fn paper_instance_has_10173_parameters_named_as_the_authors() {
    let ren = TiedRen::paper();
    let t = ren.template::<f32>();
    assert_eq!(t.num_scalars(), 10_173);
    let expected = [
        ("x0", (1, 3)),
        ("X", (9, 9)),
        ("Y", (3, 3)),
        ("x3", (28, 28)),
        ("y3", (28, 28)),
        ("x3corner", (10, 10)),
        ("y3corner", (10, 10)),
        ("b2", (3, 28)),
        ("d12", (3, 28)),
        ("b2last", (3, 10)),
        ("d12last", (3, 10)),
        ("c2", (28, 3)),
        ("d21", (28, 3)),
        ("c2last", (10, 3)),
        ("d21last", (10, 3)),
        ("bx", (3, 1)),
        ("bv", (3, 1)),
        ("bu", (7850, 1)),
    ];
    let found: Vec<(&str, (usize, usize))> = t.iter().map(|(n, m)| (n, m.shape())).collect();
    assert_eq!(found, expected);
    assert_eq!((ren.dims().m, ren.dims().p, ren.gamma()), (7850, 7850, 0.3));
}

/// Recording the paper's parameter map and steps never stores an m x m matrix: the tape
/// grows by O(m) scalars (m² would be 61.6 M).
#[test]
fn paper_ren_never_forms_an_m_by_m_matrix() {
    let ren = TiedRen::paper();
    let m = ren.dims().m;
    let params = ren.init_params::<f64>(&mut StdRng::seed_from_u64(0), 0.01);
    let tape = Tape::new();
    let bound = params.bind(&tape);
    let start = tape.num_scalars();
    let model = ren.build(&bound);
    let after_map = tape.num_scalars();
    assert!(
        after_map - start < 10 * m,
        "parameter map stored {} scalars",
        after_map - start
    );
    let u = tape.constant(DMatrix::from_element(m, 1, 0.01));
    let (_, x1) = model.step(model.initial_state(), Some(u), 0);
    let after_input = tape.num_scalars();
    assert!(
        after_input - after_map < 12 * m,
        "step with input stored {}",
        after_input - after_map
    );
    let (y, _) = model.step(x1, None, 1);
    let after_zero = tape.num_scalars();
    assert!(
        after_zero - after_input < 8 * m,
        "zero-input step stored {}",
        after_zero - after_input
    );
    let loss = y.square().sum();
    let before = tape.num_scalars();
    let _ = tape.grad(&[loss], &bound.vars(), true);
    let backward = tape.num_scalars() - before;
    assert!(
        backward < 60 * m,
        "recorded backward pass stored {backward}"
    );
}

/// Norms |z_t| of the paper's REN driven by delta^{x0} (impulse at t = 0, zero after),
/// unrecorded, in f64.
fn impulse_response(params: &Params<f64>, delta: &DVector<f64>, steps: usize) -> Vec<f64> {
    let ren = TiedRen::paper();
    let tape = Tape::new();
    let model = ren.build(&params.bind_constants(&tape));
    let mut x = model.initial_state();
    let mut norms = Vec::with_capacity(steps);
    for t in 0..steps {
        let u = (t == 0).then(|| col(&tape, delta));
        let mark = tape.mark();
        let (z, next) = model.step(x, u, t);
        norms.push(z.value().norm());
        let next = next.value();
        tape.truncate(mark);
        x = tape.constant(next);
    }
    norms
}

/// The paper's REN maps delta^{x0} (impulse at t = 0, zero after; biases decaying with
/// 0.95^t) to a square-summable output: the tail of |z_t| decays geometrically.
#[test]
fn paper_impulse_response_is_square_summable() {
    let ren = TiedRen::paper();
    for (seed, std, delta_scale) in [
        (0u64, 0.01, 0.01),
        (1, 0.1, 1.0),
        (2, 0.3, 0.01),
        (3, 1.0, 3.0),
    ] {
        let mut rng = StdRng::seed_from_u64(seed);
        let params = ren.init_params::<f64>(&mut rng, std);
        let delta = DVector::from_fn(7850, |_, _| delta_scale * rng.gen_range(0.0..1.0));
        let norms = impulse_response(&params, &delta, 300);
        // Rate over windows of 50 steps: at most about 0.95 (the bias decay) once the
        // transient is over.
        for t in [100, 150, 200, 249] {
            let rate = (norms[t + 50] / norms[t]).powf(1.0 / 50.0);
            assert!(rate < 0.96, "std {std}, t = {t}: |z| decays at rate {rate}");
        }
        let head: f64 = norms[..150].iter().map(|z| z * z).sum();
        let tail: f64 = norms[150..].iter().map(|z| z * z).sum();
        assert!(tail < 1e-6 * head, "std {std}: tail {tail} vs head {head}");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration errors, saving and loading, f32

#[test]
fn bad_hyperparameters_are_refused() {
    let dims = RenDims::new(2, 2, 3, 3);
    let opts = RenOptions::default;
    let err = |r: Result<DenseRen, RenError>| r.unwrap_err().to_string();
    for gamma in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = err(DenseRen::lipschitz(dims, gamma, opts()));
        assert!(e.contains("gamma") && e.contains("> 0"), "{e}");
        let e = TiedRen::new(3, 3, BlockLayout::PAPER, gamma, RenOptions::paper()).unwrap_err();
        assert_eq!(e.what, "gamma");
    }
    for alpha_bar in [0.0, -0.5, 1.5, f64::NAN] {
        let e = err(DenseRen::contracting(
            dims,
            RenOptions {
                alpha_bar,
                ..opts()
            },
        ));
        assert!(e.contains("alpha_bar") && e.contains("(0, 1]"), "{e}");
    }
    for eps in [0.0, -1e-3, f64::NAN, f64::INFINITY] {
        let e = err(DenseRen::contracting(dims, RenOptions { eps, ..opts() }));
        assert!(e.contains("eps") && e.contains("> 0"), "{e}");
    }
    for bias_decay in [0.0, 1.2, -0.95] {
        let e = err(DenseRen::contracting(
            dims,
            RenOptions {
                bias_decay,
                ..opts()
            },
        ));
        assert!(e.contains("bias_decay"), "{e}");
    }
    let e = err(DenseRen::contracting(RenDims::new(0, 2, 3, 3), opts()));
    assert!(e.contains("n must be at least 1"), "{e}");
    let e = TiedRen::new(
        3,
        3,
        BlockLayout {
            count: 0,
            size: 28,
            corner: 10,
        },
        0.3,
        opts(),
    );
    assert!(e.unwrap_err().to_string().contains("count and size"));
    let (q, s, r) = (
        DMatrix::identity(3, 3),
        DMatrix::zeros(3, 3),
        DMatrix::identity(3, 3),
    );
    let e = err(DenseRen::new(
        dims,
        Supply::Qsr {
            q: q.clone(),
            s: s.clone(),
            r: r.clone(),
        },
        opts(),
    ));
    assert!(e.contains("Q must be negative definite"), "{e}");
    let e = err(DenseRen::new(
        dims,
        Supply::Qsr {
            q: -q.clone(),
            s: s.clone(),
            r: -r.clone(),
        },
        opts(),
    ));
    assert!(e.contains("R - S Q⁻¹ Sᵀ must be positive definite"), "{e}");
    let e = err(DenseRen::new(
        dims,
        Supply::Qsr {
            q: -q,
            s: DMatrix::zeros(2, 3),
            r,
        },
        opts(),
    ));
    assert!(e.contains("S is 2 x 3, expected 3 x 3"), "{e}");
}

#[test]
fn saved_parameters_rebuild_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ren.bin");
    let (ren, params) = dense_case(RenDims::new(3, 2, 2, 4), Kind::Lipschitz, 9, false);
    params.save(&path).unwrap();
    let loaded = Params::<f64>::load(&path).unwrap();
    ren.check_params(&loaded).unwrap();
    let output = |p: &Params<f64>| {
        let tape = Tape::new();
        let model = ren.build(&p.bind_constants(&tape));
        let u = tape.constant(DMatrix::from_element(2, 1, 0.7));
        let (y, x) = model.step(model.initial_state(), Some(u), 0);
        (y.value(), model.step(x, None, 1).0.value())
    };
    assert_eq!(output(&params), output(&loaded));

    let tied = TiedRen::paper();
    let tp = tied.init_params::<f32>(&mut StdRng::seed_from_u64(1), 0.01);
    tp.save(&path).unwrap();
    tied.check_params(&Params::<f32>::load(&path).unwrap())
        .unwrap();
    let e = ren
        .check_params(&Params::<f64>::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("is missing"), "{e}");
    let mut wrong = tp.clone();
    *wrong.get_mut("x3") = DMatrix::zeros(27, 28);
    let e = tied.check_params(&wrong).unwrap_err().to_string();
    assert_eq!(e, "parameter 'x3' is 27 x 28, expected 28 x 28");
}

#[test]
#[should_panic(expected = "TiedRen::build: parameter 'x3' is 27 x 28, expected 28 x 28")]
fn building_from_misshapen_parameters_names_the_parameter() {
    let tied = TiedRen::paper();
    let mut params = tied.template::<f32>();
    *params.get_mut("x3") = DMatrix::zeros(27, 28);
    let tape = Tape::new();
    let _ = tied.build(&params.bind_constants(&tape));
}

/// The f32 model of the paper agrees with the f64 one on the same parameters.
#[test]
fn paper_ren_in_f32_matches_f64() {
    let ren = TiedRen::paper();
    let p64 = ren.init_params::<f64>(&mut StdRng::seed_from_u64(2), 0.1);
    let mut p32 = Params::<f32>::new();
    for (name, m) in p64.iter() {
        p32.insert(name, m.map(|v| v as f32));
    }
    let delta: Vec<f64> = (0..7850).map(|i| 0.01 * (i as f64).sin()).collect();
    let (t64, t32) = (Tape::<f64>::new(), Tape::<f32>::new());
    let (m64, m32) = (
        ren.build(&p64.bind_constants(&t64)),
        ren.build(&p32.bind_constants(&t32)),
    );
    let (mut x64, mut x32) = (m64.initial_state(), m32.initial_state());
    for t in 0..10 {
        let u64 = (t == 0).then(|| t64.constant(DMatrix::from_column_slice(7850, 1, &delta)));
        let u32 = (t == 0).then(|| {
            t32.constant(DMatrix::from_iterator(
                7850,
                1,
                delta.iter().map(|&v| v as f32),
            ))
        });
        let (y64, n64) = m64.step(x64, u64, t);
        let (y32, n32) = m32.step(x32, u32, t);
        let diff = (y64.value() - y32.value().map(|v| v as f64)).norm();
        assert!(
            diff < 1e-4 * y64.value().norm(),
            "t = {t}: f32 differs by {diff}"
        );
        (x64, x32) = (n64, n32);
    }
}
