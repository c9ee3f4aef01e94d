//! The MLP classifier problem and its family: exact gradients (first and second order), the
//! perceptron case equals the paper's classifier, any image size from the IDX headers, small
//! datasets (a smaller batch, never a panic) and the family's refusals.

use convergent_l2o::models::Activation;
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{
    load_dataset, Classifier, Draw, MlpClassifier, MlpFamily, MlpFamilyConfig, MlpMetrics,
    MlpShape, PixelNormalization, Problem, ProblemFamily,
};
use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn};
use nalgebra::DMatrix;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::Path;

/// Writes the four raw IDX files of a dataset of `train` and `test` images of `rows x cols`.
fn write_idx(dir: &Path, train: usize, test: usize, rows: usize, cols: usize) {
    let mut rng = StdRng::seed_from_u64(1);
    for (name, count) in [("train", train), ("t10k", test)] {
        let mut images = vec![0, 0, 8, 3];
        for d in [count, rows, cols] {
            images.extend((d as u32).to_be_bytes());
        }
        images.extend((0..count * rows * cols).map(|_| rng.gen::<u8>()));
        std::fs::write(dir.join(format!("{name}-images-idx3-ubyte")), images).unwrap();
        let mut labels = vec![0, 0, 8, 1];
        labels.extend((count as u32).to_be_bytes());
        labels.extend((0..count).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{name}-labels-idx1-ubyte")), labels).unwrap();
    }
}

#[test]
fn mlp_loss_gradients_first_and_second_order() {
    let shape = MlpShape::new(4, &[3, 2], 3).unwrap();
    let images = DMatrix::from_fn(5, 4, |i, j| ((i * 4 + j) as f64).sin());
    let one_hot = DMatrix::from_fn(5, 3, |i, j| (i % 3 == j) as u8 as f64);
    let params = shape.init::<f64>(1.5, &mut StdRng::seed_from_u64(0));
    assert_eq!(shape.tensor_sizes(), vec![12, 3, 6, 2, 6, 3]);
    assert_eq!(
        shape.tensor_sizes().iter().sum::<usize>(),
        shape.num_params()
    );
    for act in [Activation::Tanh, Activation::Sigmoid, Activation::Relu] {
        let (x, y, s) = (images.clone(), one_hot.clone(), shape.clone());
        let f = tape_fn(move |p| {
            let tape = p[0].tape();
            s.loss(
                p[0],
                tape.constant(x.clone()),
                tape.constant(y.clone()),
                act,
            )
        });
        check_gradients(&f, std::slice::from_ref(&params), 11).unwrap();
    }
}

#[test]
fn the_perceptron_is_the_papers_classifier() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
    let mnist = Mnist::load(dir.as_ref()).unwrap();
    let split = mnist.split(Split::EvalTrain);
    let mlp = MlpClassifier::<f64>::new(split, &[], Activation::Tanh, 64, 3).unwrap();
    let paper = Classifier::<f64>::new(split, Activation::Tanh, 64, 3).unwrap();
    assert_eq!(mlp.dim(), paper.dim());
    let x = DMatrix::from_fn(mlp.dim(), 1, |i, _| ((i as f64) * 0.1).sin() * 0.05);
    for step in [0, 7] {
        let (a, ga) = mlp.value_and_grad(&x, step);
        let (b, gb) = paper.value_and_grad(&x, step);
        assert!((a - b).abs() < 1e-12 && (ga - gb).norm() < 1e-12);
    }
    let metrics =
        MlpMetrics::<f64>::new(mnist.split(Split::Test), mlp.shape(), Activation::Tanh).unwrap();
    let acc = metrics.accuracy(&x);
    assert!((0.0..=1.0).contains(&acc));
    assert!(metrics.accuracy(&DMatrix::zeros(3, 1)).is_nan());
    assert!(metrics.loss(&x).is_finite());
}

