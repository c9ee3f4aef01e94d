//! Meta-training end to end on small tasks: the meta-loss goes down, meta-gradients on the
//! paper's classifier match finite differences (second-order terms on, and off against the
//! frozen-gradient objective whose exact gradient the first-order approximation is),
//! checkpoints resume exactly and refuse damaged files, and the same seed gives the same numbers.

use convergent_l2o::meta::{
    draw_rng, load_checkpoint, save_checkpoint, unroll_window, FullBptt, MetaTrainConfig,
    MetaTrainer, WeightedLoss, WindowSpec,
};
use convergent_l2o::models::{Activation, Bound, Params};
use convergent_l2o::optim::{
    ConvergentL2O, Evaluation, LearnedOptimizer, MagnitudeRen, Oracle, Recording, StepSize,
};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{
    Classifier, Draw, FamilyFn, InitialPoint, Problem, ProblemError, ProblemFamily, Quadratic,
    Sampled,
};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const DIM: usize = 3;

/// Random quadratics with eigenvalues in [0.2, 1] and x0 ~ U[-1, 1]: beta <= 1.
fn quadratic(_: Draw, rng: &mut StdRng) -> Result<Sampled<f64>, ProblemError> {
    let problem = Quadratic::random(DIM, 0.2, 1.0, rng);
    let x0 = InitialPoint::Uniform { lo: -1.0, hi: 1.0 }.sample(DIM, rng);
    Sampled::new(problem, x0)
}

fn quadratics() -> impl ProblemFamily<f64> {
    FamilyFn::new("quadratics", quadratic)
}

fn small_optimizer(seed: u64) -> ConvergentL2O<f64> {
    let ren = MagnitudeRen::dense(DIM, 3, 3, 1.0).unwrap();
    ConvergentL2O::new(
        DIM,
        ren,
        8,
        StepSize::Constant { eta: 0.2 },
        &mut StdRng::seed_from_u64(seed),
    )
    .unwrap()
}

const ESTIMATOR: FullBptt = FullBptt {
    trajectories: 4,
    horizon: 10,
    second_order: true,
};

fn config(seed: u64) -> MetaTrainConfig {
    MetaTrainConfig {
        lr: 3e-2,
        clip: Some(10.0),
        seed,
    }
}

fn trainer(seed: u64) -> MetaTrainer<f64> {
    MetaTrainer::new(config(seed), ESTIMATOR, WeightedLoss::PAPER).unwrap()
}

/// Mean meta-loss on the fixed problems of meta-step 0 of a trainer with seed 99.
fn held_out_loss(opt: &ConvergentL2O<f64>) -> f64 {
    trainer(99)
        .meta_gradient(opt, &quadratics())
        .unwrap()
        .meta_loss
}

/// The paper's meta-loss of a `horizon`-step unroll of `opt` (meta-parameters `bound`) on
/// `problem` from `x0`, recorded on `bound`'s tape.
fn unroll<'t>(
    opt: &ConvergentL2O<f64>,
    bound: &Bound<'t, f64>,
    problem: &dyn Problem<f64>,
    x0: &DMatrix<f64>,
    horizon: usize,
    second_order: bool,
) -> Var<'t, f64> {
    let tape = bound.vars()[0].tape();
    let run = opt.optimizer(bound.clone());
    let oracle = Oracle::new(problem, tape, 0, Recording::On { second_order });
    let mut state = run.init(tape.param(x0.clone()), &oracle).unwrap();
    let spec = WindowSpec {
        problem,
        meta_loss: &WeightedLoss::PAPER,
        horizon,
        length: horizon,
        second_order,
    };
    unroll_window(&*run, &mut state, &spec, &mut None)
        .unwrap()
        .loss
}

