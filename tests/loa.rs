//! LOA learned BFGS (Castera & Ochs): equivalence with BFGS at initialization, permutation
//! equivariance, meta-gradients against finite differences, meta-training, baselines, errors.

use convergent_l2o::eval::{probes, run, EvalError, Probe, RunConfig, Steps};
use convergent_l2o::meta::{
    unroll_window, FullBptt, LogRelative, MetaTrainConfig, MetaTrainer, WindowSpec,
};
use convergent_l2o::models::{Bound, Params};
use convergent_l2o::optim::{
    loa_gradient_descent, loa_heavy_ball, loa_nesterov, loa_warm_up, Algorithm, Bfgs, Frozen,
    InnerGradients, LearnedOptimizer, LineSearch, LoaBfgs, OptimError, Oracle, Recording,
    LOA_PARAMS,
};
use convergent_l2o::problems::{
    standard_normal_point, LoaQuadratics, Problem, Ridge, SyntheticLogistic,
};
use convergent_l2o::tape::gradcheck::{check_first_order, check_second_order, tape_fn, Tolerance};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Point = DMatrix<f64>;

fn ridge(dim: usize, samples: usize, seed: u64) -> (Ridge, Point) {
    let mut rng = StdRng::seed_from_u64(seed);
    let p = Ridge::random(dim, samples, 0.1, &mut rng).unwrap();
    let x = standard_normal_point(dim, &mut rng);
    (p, x)
}

/// The BFGS-initialized model with every weight nudged, so no part of it is inactive.
fn perturbed(seed: u64, size: f64) -> LoaBfgs<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m = LoaBfgs::bfgs_init(&mut rng);
    let mut p = m.params().clone();
    for (_, v) in p.iter_mut() {
        v.iter_mut()
            .for_each(|w| *w += size * rng.gen_range(-1.0..1.0));
    }
    m.set_params(p).unwrap();
    m
}

/// What the old `Iterates` held, read from an `eval::run`: `f(x_k)` and `x_k` for
/// `k = 0..=steps` (the iterate, not the query point), the step sizes and the skipped updates.
struct Trajectory {
    values: Vec<f64>,
    points: Vec<Point>,
    step_sizes: Vec<f64>,
    skipped_updates: usize,
}

fn trajectory(
    alg: &dyn Algorithm<f64>,
    p: &dyn Problem<f64>,
    x: &Point,
    steps: usize,
) -> Trajectory {
    let n = p.dim();
    let all: Vec<usize> = (0..=steps).collect();
    let mut cfg = RunConfig::bare(steps)
        .with(probes::objective(steps))
        .with(probes::reported("alpha"))
        .with(probes::reported("skipped"));
    for i in 0..n {
        cfg = cfg.with(Probe::new(
            &format!("x{i}"),
            Steps::At(all.clone()),
            move |v| v.x[i],
        ));
    }
    let out = run(alg, p, x, &cfg).unwrap();
    assert_eq!(out.trace.non_finite_at, None, "{} diverged", alg.name());
    let coords: Vec<Vec<f64>> = (0..n).map(|i| out.trace.values(&format!("x{i}"))).collect();
    Trajectory {
        values: out.trace.values("objective"),
        points: (0..=steps)
            .map(|k| DMatrix::from_fn(n, 1, |i, _| coords[i][k]))
            .collect(),
        step_sizes: out.trace.values("alpha"),
        skipped_updates: out.trace.values("skipped").iter().sum::<f64>() as usize,
    }
}

/// `(f(x_k) - F*)/(f(x_0) - F*)`, the paper's metric.
fn relative(values: &[f64], f_star: f64) -> Vec<f64> {
    let gap = values[0] - f_star;
    values.iter().map(|v| (v - f_star) / gap).collect()
}

/// The old meta-loss, computed offline: the mean over `k = 1..=T` of `log(r_k + floor)` (and
/// `log(floor)` where `r_k + floor <= 0`, as `LogRelative`; `r_k` is slightly negative when `f`
/// reaches `F*` to rounding).
fn log_relative_loss(values: &[f64], f_star: f64, floor: f64) -> f64 {
    let r = relative(values, f_star);
    let t = r.len().saturating_sub(1).max(1);
    r[1..]
        .iter()
        .map(|r| {
            if r + floor > 0.0 {
                (r + floor).ln()
            } else {
                floor.ln()
            }
        })
        .sum::<f64>()
        / t as f64
}

