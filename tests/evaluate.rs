//! Evaluation: unrecorded runs of hand-crafted and learned optimizers (state carried across
//! tape truncations), accuracy, the learning-rate grid search, divergence handling, CSV and
//! table output, determinism. Tiny settings: a few steps on the paper's classifier.

use convergent_l2o::eval::{
    accuracy_csv, accuracy_table, curves_csv, grid_search, mean_std, probes, run, EvalError,
    Evaluated, RunConfig, Trace,
};
use convergent_l2o::models::Activation;
use convergent_l2o::optim::{
    Adam, ConvergentL2O, Frozen, HeavyBall, LearnedOptimizer, Oracle, Recording, Sgd, StepSize,
    UnconstrainedL2O,
};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{Classifier, ClassifierMetrics, InitialPoint, Problem, Quadratic};
use convergent_l2o::tape::Tape;
use nalgebra::DMatrix;
use rand::{rngs::StdRng, SeedableRng};
use std::path::Path;
use std::sync::OnceLock;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");

fn mnist() -> &'static Mnist {
    static DATA_SET: OnceLock<Mnist> = OnceLock::new();
    DATA_SET.get_or_init(|| Mnist::load(Path::new(DATA)).expect("mnist-10k in ../shared"))
}

fn x0(seed: u64) -> DMatrix<f32> {
    InitialPoint::PAPER_TEST.sample(7850, &mut StdRng::seed_from_u64(seed))
}

fn adam(lr: f64) -> Adam {
    Adam::new(lr).unwrap()
}

#[test]
fn metrics_agree_with_the_classifier_loss_and_count_argmax_hits() {
    let test = mnist().split(Split::Test);
    let metrics = ClassifierMetrics::<f32>::new(test, Activation::Tanh);
    assert_eq!(metrics.len(), test.len());
    // Zero parameters: every output is 0, argmax takes the first class, the loss is ln 10.
    let zero = DMatrix::zeros(7850, 1);
    let zeros_share = test.labels().iter().filter(|&&l| l == 0).count() as f64 / test.len() as f64;
    assert_eq!(metrics.accuracy(&zero), zeros_share);
    assert!((metrics.loss(&zero) - 10f64.ln()).abs() < 1e-6);
    // Random parameters: the full-split loss is the classifier's loss on one batch of all samples.
    let x = x0(3);
    let acc = metrics.accuracy(&x);
    assert!((0.0..=1.0).contains(&acc));
    let task = Classifier::<f32>::new(test, Activation::Tanh, test.len(), 0).unwrap();
    let tape = Tape::new();
    let on_tape = task.loss(tape.constant(x.clone()), 0).scalar() as f64;
    assert!(
        (metrics.loss(&x) - on_tape).abs() < 1e-4 * on_tape,
        "{} vs {on_tape}",
        metrics.loss(&x)
    );
}

#[test]
fn adam_lowers_the_training_loss_and_records_every_step() {
    let data = mnist();
    let task =
        Classifier::<f32>::new(data.split(Split::EvalTrain), Activation::Tanh, 128, 0).unwrap();
    let test = ClassifierMetrics::<f32>::new(data.split(Split::Test), Activation::Tanh);
    let train = ClassifierMetrics::<f32>::new(data.split(Split::EvalTrain), Activation::Tanh);
    let cfg = RunConfig::new(30).with(probes::accuracy(&test, vec![0, 29, 30], false));
    let start = x0(1);
    let out = run(&adam(5e-3), &task, &start, &cfg).unwrap();
    let t = &out.trace;
    assert_eq!(t.non_finite_at, None);
    let (loss, param_norm, update_norm) = (
        t.values("loss"),
        t.values("param_norm"),
        t.values("update_norm"),
    );
    assert_eq!(
        (loss.len(), param_norm.len(), update_norm.len()),
        (30, 30, 30)
    );
    let accuracy = &t.series("accuracy").unwrap().points;
    assert_eq!(
        accuracy.iter().map(|a| a.0).collect::<Vec<_>>(),
        vec![0, 29, 30]
    );
    assert!(accuracy.iter().all(|a| (0.0..=1.0).contains(&a.1)));
    assert!(t.at("accuracy", 30).unwrap() > t.at("accuracy", 0).unwrap() + 0.3);
    let first: f64 = loss[..3].iter().sum();
    let last: f64 = loss[27..].iter().sum();
    assert!(last < 0.7 * first, "minibatch losses {first} -> {last}");
    assert!(train.loss(&out.last) < 0.7 * train.loss(&start));
    assert!((param_norm[0] - start.norm() as f64).abs() < 1e-3);
    // Adam's first bias-corrected step moves every coordinate by about lr.
    let expected = 5e-3 * (7850f64).sqrt();
    assert!((update_norm[0] - expected).abs() < 0.05 * expected);
}