#[test]
fn meta_training_lowers_the_meta_loss() {
    let mut opt = small_optimizer(1);
    let before = held_out_loss(&opt);
    let mut trainer = trainer(1);
    for _ in 0..60 {
        trainer.step(&mut opt, &quadratics()).unwrap();
    }
    let after = held_out_loss(&opt);
    assert!(
        after < 0.9 * before,
        "meta-loss on held-out tasks: {before} -> {after}"
    );
}

#[test]
fn same_seed_same_numbers() {
    let run = || {
        let mut opt = small_optimizer(4);
        let mut trainer = trainer(4);
        let reports: Vec<f64> = (0..5)
            .map(|_| trainer.step(&mut opt, &quadratics()).unwrap().meta_loss)
            .collect();
        (reports, opt.params().clone())
    };
    assert_eq!(run(), run());
}

/// The meta-gradient of a meta-step, computed in a rayon pool of `threads` threads.
fn meta_gradient_on(threads: usize, opt: &ConvergentL2O<f64>) -> (f64, f64, Params<f64>) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut trainer = trainer(7);
    let e = pool.install(|| trainer.meta_gradient(opt, &quadratics()).unwrap());
    (e.meta_loss, e.final_loss, e.gradient)
}

#[test]
fn parallel_trajectories_give_the_same_bits_on_any_number_of_threads_and_the_joint_gradient() {
    let opt = small_optimizer(3);
    let one = meta_gradient_on(1, &opt);
    assert_eq!(one, meta_gradient_on(2, &opt));
    assert_eq!(one, meta_gradient_on(3, &opt));

    // The same meta-step recorded on one tape: the mean meta-loss of the trajectories, each
    // drawn with its own generator, differentiated at once.
    let tape = Tape::new();
    let bound = opt.params().bind(&tape);
    let n = ESTIMATOR.trajectories;
    let mut total = tape.scalar(0.0);
    for i in 0..n {
        let draw = Draw {
            meta_step: 0,
            index: i,
        };
        let s = quadratic(draw, &mut draw_rng(7, 0, i)).unwrap();
        total = total + unroll(&opt, &bound, &*s.problem, &s.x0, 10, true);
    }
    let mean = total.scale(1.0 / n as f64);
    let joint = tape.grad(&[mean], &bound.vars(), false);
    assert!((mean.scalar() - one.0).abs() <= 1e-12 * one.0.abs());
    for (g, (_, p)) in joint.iter().zip(one.2.iter()) {
        let scale = p.norm().max(1e-12);
        assert!(
            (g.value() - p).norm() <= 1e-10 * scale,
            "{} vs {}",
            g.value(),
            p
        );
    }
}

