//! The unconstrained LSTM optimizers do not converge in general (nothing makes their updates
//! vanish), while the same LSTMs inside the convergent wrapper (direction from the LSTM,
//! magnitude from the REN's ℓ2 signal) converge, certified by Lemma 1; meta-gradients through
//! the wrapped LSTM are exact.

use convergent_l2o::eval::{probes, run, RunConfig};
use convergent_l2o::models::{Bound, CoordinatewiseConfig};
use convergent_l2o::optim::{
    Algorithm, ConvergentL2O, CoordinatewiseDirection, Direction, FeatureOrder, Frozen,
    LearnedOptimizer, Lemma1, MagnitudeRen, Oracle, PaperLstmDirection, Recording, StepSize,
    UnconstrainedL2O,
};
use convergent_l2o::problems::{Problem, Quadratic};
use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn};
use nalgebra::DMatrix;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::fmt::Debug;

const DIM: usize = 4;
const STEPS: usize = 1500;

/// f(x) = 1/2 (x - c)ᵀ A (x - c), λ(A) in [0.5, 2], and the bound β = 2 on its smoothness.
fn problem(seed: u64) -> (Quadratic<f64>, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let q = DMatrix::from_fn(DIM, DIM, |_, _| rng.gen_range(-1.0..1.0))
        .qr()
        .q();
    let eig = DMatrix::from_diagonal(&nalgebra::DVector::from_fn(DIM, |_, _| {
        rng.gen_range(0.5..2.0)
    }));
    let a = &q * eig * q.transpose();
    let c = DMatrix::from_fn(DIM, 1, |_, _| rng.gen_range(-1.0..1.0));
    (Quadratic::new(a, c).unwrap(), 2.0)
}

/// Final |∇f| after STEPS unrecorded steps of `alg` from x0 = 1 (infinite if the iterates
/// left the finite numbers or the ball of radius 1e6), and the per-step |∇f|² and |v|² (the
/// reported `v`; empty for an optimizer that reports none).
fn final_gradient(alg: &impl Algorithm<f64>, q: &Quadratic<f64>) -> (f64, Vec<f64>, Vec<f64>) {
    let cfg = RunConfig::new(STEPS)
        .with(probes::grad_norm_sq())
        .with(probes::reported_norm_sq("v"));
    let out = run(alg, q, &DMatrix::from_element(DIM, 1, 1.0), &cfg).unwrap();
    let gs = out.trace.values("grad_norm_sq");
    let vs: Vec<f64> = out
        .trace
        .values("v_norm_sq")
        .into_iter()
        .filter(|v| !v.is_nan())
        .collect();
    let escaped = out
        .trace
        .values("param_norm")
        .into_iter()
        .chain([out.last.norm()])
        .any(|n| n > 1e6);
    if out.trace.non_finite_at.is_some() || escaped {
        return (f64::INFINITY, gs, vs);
    }
    let (_, g) = q.value_and_grad(&out.last, STEPS);
    (g.norm(), gs, vs)
}

fn unconstrained_fails_wrapped_converges<N>(net: N)
where
    N: Direction<f64> + Clone + Debug + 'static,
{
    let mut unconstrained_failures = 0;
    for seed in 0..4u64 {
        let (q, beta) = problem(seed);
        let mut rng = StdRng::seed_from_u64(100 + seed);
        // Unconstrained: x + w, with w the LSTM's output.
        let lstm = UnconstrainedL2O::<f64>::new(DIM, net.clone(), &mut rng);
        let (free, _, _) = final_gradient(&Frozen(&lstm), &q);
        if free.is_nan() || free >= 1e-4 {
            unconstrained_failures += 1;
        }
        // Wrapped: the same kind of LSTM as direction, the REN as magnitude.
        let eta = 0.9 / beta;
        let ren = MagnitudeRen::dense(DIM, 3, 3, 0.5).unwrap();
        let wrapped = ConvergentL2O::<f64>::with_direction(
            DIM,
            ren,
            net.clone(),
            StepSize::Constant { eta },
            &mut rng,
        )
        .unwrap();
        let (conv, gs, vs) = final_gradient(&Frozen(&wrapped), &q);
        assert_eq!(vs.len(), gs.len(), "{net:?}: v reported at every step");
        let gap = q.objective(&DMatrix::from_element(DIM, 1, 1.0), 0);
        let cert = Lemma1::new(beta, eta).unwrap().check(gap, &gs, &vs);
        assert!(
            cert.holds(),
            "{net:?} seed {seed}: Lemma 1 violated {cert:?}"
        );
        assert!(
            conv < 1e-6,
            "{net:?} seed {seed}: wrapped LSTM did not converge, |grad| = {conv}"
        );
    }
    assert!(
        unconstrained_failures >= 3,
        "{net:?}: the unconstrained LSTM converged on {} of 4 problems",
        4 - unconstrained_failures
    );
}