/// The same run kept whole on one tape (no truncation): what the evaluation must reproduce.
fn losses_on_one_tape(
    opt: &dyn LearnedOptimizer<f32>,
    task: &dyn Problem<f32>,
    x0: &DMatrix<f32>,
    steps: usize,
) -> Vec<f64> {
    let tape = Tape::new();
    let run = opt.optimizer(opt.params().bind_constants(&tape));
    let oracle = |t| Oracle::new(task, &tape, t, Recording::Off);
    let mut state = run.init(tape.constant(x0.clone()), &oracle(0)).unwrap();
    let mut losses = Vec::new();
    for t in 0..steps {
        let at = oracle(t).evaluate(state.x());
        losses.push(at.loss.scalar() as f64);
        run.update(&mut state, &at, &oracle(t)).unwrap();
        state.advance();
    }
    losses
}

#[test]
fn learned_optimizers_carry_their_state_across_truncations() {
    let data = mnist();
    let task =
        Classifier::<f32>::new(data.split(Split::MetaTrain), Activation::Tanh, 128, 0).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let conv = ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut rng).unwrap();
    let lstm = UnconstrainedL2O::<f32>::paper(&mut rng).unwrap();
    let cfg = RunConfig::new(6);
    let start = x0(2);
    let learned: [&dyn LearnedOptimizer<f32>; 2] = [&conv, &lstm];
    for opt in learned {
        let out = run(&Frozen(opt), &task, &start, &cfg).unwrap();
        let whole = losses_on_one_tape(opt, &task, &start, 6);
        assert_eq!(out.trace.values("loss"), whole, "{}", opt.name());
        assert!(out
            .trace
            .values("update_norm")
            .iter()
            .all(|u| *u > 0.0 && u.is_finite()));
    }
}

#[test]
fn same_seed_same_numbers() {
    let data = mnist();
    let task =
        Classifier::<f32>::new(data.split(Split::EvalTrain), Activation::Relu, 128, 3).unwrap();
    let test = ClassifierMetrics::<f32>::new(data.split(Split::Test), Activation::Relu);
    let cfg = RunConfig::new(5).with(probes::accuracy(&test, vec![5], false));
    let make = || {
        ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(11)).unwrap()
    };
    let (a, b) = (make(), make());
    let trace = |alg: &dyn convergent_l2o::optim::Algorithm<f32>| {
        run(alg, &task, &x0(5), &cfg).unwrap().trace
    };
    assert_eq!(trace(&Frozen(&a)), trace(&Frozen(&b)));
    assert_eq!(trace(&adam(1e-2)), trace(&adam(1e-2)));
}

fn quadratic() -> (Quadratic<f64>, Vec<DMatrix<f64>>) {
    let mut rng = StdRng::seed_from_u64(0);
    let q = Quadratic::random(5, 0.5, 2.0, &mut rng);
    let x0s = (0..2)
        .map(|_| InitialPoint::Normal { std: 1.0 }.sample(5, &mut rng))
        .collect();
    (q, x0s)
}

#[test]
fn divergence_ends_a_run_without_panicking() {
    let (q, x0s) = quadratic();
    let gd = HeavyBall::gd(1e3).unwrap();
    let out = run(&gd, &q, &x0s[0], &RunConfig::new(1000)).unwrap();
    let at = out.trace.non_finite_at.expect("lr 1e3 >> 2/beta diverges");
    assert!(at > 0 && at < 1000);
    assert_eq!(out.trace.values("loss").len(), at);
    assert!(out.trace.values("loss").iter().all(|f| f.is_finite()));
    // A probe past the run, or an x0 of the wrong size, is a settings error.
    let first = |v: &convergent_l2o::eval::StepView<'_, f64>| v.x[0];
    let bad = RunConfig::new(3).with(convergent_l2o::eval::Probe::new(
        "x0",
        convergent_l2o::eval::Steps::At(vec![4]),
        first,
    ));
    assert!(matches!(
        run(&gd, &q, &x0s[0], &bad),
        Err(EvalError::Config(_))
    ));
    assert!(matches!(
        run(&gd, &q, &DMatrix::zeros(3, 1), &RunConfig::new(3)),
        Err(EvalError::Config(_))
    ));
    // An inadmissible learning rate is refused when the optimizer is made, and by a run.
    assert!(HeavyBall::gd(-1.0).is_err());
    let bad_lr = HeavyBall {
        lr: -1.0,
        beta: 0.0,
    };
    assert!(matches!(
        run(&bad_lr, &q, &x0s[0], &RunConfig::new(3)),
        Err(EvalError::Optim(_))
    ));
}