#[test]
fn any_image_size_and_small_datasets_give_a_smaller_batch_or_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // 7 x 5 images; 20 training samples: 16 meta-train, 4 held out.
    write_idx(dir.path(), 20, 6, 7, 5);
    let data = load_dataset(dir.path(), PixelNormalization::Paper).unwrap();
    assert_eq!(data.num_features(), 35);
    let p = MlpClassifier::<f64>::new(data.split(Split::EvalTrain), &[4], Activation::Relu, 128, 0)
        .unwrap();
    assert_eq!(
        p.batch_size(),
        4,
        "a split smaller than a batch gives a smaller batch"
    );
    assert_eq!(p.dim(), 35 * 4 + 4 + 4 * 10 + 10);
    let (f, g) = p.value_and_grad(&p.shape().init(1.0, &mut StdRng::seed_from_u64(0)), 3);
    assert!(f.is_finite() && g.iter().all(|v| v.is_finite()));
    // The dataset's own statistics.
    let own = load_dataset(dir.path(), PixelNormalization::Dataset).unwrap();
    let n = own.normalization();
    assert!(
        (n.mean - 0.5).abs() < 0.1 && (n.std - 0.29).abs() < 0.05,
        "{n:?}"
    );
    // A family on the tiny split draws problems of the data's size.
    let fam =
        MlpFamily::<f64>::new(data.split(Split::MetaTrain), MlpFamilyConfig::transfer()).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    for i in 0..10 {
        let s = fam
            .sample(
                Draw {
                    meta_step: 0,
                    index: i,
                },
                &mut rng,
            )
            .unwrap();
        assert_eq!(s.x0.nrows(), s.problem.dim());
        let sizes = s.problem.tensor_sizes();
        assert!(sizes.len() >= 4 && sizes.iter().sum::<usize>() == s.problem.dim());
    }
    // An empty split is an error, not a panic.
    write_idx(dir.path(), 1, 1, 2, 2);
    let tiny = Mnist::load(dir.path()).unwrap();
    assert!(tiny.split(Split::MetaTrain).is_empty());
    let err = MlpClassifier::<f64>::new(tiny.split(Split::MetaTrain), &[2], Activation::Tanh, 8, 0)
        .err()
        .expect("an empty split is refused")
        .to_string();
    assert!(err.contains("0 samples"), "{err}");
    assert!(
        MlpFamily::<f64>::new(tiny.split(Split::MetaTrain), MlpFamilyConfig::transfer()).is_err()
    );
    // A constant dataset has no std of its own.
    let flat = tempfile::tempdir().unwrap();
    write_idx(flat.path(), 10, 2, 2, 2);
    for name in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
        let path = flat.path().join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[16..].fill(7);
        std::fs::write(&path, bytes).unwrap();
    }
    let err = load_dataset(flat.path(), PixelNormalization::Dataset).unwrap_err();
    assert!(err.contains("normalization"), "{err}");
}

#[test]
fn family_and_shape_refusals() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
    let mnist = Mnist::load(dir.as_ref()).unwrap();
    let split = mnist.split(Split::MetaTrain);
    let ok = MlpFamilyConfig::transfer();
    let cases = [
        MlpFamilyConfig {
            widths: vec![],
            ..ok.clone()
        },
        MlpFamilyConfig {
            widths: vec![8, 0],
            ..ok.clone()
        },
        MlpFamilyConfig {
            batch_sizes: vec![0],
            ..ok.clone()
        },
        MlpFamilyConfig {
            activations: vec![],
            ..ok.clone()
        },
        MlpFamilyConfig {
            init_scale: (2.0, 1.0),
            ..ok.clone()
        },
        MlpFamilyConfig {
            init_scale: (0.0, f64::NAN),
            ..ok.clone()
        },
        MlpFamilyConfig {
            depths: vec![100],
            ..ok.clone()
        },
    ];
    for c in cases {
        let err = MlpFamily::<f32>::new(split, c.clone()).err();
        assert!(err.is_some(), "{c:?} accepted");
        assert!(err.unwrap().to_string().contains("MLP family"));
    }
    assert!(MlpShape::new(0, &[3], 10).is_err());
    assert!(MlpShape::new(784, &[3, 0], 10).is_err());
    // A network that does not read the data's features.
    let batches = convergent_l2o::problems::minibatches::<f32>(split, 32).unwrap();
    let shape = MlpShape::new(100, &[3], 10).unwrap();
    assert!(MlpClassifier::with_batches(batches, shape, Activation::Tanh, 0).is_err());
    // Same seed, same draw.
    let fam = MlpFamily::<f32>::new(split, ok).unwrap();
    let draw = Draw {
        meta_step: 3,
        index: 1,
    };
    let a = fam.sample(draw, &mut StdRng::seed_from_u64(4)).unwrap();
    let b = fam.sample(draw, &mut StdRng::seed_from_u64(4)).unwrap();
    assert_eq!(a.x0, b.x0);
    assert_eq!(a.problem.name(), b.problem.name());
}
