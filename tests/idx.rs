//! IDX reader and MNIST loader: real data, malformed files, gzip/raw parity, batching.

use std::io::Write;
use std::path::{Path, PathBuf};

use convergent_l2o::problems::data::{
    parse_idx, read_idx, DataError, IdxArray, Mnist, Normalization, Split, NUM_CLASSES,
};
use flate2::write::GzEncoder;
use flate2::Compression;

const MNIST_10K: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
const FASHION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/fashion-mnist");

fn idx_bytes(type_code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, type_code, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Writes `bytes` as `name` and returns the read error's message, checking it names the file.
fn read_error(bytes: &[u8], name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, bytes);
    let err = read_idx(&path).expect_err("malformed file must be rejected");
    let msg = err.to_string();
    assert!(msg.contains(name), "message should name {name}: {msg}");
    msg
}

/// A small synthetic dataset: `n` images of `rows x cols` and labels `i % 10`.
fn images_and_labels(n: usize, rows: usize, cols: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let images = idx_bytes(0x08, &[n as u32, rows as u32, cols as u32], &pixels);
    (images, idx_bytes(0x08, &[n as u32], &labels))
}

/// Writes the four standard files (gzipped if `gz`) with `n_train` and `n_test` samples.
fn write_dataset(dir: &Path, n_train: usize, n_test: usize, gz: bool) {
    let suffix = if gz { ".gz" } else { "" };
    let enc = |b: Vec<u8>| if gz { gzip(&b) } else { b };
    let (ti, tl) = images_and_labels(n_train, 3, 2);
    let (si, sl) = images_and_labels(n_test, 3, 2);
    write(dir, &format!("train-images-idx3-ubyte{suffix}"), &enc(ti));
    write(dir, &format!("train-labels-idx1-ubyte{suffix}"), &enc(tl));
    write(dir, &format!("t10k-images-idx3-ubyte{suffix}"), &enc(si));
    write(dir, &format!("t10k-labels-idx1-ubyte{suffix}"), &enc(sl));
}

fn load_error(dir: &Path) -> String {
    Mnist::load(dir)
        .expect_err("bad dataset must be rejected")
        .to_string()
}

fn check_real(dir: &str, n_train: usize, n_test: usize) {
    if !Path::new(dir).is_dir() {
        println!("note: {dir} is absent; skipping the real-data check");
        return;
    }
    let mnist = Mnist::load(Path::new(dir)).unwrap();
    assert_eq!((mnist.num_train(), mnist.num_test()), (n_train, n_test));
    assert_eq!(
        (mnist.rows(), mnist.cols(), mnist.num_features()),
        (28, 28, 784)
    );
    let meta = mnist.split(Split::MetaTrain);
    let eval = mnist.split(Split::EvalTrain);
    let test = mnist.split(Split::Test);
    assert_eq!(meta.len(), n_train * 8 / 10);
    assert_eq!(meta.len() + eval.len(), n_train);
    assert_eq!(test.len(), n_test);
    for s in [meta, eval, test] {
        assert_eq!(s.pixels().len(), s.len() * 784);
        assert!(s.labels().iter().all(|&l| (l as usize) < NUM_CLASSES));
    }
    // MNIST-style images have black (0) borders, so the top-left pixel is the normalized zero.
    let zero = -0.1307f64 / 0.3081;
    assert!(
        (meta.image(0)[0] - zero).abs() < 1e-12,
        "{}",
        meta.image(0)[0]
    );
    let max = (1.0f64 - 0.1307) / 0.3081;
    let batch = test.batch::<f64>(0, test.len());
    assert!(batch
        .images
        .iter()
        .all(|&v| v >= zero - 1e-12 && v <= max + 1e-12));
}

#[test]
fn real_mnist_10k_loads_with_paper_splits() {
    check_real(MNIST_10K, 8004, 1996);
    if Path::new(MNIST_10K).is_dir() {
        let mnist = Mnist::load(Path::new(MNIST_10K)).unwrap();
        assert_eq!(mnist.split(Split::MetaTrain).len(), 6403);
        assert_eq!(mnist.split(Split::EvalTrain).len(), 1601);
    }
}

