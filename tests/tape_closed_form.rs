//! Unrolled gradient descent on a quadratic has an exact meta-gradient: the tape's, computed
//! with `grad f` recorded inside every step, must match it, and the first-order
//! approximation (stop_gradient on `grad f`) must match its own closed form and differ.

use convergent_l2o::tape::{Tape, Var};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

struct Quadratic {
    a: DMatrix<f64>,
    b: DVector<f64>,
}

impl Quadratic {
    /// Symmetric positive definite A with eigenvalues in [0.1, 1.1], so eta < 1 is stable.
    fn random(n: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let q = DMatrix::from_fn(n, n, |_, _| rng.gen_range(-1.0..1.0))
            .qr()
            .q();
        let eig = DMatrix::from_diagonal(&DVector::from_fn(n, |_, _| rng.gen_range(0.1..1.1)));
        let a = &q * eig * q.transpose();
        let b = DVector::from_fn(n, |_, _| rng.gen_range(-1.0..1.0));
        Quadratic { a, b }
    }

    fn grad(&self, x: &DVector<f64>) -> DVector<f64> {
        &self.a * x - &self.b
    }

    /// f(x) = 1/2 xᵀ A x - bᵀ x recorded on the tape, and its gradient by the tape itself.
    fn value_on<'t>(&self, x: Var<'t, f64>) -> Var<'t, f64> {
        let tape = x.tape();
        let a = tape.constant(self.a.clone());
        let b = tape.constant(DMatrix::from_column_slice(
            self.b.len(),
            1,
            self.b.as_slice(),
        ));
        x.dot(a.matmul(x)).scale(0.5) - b.dot(x)
    }
}

/// Meta-loss f(x_T) of T steps x <- x - eta grad f(x), with grad f taken by the tape
/// (recorded, so its dependence on x and eta is differentiated), optionally cut by stop_gradient.
fn tape_meta_gradient(
    q: &Quadratic,
    x0: &DVector<f64>,
    eta: f64,
    steps: usize,
    first_order: bool,
) -> (f64, DVector<f64>) {
    let tape = Tape::new();
    let eta_v = tape.scalar_param(eta);
    let x0_v = tape.param(DMatrix::from_column_slice(x0.len(), 1, x0.as_slice()));
    let mut x = x0_v;
    for _ in 0..steps {
        let f = q.value_on(x);
        let mut g = tape.grad(&[f], &[x], true)[0];
        if first_order {
            g = g.stop_gradient();
        }
        x = x - g.mul_scalar(eta_v);
    }
    let loss = q.value_on(x);
    let grads = tape.grad(&[loss], &[eta_v, x0_v], false);
    let dx0 = grads[1].value();
    (
        grads[0].scalar(),
        DVector::from_column_slice(dx0.as_slice()),
    )
}

/// Exact meta-gradient: x_{t+1} = M x_t + eta b with M = I - eta A, so
/// dL/dx0 = Mᵀ^T g_T and d x_{t+1}/d eta = M d_t - g_t.
fn exact(q: &Quadratic, x0: &DVector<f64>, eta: f64, steps: usize) -> (f64, DVector<f64>) {
    let n = x0.len();
    let m = DMatrix::identity(n, n) - &q.a * eta;
    let (mut x, mut d) = (x0.clone(), DVector::zeros(n));
    for _ in 0..steps {
        let g = q.grad(&x);
        d = &m * d - &g;
        x -= &g * eta;
    }
    let g_t = q.grad(&x);
    let m_t = (0..steps).fold(DMatrix::identity(n, n), |acc, _| &m * acc);
    (g_t.dot(&d), m_t.transpose() * g_t)
}

