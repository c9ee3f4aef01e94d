//! Lemma 1 and Theorem 2 of Martin & Furieri as properties, and the counterexamples that show
//! their conditions matter.

use convergent_l2o::optim::Lemma1;
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// A smooth function with known smoothness β and infimum.
trait Smooth {
    fn value(&self, x: &DVector<f64>) -> f64;
    fn grad(&self, x: &DVector<f64>) -> DVector<f64>;
}

/// 1/2 (x - c)ᵀ A (x - c), A symmetric positive semidefinite of random rank; inf f = 0.
struct Quadratic {
    a: DMatrix<f64>,
    c: DVector<f64>,
}

impl Smooth for Quadratic {
    fn value(&self, x: &DVector<f64>) -> f64 {
        let d = x - &self.c;
        0.5 * d.dot(&(&self.a * &d))
    }
    fn grad(&self, x: &DVector<f64>) -> DVector<f64> {
        &self.a * (x - &self.c)
    }
}

/// Quadratic plus Σ (1 - cos x_i): non-convex where A is small, β ≤ λmax(A) + 1, inf f = 0 at
/// x = 0 when c = 0.
struct Wavy(Quadratic);

impl Smooth for Wavy {
    fn value(&self, x: &DVector<f64>) -> f64 {
        self.0.value(x) + x.iter().map(|v| 1.0 - v.cos()).sum::<f64>()
    }
    fn grad(&self, x: &DVector<f64>) -> DVector<f64> {
        self.0.grad(x) + x.map(|v| v.sin())
    }
}

fn random_psd(rng: &mut StdRng, n: usize) -> (DMatrix<f64>, f64) {
    let rank = rng.gen_range(1..=n);
    let b = DMatrix::from_fn(n, rank, |_, _| rng.gen_range(-1.0..1.0));
    let a = &b * b.transpose();
    let beta = a.clone().symmetric_eigenvalues().max();
    (a, beta)
}

/// How the square-summable perturbation is chosen.
#[derive(Clone, Copy, Debug)]
enum Perturbation {
    /// Random directions and signs, norm s ρ^t.
    Decaying,
    /// Along +∇f (against descent), norm s ρ^t: the worst direction.
    Adversarial,
}

/// The perturbations v_t: their kind and norms s ρ^t.
#[derive(Clone, Copy, Debug)]
struct Perturbations {
    kind: Perturbation,
    /// s.
    scale: f64,
    /// ρ.
    decay: f64,
}

/// Runs x_{t+1} = x_t - η ∇f(x_t) + v_t and returns (|∇f(x_t)|², |v_t|²) for t = 0..steps.
fn trajectory(
    f: &dyn Smooth,
    x0: DVector<f64>,
    eta: f64,
    steps: usize,
    perturbations: Perturbations,
    rng: &mut StdRng,
) -> (Vec<f64>, Vec<f64>) {
    let Perturbations { kind, scale, decay } = perturbations;
    let mut x = x0;
    let (mut gs, mut vs) = (Vec::new(), Vec::new());
    for t in 0..steps {
        let g = f.grad(&x);
        let size = scale * decay.powi(t as i32);
        let v = match kind {
            Perturbation::Decaying => {
                let d = DVector::from_fn(x.len(), |_, _| rng.gen_range(-1.0..1.0));
                d.normalize() * size * if rng.gen_bool(0.5) { 1.0 } else { -1.0 }
            }
            Perturbation::Adversarial if g.norm() > 0.0 => g.normalize() * size,
            Perturbation::Adversarial => DVector::zeros(x.len()),
        };
        gs.push(g.norm_squared());
        vs.push(v.norm_squared());
        x = &x - &g * eta + v;
    }
    (gs, vs)
}

fn check_every_prefix(
    lemma: &Lemma1,
    gap: f64,
    gs: &[f64],
    vs: &[f64],
) -> Result<(), TestCaseError> {
    let (mut sum_g, mut sum_v) = (0.0, 0.0);
    for t in 0..gs.len() {
        sum_g += gs[t];
        sum_v += vs[t];
        for factor in [1.01, 1.5, 3.0, 10.0, 100.0] {
            let eps = lemma.min_epsilon() * factor;
            let bound = lemma.bound_at(eps, gap, sum_v);
            prop_assert!(
                sum_g <= bound * (1.0 + 1e-9),
                "T = {t}, eps = {eps}: {sum_g} > {bound}"
            );
        }
        let cert = lemma.check(gap, &gs[..=t], &vs[..=t]);
        prop_assert!(cert.holds(), "T = {t}: optimized bound fails: {cert:?}");
    }
    Ok(())
}

