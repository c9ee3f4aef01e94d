//! ConvergentL2O converges for any meta-parameters (Theorems 1 and 2), its realized trajectory
//! satisfies Lemma 1's bound, the |w| = 0 guard holds, and its meta-gradients are exact.

use convergent_l2o::eval::{probes, RunConfig};
use convergent_l2o::models::{Bound, Params};
use convergent_l2o::optim::{
    ConvergentL2O, Frozen, LearnedOptimizer, Lemma1, MagnitudeRen, Oracle, Recording, StepSize,
};
use convergent_l2o::problems::Problem;
use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// f(x) = 1/2 (x - c)ᵀ A (x - c) with A ⪰ 0, β = λmax(A), inf f = 0.
struct Quadratic {
    a: DMatrix<f64>,
    c: DMatrix<f64>,
    beta: f64,
}

impl Quadratic {
    fn random(rng: &mut StdRng, n: usize) -> Self {
        let b = DMatrix::from_fn(n, n, |_, _| rng.gen_range(-1.0..1.0));
        let a = &b * b.transpose() + DMatrix::identity(n, n) * 0.5;
        let beta = a.clone().symmetric_eigenvalues().max();
        let c = DMatrix::from_fn(n, 1, |_, _| rng.gen_range(-1.0..1.0));
        Quadratic { a, c, beta }
    }

    fn value<'t>(&self, x: Var<'t, f64>) -> Var<'t, f64> {
        let tape = x.tape();
        let d = x - tape.constant(self.c.clone());
        d.dot(tape.constant(self.a.clone()).matmul(d)).scale(0.5)
    }
}

impl Problem<f64> for Quadratic {
    fn dim(&self) -> usize {
        self.c.nrows()
    }
    fn loss<'t>(&self, x: Var<'t, f64>, _step: usize) -> Var<'t, f64> {
        self.value(x)
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.beta)
    }
}

/// Multiplies every meta-parameter by `factor` (far from the paper's small initialization).
fn scaled(params: &Params<f64>, factor: f64) -> Params<f64> {
    let mut p = params.clone();
    for (_, m) in p.iter_mut() {
        *m *= factor;
    }
    p
}

/// Runs the optimizer unrecorded for `steps` steps; returns (|∇f|², |s v|²) per step and the
/// final gradient norm.
fn run(
    opt: &ConvergentL2O<f64>,
    f: &Quadratic,
    x0: DMatrix<f64>,
    steps: usize,
) -> (Vec<f64>, Vec<f64>, f64) {
    let cfg = RunConfig::bare(steps)
        .with(probes::grad_norm_sq())
        .with(probes::reported_norm_sq("v"))
        .with(probes::reported("s"));
    let out = convergent_l2o::eval::run(&Frozen(opt), f, &x0, &cfg).unwrap();
    if let Some(t) = out.trace.non_finite_at {
        panic!("non-finite iterate at step {t}");
    }
    let gs = out.trace.values("grad_norm_sq");
    let vs = (out.trace.values("v_norm_sq").iter())
        .zip(out.trace.values("s"))
        .map(|(v, s)| v * s * s)
        .collect();
    let last = f.value_and_grad(&out.last, steps).1.norm();
    (gs, vs, last)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn untrained_convergent_l2o_converges_and_is_certified(n in 1usize..5, seed in 0u64..1_000_000,
            factor in prop::sample::select(vec![1.0, 10.0, 50.0]), eta_frac in 0.2f64..0.95) {
        let mut rng = StdRng::seed_from_u64(seed);
        let f = Quadratic::random(&mut rng, n);
        let eta = eta_frac / f.beta;
        let ren = MagnitudeRen::dense(n, 3, 3, 0.5).unwrap();
        let mut opt = ConvergentL2O::<f64>::new(n, ren, 6, StepSize::Constant { eta }, &mut rng).unwrap();
        let p = scaled(opt.params(), factor);
        opt.set_params(p).unwrap();
        let x0 = DMatrix::from_fn(n, 1, |_, _| rng.gen_range(-2.0..2.0));
        let gap = { let t = Tape::new(); f.value(t.constant(x0.clone())).scalar() };
        let (gs, vs, last) = run(&opt, &f, x0, 1500);
        let cert = Lemma1::new(f.beta, eta).unwrap().check(gap, &gs, &vs);
        prop_assert!(cert.holds(), "Lemma 1 violated: {cert:?}");
        prop_assert!(last < 1e-3 * (1.0 + gs[0].sqrt()), "not converged: |grad| = {last}");
    }
}