#[test]
fn real_fashion_mnist_loads() {
    check_real(FASHION, 60000, 10000);
}

#[test]
fn bad_magic_is_rejected() {
    let mut bytes = idx_bytes(0x08, &[2], &[1, 2]);
    bytes[0] = 0x50;
    bytes[1] = 0x4b;
    let msg = read_error(&bytes, "bad-magic.idx");
    assert!(msg.contains("bad magic number"), "{msg}");
    assert!(msg.contains("50 4b 08 01"), "{msg}");
}

#[test]
fn truncated_header_is_rejected() {
    let bytes = idx_bytes(0x08, &[2, 3], &[]);
    let msg = read_error(&bytes[..9], "short-header.idx");
    assert!(msg.contains("header truncated"), "{msg}");
    assert!(msg.contains("expected at least 12 bytes, found 9"), "{msg}");
    let msg = read_error(&[0, 0], "two-bytes.idx");
    assert!(msg.contains("header truncated"), "{msg}");
}

#[test]
fn truncated_data_is_rejected() {
    let bytes = idx_bytes(0x08, &[2, 3], &[1, 2, 3, 4]);
    let msg = read_error(&bytes, "short-data.idx");
    assert!(msg.contains("data truncated"), "{msg}");
    assert!(msg.contains("require 6 bytes, found 4"), "{msg}");
}

#[test]
fn trailing_bytes_are_rejected() {
    let bytes = idx_bytes(0x08, &[2], &[1, 2, 99, 98, 97]);
    let msg = read_error(&bytes, "trailing.idx");
    assert!(msg.contains("3 trailing bytes"), "{msg}");
}

#[test]
fn unsupported_type_is_rejected() {
    let bytes = idx_bytes(0x0D, &[1], &[0, 0, 128, 63]);
    let msg = read_error(&bytes, "floats.idx");
    assert!(msg.contains("0x0d"), "{msg}");
    assert!(msg.contains("only 0x08 (unsigned byte)"), "{msg}");
}

#[test]
fn corrupt_gzip_is_rejected() {
    let gz = gzip(&idx_bytes(0x08, &[64], &[7; 64]));
    let msg = read_error(&gz[..gz.len() / 2], "cut.idx.gz");
    assert!(msg.contains("corrupt gzip stream"), "{msg}");
    let mut flipped = gz.clone();
    let n = flipped.len();
    flipped[n - 6] ^= 0xff; // inside the CRC32 trailer
    let msg = read_error(&flipped, "crc.idx.gz");
    assert!(msg.contains("corrupt gzip stream"), "{msg}");
}

#[test]
fn overflowing_dims_are_rejected_but_zero_dims_are_fine() {
    let big = u32::MAX;
    let msg = read_error(&idx_bytes(0x08, &[big, big, big], &[]), "huge.idx");
    assert!(msg.contains("overflow"), "{msg}");
    let empty = parse_idx(&idx_bytes(0x08, &[big, big, big, 0], &[]), "empty").unwrap();
    assert_eq!(empty.data.len(), 0);
    let scalar = parse_idx(&idx_bytes(0x08, &[], &[42]), "scalar").unwrap();
    assert_eq!(
        scalar,
        IdxArray {
            dims: vec![],
            data: vec![42]
        }
    );
}

#[test]
fn missing_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope-idx1-ubyte");
    let err = read_idx(&path).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("nope-idx1-ubyte"), "{err}");

    write_dataset(dir.path(), 10, 10, true);
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let msg = load_error(dir.path());
    assert!(msg.contains("missing dataset file"), "{msg}");
    assert!(msg.contains("t10k-labels-idx1-ubyte.gz"), "{msg}");
}

#[test]
fn count_mismatch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 10, 10, false);
    let (_, labels) = images_and_labels(9, 3, 2);
    write(dir.path(), "train-labels-idx1-ubyte", &labels);
    let msg = load_error(dir.path());
    assert!(
        msg.contains("train-images-idx3-ubyte has 10 images"),
        "{msg}"
    );
    assert!(
        msg.contains("train-labels-idx1-ubyte has 9 labels"),
        "{msg}"
    );
}

