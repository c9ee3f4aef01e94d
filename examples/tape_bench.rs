//! Times the tape on the paper's optimizee, in f32 and f64:
//! (a) loss and first-order gradient of the 784 -> 10 tanh classifier on a 128 x 784 batch;
//! (b) the meta-gradient (w.r.t. the step size and x0) of a T-step unroll of
//!     x <- x - eta grad f_t(x) on sequential batches, second-order terms included.
//!
//! The same computation as benches/jax_tape_ref.py; `benches/compare_tape_jax.sh` runs both.
//! Usage: cargo run --release --example tape_bench -- [DATA_DIR] [--T 50] [--reps 20]
//!        [--dtype f32|f64|both]

use convergent_l2o::models::Activation;
use convergent_l2o::problems::data::{Batch, Mnist, Split};
use convergent_l2o::problems::ClassifierShape;
use convergent_l2o::tape::{Scalar, Tape};
use nalgebra::DMatrix;
use std::time::Instant;

const SHAPE: ClassifierShape = ClassifierShape::MNIST;
const BATCH: usize = 128;

struct Args {
    data: String,
    steps: usize,
    reps: usize,
    dtypes: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        data: concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k").to_string(),
        steps: 50,
        reps: 20,
        dtypes: vec!["f32".into(), "f64".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--T" => args.steps = value().parse().expect("--T takes a number"),
            "--reps" => args.reps = value().parse().expect("--reps takes a number"),
            "--dtype" => {
                let d = value();
                args.dtypes = if d == "both" {
                    vec!["f32".into(), "f64".into()]
                } else {
                    vec![d]
                };
            }
            _ if !a.starts_with("--") => args.data = a,
            _ => panic!("unknown flag {a}"),
        }
    }
    args
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// `x0_i = 0.005 (1 + sin i)`, in [0, 0.01] like the paper's U[0, 0.01] draws, computed in f64
/// and cast, so that the JAX reference starts from the very same point.
fn initial_point<T: Scalar>() -> DMatrix<T> {
    DMatrix::from_fn(SHAPE.num_params(), 1, |i, _| {
        T::cast(0.005 * (1.0 + (i as f64).sin()))
    })
}

fn loss_grad<T: Scalar>(batch: &Batch<T>, x0: &DMatrix<T>, reps: usize) -> (f64, f64, f64) {
    let tape = Tape::<T>::new();
    let images = tape.constant(batch.images.clone());
    let one_hot = tape.constant(batch.one_hot.clone());
    let mark = tape.mark();
    let mut times = Vec::with_capacity(reps);
    let (mut loss, mut grad_norm) = (0.0, 0.0);
    for _ in 0..reps * 10 {
        let start = Instant::now();
        let x = tape.param(x0.clone());
        let f = SHAPE.loss(x, images, one_hot, Activation::Tanh);
        let g = tape.grad(&[f], &[x], false)[0];
        loss = f.scalar().as_f64();
        grad_norm = g.value_ref().norm().as_f64();
        tape.truncate(mark);
        times.push(start.elapsed().as_secs_f64());
    }
    (median(times), loss, grad_norm)
}

struct MetaResult {
    seconds: f64,
    meta_loss: f64,
    d_eta: f64,
    d_x0_norm: f64,
    d_x0_sum: f64,
    tape_nodes: usize,
}

fn unroll_meta_grad<T: Scalar>(batches: &[Batch<T>], x0: &DMatrix<T>, reps: usize) -> MetaResult {
    let tape = Tape::<T>::new();
    let data: Vec<_> = batches
        .iter()
        .map(|b| {
            (
                tape.constant(b.images.clone()),
                tape.constant(b.one_hot.clone()),
            )
        })
        .collect();
    let mark = tape.mark();
    let mut times = Vec::with_capacity(reps);
    let mut out = None;
    for _ in 0..reps + 1 {
        let start = Instant::now();
        let eta = tape.scalar_param(T::cast(0.1));
        let x0_v = tape.param(x0.clone());
        let mut x = x0_v;
        let mut meta_loss = tape.scalar(T::zero());
        for &(images, one_hot) in &data {
            let f = SHAPE.loss(x, images, one_hot, Activation::Tanh);
            let g = tape.grad(&[f], &[x], true)[0];
            meta_loss = meta_loss + f;
            x = x - g.mul_scalar(eta);
        }
        let grads = tape.grad(&[meta_loss], &[eta, x0_v], false);
        let d_x0 = grads[1].value();
        let result = MetaResult {
            seconds: start.elapsed().as_secs_f64(),
            meta_loss: meta_loss.scalar().as_f64(),
            d_eta: grads[0].scalar().as_f64(),
            d_x0_norm: d_x0.norm().as_f64(),
            d_x0_sum: d_x0.sum().as_f64(),
            tape_nodes: tape.len(),
        };
        tape.truncate(mark);
        times.push(result.seconds);
        out = Some(result);
    }
    times.remove(0); // warm-up
    let mut result = out.expect("at least one repetition");
    result.seconds = median(times);
    result
}

fn run<T: Scalar>(args: &Args, data: &Mnist) {
    let split = data.split(Split::MetaTrain);
    let steps = args.steps.min(split.num_batches(BATCH));
    let batches: Vec<Batch<T>> = (0..steps).map(|t| split.batch(t * BATCH, BATCH)).collect();
    let x0 = initial_point::<T>();
    let (seconds, loss, grad_norm) = loss_grad(&batches[0], &x0, args.reps);
    println!(
        "tape_bench case=loss_grad dtype={} loss={loss:.10} grad_norm={grad_norm:.10} seconds={seconds:.6}",
        T::NAME
    );
    let r = unroll_meta_grad(&batches, &x0, args.reps);
    println!(
        "tape_bench case=unroll_meta_grad dtype={} T={steps} meta_loss={:.10} d_eta={:.10} d_x0_norm={:.10} d_x0_sum={:.10} tape_nodes={} seconds={:.6}",
        T::NAME, r.meta_loss, r.d_eta, r.d_x0_norm, r.d_x0_sum, r.tape_nodes, r.seconds
    );
}

fn main() {
    let args = parse_args();
    let data = Mnist::load(std::path::Path::new(&args.data)).unwrap_or_else(|e| {
        eprintln!("tape_bench: {e}");
        std::process::exit(2);
    });
    for d in &args.dtypes {
        match d.as_str() {
            "f32" => run::<f32>(&args, &data),
            "f64" => run::<f64>(&args, &data),
            other => panic!("unknown dtype {other} (f32, f64 or both)"),
        }
    }
}