#[test]
fn theorem2_form_converges_with_decaying_steps() {
    let mut rng = StdRng::seed_from_u64(3);
    let f = Quadratic::random(&mut rng, 3);
    let schedule = StepSize::Decaying {
        scale: 1.0 / f.beta,
        offset: 1.0,
        power: 0.75,
    };
    for step_size in [schedule, StepSize::OriginalCode] {
        let ren = MagnitudeRen::dense(3, 3, 3, 0.3).unwrap();
        let opt = ConvergentL2O::<f64>::new(3, ren, 6, step_size, &mut rng).unwrap();
        let (gs, _, last) = run(&opt, &f, DMatrix::from_element(3, 1, 1.5), 3000);
        assert!(
            last < 0.05 * gs[0].sqrt(),
            "{step_size:?}: |grad| {} -> {last}",
            gs[0].sqrt()
        );
    }
}

#[test]
fn zero_direction_gives_a_plain_gradient_step() {
    let mut rng = StdRng::seed_from_u64(1);
    let ren = MagnitudeRen::dense(2, 3, 3, 0.3).unwrap();
    let mut opt =
        ConvergentL2O::<f64>::new(2, ren, 4, StepSize::Constant { eta: 0.1 }, &mut rng).unwrap();
    let mut p = opt.params().clone();
    for (name, m) in p.clone().iter() {
        if name.starts_with("omega") {
            *p.get_mut(name) = DMatrix::zeros(m.nrows(), m.ncols());
        }
    }
    opt.set_params(p).unwrap();
    // f(x) = |x|².
    let f = Quadratic {
        a: DMatrix::identity(2, 2) * 2.0,
        c: DMatrix::zeros(2, 1),
        beta: 2.0,
    };
    let tape = Tape::new();
    let bound = opt.params().bind(&tape);
    let vars = bound.vars();
    let run = opt.optimizer(bound);
    let oracle = Oracle::new(&f, &tape, 0, Recording::On { second_order: true });
    let x = tape.param(DMatrix::from_column_slice(2, 1, &[1.0, 2.0]));
    let mut state = run.init(x, &oracle).unwrap();
    let at = oracle.evaluate(run.query(&state));
    let info = run.update(&mut state, &at, &oracle).unwrap();
    let g = at.grad.value();
    assert_eq!(info.tensor("v").unwrap().value(), DMatrix::zeros(2, 1));
    assert_eq!(state.x().value(), x.value() + &g * -0.1);
    let meta = tape.grad(&[state.x().sum()], &vars, false);
    assert!(
        meta.iter().all(|m| m.value().iter().all(|v| v.is_finite())),
        "NaN in meta-gradient"
    );
}

#[test]
fn meta_gradients_match_finite_differences_first_and_second_order() {
    let mut rng = StdRng::seed_from_u64(5);
    let f = Quadratic::random(&mut rng, 2);
    let ren = MagnitudeRen::dense(2, 2, 2, 0.5).unwrap();
    let opt = ConvergentL2O::<f64>::new(
        2,
        ren,
        3,
        StepSize::Constant { eta: 0.3 / f.beta },
        &mut rng,
    )
    .unwrap();
    let opt = {
        let mut o = opt;
        let p = scaled(o.params(), 20.0);
        o.set_params(p).unwrap();
        o
    };
    let names: Vec<String> = opt.params().iter().map(|(n, _)| n.to_string()).collect();
    let values: Vec<DMatrix<f64>> = opt.params().iter().map(|(_, m)| m.clone()).collect();
    let x0 = DMatrix::from_column_slice(2, 1, &[0.7, -0.4]);
    // Meta-loss of a 3-step unroll with grad f recorded inside every step.
    let meta_loss = tape_fn(move |vars| {
        let tape = vars[0].tape();
        let bound = Bound::from_named(names.iter().cloned().zip(vars.iter().copied()).collect());
        let run = opt.optimizer(bound);
        let oracle = Oracle::new(&f, tape, 0, Recording::On { second_order: true });
        let mut state = run.init(tape.param(x0.clone()), &oracle).unwrap();
        let mut loss = tape.scalar(0.0);
        for t in 0..3 {
            let oracle = oracle.at_step(t);
            let at = oracle.evaluate(run.query(&state));
            run.update(&mut state, &at, &oracle).unwrap();
            state.advance();
            loss = loss + f.value(state.x());
        }
        loss
    });
    check_gradients(&meta_loss, &values, 9).unwrap();
}

