//! ConvergentAnyL2O, the dimension-agnostic convergent learned optimizer: exact meta-gradients
//! (first and second order), convergence and Lemma 1's certificate for meta-parameters far from
//! their initialization on problems of several sizes, Theorem 2's bound (15) on realized
//! runs, determinism, and its refusals.

use convergent_l2o::eval::{probes, run, RunConfig};
use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
use convergent_l2o::models::{Bound, Params};
use convergent_l2o::optim::{
    AnyConfig, AnyStepRule, ConvergentAnyL2O, Frozen, LearnedOptimizer, Lemma1, Oracle, Recording,
};
use convergent_l2o::problems::{FamilyFn, Problem, Quadratic, Sampled};
use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn};
use convergent_l2o::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A random quadratic that reports a layout of two tensors (so the per-tensor normalization is
/// exercised), with β and inf f = 0.
struct TwoTensors {
    q: Quadratic<f64>,
    split: usize,
    beta: f64,
}

impl TwoTensors {
    fn random(n: usize, rng: &mut StdRng) -> Self {
        let q = Quadratic::random(n, 0.1, 1.0, rng);
        let beta = q.smoothness().unwrap();
        TwoTensors {
            q,
            split: (n / 2).max(1),
            beta,
        }
    }
}

impl Problem<f64> for TwoTensors {
    fn dim(&self) -> usize {
        Problem::<f64>::dim(&self.q)
    }
    fn loss<'t>(&self, x: Var<'t, f64>, step: usize) -> Var<'t, f64> {
        self.q.loss(x, step)
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.beta)
    }
    fn infimum(&self) -> Option<f64> {
        Some(0.0)
    }
    fn tensor_sizes(&self) -> Vec<usize> {
        let n = Problem::<f64>::dim(&self.q);
        if n > self.split {
            vec![self.split, n - self.split]
        } else {
            vec![n]
        }
    }
}

fn scaled(params: &Params<f64>, factor: f64) -> Params<f64> {
    let mut p = params.clone();
    for (_, m) in p.iter_mut() {
        *m *= factor;
    }
    p
}

fn small_config(rule: AnyStepRule) -> AnyConfig {
    AnyConfig {
        hidden: 4,
        ren_states: 3,
        ren_neurons: 3,
        ren_outputs: 2,
        gamma: 1.0,
        bias_decay: 0.9,
        rule,
    }
}

fn theorem2() -> AnyStepRule {
    AnyStepRule::Theorem2 {
        scale: 0.5,
        offset: 2.0,
        power: 0.75,
        grad_bound: 2.0,
    }
}

#[test]
fn meta_gradients_match_finite_differences_first_and_second_order() {
    let mut rng = StdRng::seed_from_u64(5);
    let f = TwoTensors::random(4, &mut rng);
    for rule in [AnyStepRule::Theorem1 { eta: 0.4 / f.beta }, theorem2()] {
        let mut opt =
            ConvergentAnyL2O::<f64>::new(small_config(rule), &mut StdRng::seed_from_u64(1))
                .unwrap();
        // Away from the initialization (and from ReLU kinks, with probability one).
        let p = scaled(opt.params(), 3.0);
        opt.set_params(p).unwrap();
        let names: Vec<String> = opt.params().iter().map(|(n, _)| n.to_string()).collect();
        let values: Vec<DMatrix<f64>> = opt.params().iter().map(|(_, m)| m.clone()).collect();
        let x0 = DMatrix::from_column_slice(4, 1, &[0.7, -0.4, 0.2, 1.1]);
        let (opt, f) = (&opt, &f);
        let meta_loss = tape_fn(move |vars| {
            let tape = vars[0].tape();
            let bound =
                Bound::from_named(names.iter().cloned().zip(vars.iter().copied()).collect());
            let run = opt.optimizer(bound);
            let oracle = Oracle::new(f, tape, 0, Recording::On { second_order: true });
            let mut state = run.init(tape.constant(x0.clone()), &oracle).unwrap();
            let mut loss = tape.scalar(0.0);
            for t in 0..3 {
                let oracle = oracle.at_step(t);
                let at = oracle.evaluate(run.query(&state));
                run.update(&mut state, &at, &oracle).unwrap();
                state.advance();
                loss = loss + f.loss(state.x(), t);
            }
            loss
        });
        check_gradients(&meta_loss, &values, 9).unwrap();
    }
}

