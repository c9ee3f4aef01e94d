//! L2O-PA (Liu et al., ICML 2023) on LASSO and ℓ1-logistic regression: the problems, ISTA and
//! FISTA, the update rule, meta-training and the convergent wrapper. Small sizes throughout.

use convergent_l2o::meta::{
    pa_meta_loss, reference_optimum, relative_error, CompositeProblem, L1Logistic, Lasso,
    LassoConfig, LogisticConfig, PaError, PaTrainConfig, PaTrainer,
};
use convergent_l2o::models::Bound;
use convergent_l2o::optim::{
    fista_momenta, pa_update, ConvergentPa, L2oPa, PaConfig, ProxGradient,
};
use convergent_l2o::tape::gradcheck::{check_first_order, check_second_order, tape_fn, Tolerance};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::DMatrix;
use rand::{rngs::StdRng, SeedableRng};

fn lasso(seed: u64) -> Lasso<f64> {
    Lasso::random(LassoConfig::toy(), &mut StdRng::seed_from_u64(seed)).unwrap()
}

fn max_abs_diff(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    (a - b).amax()
}

#[test]
fn same_seed_same_instance_and_bad_sizes_are_errors() {
    let (a, b) = (lasso(3), lasso(3));
    assert_eq!(a.w(), b.w());
    assert_eq!(a.y(), b.y());
    assert_eq!(a.x_true().iter().filter(|v| **v != 0.0).count(), 5);
    let col_norms: Vec<f64> = a.w().column_iter().map(|c| c.norm()).collect();
    assert!(col_norms.iter().all(|n| (n - 1.0).abs() < 1e-12));

    let mut rng = StdRng::seed_from_u64(0);
    let too_sparse = LassoConfig {
        sparsity: 41,
        ..LassoConfig::toy()
    };
    let e = Lasso::<f64>::random(too_sparse, &mut rng).unwrap_err();
    assert!(e.to_string().contains("sparsity 41 exceeds"), "{e}");
    let no_rows = LogisticConfig {
        rows: 0,
        ..LogisticConfig::toy()
    };
    let e = L1Logistic::<f64>::random(no_rows, &mut rng).unwrap_err();
    assert!(e.to_string().contains("both sizes must be positive"), "{e}");
    let e = Lasso::new(DMatrix::<f64>::zeros(3, 2), DMatrix::zeros(2, 1), 0.1).unwrap_err();
    assert!(e.to_string().contains("expected 3 x 1"), "{e}");
    let bad = PaTrainConfig {
        segment: 30,
        iterations: 20,
        lr: 1e-2,
    };
    assert!(matches!(
        PaTrainer::<f64>::new(bad),
        Err(PaError::Config(_))
    ));
    let pa = L2oPa::<f64>::new(PaConfig::lasso(), &mut rng).unwrap();
    assert!(ConvergentPa::new(pa, 1.0, 1.0).is_err());
}

#[test]
fn tape_gradients_and_lipschitz_constants_match() {
    let problem = lasso(1);
    let mut rng = StdRng::seed_from_u64(9);
    let logistic = L1Logistic::<f64>::random(LogisticConfig::toy(), &mut rng).unwrap();
    let x = DMatrix::from_fn(40, 1, |i, _| ((i * 7 % 11) as f64 - 5.0) / 10.0);
    let xl = x.rows(0, 20).into_owned();
    let tape = Tape::new();
    for (p, x) in [
        (&problem as &dyn CompositeProblem<f64>, &x),
        (&logistic, &xl),
    ] {
        let v = tape.param(x.clone());
        let auto = tape.grad(&[p.smooth_var(v)], &[v], false)[0].value();
        assert!(max_abs_diff(&auto, &p.smooth_grad(x)) < 1e-12);
        assert!(max_abs_diff(&p.smooth_grad_var(v).value(), &p.smooth_grad(x)) < 1e-12);
        assert!((p.smooth_var(v).scalar() - p.smooth(x)).abs() < 1e-12);
    }
    let s = problem.w().clone().singular_values().max();
    assert!((problem.lipschitz() - s * s).abs() < 1e-10);
    // The original code's quirk: |W|_2, not the true |W|_2^2 / (4m).
    let sl = logistic.w().clone().singular_values().max();
    assert!((logistic.lipschitz() - sl).abs() < 1e-10);
    assert!((logistic.true_lipschitz() - sl * sl / 400.0).abs() < 1e-10);
}

