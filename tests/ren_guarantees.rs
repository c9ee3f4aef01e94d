//! RENs: the guarantees of the direct parametrization on random parameters (the note's §3)
//! and the explicit model solving the implicit equations.

#[path = "ren_support/mod.rs"]
mod support;
use support::*;

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