#[test]
fn checkpoint_resume_repeats_the_uninterrupted_run_and_damaged_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.ckpt");
    let mut straight = small_optimizer(5);
    let mut first = trainer(5);
    for _ in 0..4 {
        first.step(&mut straight, &quadratics()).unwrap();
    }
    save_checkpoint(&path, &first, &straight).unwrap();
    let expected = first.step(&mut straight, &quadratics()).unwrap();

    let mut resumed = small_optimizer(77); // other parameters: the checkpoint must replace them
    let mut second = trainer(5);
    load_checkpoint(&path, &mut second, &mut resumed).unwrap();
    assert_eq!(second.meta_step(), 4);
    assert_eq!(second.history(), &first.history()[..4]);
    let got = second.step(&mut resumed, &quadratics()).unwrap();
    assert_eq!(got, expected);
    assert_eq!(resumed.params(), straight.params());

    let load = |seed: u64, opt: &mut ConvergentL2O<f64>| {
        load_checkpoint(&path, &mut trainer(seed), opt)
            .err()
            .unwrap()
            .to_string()
    };
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load(5, &mut small_optimizer(5));
    assert!(
        err.contains("meta.ckpt") && err.contains("corrupt or truncated"),
        "{err}"
    );
    let mut altered = bytes.clone();
    altered[3] ^= 0xff; // inside the tag's length
    std::fs::write(&path, &altered).unwrap();
    assert!(load_checkpoint(&path, &mut trainer(5), &mut small_optimizer(5)).is_err());
    std::fs::write(&path, &bytes).unwrap();
    let err = load(6, &mut small_optimizer(5));
    assert!(
        err.contains("seed is 5 in the checkpoint, 6 in the settings"),
        "{err}"
    );
    let ren = MagnitudeRen::dense(DIM, 2, 2, 1.0).unwrap();
    let mut other = ConvergentL2O::<f64>::new(
        DIM,
        ren,
        8,
        StepSize::Constant { eta: 0.2 },
        &mut StdRng::seed_from_u64(0),
    )
    .unwrap();
    let err = load(5, &mut other);
    assert!(
        err.contains("REN."),
        "a mismatched tensor must be named: {err}"
    );
    let mut trainer32 = MetaTrainer::<f32>::new(config(5), ESTIMATOR, WeightedLoss::PAPER).unwrap();
    let err = load_checkpoint(
        &path,
        &mut trainer32,
        &mut ConvergentL2O::<f32>::new(
            DIM,
            MagnitudeRen::dense(DIM, 3, 3, 1.0).unwrap(),
            8,
            StepSize::Constant { eta: 0.2 },
            &mut StdRng::seed_from_u64(0),
        )
        .unwrap(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("f64") && err.contains("f32"), "{err}");
}

#[test]
fn nan_during_meta_training_says_where() {
    let mut opt = small_optimizer(2);
    let mut p = opt.params().clone();
    *p.get_mut("omega.layers.0.bias") = DMatrix::from_element(8, 1, f64::NAN);
    opt.set_params(p).unwrap();
    let err = trainer(2)
        .step(&mut opt, &quadratics())
        .unwrap_err()
        .to_string();
    // w_0 is NaN, so x_1 is: f(x_1) at inner step 1 is the first non-finite value.
    assert!(
        err.contains("meta-step 0") && err.contains("inner step 1 of trajectory 0"),
        "{err}"
    );
}

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");