/// First-order approximation: every d x_{t+1} / d x_t = I, d x_{t+1} / d eta = -g_t.
fn exact_first_order(
    q: &Quadratic,
    x0: &DVector<f64>,
    eta: f64,
    steps: usize,
) -> (f64, DVector<f64>) {
    let mut x = x0.clone();
    let mut sum_g = DVector::zeros(x0.len());
    for _ in 0..steps {
        let g = q.grad(&x);
        sum_g += &g;
        x -= &g * eta;
    }
    let g_t = q.grad(&x);
    (-g_t.dot(&sum_g), g_t)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-10 + 1e-9 * a.abs().max(b.abs())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn unrolled_gd_meta_gradient_is_exact(n in 1usize..8, steps in 1usize..25,
                                          eta in 0.05f64..0.9, seed in 0u64..1_000_000) {
        let q = Quadratic::random(n, seed);
        let x0 = DVector::from_fn(n, |i, _| (i as f64 * 0.7 + seed as f64).sin());
        let (d_eta, d_x0) = tape_meta_gradient(&q, &x0, eta, steps, false);
        let (e_eta, e_x0) = exact(&q, &x0, eta, steps);
        prop_assert!(close(d_eta, e_eta), "d/d eta: tape {d_eta}, exact {e_eta}");
        for i in 0..n {
            prop_assert!(close(d_x0[i], e_x0[i]), "d/d x0[{i}]: tape {}, exact {}", d_x0[i], e_x0[i]);
        }
    }

    #[test]
    fn first_order_approximation_is_exact_and_differs(n in 2usize..8, steps in 2usize..25,
                                                      eta in 0.05f64..0.9, seed in 0u64..1_000_000) {
        let q = Quadratic::random(n, seed);
        let x0 = DVector::from_fn(n, |i, _| 1.0 + (i as f64 * 0.7 + seed as f64).sin());
        let (d_eta, d_x0) = tape_meta_gradient(&q, &x0, eta, steps, true);
        let (e_eta, e_x0) = exact_first_order(&q, &x0, eta, steps);
        prop_assert!(close(d_eta, e_eta), "first order d/d eta: tape {d_eta}, exact {e_eta}");
        for i in 0..n {
            prop_assert!(close(d_x0[i], e_x0[i]));
        }
        let (full_eta, full_x0) = exact(&q, &x0, eta, steps);
        // Relative: near convergence both meta-gradients are tiny, but (Mᵀ - I) g_T is not a
        // small fraction of g_T.
        let gap = (&full_x0 - &d_x0).norm() + (full_eta - d_eta).abs();
        let size = full_x0.norm() + d_x0.norm() + full_eta.abs() + d_eta.abs();
        prop_assert!(gap > 1e-3 * size, "second-order terms missing: gap {gap}, size {size}");
    }
}

#[test]
fn third_derivative_through_nested_grads() {
    // f = x^4: f''' = 24 x.
    let tape = Tape::<f64>::new();
    let x = tape.scalar_param(1.5);
    let f = x.powi(4).sum();
    let d1 = tape.grad(&[f], &[x], true)[0];
    let d2 = tape.grad(&[d1], &[x], true)[0];
    let d3 = tape.grad(&[d2], &[x], false)[0];
    assert!((d1.scalar() - 4.0 * 1.5f64.powi(3)).abs() < 1e-12);
    assert!((d2.scalar() - 12.0 * 1.5f64.powi(2)).abs() < 1e-12);
    assert!((d3.scalar() - 24.0 * 1.5).abs() < 1e-12);
}

#[test]
fn hvp_matches_the_hessian_of_a_quadratic() {
    let q = Quadratic::random(5, 3);
    let tape = Tape::new();
    let x = tape.param(DMatrix::from_element(5, 1, 0.3));
    let v = DMatrix::from_fn(5, 1, |i, _| i as f64 - 2.0);
    let hv = tape.hvp(q.value_on(x), x, tape.constant(v.clone()), false);
    assert!((hv.value() - &q.a * v).norm() < 1e-12);
}

#[test]
#[should_panic(expected = "is a constant, so no gradient can reach it")]
fn gradient_with_respect_to_a_constant_is_refused() {
    let tape = Tape::<f64>::new();
    let x = tape.constant(DMatrix::from_element(1, 1, 2.0));
    let _ = tape.grad(&[x.square()], &[x], false);
}

#[test]
fn unrelated_wrt_gets_zero_and_no_grad_records_nothing() {
    let tape = Tape::<f64>::new();
    let x = tape.scalar_param(2.0);
    let unrelated = tape.param(DMatrix::from_element(2, 3, 1.0));
    let y = tape.no_grad(|| x.square());
    assert!(!y.requires_grad());
    let z = x.square().sum();
    let g = tape.grad(&[z], &[unrelated, x], false);
    assert_eq!(g[0].value(), DMatrix::zeros(2, 3));
    assert_eq!(g[1].scalar(), 4.0);
}