/// Runs unrecorded; returns (|∇f|², |v|², z², eta) per step and the final gradient norm.
fn trajectory(
    opt: &ConvergentAnyL2O<f64>,
    f: &TwoTensors,
    x0: &DMatrix<f64>,
    steps: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, f64) {
    let cfg = RunConfig::bare(steps)
        .with(probes::grad_norm_sq())
        .with(probes::reported_norm_sq("v"))
        .with(probes::reported_norm_sq("z"))
        .with(probes::reported("eta"));
    let out = run(&Frozen(opt), f, x0, &cfg).unwrap();
    assert!(out.trace.non_finite_at.is_none(), "non-finite iterate");
    let tr = &out.trace;
    let last = f.value_and_grad(&out.last, steps).1.norm();
    (
        tr.values("grad_norm_sq"),
        tr.values("v_norm_sq"),
        tr.values("z_norm_sq"),
        tr.values("eta"),
        last,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Theorem 1: any meta-parameters (scaled far from their initialization), any dimension:
    /// Lemma 1's bound holds on the realized run and the gradient vanishes.
    #[test]
    fn theorem1_converges_and_is_certified_for_any_meta_parameters(
            n in prop::sample::select(vec![1usize, 3, 8, 40]), seed in 0u64..1_000_000,
            factor in prop::sample::select(vec![1.0, 10.0, 50.0]), eta_frac in 0.2f64..0.95) {
        let mut rng = StdRng::seed_from_u64(seed);
        let f = TwoTensors::random(n, &mut rng);
        let eta = eta_frac / f.beta;
        let mut opt = ConvergentAnyL2O::<f64>::new(
            small_config(AnyStepRule::Theorem1 { eta }), &mut rng).unwrap();
        let p = scaled(opt.params(), factor);
        opt.set_params(p).unwrap();
        let x0 = DMatrix::from_fn(n, 1, |_, _| rng.gen_range(-2.0..2.0));
        let gap = f.objective(&x0, 0);
        let (gs, vs, _, _, last) = trajectory(&opt, &f, &x0, 1500);
        let cert = Lemma1::new(f.beta, eta).unwrap().check(gap, &gs, &vs);
        prop_assert!(cert.holds(), "Lemma 1 violated: {cert:?}");
        prop_assert!(last < 1e-3 * (1.0 + gs[0].sqrt()), "not converged: |grad| = {last}");
    }

    /// Theorem 2: the realized |v_t| obeys (15) with the constants the meta-parameters give,
    /// and the run converges, for scaled meta-parameters.
    #[test]
    fn theorem2_bound_holds_on_realized_runs(seed in 0u64..1_000_000,
            factor in prop::sample::select(vec![1.0, 10.0, 30.0])) {
        let mut rng = StdRng::seed_from_u64(seed);
        let f = TwoTensors::random(6, &mut rng);
        let rule = AnyStepRule::Theorem2 {
            scale: 0.5 / f.beta, offset: 2.0, power: 0.75, grad_bound: 2.0,
        };
        let mut opt = ConvergentAnyL2O::<f64>::new(small_config(rule), &mut rng).unwrap();
        let p = scaled(opt.params(), factor);
        opt.set_params(p).unwrap();
        let x0 = DMatrix::from_fn(6, 1, |_, _| rng.gen_range(-2.0..2.0));
        let (gs, vs, zs, etas, last) = trajectory(&opt, &f, &x0, 3000);
        let sup_z = zs.iter().fold(0.0f64, |m, z| m.max(z.sqrt()));
        let (c, d) = opt.theorem2_constants(6, sup_z).unwrap();
        for t in 0..vs.len() {
            let bound = etas[t] * etas[t] * (c + d * gs[t].sqrt());
            prop_assert!(vs[t].sqrt() <= bound * (1.0 + 1e-9) + 1e-300,
                "(15) violated at t = {t}: |v| = {} > {bound}", vs[t].sqrt());
        }
        prop_assert!(last < 0.05 * (1.0 + gs[0].sqrt()), "|grad| {} -> {last}", gs[0].sqrt());
    }
}

#[test]
fn same_seed_same_bits_in_runs_and_meta_training() {
    let family = FamilyFn::new("two-tensor quadratics", |_, rng: &mut StdRng| {
        let f = TwoTensors::random(5, rng);
        let x0 = DMatrix::from_fn(5, 1, |_, _| rng.gen_range(-1.0..1.0));
        Sampled::new(f, x0)
    });
    let train = || {
        let mut opt =
            ConvergentAnyL2O::<f64>::new(small_config(theorem2()), &mut StdRng::seed_from_u64(3))
                .unwrap();
        let est = FullBptt {
            trajectories: 3,
            horizon: 6,
            second_order: true,
        };
        let cfg = MetaTrainConfig {
            lr: 1e-2,
            clip: Some(1.0),
            seed: 9,
        };
        let mut trainer = MetaTrainer::new(cfg, est, WeightedLoss::PAPER).unwrap();
        for _ in 0..3 {
            trainer.step(&mut opt, &family).unwrap();
        }
        opt
    };
    let (a, b) = (train(), train());
    assert_eq!(a.params(), b.params());
    let init =
        ConvergentAnyL2O::<f64>::new(small_config(theorem2()), &mut StdRng::seed_from_u64(3))
            .unwrap();
    assert_ne!(a.params(), init.params(), "meta-training changed nothing");
    let f = TwoTensors::random(5, &mut StdRng::seed_from_u64(4));
    let x0 = DMatrix::from_element(5, 1, 0.5);
    let r1 = run(&Frozen(&a), &f, &x0, &RunConfig::new(50)).unwrap();
    let r2 = run(&Frozen(&b), &f, &x0, &RunConfig::new(50)).unwrap();
    assert_eq!(r1.last, r2.last);
}

#[test]
fn one_optimizer_runs_on_every_size_and_f32_agrees_with_f64() {
    let opt64 =
        ConvergentAnyL2O::<f64>::new(AnyConfig::default(), &mut StdRng::seed_from_u64(0)).unwrap();
    let opt32 =
        ConvergentAnyL2O::<f32>::new(AnyConfig::default(), &mut StdRng::seed_from_u64(0)).unwrap();
    for n in [1, 7, 300] {
        let q64 = Quadratic::<f64>::random(n, 0.5, 1.0, &mut StdRng::seed_from_u64(n as u64));
        let q32 = Quadratic::<f32>::random(n, 0.5, 1.0, &mut StdRng::seed_from_u64(n as u64));
        let x0 = DMatrix::from_element(n, 1, 1.0);
        let a = run(&Frozen(&opt64), &q64, &x0, &RunConfig::new(20)).unwrap();
        let b = run(
            &Frozen(&opt32),
            &q32,
            &x0.map(|v| v as f32),
            &RunConfig::new(20),
        )
        .unwrap();
        let diff = (&a.last - b.last.map(|v| v as f64)).norm();
        assert!(
            diff < 1e-3 * (1.0 + a.last.norm()),
            "n = {n}: f32 vs f64 {diff}"
        );
    }
}

#[test]
fn save_load_round_trip_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut opt =
        ConvergentAnyL2O::<f32>::new(AnyConfig::default(), &mut StdRng::seed_from_u64(2)).unwrap();
    let p = {
        let mut p = opt.params().clone();
        for (_, m) in p.iter_mut() {
            *m *= 1.5;
        }
        p
    };
    opt.set_params(p).unwrap();
    opt.save(dir.path()).unwrap();
    let back = ConvergentAnyL2O::<f32>::load(dir.path()).unwrap();
    assert_eq!(back.params(), opt.params());
    assert_eq!(back.config(), opt.config());
    // A configuration that does not fit the tensors, a malformed JSON, a missing directory.
    let json = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    let wider = json.replace("\"hidden\": 16", "\"hidden\": 17");
    std::fs::write(dir.path().join("config.json"), wider).unwrap();
    let err = ConvergentAnyL2O::<f32>::load(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("optimizer.safetensors"), "{err}");
    std::fs::write(dir.path().join("config.json"), "{\"hidden\": ").unwrap();
    let err = ConvergentAnyL2O::<f32>::load(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("config.json"), "{err}");
    assert!(ConvergentAnyL2O::<f32>::load(&dir.path().join("none")).is_err());
    // NaN meta-parameters are refused with the tensor's name.
    let mut bad = opt.params().clone();
    bad.get_mut("scale.c")[0] = f32::NAN;
    let err = opt.set_params(bad).unwrap_err().to_string();
    assert!(err.contains("scale.c"), "{err}");
}

