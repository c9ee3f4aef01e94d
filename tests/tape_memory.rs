//! Memory stays flat over many meta-gradient computations on one tape (mark / truncate), and
//! handles to truncated nodes are refused rather than read.

use convergent_l2o::tape::Tape;
use nalgebra::DMatrix;

/// One meta-gradient of a 5-step unroll on f(x) = sum(tanh(W x)^2), second order included.
fn meta_gradient(tape: &Tape<f64>, w: &DMatrix<f64>, eta: f64) -> f64 {
    let eta_v = tape.scalar_param(eta);
    let w = tape.constant(w.clone());
    let mut x = tape.param(DMatrix::from_element(w.ncols(), 1, 0.5));
    let x0 = x;
    for _ in 0..5 {
        let f = w.matmul(x).tanh().square().sum();
        let g = tape.grad(&[f], &[x], true)[0];
        x = x - g.mul_scalar(eta_v);
    }
    let loss = w.matmul(x).tanh().square().sum();
    let grads = tape.grad(&[loss], &[eta_v, x0], false);
    grads[0].scalar()
}

#[test]
fn thousand_meta_gradients_keep_the_tape_bounded() {
    let tape = Tape::<f64>::new();
    let w = DMatrix::from_fn(4, 6, |i, j| ((i * 6 + j) as f64).sin());
    let base = tape.mark();
    let first = meta_gradient(&tape, &w, 0.1);
    let peak_nodes = tape.len();
    tape.truncate(base);
    for _ in 0..1000 {
        let g = meta_gradient(&tape, &w, 0.1);
        assert_eq!(g, first, "the same computation must give the same number");
        assert_eq!(tape.len(), peak_nodes, "tape grew between meta-steps");
        tape.truncate(base);
        assert_eq!(tape.len(), 0);
    }
}

#[test]
fn unrecorded_backward_frees_its_temporaries() {
    let tape = Tape::<f64>::new();
    let x = tape.param(DMatrix::from_element(50, 1, 0.2));
    let y = x.tanh().sigmoid().square().sum();
    let before = tape.len();
    let _ = tape.grad(&[y], &[x], false);
    // Only the seed and the returned gradient remain.
    assert_eq!(tape.len(), before + 2);
}

#[test]
#[should_panic(expected = "stale Var")]
fn stale_handles_are_refused() {
    let tape = Tape::<f64>::new();
    let mark = tape.mark();
    let x = tape.param(DMatrix::from_element(1, 1, 1.0));
    tape.truncate(mark);
    let _reused = tape.constant(DMatrix::from_element(1, 1, 2.0));
    let _ = x.value();
}
