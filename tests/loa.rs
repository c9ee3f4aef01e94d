//! LOA learned BFGS (Castera & Ochs): equivalence with BFGS at initialization, permutation
//! equivariance, meta-gradients against finite differences, meta-training, baselines, errors.

use convergent_l2o::meta::{LoaQuadratics, Objective, Ridge, SyntheticLogistic};
use convergent_l2o::models::{Bound, Params};
use convergent_l2o::optim::{
    bfgs, gradient_descent, heavy_ball, nesterov, standard_normal_point, InnerGradients,
    LineSearch, LoaBfgs, LoaConfig, LoaError, LoaTrainConfig, LoaTrainer, Start, LOA_PARAMS,
};
use convergent_l2o::tape::gradcheck::{check_first_order, check_second_order, tape_fn, Tolerance};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn ridge(dim: usize, samples: usize, seed: u64) -> (Ridge, DVector<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let p = Ridge::random(dim, samples, 0.1, &mut rng).unwrap();
    let x = standard_normal_point(dim, &mut rng);
    (p, x)
}

/// The BFGS-initialized model with every weight nudged, so no part of it is inactive.
fn perturbed(seed: u64, size: f64) -> LoaBfgs<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m = LoaBfgs::bfgs_init(&mut rng);
    for v in m.params_mut().values_mut() {
        v.iter_mut()
            .for_each(|w| *w += size * rng.gen_range(-1.0..1.0));
    }
    m
}

fn max_rel(a: &DVector<f64>, b: &DVector<f64>) -> f64 {
    (a - b).norm() / b.norm().max(1e-300)
}

#[test]
fn loa_initialized_as_bfgs_reproduces_bfgs_iterates() {
    let (p, x) = ridge(8, 12, 1);
    let model = LoaBfgs::<f64>::bfgs_init(&mut StdRng::seed_from_u64(2));
    let steps = 12;
    let loa = model.run(&p, &x, steps, LineSearch::Armijo).unwrap();
    let reference = bfgs(&p, &Start::for_objective(&p, &x).unwrap(), steps);
    assert_eq!(loa.step_sizes, reference.step_sizes);
    for (k, (a, b)) in loa.points.iter().zip(&reference.points).enumerate() {
        assert!(max_rel(a, b) < 1e-10, "step {k}: {}", max_rel(a, b));
    }
    assert_eq!(loa.skipped_updates, 0);
}

#[test]
fn loa_is_permutation_equivariant_and_has_216_parameters() {
    let model = perturbed(3, 0.05);
    assert_eq!(model.params().num_scalars(), 216);
    let names: Vec<&str> = model.params().iter().map(|(n, _)| n).collect();
    assert_eq!(names, LOA_PARAMS.map(|(n, _)| n).to_vec());
    let (p, x) = ridge(7, 10, 4);
    let perm = [3, 0, 6, 1, 5, 2, 4];
    let q = p.permuted(&perm).unwrap();
    let xq = DVector::from_fn(7, |j, _| x[perm[j]]);
    let a = model.run(&p, &x, 10, LineSearch::Armijo).unwrap();
    let b = model.run(&q, &xq, 10, LineSearch::Armijo).unwrap();
    for (k, (pa, pb)) in a.points.iter().zip(&b.points).enumerate() {
        let pa_perm = DVector::from_fn(7, |j, _| pa[perm[j]]);
        assert!(max_rel(pb, &pa_perm) < 1e-10, "step {k}");
    }
}

#[test]
fn unrecorded_run_keeps_the_tape_flat_and_matches_the_recorded_unroll() {
    let model = perturbed(5, 0.05);
    let (p, x) = ridge(5, 8, 6);
    let tape = Tape::new();
    let bound = model.params().bind_constants(&tape);
    let before = tape.len();
    let run = model
        .run_on(&bound, &p, &x, 20, LineSearch::Armijo)
        .unwrap();
    assert!(tape.len() - before < 40, "tape grew to {}", tape.len());
    let tape2 = Tape::new();
    let bound2 = model.params().bind(&tape2);
    let un = model.unroll(&bound2, &p, &x, &LoaConfig::new(20)).unwrap();
    assert_eq!(run.values, un.iterates.values);
    let offline = run.log_relative_loss(p.minimum(), 1e-12);
    assert!((un.meta_loss.scalar() - offline).abs() < 1e-12);
}