#[test]
fn ista_and_fista_converge_and_f_star_is_below_every_iterate() {
    for seed in 0..3 {
        let problem = lasso(seed);
        let f_star = reference_optimum(&problem, 5000);
        let ista = ProxGradient::ista(&problem).objectives(&problem, 2000);
        let fista = ProxGradient::fista(&problem).objectives(&problem, 2000);
        for curve in [&ista, &fista] {
            assert!(curve.iter().all(|&f| f >= f_star - 1e-12));
            let err: Vec<f64> = curve.iter().map(|&f| relative_error(f, f_star)).collect();
            assert!(err[0] > 0.1, "start {:.3e}", err[0]);
            assert!(err[100] < err[10] && err[2000] < 1e-6, "{:.3e}", err[2000]);
        }
        // FISTA is ahead of ISTA early on.
        assert!(fista[50] < ista[50]);
    }
    let mut rng = StdRng::seed_from_u64(4);
    let logistic = L1Logistic::<f64>::random(LogisticConfig::toy(), &mut rng).unwrap();
    let f_star = reference_optimum(&logistic, 5000);
    let fista = ProxGradient::fista(&logistic).objectives(&logistic, 3000);
    assert!(fista.iter().all(|&f| f >= f_star - 1e-12));
    assert!(relative_error(fista[3000], f_star) < 1e-4);
}

#[test]
fn pa_update_with_unit_p_and_fista_momentum_is_fista() {
    let problem = lasso(2);
    let n = problem.dim();
    let (s, rho) = (problem.step_size(), problem.rho());
    let betas = fista_momenta(200);
    let mut fista = ProxGradient::fista(&problem);
    let tape = Tape::new();
    let (mut x, mut y) = (
        tape.constant(DMatrix::zeros(n, 1)),
        tape.constant(DMatrix::zeros(n, 1)),
    );
    let ones = tape.constant(DMatrix::from_element(n, 1, 1.0));
    let mut worst: f64 = 0.0;
    for beta in betas {
        let g = problem.smooth_grad_var(y);
        let a = tape.constant(DMatrix::from_element(n, 1, beta));
        (x, y) = pa_update(x, y, g, ones, a, s, rho);
        fista.step(&problem);
        worst = worst
            .max(max_abs_diff(&x.value(), fista.x()))
            .max(max_abs_diff(&y.value(), fista.y()));
    }
    assert!(worst < 1e-12, "max deviation {worst:.3e}");
}

#[test]
fn l2o_pa_is_permutation_equivariant() {
    let problem = lasso(5);
    let n = problem.dim();
    let perm: Vec<usize> = (0..n).map(|i| (i * 17 + 3) % n).collect(); // 17 is prime to 40
    let w = DMatrix::from_fn(problem.w().nrows(), n, |r, c| problem.w()[(r, perm[c])]);
    let permuted = Lasso::new(w, problem.y().clone(), problem.rho()).unwrap();
    let opt = L2oPa::<f64>::new(PaConfig::lasso(), &mut StdRng::seed_from_u64(1)).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    opt.run(&problem, 30, |_, x, _| a.push(x.clone()));
    opt.run(&permuted, 30, |_, x, _| b.push(x.clone()));
    for (xa, xb) in a.iter().zip(&b) {
        let back = DMatrix::from_fn(n, 1, |i, _| xb[i]);
        let expected = DMatrix::from_fn(n, 1, |i, _| xa[perm[i]]);
        assert!(max_abs_diff(&back, &expected) < 1e-10);
    }
    assert!(a[30].amax() > 0.1);
}

