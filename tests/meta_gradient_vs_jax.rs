//! The second-order meta-gradient of a 50-step unroll on the MNIST classifier agrees with JAX.
//!
//! Reference values: `python3 benches/jax_tape_ref.py ../shared/data/mnist-10k --f64`
//! (jax 0.10.2, nested `jax.grad`, f64), printed to 10 significant digits. Same data split,
//! batches, x0_i = 0.005 (1 + sin i), eta = 0.1, meta-loss sum_{t<50} f_t(x_t).

use convergent_l2o::models::Activation;
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::ClassifierShape;
use convergent_l2o::tape::Tape;
use nalgebra::DMatrix;
use std::path::Path;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");

fn assert_rel(name: &str, ours: f64, jax: f64) {
    // JAX's numbers carry 10 significant digits.
    let tol = 2e-9 * jax.abs().max(1.0);
    assert!(
        (ours - jax).abs() <= tol,
        "{name}: ours {ours:.12}, JAX {jax:.10}"
    );
}

#[test]
fn unrolled_classifier_meta_gradient_matches_jax() {
    if !Path::new(DATA).is_dir() {
        eprintln!("skipped: {DATA} not found");
        return;
    }
    let mnist = Mnist::load(Path::new(DATA)).unwrap();
    let split = mnist.split(Split::MetaTrain);
    let shape = ClassifierShape::MNIST;
    let tape = Tape::<f64>::new();
    let eta = tape.scalar_param(0.1);
    let x0 = tape.param(DMatrix::from_fn(shape.num_params(), 1, |i, _| {
        0.005 * (1.0 + (i as f64).sin())
    }));
    let mut x = x0;
    let mut meta_loss = tape.scalar(0.0);
    let mut first = None;
    for t in 0..50 {
        let batch = split.batch::<f64>(t * 128, 128);
        let images = tape.constant(batch.images);
        let one_hot = tape.constant(batch.one_hot);
        let f = shape.loss(x, images, one_hot, Activation::Tanh);
        let g = tape.grad(&[f], &[x], true)[0];
        first.get_or_insert((f.scalar(), g.value().norm()));
        meta_loss = meta_loss + f;
        x = x - g.mul_scalar(eta);
    }
    let grads = tape.grad(&[meta_loss], &[eta, x0], false);
    let d_x0 = grads[1].value();
    let (loss0, grad0_norm) = first.unwrap();
    assert_rel("loss", loss0, 2.300095018);
    assert_rel("grad_norm", grad0_norm, 3.244482994);
    assert_rel("meta_loss", meta_loss.scalar(), 61.62846904);
    assert_rel("d_eta", grads[0].scalar(), -34.53665549);
    assert_rel("d_x0_norm", d_x0.norm(), 11.20079563);
    assert_rel("d_x0_sum", d_x0.sum(), 136.2799056);
}