fn meta_loss_fn<'t>(
    model: &LoaBfgs<f64>,
    p: &Ridge,
    x: &DVector<f64>,
    vars: &[Var<'t, f64>],
) -> Var<'t, f64> {
    let named = LOA_PARAMS
        .iter()
        .zip(vars)
        .map(|((n, _), v)| (n.to_string(), *v))
        .collect();
    let cfg = LoaConfig {
        line_search: LineSearch::Fixed(0.7),
        ..LoaConfig::new(3)
    };
    model
        .unroll(&Bound::from_named(named), p, x, &cfg)
        .unwrap()
        .meta_loss
}

#[test]
fn meta_gradient_matches_finite_differences_first_and_second_order() {
    let model = perturbed(7, 0.1);
    let (p, x) = ridge(3, 5, 8);
    let inputs: Vec<DMatrix<f64>> = model.params().iter().map(|(_, m)| m.clone()).collect();
    let f = tape_fn(|vars| meta_loss_fn(&model, &p, &x, vars));
    let tol = Tolerance {
        step: 1e-6,
        rtol: 1e-4,
        atol: 1e-7,
    };
    check_first_order(&f, &inputs, 11, tol).unwrap();
    check_second_order(&f, &inputs, 12, tol).unwrap();
}

#[test]
fn meta_training_lowers_held_out_meta_loss_and_is_deterministic() {
    let mut cfg = LoaTrainConfig::new(6, 21);
    cfg.batch = 4;
    cfg.lr = 1e-2;
    cfg.unroll.steps = 4;
    let held_out: Vec<(Ridge, DVector<f64>)> = {
        let mut rng = StdRng::seed_from_u64(999);
        let dist = LoaQuadratics::new(6).unwrap();
        (0..16)
            .map(|_| {
                (
                    dist.sample(&mut rng).unwrap(),
                    standard_normal_point(6, &mut rng),
                )
            })
            .collect()
    };
    let train = |n: usize| {
        let mut model = LoaBfgs::bfgs_init(&mut StdRng::seed_from_u64(0));
        let mut trainer = LoaTrainer::new(cfg.clone()).unwrap();
        let reports: Vec<_> = (0..n).map(|_| trainer.step(&mut model).unwrap()).collect();
        (model, trainer, reports)
    };
    let (model, trainer, reports) = train(30);
    let before = trainer
        .evaluate(
            &LoaBfgs::bfgs_init(&mut StdRng::seed_from_u64(0)),
            &held_out,
        )
        .unwrap();
    let after = trainer.evaluate(&model, &held_out).unwrap();
    assert!(
        after < before - 0.05,
        "held-out meta-loss {before} -> {after}"
    );
    let (_, _, again) = train(3);
    assert_eq!(again[..], reports[..3]);
}