#[test]
fn unconstrained_lstms_do_not_converge_in_general_wrapped_ones_do() {
    unconstrained_fails_wrapped_converges(
        CoordinatewiseDirection::new(CoordinatewiseConfig::andrychowicz()).unwrap(),
    );
    unconstrained_fails_wrapped_converges(
        PaperLstmDirection::new(DIM, 2, FeatureOrder::GradPointLoss).unwrap(),
    );
}

#[test]
fn wrapped_lstm_meta_gradients_match_finite_differences() {
    let (q, beta) = problem(9);
    let net = CoordinatewiseDirection::new(CoordinatewiseConfig::andrychowicz()).unwrap();
    let ren = MagnitudeRen::dense(DIM, 2, 2, 0.5).unwrap();
    let opt = ConvergentL2O::<f64>::with_direction(
        DIM,
        ren,
        net,
        StepSize::Constant { eta: 0.5 / beta },
        &mut StdRng::seed_from_u64(2),
    )
    .unwrap();
    let names: Vec<String> = opt.params().iter().map(|(n, _)| n.to_string()).collect();
    let values: Vec<DMatrix<f64>> = opt.params().iter().map(|(_, m)| m.clone() * 5.0).collect();
    let meta_loss = tape_fn(move |vars| {
        let tape = vars[0].tape();
        let bound = Bound::from_named(names.iter().cloned().zip(vars.iter().copied()).collect());
        let run = opt.optimizer(bound);
        let oracle = Oracle::new(&q, tape, 0, Recording::On { second_order: true });
        let x0 = tape.param(DMatrix::from_element(DIM, 1, 0.8));
        let mut state = run.init(x0, &oracle).unwrap();
        let mut loss = tape.scalar(0.0);
        for t in 0..2 {
            let oracle = oracle.at_step(t);
            let at = oracle.evaluate(run.query(&state));
            run.update(&mut state, &at, &oracle).unwrap();
            state.advance();
            loss = loss + q.loss(state.x(), t + 1);
        }
        loss
    });
    check_gradients(&meta_loss, &values, 4).unwrap();
}

#[test]
fn paper_lstm_baseline_has_the_papers_parameter_count() {
    let lstm = UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(0)).unwrap();
    assert_eq!(lstm.params().num_scalars(), 149_246);
}

/// The LSTM optimizers are meta-trained by the one meta-trainer: the coordinatewise LSTM,
/// alone and inside the convergent wrapper, lowers the meta-loss on held-out quadratics.
#[test]
fn the_one_meta_trainer_trains_the_lstm_optimizers() {
    use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
    use convergent_l2o::problems::{FamilyFn, InitialPoint, Sampled};
    let family = FamilyFn::new("quadratics", |_, rng: &mut StdRng| {
        let q = Quadratic::<f64>::random(4, 0.2, 1.0, rng);
        Sampled::new(q, InitialPoint::Normal { std: 1.0 }.sample(4, rng))
    });
    let estimator = FullBptt {
        trajectories: 4,
        horizon: 10,
        second_order: true,
    };
    let config = |seed| MetaTrainConfig {
        lr: 1e-2,
        clip: Some(10.0),
        seed,
    };
    let held_out = |opt: &dyn LearnedOptimizer<f64>| {
        MetaTrainer::new(config(99), estimator, WeightedLoss::PAPER)
            .unwrap()
            .meta_gradient(opt, &family)
            .unwrap()
            .meta_loss
    };
    let net = || CoordinatewiseDirection::new(CoordinatewiseConfig::andrychowicz()).unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let mut lstm = UnconstrainedL2O::<f64>::new(4, net(), &mut rng);
    let ren = MagnitudeRen::dense(4, 3, 3, 1.0).unwrap();
    let step = StepSize::Constant { eta: 0.5 };
    let mut wrapped = ConvergentL2O::with_direction(4, ren, net(), step, &mut rng).unwrap();
    let learned: [&mut dyn LearnedOptimizer<f64>; 2] = [&mut lstm, &mut wrapped];
    for opt in learned {
        let before = held_out(&*opt);
        let mut trainer = MetaTrainer::new(config(1), estimator, WeightedLoss::PAPER).unwrap();
        for _ in 0..40 {
            trainer.step(opt, &family).unwrap();
        }
        let after = held_out(&*opt);
        assert!(after < 0.95 * before, "{}: {before} -> {after}", opt.name());
    }
}