fn max_rel(a: &Point, b: &Point) -> f64 {
    (a - b).norm() / b.norm().max(1e-300)
}

#[test]
fn loa_initialized_as_bfgs_reproduces_bfgs_iterates() {
    let (p, x) = ridge(8, 12, 1);
    let model = LoaBfgs::<f64>::bfgs_init(&mut StdRng::seed_from_u64(2));
    let steps = 12;
    let loa = trajectory(&Frozen(&model), &p, &x, steps);
    let reference = trajectory(&Bfgs, &p, &x, steps);
    assert_eq!(loa.step_sizes.len(), steps);
    assert_eq!(loa.step_sizes, reference.step_sizes);
    assert_eq!(loa.points.len(), steps + 1);
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
    let xq = DMatrix::from_fn(7, 1, |j, _| x[perm[j]]);
    let a = trajectory(&Frozen(&model), &p, &x, 10);
    let b = trajectory(&Frozen(&model), &q, &xq, 10);
    for (k, (pa, pb)) in a.points.iter().zip(&b.points).enumerate() {
        let pa_perm = DMatrix::from_fn(7, 1, |j, _| pa[perm[j]]);
        assert!(max_rel(pb, &pa_perm) < 1e-10, "step {k}");
    }
}

/// LOA's recorded trajectory from `x_{-1}` and its `LogRelative` meta-loss over `horizon`
/// updates, the parameters read from `theta`.
fn recorded<'t>(
    model: &LoaBfgs<f64>,
    theta: Bound<'t, f64>,
    p: &Ridge,
    x: &Point,
    horizon: usize,
) -> (Var<'t, f64>, Vec<f64>) {
    let tape = theta.vars()[0].tape();
    let opt = model.optimizer(theta);
    let oracle = Oracle::new(p, tape, 0, Recording::On { second_order: true });
    let mut state = opt.init(tape.param(x.clone()), &oracle).unwrap();
    let spec = WindowSpec {
        problem: p,
        meta_loss: &LogRelative { floor: 1e-12 },
        horizon,
        length: horizon,
        second_order: true,
    };
    let window = unroll_window(&*opt, &mut state, &spec, &mut None).unwrap();
    (window.loss, window.losses)
}

#[test]
fn unrecorded_run_keeps_the_tape_flat_and_matches_the_recorded_unroll() {
    let model = perturbed(5, 0.05);
    let (p, x) = ridge(5, 8, 6);
    // Unrecorded updates add the same few nodes at every step, however many Armijo trials (a
    // safeguard's restart, here near F* to rounding, adds one constant: the restarted H).
    let tape = Tape::new();
    let opt = model.optimizer(model.params().bind_constants(&tape));
    let mut state = opt
        .init(
            tape.constant(x.clone()),
            &Oracle::new(&p, &tape, 0, Recording::Off),
        )
        .unwrap();
    let mut growth = Vec::new();
    for t in 0..20 {
        let before = tape.len();
        let oracle = Oracle::new(&p, &tape, t, Recording::Off);
        let at = oracle.evaluate(opt.query(&state));
        tape.no_grad(|| opt.update(&mut state, &at, &oracle))
            .unwrap();
        state.advance();
        growth.push(tape.len() - before);
    }
    assert!(
        growth
            .iter()
            .all(|&g| (growth[0]..=growth[0] + 1).contains(&g) && g < 60),
        "{growth:?}"
    );

    let run = trajectory(&Frozen(&model), &p, &x, 20);
    let tape = Tape::new();
    let (meta_loss, values) = recorded(&model, model.params().bind(&tape), &p, &x, 20);
    assert_eq!(run.values, values);
    // `LogRelative` after the warm-up in `init` is the old meta-loss, relative to f(x_0).
    let offline = log_relative_loss(&run.values, p.minimum(), 1e-12);
    assert!((meta_loss.scalar() - offline).abs() < 1e-12);
}

fn meta_loss_fn<'t>(
    model: &LoaBfgs<f64>,
    p: &Ridge,
    x: &Point,
    vars: &[Var<'t, f64>],
) -> Var<'t, f64> {
    let named = LOA_PARAMS
        .iter()
        .zip(vars)
        .map(|((n, _), v)| (n.to_string(), *v))
        .collect();
    recorded(model, Bound::from_named(named), p, x, 3).0
}