#[test]
fn checkpoint_round_trip() {
    let model = perturbed(9, 0.1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loa.bin");
    model.save(&path).unwrap();
    let back = LoaBfgs::<f64>::load(&path).unwrap();
    for ((_, a), (_, b)) in model.params().iter().zip(back.params().iter()) {
        assert_eq!(a, b);
    }
}

#[test]
fn baselines_converge_on_ridge_and_logistic_and_bfgs_beats_gd() {
    let (p, x) = ridge(10, 30, 13);
    assert!(p.gradient(p.minimizer()).norm() < 1e-10);
    let start = Start::for_objective(&p, &x).unwrap();
    let f_star = p.minimum();
    let last = |v: Vec<f64>| *v.last().unwrap();
    let b = last(bfgs(&p, &start, 60).relative(f_star));
    let g = last(gradient_descent(&p, &start, 60).relative(f_star));
    let n = last(nesterov(&p, &start, 60, 3.01).relative(f_star));
    let h = last(heavy_ball(&p, &start, 60).relative(f_star));
    assert!(b < 1e-12, "bfgs {b}");
    assert!(b < g, "bfgs {b} vs gd {g}");
    for (name, r) in [("gd", g), ("nesterov", n), ("heavy ball", h)] {
        assert!(r < 0.2 && r >= -1e-12, "{name}: {r}");
    }

    let mut rng = StdRng::seed_from_u64(14);
    let l = SyntheticLogistic::random(10, 50, &mut rng).unwrap();
    assert!(l.gradient(l.minimizer()).norm() < 1e-8);
    let x = standard_normal_point(10, &mut rng);
    let start = Start::for_objective(&l, &x).unwrap();
    let f_star = l.minimum();
    let b = last(bfgs(&l, &start, 310).relative(f_star));
    let g = last(gradient_descent(&l, &start, 310).relative(f_star));
    let n = last(nesterov(&l, &start, 310, 3.01).relative(f_star));
    let h = last(heavy_ball(&l, &start, 310).relative(f_star));
    assert!(b < 1e-10, "bfgs {b}");
    assert!(b < g, "bfgs {b} vs gd {g}");
    for (name, r) in [("gd", g), ("nesterov", n), ("heavy ball", h)] {
        assert!(r < 0.5 && r >= -1e-12, "{name}: {r}");
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    let e = Ridge::new(DMatrix::zeros(3, 2), DVector::zeros(4), 0.1).unwrap_err();
    assert!(e.to_string().contains("3 rows but b has 4"), "{e}");
    assert!(Ridge::new(DMatrix::zeros(3, 2), DVector::zeros(3), -1.0).is_err());
    assert!(Ridge::new(DMatrix::zeros(3, 2), DVector::zeros(3), 0.0)
        .unwrap_err()
        .to_string()
        .contains("singular"));
    assert!(LoaQuadratics::new(0).is_err());
    let mut rng = StdRng::seed_from_u64(0);
    assert!(SyntheticLogistic::random(1, 50, &mut rng)
        .unwrap_err()
        .to_string()
        .contains("dim = 1"));

    let (p, _) = ridge(4, 6, 1);
    let model = LoaBfgs::<f64>::bfgs_init(&mut rng);
    let e = model
        .run(&p, &DVector::zeros(3), 5, LineSearch::Armijo)
        .unwrap_err();
    assert_eq!(
        e,
        LoaError::Dimension {
            expected: 4,
            got: 3
        }
    );
    // Starting at the optimum: no BB step.
    let e = Start::for_objective(&p, p.minimizer()).unwrap_err();
    assert!(e.to_string().contains("Barzilai-Borwein"), "{e}");

    let mut cfg = LoaTrainConfig::new(4, 0);
    cfg.lr = -1.0;
    assert!(LoaTrainer::new(cfg).unwrap_err().to_string().contains("lr"));
    let mut bad = Params::new();
    bad.insert("fullskip_layer.weight", DMatrix::zeros(1, 5));
    assert!(LoaBfgs::<f64>::from_params(bad).is_err());

    // A diverging model: NaN/Inf is reported with the meta-step and the quantity.
    let mut cfg = LoaTrainConfig::new(4, 0);
    cfg.unroll.line_search = LineSearch::Fixed(1e200);
    cfg.unroll.gradients = InnerGradients::Detached;
    let mut trainer = LoaTrainer::new(cfg).unwrap();
    let mut model = LoaBfgs::bfgs_init(&mut rng);
    let e = trainer.step(&mut model).unwrap_err().to_string();
    assert!(
        e.starts_with("meta-step 0:") && e.contains("not finite"),
        "{e}"
    );
}