#[test]
fn same_seed_same_optimizer_and_mismatched_params_are_refused() {
    let build = |seed| {
        let ren = MagnitudeRen::dense(3, 2, 2, 0.3).unwrap();
        ConvergentL2O::<f64>::new(
            3,
            ren,
            4,
            StepSize::OriginalCode,
            &mut StdRng::seed_from_u64(seed),
        )
        .unwrap()
    };
    assert_eq!(build(7).params(), build(7).params());
    assert_ne!(build(7).params(), build(8).params());
    let mut opt = build(7);
    let mut bad = opt.params().clone();
    *bad.get_mut("omega.layers.1.weight") = DMatrix::zeros(1, 1);
    let err = opt.set_params(bad).unwrap_err().to_string();
    assert!(
        err.contains("omega") || err.contains("layers.1.weight"),
        "{err}"
    );
    let ren = MagnitudeRen::dense(4, 2, 2, 0.3).unwrap();
    let err = ConvergentL2O::<f64>::new(
        3,
        ren,
        4,
        StepSize::OriginalCode,
        &mut StdRng::seed_from_u64(0),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("dimension 3"), "{err}");
    let ren = MagnitudeRen::dense(3, 2, 2, 0.3).unwrap();
    let bad_steps = StepSize::Decaying {
        scale: 1.0,
        offset: 1.0,
        power: 0.4,
    };
    assert!(
        ConvergentL2O::<f64>::new(3, ren, 4, bad_steps, &mut StdRng::seed_from_u64(0)).is_err()
    );
}

#[test]
fn paper_instance_has_the_papers_parameter_count() {
    let opt =
        ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0)).unwrap();
    assert_eq!(opt.params().sub_params("REN").num_scalars(), 10_173);
    assert_eq!(opt.params().sub_params("omega").num_scalars(), 78_518);
    let _ = DVector::<f64>::zeros(1);
}

#[test]
fn a_priori_bound_from_the_ren_gain_holds_and_states_its_assumptions() {
    let mut rng = StdRng::seed_from_u64(21);
    for _ in 0..5 {
        let f = Quadratic::random(&mut rng, 3);
        let eta = 0.8 / f.beta;
        let ren = MagnitudeRen::dense(3, 3, 3, 0.6).unwrap();
        let mut opt =
            ConvergentL2O::<f64>::new(3, ren, 5, StepSize::Constant { eta }, &mut rng).unwrap();
        let x0 = DMatrix::from_fn(3, 1, |_, _| rng.gen_range(-2.0..2.0));
        let gap = {
            let t = Tape::new();
            f.value(t.constant(x0.clone())).scalar()
        };
        let err = opt.a_priori_bound(f.beta, gap, &x0).unwrap_err();
        assert!(err.contains("REN.b"), "biases must be refused: {err}");
        let mut p = scaled(opt.params(), 30.0);
        for bias in ["REN.bx", "REN.bv", "REN.bu"] {
            let m = p.get_mut(bias);
            *m = DMatrix::zeros(m.nrows(), m.ncols());
        }
        opt.set_params(p).unwrap();
        let bound = opt.a_priori_bound(f.beta, gap, &x0).unwrap();
        let (gs, vs, _) = run(&opt, &f, x0, 300);
        let (sum_g, sum_v): (f64, f64) = (gs.iter().sum(), vs.iter().sum());
        assert!(
            sum_v <= bound.sum_v_sq * (1.0 + 1e-9),
            "sum |v|^2 {sum_v} > {}",
            bound.sum_v_sq
        );
        assert!(
            sum_g <= bound.sum_grad_sq * (1.0 + 1e-9),
            "sum |g|^2 {sum_g} > {}",
            bound.sum_grad_sq
        );
    }
}

/// Theorem 2's (16)-(17): `x_{t+1} = x_t - η_t (∇f(x_t) + v'_t)` with `|v'_t| = η_t |z_t|`, so
/// the learned displacement is exactly `η_t² |z_t|` (the reported `v` has norm `|z_t|`).
#[test]
fn theorem2_learned_term_is_scaled_by_eta_squared() {
    use convergent_l2o::eval::{Probe, Steps};
    let mut rng = StdRng::seed_from_u64(8);
    let f = Quadratic::random(&mut rng, 3);
    let schedule = StepSize::Decaying {
        scale: 0.5,
        offset: 10.0,
        power: 0.75,
    };
    let ren = MagnitudeRen::dense(3, 3, 3, 1.0).unwrap();
    let opt = ConvergentL2O::<f64>::new(3, ren, 6, schedule, &mut rng).unwrap();
    let ratio = Probe::new("ratio", Steps::Every, |v| {
        let (eta, next, g) = (v.number("eta").unwrap(), v.next.unwrap(), v.grad.unwrap());
        let learned = (next - v.x + g * eta).norm();
        learned / (eta * eta * v.tensor("v").unwrap().norm())
    });
    let cfg = RunConfig::bare(30).with(ratio);
    let out = convergent_l2o::eval::run(&Frozen(&opt), &f, &DMatrix::from_element(3, 1, 1.0), &cfg)
        .unwrap();
    for (t, r) in out.trace.series("ratio").unwrap().points.iter() {
        assert!((r - 1.0).abs() < 1e-9, "step {t}: ratio {r}");
    }
}