#[test]
fn meta_gradient_matches_finite_differences_first_and_second_order() {
    let model = perturbed(7, 0.1).with_line_search(LineSearch::Fixed(0.7));
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

fn loa_trainer(lr: f64, seed: u64, trajectories: usize, horizon: usize) -> MetaTrainer<f64> {
    let config = MetaTrainConfig {
        lr,
        clip: Some(1.0),
        seed,
    };
    let estimator = FullBptt {
        trajectories,
        horizon,
        second_order: true,
    };
    MetaTrainer::new(config, estimator, LogRelative { floor: 1e-12 }).unwrap()
}

#[test]
fn meta_training_lowers_held_out_meta_loss_and_is_deterministic() {
    let family = LoaQuadratics::new(6).unwrap();
    let held_out: Vec<(Ridge, Point)> = {
        let mut rng = StdRng::seed_from_u64(999);
        (0..16)
            .map(|_| {
                (
                    family.sample(&mut rng).unwrap(),
                    standard_normal_point(6, &mut rng),
                )
            })
            .collect()
    };
    let evaluate = |model: &LoaBfgs<f64>| {
        let total: f64 = held_out
            .iter()
            .map(|(p, x)| {
                let t = trajectory(&Frozen(model), p, x, 4);
                log_relative_loss(&t.values, p.minimum(), 1e-12)
            })
            .sum();
        total / held_out.len() as f64
    };
    let train = |n: usize| {
        let mut model = LoaBfgs::bfgs_init(&mut StdRng::seed_from_u64(0));
        let mut trainer = loa_trainer(1e-2, 21, 4, 4);
        let reports: Vec<_> = (0..n)
            .map(|_| trainer.step(&mut model, &family).unwrap())
            .collect();
        (model, reports)
    };
    let (model, reports) = train(30);
    let before = evaluate(&LoaBfgs::bfgs_init(&mut StdRng::seed_from_u64(0)));
    let after = evaluate(&model);
    assert!(
        after < before - 0.05,
        "held-out meta-loss {before} -> {after}"
    );
    let (_, again) = train(3);
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

/// The last relative suboptimality of `alg` from `x` after `steps` steps.
fn last_relative(alg: &dyn Algorithm<f64>, p: &dyn Problem<f64>, x: &Point, steps: usize) -> f64 {
    let values = trajectory(alg, p, x, steps).values;
    *relative(&values, p.infimum().unwrap()).last().unwrap()
}

#[test]
fn baselines_converge_on_ridge_and_logistic_and_bfgs_beats_gd() {
    let (p, x) = ridge(10, 30, 13);
    assert!(p.gradient(p.minimizer()).norm() < 1e-10);
    // BFGS starts at x_{-1} and warms up itself; the others start at x_0.
    let x0 = loa_warm_up(&p, &x).unwrap();
    let b = last_relative(&Bfgs, &p, &x, 60);
    let g = last_relative(&loa_gradient_descent::<f64>(&p).unwrap(), &p, &x0, 60);
    let n = last_relative(&loa_nesterov::<f64>(&p).unwrap(), &p, &x0, 60);
    let h = last_relative(&loa_heavy_ball::<f64>(&p).unwrap(), &p, &x0, 60);
    assert!(b < 1e-12, "bfgs {b}");
    assert!(b < g, "bfgs {b} vs gd {g}");
    for (name, r) in [("gd", g), ("nesterov", n), ("heavy ball", h)] {
        assert!((-1e-12..0.2).contains(&r), "{name}: {r}");
    }

    let mut rng = StdRng::seed_from_u64(14);
    let l = SyntheticLogistic::random(10, 50, &mut rng).unwrap();
    assert!(l.gradient(l.minimizer()).norm() < 1e-8);
    let x = standard_normal_point(10, &mut rng);
    let x0 = loa_warm_up(&l, &x).unwrap();
    let b = last_relative(&Bfgs, &l, &x, 310);
    let g = last_relative(&loa_gradient_descent::<f64>(&l).unwrap(), &l, &x0, 310);
    let n = last_relative(&loa_nesterov::<f64>(&l).unwrap(), &l, &x0, 310);
    let h = last_relative(&loa_heavy_ball::<f64>(&l).unwrap(), &l, &x0, 310);
    assert!(b < 1e-10, "bfgs {b}");
    assert!(b < g, "bfgs {b} vs gd {g}");
    for (name, r) in [("gd", g), ("nesterov", n), ("heavy ball", h)] {
        assert!((-1e-12..0.5).contains(&r), "{name}: {r}");
    }
}

fn col(v: &DVector<f64>) -> Point {
    DMatrix::from_column_slice(v.len(), 1, v.as_slice())
}

/// The pre-spine baselines (`git show 4e41239:src/optim/loa/baselines.rs`), verbatim in
/// `f64` on the closed-form gradient: `x_0..=x_steps` of BFGS from `x_{-1}`, GD, heavy ball
/// and Nesterov from `x_0`.
fn original_baselines(p: &Ridge, x_minus1: &DVector<f64>, steps: usize) -> [Vec<DVector<f64>>; 4] {
    let lmax = Problem::<f64>::smoothness(p).unwrap();
    let lmin = Problem::<f64>::strong_convexity(p).unwrap();
    let s = 1.99 / (2.0 * lmax);
    let g_prev0 = p.gradient(x_minus1);
    let x0 = x_minus1 - &g_prev0 / (2.0 * lmax);
    let dg0 = p.gradient(&x0) - &g_prev0;
    let bb = dg0.dot(&(&x0 - x_minus1)) / dg0.norm_squared();
    let mut bfgs = vec![x0.clone()];
    let (mut h, mut x, mut x_prev) = (
        DMatrix::identity(x0.len(), x0.len()) * (0.8 * bb),
        x0.clone(),
        x_minus1.clone(),
    );
    let (mut g, mut g_prev) = (p.gradient(&x0), g_prev0);
    for _ in 0..steps {
        let (d, dg) = (&x - &x_prev, &g - &g_prev);
        let rho = 1.0 / d.dot(&dg);
        let hdg = &h * &dg;
        h += (&d * d.transpose()) * (rho * (1.0 + rho * dg.dot(&hdg)))
            - (&hdg * d.transpose()) * rho
            - (&d * hdg.transpose()) * rho;
        let step = -(&h * &g);
        let mut alpha = 1.0;
        for _ in 0..5 {
            if p.value(&(&x + &step * alpha)) - p.value(&x) - 1e-2 * alpha * step.dot(&g) <= 0.0 {
                break;
            }
            alpha *= 0.1;
        }
        (x_prev, g_prev) = (x.clone(), g);
        x += step * alpha;
        g = p.gradient(&x);
        bfgs.push(x.clone());
    }
    let heavy = |beta: f64| {
        let (mut x, mut prev): (DVector<f64>, Option<DVector<f64>>) = (x0.clone(), None);
        let mut out = vec![x.clone()];
        for _ in 0..steps {
            let mut next = &x - p.gradient(&x) * s;
            if let Some(prev) = &prev {
                next += (&x - prev) * beta;
            }
            (prev, x) = (Some(x), next);
            out.push(x.clone());
        }
        out
    };
    let (mut x, mut y) = (x0.clone(), x0.clone());
    let mut nesterov = vec![x.clone()];
    for k in 0..steps {
        let next = &y - p.gradient(&y) * s;
        let kk = (k + 1) as f64;
        y = &next + (&next - &x) * (kk / (kk + 3.01));
        x = next;
        nesterov.push(x.clone());
    }
    [
        bfgs,
        heavy(0.0),
        heavy(1.0 - 2.0 * (lmin * s).sqrt()),
        nesterov,
    ]
}

#[test]
fn baselines_reproduce_the_original_iterates() {
    let (p, x) = ridge(6, 9, 15);
    // BFGS reaches F* to rounding at step 18; past it, rounding noise drives the iterates.
    let steps = 16;
    let x_minus1 = DVector::from_column_slice(x.as_slice());
    let original = original_baselines(&p, &x_minus1, steps);
    let x0 = loa_warm_up(&p, &x).unwrap();
    let ours = [
        trajectory(&Bfgs, &p, &x, steps),
        trajectory(&loa_gradient_descent::<f64>(&p).unwrap(), &p, &x0, steps),
        trajectory(&loa_heavy_ball::<f64>(&p).unwrap(), &p, &x0, steps),
        trajectory(&loa_nesterov::<f64>(&p).unwrap(), &p, &x0, steps),
    ];
    for (m, (a, b)) in ours.iter().zip(&original).enumerate() {
        for (k, (pa, pb)) in a.points.iter().zip(b).enumerate() {
            let err = max_rel(pa, &col(pb));
            assert!(err < 1e-12, "method {m}, step {k}: {err:e}");
        }
    }
}

/// A problem that gives only the constants it is built with.
struct Bare {
    smoothness: Option<f64>,
}

impl Problem<f64> for Bare {
    fn dim(&self) -> usize {
        2
    }
    fn loss<'t>(&self, x: Var<'t, f64>, _: usize) -> Var<'t, f64> {
        x.square().sum()
    }
    fn smoothness(&self) -> Option<f64> {
        self.smoothness
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
    let tape = Tape::new();
    let opt = model.optimizer(model.params().bind_constants(&tape));
    let oracle = Oracle::new(&p, &tape, 0, Recording::Off);
    let e = opt
        .init(tape.constant(DMatrix::zeros(3, 1)), &oracle)
        .err()
        .unwrap();
    assert_eq!(
        e,
        OptimError::Dimension {
            optimizer: "LOA BFGS".into(),
            expected: 4,
            found: 3
        }
    );
    let e = run(
        &Frozen(&model),
        &p,
        &DMatrix::zeros(3, 1),
        &RunConfig::new(5),
    )
    .unwrap_err();
    assert!(
        matches!(e, EvalError::Config(_)) && e.to_string().contains("dimension 4"),
        "{e}"
    );
    // Starting at the optimum: no BB step.
    let optimum = DMatrix::from_column_slice(4, 1, p.minimizer().as_slice());
    for alg in [&Bfgs as &dyn Algorithm<f64>, &Frozen(&model)] {
        let e = run(alg, &p, &optimum, &RunConfig::new(5)).unwrap_err();
        assert!(e.to_string().contains("Barzilai-Borwein"), "{e}");
    }
    // A problem without the constants the original's protocol needs.
    let bare = Bare { smoothness: None };
    let requires =
        |what| move |e: OptimError| matches!(e, OptimError::Requires { what: w, .. } if w == what);
    for alg in [&Bfgs as &dyn Algorithm<f64>, &Frozen(&model)] {
        match run(
            alg,
            &bare,
            &DMatrix::from_element(2, 1, 1.0),
            &RunConfig::new(5),
        ) {
            Err(EvalError::Optim(e)) => assert!(requires("smoothness")(e)),
            other => panic!("{:?}", other.map(|r| r.last)),
        }
    }
    assert!(requires("smoothness")(
        loa_gradient_descent::<f64>(&bare).unwrap_err()
    ));
    assert!(requires("smoothness")(
        loa_nesterov::<f64>(&bare).unwrap_err()
    ));
    let smooth = Bare {
        smoothness: Some(2.0),
    };
    assert!(requires("strong convexity")(
        loa_heavy_ball::<f64>(&smooth).unwrap_err()
    ));
    let fixed = model.clone().with_line_search(LineSearch::Fixed(-1.0));
    let e = run(
        &Frozen(&fixed),
        &p,
        &DMatrix::from_element(4, 1, 1.0),
        &RunConfig::new(5),
    )
    .unwrap_err();
    assert!(e.to_string().contains("fixed step size"), "{e}");

    let bad = MetaTrainConfig {
        lr: -1.0,
        clip: Some(1.0),
        seed: 0,
    };
    let estimator = FullBptt {
        trajectories: 8,
        horizon: 2,
        second_order: true,
    };
    let e = MetaTrainer::<f64>::new(bad, estimator, LogRelative { floor: 1e-12 });
    assert!(e.err().unwrap().to_string().contains("lr"));
    let mut params = Params::new();
    params.insert("fullskip_layer.weight", DMatrix::zeros(1, 5));
    assert!(LoaBfgs::<f64>::from_params(params.clone()).is_err());
    assert!(LoaBfgs::<f64>::bfgs_init(&mut rng)
        .set_params(params)
        .is_err());

    // A diverging model: NaN/Inf is reported with the meta-step and where.
    let mut trainer = loa_trainer(1e-3, 0, 8, 2);
    let mut model = LoaBfgs::bfgs_init(&mut rng)
        .with_line_search(LineSearch::Fixed(1e200))
        .with_gradients(InnerGradients::Detached);
    let e = trainer
        .step(&mut model, &LoaQuadratics::new(4).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("meta-step 0:") && e.contains("non-finite"),
        "{e}"
    );
}