fn kind_of(adversarial: bool) -> Perturbation {
    if adversarial {
        Perturbation::Adversarial
    } else {
        Perturbation::Decaying
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn lemma1_holds_on_random_smooth_quadratics(n in 1usize..8, seed in 0u64..1_000_000,
            eta_frac in 0.05f64..0.95, adversarial: bool, scale in 0.0f64..2.0,
            decay in 0.5f64..0.99) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (a, beta) = random_psd(&mut rng, n);
        let c = DVector::from_fn(n, |_, _| rng.gen_range(-1.0..1.0));
        let f = Quadratic { a, c };
        let eta = eta_frac / beta;
        let lemma = Lemma1::new(beta, eta).unwrap();
        let x0 = DVector::from_fn(n, |_, _| rng.gen_range(-3.0..3.0));
        let gap = f.value(&x0);
        let (gs, vs) = trajectory(&f, x0, eta, 60,
            Perturbations { kind: kind_of(adversarial), scale, decay }, &mut rng);
        check_every_prefix(&lemma, gap, &gs, &vs)?;
    }

    #[test]
    fn lemma1_holds_on_a_smooth_nonconvex_function(n in 1usize..6, seed in 0u64..1_000_000,
            eta_frac in 0.05f64..0.95, adversarial: bool, scale in 0.0f64..2.0,
            decay in 0.5f64..0.99) {
        let mut rng = StdRng::seed_from_u64(seed);
        let (a, lmax) = random_psd(&mut rng, n);
        let f = Wavy(Quadratic { a: a * 0.3, c: DVector::zeros(n) });
        let beta = 0.3 * lmax + 1.0;
        let eta = eta_frac / beta;
        let lemma = Lemma1::new(beta, eta).unwrap();
        let x0 = DVector::from_fn(n, |_, _| rng.gen_range(-4.0..4.0));
        let gap = f.value(&x0); // inf f = 0
        let (gs, vs) = trajectory(&f, x0, eta, 60,
            Perturbations { kind: kind_of(adversarial), scale, decay }, &mut rng);
        check_every_prefix(&lemma, gap, &gs, &vs)?;
    }
}

#[test]
fn step_size_above_two_over_beta_diverges() {
    let f = Quadratic {
        a: DMatrix::from_diagonal(&DVector::from_vec(vec![1.0, 4.0])),
        c: DVector::zeros(2),
    };
    let beta = 4.0;
    assert!(
        Lemma1::new(beta, 2.1 / beta).is_err(),
        "no certificate may be issued"
    );
    let mut x = DVector::from_vec(vec![1.0, 1.0]);
    for _ in 0..100 {
        x = &x - f.grad(&x) * (2.1 / beta);
    }
    assert!(
        f.grad(&x).norm() > 1e3,
        "eta > 2/beta must diverge, |grad| = {}",
        f.grad(&x).norm()
    );
}

#[test]
fn perturbation_that_is_not_square_summable_prevents_convergence() {
    // f = |x|^2 / 2 with a constant-norm push: x settles where eta x = v, so |grad f| = |v| / eta.
    let f = Quadratic {
        a: DMatrix::identity(3, 3),
        c: DVector::zeros(3),
    };
    let (eta, v) = (0.5, DVector::from_vec(vec![0.1, 0.0, 0.0]));
    let mut x = DVector::from_vec(vec![1.0, -1.0, 2.0]);
    let mut tail = Vec::new();
    for t in 0..10_000 {
        x = &x - f.grad(&x) * eta + &v;
        if t >= 9_000 {
            tail.push(f.grad(&x).norm());
        }
    }
    let min_tail = tail.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(
        (min_tail - 0.2).abs() < 1e-9,
        "gradient stays at |v|/eta = 0.2, found {min_tail}"
    );
}

#[test]
fn theorem2_cyclic_partial_gradients_converge() {
    // f = Σ_i f_i with f_i = 1/2 (x - c_i)ᵀ A_i (x - c_i); step sizes η_τ = η0 / (1 + τ)^0.75 are
    // square-summable but not summable (τ = ⌊t/M⌋), and |v_t| ≤ η_τ (C + D |∇f(x_t)|).
    let mut rng = StdRng::seed_from_u64(7);
    let (n, m) = (4, 3);
    let parts: Vec<Quadratic> = (0..m)
        .map(|_| {
            let (a, _) = random_psd(&mut rng, n);
            let a = a + DMatrix::identity(n, n) * 0.2;
            Quadratic {
                a,
                c: DVector::from_fn(n, |_, _| rng.gen_range(-1.0..1.0)),
            }
        })
        .collect();
    let full_grad = |x: &DVector<f64>| {
        parts
            .iter()
            .fold(DVector::zeros(n), |acc, p| acc + p.grad(x))
    };
    let beta = parts
        .iter()
        .map(|p| p.a.clone().symmetric_eigenvalues().max())
        .sum::<f64>();
    let (c_bound, d_bound) = (0.5, 0.5);
    let mut x = DVector::from_fn(n, |_, _| rng.gen_range(-3.0..3.0));
    let mut norms = Vec::new();
    for t in 0..60_000usize {
        let tau = t / m;
        let eta = 0.5 / beta / (1.0 + tau as f64).powf(0.75);
        let g_i = parts[t % m].grad(&x);
        let dir = DVector::from_fn(n, |_, _| rng.gen_range(-1.0..1.0)).normalize();
        let v = dir * eta * (c_bound + d_bound * full_grad(&x).norm()) * rng.gen_range(0.0..1.0);
        x = &x - g_i * eta + v;
        norms.push(full_grad(&x).norm());
    }
    let envelope = |lo: usize, hi: usize| norms[lo..hi].iter().cloned().fold(0.0, f64::max);
    let (early, middle, late) = (
        envelope(1_000, 2_000),
        envelope(10_000, 20_000),
        envelope(50_000, 60_000),
    );
    assert!(
        middle < early && late < middle,
        "envelope must decrease: {early} {middle} {late}"
    );
    assert!(
        late < 0.1 * early,
        "gradient norm must head to 0: {early} -> {late}"
    );
}
