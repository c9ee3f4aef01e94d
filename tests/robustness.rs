//! Bad input gets a clear error, never a panic and never a silent NaN: step sizes that break a
//! claimed guarantee, meta learning rates that blow up, invalid settings, degenerate data,
//! gzip bombs, panics inside an operation, files left by killed writers.

use convergent_l2o::eval::{run, EvalError, RunConfig};
use convergent_l2o::meta::{
    FullBptt, MetaError, MetaTrainConfig, MetaTrainer, TruncatedBptt, WeightedLoss,
};
use convergent_l2o::models::{read_safetensors, write_atomically, write_safetensors, Activation};
use convergent_l2o::optim::{
    Adam, ConvergentL2O, Frozen, LearnedOptimizer, MagnitudeRen, OptimError, StepSize,
};
use convergent_l2o::problems::data::{parse_idx, DataError, Mnist, Normalization, Split};
use convergent_l2o::problems::{
    Classifier, ClassifierMetrics, Draw, FamilyFn, InitialPoint, Problem, ProblemError, Quadratic,
    Sampled, SequentialClassifiers,
};
use convergent_l2o::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::{rngs::StdRng, SeedableRng};
use std::io::Write;
use std::path::Path;

fn quadratic<T: Scalar>(_: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError> {
    let q = Quadratic::<T>::random(3, 0.2, 1.0, rng);
    Sampled::new(q, InitialPoint::Normal { std: 1.0 }.sample(3, rng))
}

fn small<T: Scalar>(eta: f64) -> ConvergentL2O<T> {
    let ren = MagnitudeRen::dense(3, 3, 3, 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    ConvergentL2O::new(3, ren, 8, StepSize::Constant { eta }, &mut rng).unwrap()
}

fn estimator() -> FullBptt {
    FullBptt {
        trajectories: 2,
        horizon: 5,
        second_order: true,
    }
}

#[test]
fn theorem1_step_size_at_or_above_one_over_beta_is_refused_when_beta_is_known() {
    // beta = 2: eta = 1.25 gives eta beta = 2.5.
    let q = Quadratic::<f64>::new(DMatrix::identity(3, 3) * 2.0, DMatrix::zeros(3, 1)).unwrap();
    let opt = small::<f64>(1.25);
    let err = run(
        &Frozen(&opt),
        &q,
        &DMatrix::from_element(3, 1, 1.0),
        &RunConfig::new(5),
    )
    .unwrap_err();
    assert!(
        matches!(&err, EvalError::Optim(OptimError::Hyper(_))),
        "{err}"
    );
    assert!(err.to_string().contains("eta = 1.25"), "{err}");
    // And in meta-training, before any inner step runs.
    let family = FamilyFn::new("beta 2", |_, rng: &mut StdRng| {
        let q = Quadratic::<f64>::new(DMatrix::identity(3, 3) * 2.0, DMatrix::zeros(3, 1))?;
        Sampled::new(q, InitialPoint::Normal { std: 1.0 }.sample(3, rng))
    });
    let mut opt = small::<f64>(1.25);
    let config = MetaTrainConfig {
        lr: 1e-2,
        clip: None,
        seed: 0,
    };
    let mut trainer = MetaTrainer::new(config, estimator(), WeightedLoss::PAPER).unwrap();
    let err = trainer.step(&mut opt, &family).unwrap_err().to_string();
    assert!(
        err.contains("meta-step 0") && err.contains("Theorem 1"),
        "{err}"
    );
    // Below 1/beta it runs.
    assert!(run(
        &Frozen(&small::<f64>(0.45)),
        &q,
        &DMatrix::from_element(3, 1, 1.0),
        &RunConfig::new(5)
    )
    .is_ok());
}

#[test]
fn non_finite_meta_parameters_after_an_outer_step_are_an_error_and_change_nothing() {
    let mut opt = small::<f32>(0.2);
    let before = opt.params().clone();
    let config = MetaTrainConfig {
        lr: 1e39,
        clip: None,
        seed: 0,
    };
    let mut trainer = MetaTrainer::new(config, estimator(), WeightedLoss::PAPER).unwrap();
    let family = FamilyFn::new("quadratics", quadratic::<f32>);
    let err = trainer.step(&mut opt, &family).unwrap_err().to_string();
    assert!(
        err.contains("meta-step 0") && err.contains("meta-parameter") && err.contains("1e39"),
        "{err}"
    );
    assert_eq!(opt.params(), &before);
    assert_eq!(trainer.meta_step(), 0);
}

#[test]
fn a_meta_loss_that_grows_by_orders_of_magnitude_is_reported() {
    let mut opt = small::<f64>(0.2);
    let config = MetaTrainConfig {
        lr: 1e2,
        clip: None,
        seed: 3,
    };
    let mut trainer = MetaTrainer::new(config, estimator(), WeightedLoss::PAPER).unwrap();
    let family = FamilyFn::new("quadratics", quadratic::<f64>);
    let mut smallest = f64::INFINITY;
    let mut warned = false;
    for _ in 0..25 {
        let Ok(report) = trainer.step(&mut opt, &family) else {
            return; // an error is not silent either
        };
        if report.meta_loss.abs() > 100.0 * smallest {
            assert!(report.warning.is_some(), "no warning at {report:?}");
        }
        warned |= report.warning.is_some();
        smallest = smallest.min(report.meta_loss.abs());
    }
    assert!(
        warned,
        "a meta learning rate of 100 should blow the meta-loss up"
    );
}

#[test]
fn invalid_settings_are_refused() {
    let config = MetaTrainConfig {
        lr: 1e-2,
        clip: None,
        seed: 0,
    };
    let negative = WeightedLoss {
        decay: -0.5,
        grad_weight: 0.0,
    };
    assert!(MetaTrainer::<f64>::new(config, estimator(), negative)
        .err()
        .unwrap()
        .to_string()
        .contains("decay"));
    let negative = WeightedLoss {
        decay: 0.9,
        grad_weight: -1.0,
    };
    assert!(MetaTrainer::<f64>::new(config, estimator(), negative).is_err());
    let zero_segment = TruncatedBptt::<f64>::new(2, 10, 0);
    assert!(MetaTrainer::new(config, zero_segment, WeightedLoss::PAPER)
        .err()
        .unwrap()
        .to_string()
        .contains("segment"));
    let bad_clip = MetaTrainConfig {
        clip: Some(f64::NAN),
        ..config
    };
    assert!(MetaTrainer::<f64>::new(bad_clip, estimator(), WeightedLoss::PAPER).is_err());
}

/// A problem whose loss panics at inner step 2 (as an operation refusing its input would).
struct Fragile;

impl Problem<f64> for Fragile {
    fn dim(&self) -> usize {
        3
    }
    fn loss<'t>(&self, x: Var<'t, f64>, step: usize) -> Var<'t, f64> {
        assert!(step < 2, "solve: the 3 x 3 matrix is singular");
        x.square().sum()
    }
}