#[test]
fn recorded_and_unrecorded_runs_agree() {
    let problem = lasso(6);
    let opt = L2oPa::<f64>::new(PaConfig::lasso(), &mut StdRng::seed_from_u64(2)).unwrap();
    let mut unrecorded = Vec::new();
    opt.run(&problem, 10, |_, x, _| unrecorded.push(x.clone()));
    let tape = Tape::new();
    let bound = opt.params().bind(&tape);
    let mut state = opt.start(&problem, &tape);
    for x in &unrecorded[1..] {
        opt.step(&bound, &problem, &mut state);
        assert!(max_abs_diff(&state.x.value(), x) < 1e-12);
    }
}

/// `sum_{j=1..steps} F(y_j)` as a function of the `checked` tensors (the others constants).
fn unroll_loss<'t>(
    opt: &L2oPa<f64>,
    problem: &Lasso<f64>,
    checked: &[&str],
    vars: &[Var<'t, f64>],
    steps: usize,
) -> Var<'t, f64> {
    let tape = vars[0].tape();
    let named = opt
        .params()
        .iter()
        .map(|(name, value)| {
            let v = match checked.iter().position(|c| *c == name) {
                Some(i) => vars[i],
                None => tape.constant(value.clone()),
            };
            (name.to_string(), v)
        })
        .collect();
    let bound = Bound::from_named(named);
    let mut state = opt.start(problem, tape);
    let mut loss = problem.objective_var(state.y).scale(0.0);
    for _ in 0..steps {
        opt.step(&bound, problem, &mut state);
        loss = loss + problem.objective_var(state.y);
    }
    loss
}