#[test]
fn label_out_of_range_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 10, 10, false);
    let labels = idx_bytes(0x08, &[10], &[0, 1, 2, 3, 4, 5, 6, 7, 10, 9]);
    write(dir.path(), "t10k-labels-idx1-ubyte", &labels);
    let msg = load_error(dir.path());
    assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
    assert!(msg.contains("index 8 is 10"), "{msg}");
}

#[test]
fn wrong_rank_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 10, 10, false);
    write(
        dir.path(),
        "train-images-idx3-ubyte",
        &idx_bytes(0x08, &[10, 6], &[0; 60]),
    );
    let msg = load_error(dir.path());
    assert!(
        msg.contains("train-images-idx3-ubyte: bad shape [10, 6]"),
        "{msg}"
    );
}

#[test]
fn gzip_and_raw_parse_identically() {
    let (images, _) = images_and_labels(5, 4, 3);
    let raw = parse_idx(&images, "raw").unwrap();
    assert_eq!(raw, parse_idx(&gzip(&images), "gz").unwrap());
    assert_eq!(raw.dims, vec![5, 4, 3]);

    let gz_dir = tempfile::tempdir().unwrap();
    let raw_dir = tempfile::tempdir().unwrap();
    write_dataset(gz_dir.path(), 20, 10, true);
    write_dataset(raw_dir.path(), 20, 10, false);
    let a = Mnist::load(gz_dir.path()).unwrap();
    let b = Mnist::load(raw_dir.path()).unwrap();
    for s in [Split::MetaTrain, Split::EvalTrain, Split::Test] {
        assert_eq!(a.split(s).pixels(), b.split(s).pixels());
        assert_eq!(a.split(s).labels(), b.split(s).labels());
    }

    // With both names present the .gz one wins: make the raw one unreadable garbage.
    write(gz_dir.path(), "train-images-idx3-ubyte", b"garbage");
    assert_eq!(Mnist::load(gz_dir.path()).unwrap().num_train(), 20);
}

#[test]
fn sequential_batches_wrap_around_and_one_hot_matches() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 25, 7, true);
    let norm = Normalization {
        mean: 0.5,
        std: 0.25,
    };
    let mnist = Mnist::load_with(dir.path(), norm).unwrap();
    assert_eq!((mnist.rows(), mnist.cols()), (3, 2));
    let meta = mnist.split(Split::MetaTrain);
    assert_eq!(meta.len(), 20);
    assert_eq!(meta.num_batches(6), 3);

    let first = meta.sequential_batch::<f64>(0, 6);
    assert_eq!(first, meta.sequential_batch::<f64>(3, 6));
    assert_eq!(meta.sequential_batch::<f64>(2, 6), meta.batch::<f64>(12, 6));
    assert_eq!(first.images.shape(), (6, 6));
    assert_eq!(first.one_hot.shape(), (6, NUM_CLASSES));
    for (i, &label) in first.labels.iter().enumerate() {
        for c in 0..NUM_CLASSES {
            assert_eq!(first.one_hot[(i, c)], if c == label { 1.0 } else { 0.0 });
        }
    }
    // Pixel (sample 1, feature 2) is raw byte (1 * 6 + 2) * 7 = 56.
    let expected = (56.0 / 255.0 - 0.5) / 0.25;
    assert!((first.images[(1, 2)] - expected).abs() < 1e-6);

    // The eval split continues where meta-training stops: sample 20 has label 0.
    let eval = mnist.split(Split::EvalTrain).batch::<f32>(0, 5);
    assert_eq!(eval.labels, vec![0, 1, 2, 3, 4]);
}

#[test]
#[should_panic(expected = "out of range")]
fn batch_past_the_end_panics() {
    let dir = tempfile::tempdir().unwrap();
    write_dataset(dir.path(), 10, 10, false);
    let mnist = Mnist::load(dir.path()).unwrap();
    mnist.split(Split::Test).batch::<f32>(8, 3);
}