#[test]
fn grid_search_picks_the_best_finite_rate() {
    let (q, x0s) = quadratic();
    let f = |x: &DMatrix<f64>| {
        let tape = Tape::new();
        q.loss(tape.constant(x.clone()), 0).scalar()
    };
    let gd = HeavyBall::gd(0.1).unwrap();
    // beta <= 2: 0.4 converges faster than 0.01; 1e10 overflows within 40 steps.
    let gs = grid_search(&gd, &[0.01, 0.4, 1e10], &q, &x0s, 40, &f).unwrap();
    assert_eq!(gs.lr, 0.4);
    assert!(gs.score.is_finite() && gs.score < gs.scores[0].1);
    assert_eq!(gs.scores[2].1, f64::INFINITY);
    assert!(matches!(
        grid_search(&gd, &[1e10, 1e12], &q, &x0s, 40, &f),
        Err(EvalError::NoFiniteScore { .. })
    ));

    // On the classifier, with the scoring the reproduction uses.
    let data = mnist();
    let eval_train = data.split(Split::EvalTrain);
    let task = Classifier::<f32>::new(eval_train, Activation::Sigmoid, 128, 0).unwrap();
    let train = ClassifierMetrics::<f32>::new(eval_train, Activation::Sigmoid);
    let sgd = Sgd::new(0.1).unwrap();
    let gs = grid_search(&sgd, &[1e-3, 1.0], &task, &[x0(4)], 10, &|x| train.loss(x)).unwrap();
    assert_eq!(
        gs.lr, 1.0,
        "sigmoid's small gradients want a large SGD rate: {gs:?}"
    );
    assert!(gs.score.is_finite());
}

fn trace(loss: &[f64], acc: &[(usize, f64)], diverged: Option<usize>) -> Trace {
    let mut t = Trace {
        non_finite_at: diverged,
        ..Trace::default()
    };
    for (i, &l) in loss.iter().enumerate() {
        t.push("loss", i, l);
        t.push("param_norm", i, 1.0);
        t.push("update_norm", i, 0.1);
    }
    for &(i, a) in acc {
        t.push("accuracy", i, a);
    }
    t
}

#[test]
fn csv_and_table_output_parses() {
    let results = vec![
        Evaluated {
            optimizer: "Adam".into(),
            scenario: "tanh".into(),
            lr: Some(5e-3),
            traces: vec![
                trace(&[2.0, 1.0, 0.5], &[(0, 0.1), (2, 0.8)], None),
                trace(&[2.0, 1.2, 0.7], &[(0, 0.1), (2, 0.9)], None),
            ],
        },
        Evaluated {
            optimizer: "SGD".into(),
            scenario: "relu".into(),
            lr: Some(1.0),
            traces: vec![
                trace(&[2.0, 1.0, 0.9], &[(0, 0.2), (2, 0.6)], None),
                trace(&[2.0], &[(0, 0.2)], Some(1)),
            ],
        },
    ];
    let csv = accuracy_csv(&results);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("optimizer,activation,step,mean,std"));
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r.len() == 5));
    let adam_at_2 = rows
        .iter()
        .find(|r| r[0] == "Adam" && r[1] == "tanh" && r[2] == "2")
        .unwrap();
    let (m, s): (f64, f64) = (adam_at_2[3].parse().unwrap(), adam_at_2[4].parse().unwrap());
    assert!((m - 0.85).abs() < 1e-9 && (s - 0.05).abs() < 1e-9);
    let sgd_at_2 = rows.iter().find(|r| r[0] == "SGD" && r[2] == "2").unwrap();
    assert!(
        sgd_at_2[3].parse::<f64>().unwrap().is_nan(),
        "a diverged run makes the mean NaN"
    );

    let curves = curves_csv(&results);
    let mut lines = curves.lines();
    assert_eq!(
        lines.next(),
        Some("optimizer,activation,step,loss_mean,loss_std")
    );
    let rows: Vec<(String, usize, f64, f64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].into(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[1], ("Adam".into(), 1, 1.1, 0.1));

    let table = accuracy_table(&results, 2);
    assert!(table.starts_with("| Step t = 2 | tanh | relu |"), "{table}");
    assert!(table.contains("| Adam | 85.0 ± 5.0% |  |"), "{table}");
    assert!(table.contains("diverged (1/2 runs)"), "{table}");
    assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 1.0));
}