#[test]
fn unroll_meta_gradient_matches_finite_differences() {
    let problem = lasso(7);
    // Checked tensors: the heads, the hidden layer's bias and the top LSTM layer's bias
    // (all of the parameters would mean thousands of finite differences).
    let checked = [
        "linear_p.weight",
        "linear_p.bias",
        "linear_a.weight",
        "linear_a.bias",
        "linear.bias",
        "lstm.bias_hh_l1",
    ];
    let tol = Tolerance {
        step: 1e-6,
        rtol: 1e-5,
        atol: 1e-7,
    };
    // Exact gradient of the unrolled map (features not detached), 4 steps, first and second
    // order: the second-order terms through grad f(y_k) and the soft-threshold are included.
    let exact = PaConfig {
        detach_features: false,
        ..PaConfig::lasso()
    };
    let opt = L2oPa::<f64>::new(exact, &mut StdRng::seed_from_u64(3)).unwrap();
    let inputs: Vec<DMatrix<f64>> = checked
        .iter()
        .map(|n| opt.params().get(n).clone())
        .collect();
    let f = tape_fn(|vars: &[Var<'_, f64>]| unroll_loss(&opt, &problem, &checked, vars, 4));
    check_first_order(&f, &inputs, 11, tol).unwrap_or_else(|e| panic!("{e}"));
    let heads = &checked[..2];
    let f2 = tape_fn(|vars: &[Var<'_, f64>]| unroll_loss(&opt, &problem, heads, vars, 4));
    check_second_order(&f2, &inputs[..2], 11, tol).unwrap_or_else(|e| panic!("{e}"));
    // The original's detached features: exact for one step (its features do not depend on the
    // meta-parameters), a surrogate afterwards.
    let opt = L2oPa::<f64>::new(PaConfig::lasso(), &mut StdRng::seed_from_u64(3)).unwrap();
    let f = tape_fn(|vars: &[Var<'_, f64>]| unroll_loss(&opt, &problem, &checked, vars, 1));
    check_first_order(&f, &inputs, 12, tol).unwrap_or_else(|e| panic!("{e}"));
    check_second_order(&f, &inputs, 12, tol).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn meta_training_lowers_the_held_out_meta_loss_deterministically() {
    let config = LassoConfig::toy();
    let held_out: Vec<Lasso<f64>> = (0..8).map(|s| lasso(1000 + s)).collect();
    let train = || {
        let mut rng = StdRng::seed_from_u64(42);
        let mut model = L2oPa::<f64>::new(PaConfig::lasso(), &mut rng).unwrap();
        let before = pa_meta_loss(&model, &held_out, 100);
        let mut trainer = PaTrainer::new(PaTrainConfig::lasso()).unwrap();
        let mut losses = Vec::new();
        for _ in 0..6 {
            let batch: Vec<Lasso<f64>> = (0..4)
                .map(|_| Lasso::random(config, &mut rng).unwrap())
                .collect();
            losses.push(trainer.step(&mut model, &batch).unwrap().loss);
        }
        (before, pa_meta_loss(&model, &held_out, 100), losses)
    };
    let (before, after, losses) = train();
    assert!(after < 0.9 * before, "meta-loss {before:.4} -> {after:.4}");
    assert_eq!(train().2, losses, "same seed, same numbers");
}

#[test]
fn non_finite_values_during_meta_training_are_reported_with_their_place() {
    let mut problem = lasso(8);
    problem = Lasso::new(
        problem.w().clone(),
        problem.y().map(|v| v * 1e300),
        problem.rho(),
    )
    .unwrap();
    let mut model = L2oPa::<f64>::new(PaConfig::lasso(), &mut StdRng::seed_from_u64(0)).unwrap();
    let mut trainer = PaTrainer::new(PaTrainConfig::lasso()).unwrap();
    let e = trainer.step(&mut model, &[lasso(9), problem]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("meta-step 0, segment 0, instance 1"),
        "{text}"
    );
}

#[test]
fn convergent_wrapper_converges_for_random_scaled_up_meta_parameters() {
    for seed in 0..3 {
        let problem = lasso(20 + seed);
        let f_star = reference_optimum(&problem, 5000);
        let mut pa =
            L2oPa::<f64>::new(PaConfig::lasso(), &mut StdRng::seed_from_u64(seed)).unwrap();
        for v in pa.params_mut().values_mut() {
            *v *= 30.0; // saturated heads: P and A near their bounds 0 or 2
        }
        let wrapped = ConvergentPa::new(pa.clone(), 10.0, 0.9).unwrap();
        let errs: Vec<f64> = wrapped
            .objectives(&problem, 1500)
            .iter()
            .map(|&f| relative_error(f, f_star))
            .collect();
        assert!(errs[1500] < 1e-6, "seed {seed}: {:.3e}", errs[1500]);
        let raw = pa.objectives(&problem, 1500);
        let raw_err = relative_error(raw[1500], f_star);
        // The same meta-parameters unwrapped do not converge (they blow up): the guarantee
        // comes from the wrapper, not from lucky parameters.
        assert!(
            raw_err.is_nan() || raw_err >= 1e-3,
            "seed {seed}: raw L2O-PA {raw_err:.2e}"
        );
    }
}

#[test]
fn convergent_wrapper_interpolates_between_fista_and_l2o_pa() {
    let problem = lasso(30);
    let pa = L2oPa::<f64>::new(PaConfig::lasso(), &mut StdRng::seed_from_u64(4)).unwrap();
    let fista = ProxGradient::fista(&problem).objectives(&problem, 50);
    let zero = ConvergentPa::new(pa.clone(), 0.0, 0.5)
        .unwrap()
        .objectives(&problem, 50);
    let unclipped = ConvergentPa::new(pa.clone(), 1e12, 0.999)
        .unwrap()
        .objectives(&problem, 50);
    let raw = pa.objectives(&problem, 50);
    for k in 0..=50 {
        assert!((zero[k] - fista[k]).abs() < 1e-12 * fista[k].abs().max(1.0));
        assert!((unclipped[k] - raw[k]).abs() < 1e-10 * raw[k].abs().max(1.0));
    }
}