#[test]
fn invalid_settings_are_refused() {
    let mut rng = StdRng::seed_from_u64(0);
    let bad = |c: AnyConfig| ConvergentAnyL2O::<f64>::new(c, &mut StdRng::seed_from_u64(0));
    let base = small_config(theorem2());
    let err = bad(AnyConfig {
        bias_decay: 1.0,
        ..base.clone()
    })
    .unwrap_err();
    assert!(err.to_string().contains("bias_decay"), "{err}");
    assert!(bad(AnyConfig {
        hidden: 0,
        ..base.clone()
    })
    .is_err());
    let slow = AnyStepRule::Theorem2 {
        scale: 1.0,
        offset: 1.0,
        power: 0.4,
        grad_bound: 1.0,
    };
    assert!(
        bad(small_config(slow)).is_err(),
        "power 0.4 is summable-square? no: refuse"
    );
    let neg = AnyStepRule::Theorem2 {
        scale: 1.0,
        offset: 1.0,
        power: 1.0,
        grad_bound: -1.0,
    };
    assert!(bad(small_config(neg)).is_err());
    // Theorem 1 at eta >= 1/beta is refused when the problem reports beta.
    let f = TwoTensors::random(3, &mut rng);
    let opt = ConvergentAnyL2O::<f64>::new(
        small_config(AnyStepRule::Theorem1 { eta: 1.0 / f.beta }),
        &mut rng,
    )
    .unwrap();
    let err = run(&Frozen(&opt), &f, &DMatrix::zeros(3, 1), &RunConfig::new(3)).unwrap_err();
    assert!(err.to_string().contains("eta"), "{err}");
    let _ = Tape::<f64>::new();
    let _ = f64::cast(1.0);
}