#[test]
fn a_panic_inside_a_trajectory_is_an_error_naming_the_meta_step_and_the_operation() {
    let family = FamilyFn::new("fragile", |_, _: &mut StdRng| {
        Sampled::new(Fragile, DMatrix::from_element(3, 1, 1.0))
    });
    let mut opt = small::<f64>(0.2);
    let before = opt.params().clone();
    let config = MetaTrainConfig {
        lr: 1e-2,
        clip: None,
        seed: 0,
    };
    let mut trainer = MetaTrainer::new(config, estimator(), WeightedLoss::PAPER).unwrap();
    let err = trainer.step(&mut opt, &family).unwrap_err();
    assert!(matches!(err, MetaError::Failed { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("meta-step 0") && err.contains("trajectory 0") && err.contains("singular"),
        "{err}"
    );
    assert_eq!(opt.params(), &before);
    // Evaluation turns it into an error too.
    let err = run(
        &Adam::new(1e-2).unwrap(),
        &Fragile,
        &DMatrix::from_element(3, 1, 1.0),
        &RunConfig::new(5),
    )
    .unwrap_err();
    assert!(
        matches!(&err, EvalError::Failed(m) if m.contains("singular")),
        "{err}"
    );
}

/// Writes raw IDX files of `n` train and `n` test images of `side x side` pixels.
fn write_idx(dir: &Path, n: usize, side: usize) {
    let images = |name: &str| {
        let mut b = vec![0u8, 0, 8, 3];
        for d in [n, side, side] {
            b.extend_from_slice(&(d as u32).to_be_bytes());
        }
        b.extend((0..n * side * side).map(|i| (i * 37 % 256) as u8));
        std::fs::write(dir.join(name), b).unwrap();
    };
    let labels = |name: &str| {
        let mut b = vec![0u8, 0, 8, 1];
        b.extend_from_slice(&(n as u32).to_be_bytes());
        b.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(name), b).unwrap();
    };
    images("train-images-idx3-ubyte");
    labels("train-labels-idx1-ubyte");
    images("t10k-images-idx3-ubyte");
    labels("t10k-labels-idx1-ubyte");
}

#[test]
fn small_datasets_and_other_image_sizes_give_errors_or_work_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    write_idx(dir.path(), 100, 14);
    let data = Mnist::load(dir.path()).unwrap();
    // Fewer samples than one minibatch: an error naming both sizes.
    let err = SequentialClassifiers::<f32>::new(
        data.split(Split::MetaTrain),
        Activation::Tanh,
        128,
        2,
        10,
        InitialPoint::META_TRAIN,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("128") && err.contains("80"), "{err}");
    // 14 x 14 images: a 1970-parameter classifier that the baselines train, and that the
    // paper's 7850-dimensional optimizer refuses with a message.
    let problem =
        Classifier::<f32>::new(data.split(Split::MetaTrain), Activation::Tanh, 16, 0).unwrap();
    assert_eq!(problem.dim(), 14 * 14 * 10 + 10);
    let x0 = DMatrix::zeros(problem.dim(), 1);
    let out = run(&Adam::new(1e-2).unwrap(), &problem, &x0, &RunConfig::new(3)).unwrap();
    assert_eq!(out.trace.non_finite_at, None);
    let paper =
        ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0)).unwrap();
    let err = run(&Frozen(&paper), &problem, &x0, &RunConfig::new(3)).unwrap_err();
    assert!(
        err.to_string().contains("7850") && err.to_string().contains("1970"),
        "{err}"
    );
    let metrics = ClassifierMetrics::<f32>::new(data.split(Split::Test), Activation::Tanh);
    assert!((0.0..=1.0).contains(&metrics.accuracy(&x0)));
    assert!(metrics
        .accuracy(&DMatrix::from_element(1970, 1, f32::NAN))
        .is_nan());
    // A normalization that divides by zero or is NaN.
    for std in [0.0, f64::NAN, -1.0] {
        let n = Normalization { mean: 0.1, std };
        assert!(matches!(
            Mnist::load_with(dir.path(), n),
            Err(DataError::BadNormalization { .. })
        ));
    }
}

