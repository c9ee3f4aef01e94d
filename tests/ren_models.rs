//! RENs: tied-block == dense, gradients through the parameter map, the paper's instance,
//! bad hyperparameters and files.

#[path = "ren_support/mod.rs"]
mod support;
use support::*;

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