/// A few meta-parameters' directions: the meta-gradient against central differences of the
/// meta-loss of a 3-step unroll of the paper's ConvergentL2O on real MNIST minibatches.
#[test]
fn classifier_meta_gradient_matches_finite_differences_with_and_without_second_order() {
    if !Path::new(DATA).is_dir() {
        eprintln!("skipped: {DATA} not found");
        return;
    }
    let mnist = Mnist::load(Path::new(DATA)).unwrap();
    let task =
        Classifier::<f64>::new(mnist.split(Split::MetaTrain), Activation::Tanh, 128, 0).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let mut opt = ConvergentL2O::<f64>::paper(StepSize::OriginalCode, &mut rng).unwrap();
    // Larger REN parameters than the paper's init so that v matters in 3 steps.
    let mut p = opt.params().clone();
    for (name, m) in p.clone().iter() {
        if name.starts_with("REN.") {
            *p.get_mut(name) = m * 30.0;
        }
    }
    opt.set_params(p).unwrap();
    let x0 = InitialPoint::META_TRAIN.sample::<f64>(7850, &mut rng);
    // Random direction over all meta-parameters, and two single coordinates.
    let direction: Vec<DMatrix<f64>> = opt
        .params()
        .iter()
        .map(|(_, m)| DMatrix::from_fn(m.nrows(), m.ncols(), |_, _| rng.gen_range(-1.0..1.0)))
        .collect();
    let single = |name: &str, i: usize| -> Vec<DMatrix<f64>> {
        opt.params()
            .iter()
            .map(|(n, m)| {
                let mut d = DMatrix::zeros(m.nrows(), m.ncols());
                if n == name {
                    d[i] = 1.0;
                }
                d
            })
            .collect()
    };
    let directions = [
        direction,
        single("REN.X", 4),
        single("omega.layer1.weight", 100),
    ];
    let shifted = |params: &Params<f64>, d: &[DMatrix<f64>], h: f64| {
        let mut p = params.clone();
        for ((_, v), dv) in p.iter_mut().zip(d) {
            *v += dv * h;
        }
        p
    };
    let meta_loss_grad = |first_order: bool| {
        let tape = Tape::new();
        let bound = opt.params().bind(&tape);
        let loss = unroll(&opt, &bound, &task, &x0, 3, !first_order);
        let grads: Vec<DMatrix<f64>> = tape
            .grad(&[loss], &bound.vars(), false)
            .iter()
            .map(|g| g.value())
            .collect();
        grads
    };
    // Second order on: the true derivative of the meta-loss.
    let grads = meta_loss_grad(false);
    let value_at = |params: Params<f64>| {
        let mut o = opt.clone();
        o.set_params(params).unwrap();
        let tape = Tape::new();
        let bound = o.params().bind(&tape);
        unroll(&o, &bound, &task, &x0, 3, true).scalar()
    };
    let h = 1e-5;
    for d in &directions {
        let analytic: f64 = grads.iter().zip(d).map(|(g, d)| g.dot(d)).sum();
        let numeric = (value_at(shifted(opt.params(), d, h))
            - value_at(shifted(opt.params(), d, -h)))
            / (2.0 * h);
        assert!(
            (analytic - numeric).abs() <= 1e-6 + 1e-5 * numeric.abs(),
            "second order: {analytic} vs {numeric}"
        );
    }
    // Second order off: exactly the derivative of the objective in which every ∇f(x_t) is
    // frozen at its value on the unperturbed trajectory.
    let frozen: Vec<DMatrix<f64>> = {
        let tape = Tape::new();
        let run = opt.optimizer(opt.params().bind_constants(&tape));
        let oracle = |t| Oracle::new(&task, &tape, t, Recording::Off);
        let mut state = run.init(tape.param(x0.clone()), &oracle(0)).unwrap();
        (0..3)
            .map(|t| {
                let at = oracle(t).evaluate(state.x());
                let gv = at.grad.value();
                run.update(&mut state, &at, &oracle(t)).unwrap();
                state.advance();
                gv
            })
            .collect()
    };
    let frozen_value = |params: Params<f64>| {
        let mut o = opt.clone();
        o.set_params(params).unwrap();
        let tape = Tape::new();
        let run = o.optimizer(o.params().bind(&tape));
        let recording = Recording::On {
            second_order: false,
        };
        let oracle = |t| Oracle::new(&task, &tape, t, recording);
        let mut state = run.init(tape.param(x0.clone()), &oracle(0)).unwrap();
        let mut loss = tape.scalar(0.0);
        for (t, gv) in frozen.iter().enumerate() {
            let x = state.x();
            let f = task.loss(x, t);
            loss = loss + f.scale(WeightedLoss::PAPER.gamma(t, 3));
            let at = Evaluation {
                point: x,
                loss: f,
                grad: tape.constant(gv.clone()),
            };
            run.update(&mut state, &at, &oracle(t)).unwrap();
            state.advance();
        }
        loss.scalar()
    };
    let first_order = meta_loss_grad(true);
    for d in &directions {
        let analytic: f64 = first_order.iter().zip(d).map(|(g, d)| g.dot(d)).sum();
        let numeric = (frozen_value(shifted(opt.params(), d, h))
            - frozen_value(shifted(opt.params(), d, -h)))
            / (2.0 * h);
        assert!(
            (analytic - numeric).abs() <= 1e-6 + 1e-5 * numeric.abs(),
            "first order: {analytic} vs {numeric}"
        );
    }
    let differs: f64 = grads
        .iter()
        .zip(&first_order)
        .map(|(a, b)| (a - b).norm())
        .sum();
    assert!(
        differs > 1e-8,
        "second-order terms must change the meta-gradient"
    );
}