#[test]
fn a_gzip_that_inflates_past_its_header_stops_at_the_header() {
    // The header declares one byte; the stream inflates to 64 MB of zeros.
    let mut raw = vec![0u8, 0, 8, 1];
    raw.extend_from_slice(&1u32.to_be_bytes());
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&raw).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 200_000);
    let start = std::time::Instant::now();
    let err = parse_idx(&gz, "bomb").unwrap_err();
    assert!(matches!(err, DataError::TrailingBytes { .. }), "{err}");
    assert!(
        start.elapsed().as_secs_f64() < 1.0,
        "it must not inflate the whole stream"
    );
}

#[test]
fn temporaries_of_killed_writers_are_removed_and_non_finite_tensors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.safetensors");
    // A writer killed between its write and its rename (pid 4194304 is above Linux's limit).
    let stale = dir.path().join(".p.safetensors.tmp4194304");
    std::fs::write(&stale, b"half").unwrap();
    let opt = small::<f64>(0.2);
    let mut params = opt.params().clone();
    write_safetensors(&path, &params, None).unwrap();
    assert!(!stale.exists());
    assert_eq!(read_safetensors(&path, opt.params()).unwrap(), params);
    params.get_mut("REN.X")[0] = f64::NAN;
    write_safetensors(&path, &params, None).unwrap();
    let err = read_safetensors(&path, opt.params())
        .unwrap_err()
        .to_string();
    assert!(err.contains("REN.X") && err.contains("NaN"), "{err}");
    // f64 values out of f32's range are refused when read as f32, not turned into Inf.
    let mut big = opt.params().clone();
    big.get_mut("REN.X")[0] = 1e300;
    write_safetensors(&path, &big, None).unwrap();
    let template = small::<f32>(0.2);
    assert!(read_safetensors(&path, template.params()).is_err());
    write_atomically(&path, b"x").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"x");
}

#[test]
fn a_huge_meta_learning_rate_ends_in_an_error_never_a_panic() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
    if !Path::new(dir).is_dir() {
        eprintln!("skipped: {dir} not found");
        return;
    }
    let data = Mnist::load(Path::new(dir)).unwrap();
    let family = SequentialClassifiers::<f32>::new(
        data.split(Split::MetaTrain),
        Activation::Tanh,
        128,
        2,
        5,
        InitialPoint::META_TRAIN,
    )
    .unwrap();
    let mut opt =
        ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0)).unwrap();
    let config = MetaTrainConfig {
        lr: 1e8,
        clip: None,
        seed: 0,
    };
    let estimator = FullBptt {
        trajectories: 2,
        horizon: 5,
        second_order: true,
    };
    let mut trainer = MetaTrainer::new(config, estimator, WeightedLoss::PAPER).unwrap();
    let mut outcome = None;
    for _ in 0..12 {
        if let Err(e) = trainer.step(&mut opt, &family) {
            outcome = Some(e.to_string());
            break;
        }
    }
    let err = outcome.expect("a meta learning rate of 1e8 breaks meta-training");
    println!("{err}");
    assert!(err.contains("meta-step"), "{err}");
    // The last good meta-parameters are finite and evaluation of them never panics either.
    assert!(opt
        .params()
        .iter()
        .all(|(_, m)| m.iter().all(|v| v.is_finite())));
    let problem =
        Classifier::<f32>::new(data.split(Split::Test), Activation::Tanh, 128, 0).unwrap();
    let x0 = DMatrix::zeros(problem.dim(), 1);
    let _ = run(&Frozen(&opt), &problem, &x0, &RunConfig::new(3));
}
