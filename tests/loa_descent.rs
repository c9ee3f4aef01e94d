//! LOA (and BFGS) as descent methods: over random problems in and out of LOA's training
//! distribution, and with meta-parameters scaled up or randomised so that the learned update
//! is adversarial, no accepted step increases f, no run ends above f(x_0), and everything
//! stays finite; plus a test of each safeguard (curvature condition, descent direction,
//! backtracking that never accepts an increase, the restart and the rejected step).

use convergent_l2o::eval::{probes, run, RunConfig};
use convergent_l2o::optim::{
    backtrack, curvature_condition, is_descent_direction, Algorithm, Bfgs, Frozen,
    LearnedOptimizer, LoaBfgs, SAFEGUARD_EPS,
};
use convergent_l2o::problems::data::{binary_design, Mnist, Split};
use convergent_l2o::problems::{
    standard_normal_point, LoaQuadratics, Problem, Ridge, SyntheticLogistic,
};
use convergent_l2o::tape::Var;
use nalgebra::{dmatrix, DMatrix, DVector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

type Point = DMatrix<f64>;

const MNIST: &str = "../shared/data/mnist-10k";

/// What a run did: `f(x_0..=x_steps)`, and per step the step size, the skipped updates and
/// the fallbacks (0 learned/quasi-Newton step, 1 restart: not a descent direction, 2 restart:
/// Armijo failed, 3 rejected).
struct Run {
    f: Vec<f64>,
    alpha: Vec<f64>,
    skipped: Vec<f64>,
    fallback: Vec<f64>,
}

fn trace(alg: &dyn Algorithm<f64>, p: &dyn Problem<f64>, x: &Point, steps: usize) -> Run {
    let cfg = RunConfig::bare(steps)
        .with(probes::objective(steps))
        .with(probes::reported("alpha"))
        .with(probes::reported("skipped"))
        .with(probes::reported("fallback"));
    let out = run(alg, p, x, &cfg).unwrap();
    assert_eq!(
        out.trace.non_finite_at,
        None,
        "{} went non-finite",
        alg.name()
    );
    Run {
        f: out.trace.values("objective"),
        alpha: out.trace.values("alpha"),
        skipped: out.trace.values("skipped"),
        fallback: out.trace.values("fallback"),
    }
}

/// Every value finite, no step increases f (beyond rounding of the value itself), the run
/// ends at or below f(x_0), and a rejected step leaves f where it was.
fn assert_descent(r: &Run, what: &str) {
    assert!(r.f.iter().all(|v| v.is_finite()), "{what}: {:?}", r.f);
    assert!(r.alpha.iter().all(|a| a.is_finite() && *a >= 0.0), "{what}");
    for k in 1..r.f.len() {
        let tol = 1e-13 * r.f[k - 1].abs().max(1e-300);
        assert!(
            r.f[k] <= r.f[k - 1] + tol,
            "{what}: f rose at step {k}: {:e} -> {:e} (alpha {}, fallback {})",
            r.f[k - 1],
            r.f[k],
            r.alpha[k - 1],
            r.fallback[k - 1]
        );
        if r.fallback[k - 1] == 3.0 {
            assert_eq!(r.f[k], r.f[k - 1], "{what}: a rejected step moved x");
        }
    }
    assert!(r.f.last().unwrap() <= &r.f[0], "{what}: ends above f(x_0)");
}

/// The BFGS-initialized model with every weight moved by `size * U(-1, 1)`, or (`size` < 0)
/// every weight replaced by `|size| * N(0, 1)`: adversarial learned updates.
fn model(seed: u64, size: f64) -> LoaBfgs<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m = LoaBfgs::bfgs_init(&mut rng);
    let mut p = m.params().clone();
    for (_, v) in p.iter_mut() {
        v.iter_mut().for_each(|w| {
            if size < 0.0 {
                let z: f64 = StandardNormal.sample(&mut rng);
                *w = -size * z;
            } else {
                *w += size * rng.gen_range(-1.0..1.0)
            }
        });
    }
    m.set_params(p).unwrap();
    m
}

/// The rows `skip..skip + samples` of a two-class MNIST design with 4 x 4 pooling (50
/// columns), or `None` without the data.
fn mnist_design(skip: usize, samples: usize) -> Option<(DMatrix<f64>, Vec<f64>)> {
    let data = Mnist::load(MNIST.as_ref()).ok()?;
    Some(binary_design(&data, Split::MetaTrain, (3, 8), samples, skip, 4).unwrap())
}

/// Random problems in and out of LOA's training distribution, each with its `x_{-1}`.
fn problems(seed: u64) -> Vec<(String, Box<dyn Problem<f64>>, Point)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out: Vec<(String, Box<dyn Problem<f64>>, Point)> = Vec::new();
    let quad = LoaQuadratics::new(20).unwrap();
    for i in 0..3 {
        let p = quad.sample(&mut rng).unwrap();
        out.push((
            format!("quadratic {i}"),
            Box::new(p),
            standard_normal_point(20, &mut rng),
        ));
    }
    for (dim, samples, lambda) in [(60, 120, 0.1), (40, 30, 1e-3)] {
        let p = Ridge::random(dim, samples, lambda, &mut rng).unwrap();
        let x = standard_normal_point(dim, &mut rng);
        out.push((format!("ridge {dim}x{samples}"), Box::new(p), x));
    }
    for (dim, samples) in [(10, 50), (60, 300)] {
        let p = SyntheticLogistic::random(dim, samples, &mut rng).unwrap();
        let x = standard_normal_point(dim, &mut rng);
        out.push((format!("logistic {dim}x{samples}"), Box::new(p), x));
    }
    if let Some((a, b)) = mnist_design(seed as usize * 50, 400) {
        let ridge = Ridge::new(a.clone(), DVector::from_column_slice(&b), 0.1).unwrap();
        let x = standard_normal_point(a.ncols(), &mut rng);
        out.push(("MNIST ridge".into(), Box::new(ridge), x.clone()));
        let logistic = SyntheticLogistic::from_data(&a, &b).unwrap();
        out.push(("MNIST logistic".into(), Box::new(logistic), x));
    } else {
        eprintln!("MNIST problems skipped: {MNIST} not found");
    }
    out
}

#[test]
fn no_loa_or_bfgs_step_increases_f_in_or_out_of_distribution() {
    let mut fallbacks = [0usize; 4];
    let mut runs = 0;
    for seed in 0..3u64 {
        let models = [
            ("BFGS init", model(seed, 0.0)),
            ("perturbed 0.1", model(seed + 10, 0.1)),
            ("perturbed 3", model(seed + 20, 3.0)),
            ("random N(0, 10^2)", model(seed + 30, -10.0)),
        ];
        for (name, p, x) in problems(seed) {
            let r = trace(&Bfgs, &*p, &x, 60);
            assert_descent(&r, &format!("BFGS on {name}"));
            for (m, loa) in &models {
                let r = trace(&Frozen(loa), &*p, &x, 60);
                assert_descent(&r, &format!("LOA ({m}) on {name}, seed {seed}"));
                for f in &r.fallback {
                    fallbacks[*f as usize] += 1;
                }
                runs += 1;
            }
        }
    }
    // The adversarial models do reach the safeguards (else this test could not fail).
    assert!(
        fallbacks[1] > 0,
        "no ascent direction in {runs} runs: {fallbacks:?}"
    );
}

#[test]
fn safeguards_leave_in_distribution_loa_untouched() {
    let mut rng = StdRng::seed_from_u64(5);
    let quad = LoaQuadratics::new(20).unwrap();
    let loa = model(6, 0.0);
    for _ in 0..4 {
        let p = quad.sample(&mut rng).unwrap();
        let x = standard_normal_point(20, &mut rng);
        // Before BFGS reaches F* to rounding, no safeguard triggers: it is the original.
        let r = trace(&Frozen(&loa), &p, &x, 12);
        assert!(r.fallback.iter().all(|&f| f == 0.0), "{:?}", r.fallback);
        assert!(r.skipped.iter().all(|&s| s == 0.0), "{:?}", r.skipped);
        let b = trace(&Bfgs, &p, &x, 12);
        assert_eq!(r.alpha, b.alpha);
    }
}

#[test]
fn curvature_condition_and_descent_test() {
    let s = dmatrix![1.0; 2.0];
    assert!(curvature_condition(&s, &dmatrix![1.0; 0.0]));
    assert!(!curvature_condition(&s, &dmatrix![-1.0; 0.0]));
    assert!(!curvature_condition(&s, &dmatrix![2.0; -1.0])); // sᵀy = 0
                                                             // Below the relative tolerance: sᵀy = ε/10 |s||y|.
    let y = dmatrix![-2.0; 1.0] + &s * (SAFEGUARD_EPS / 10.0);
    assert!(!curvature_condition(&s, &y));
    assert!(!curvature_condition(&s, &dmatrix![f64::INFINITY; 0.0]));
    assert!(!curvature_condition(&dmatrix![0.0; 0.0], &s));

    let g = dmatrix![1.0; -1.0];
    assert!(is_descent_direction(&(-&g), &g));
    assert!(is_descent_direction(&dmatrix![-1.0; -0.5], &g));
    assert!(!is_descent_direction(&g, &g));
    assert!(!is_descent_direction(&dmatrix![1.0; 1.0], &g)); // orthogonal
    assert!(!is_descent_direction(&dmatrix![0.0; 0.0], &g));
    assert!(!is_descent_direction(&dmatrix![f64::NAN; 0.0], &g));
}

#[test]
fn backtracking_never_accepts_an_increase() {
    // f(x) = x², x = 1, d = -10: α = 1 overshoots, α = 0.1 reaches 0.
    assert_eq!(
        backtrack(|a| (1.0 - 10.0 * a).powi(2), 1.0, -20.0, 5),
        Some(0.1)
    );
    // Exhausted: the original took α = 1e-5 here; now no step.
    assert_eq!(backtrack(|a| 1.0 + a, 1.0, -1.0, 5), None);
    // The slope claims descent but φ rises: never accepted, however small α.
    assert_eq!(backtrack(|a| 1.001 + a, 1.0, -1e-30, 30), None);
    // Ascent direction: the original's test `φ(α) <= f0 + c1 α slope` accepts this rise.
    let phi = |a: f64| 1.0 + 0.001 * a;
    assert!(phi(1.0) <= 1.0 + 1e-2 * 1.0);
    assert_eq!(backtrack(phi, 1.0, 1.0, 5), None);
    // Non-finite trial values are failures, the next α is tried.
    assert_eq!(
        backtrack(|a| if a > 0.5 { f64::NAN } else { 0.5 }, 1.0, -1.0, 5),
        Some(0.1)
    );
    assert_eq!(backtrack(|_| 0.0, f64::NAN, -1.0, 5), None);
    assert_eq!(backtrack(|_| 0.0, 1.0, f64::NAN, 5), None);
    assert_eq!(backtrack(|_| 0.0, 1.0, -1.0, 0), None);
}

/// Rosenbrock's function in `n` dimensions (non-convex: pairs with `sᵀy <= 0` occur).
struct Rosenbrock(usize);

impl Problem<f64> for Rosenbrock {
    fn dim(&self) -> usize {
        self.0
    }
    fn loss<'t>(&self, x: Var<'t, f64>, _: usize) -> Var<'t, f64> {
        let n = self.0;
        let tape = x.tape();
        let shift = |from: usize| {
            tape.constant(DMatrix::from_fn(n - 1, n, |i, j| {
                f64::from(u8::from(j == i + from))
            }))
        };
        let (head, tail) = (shift(0).matmul(x), shift(1).matmul(x));
        let ones = tape.constant(DMatrix::from_element(n - 1, 1, 1.0));
        (tail - head.square()).square().sum().scale(100.0) + (ones - head).square().sum()
    }
    fn smoothness(&self) -> Option<f64> {
        Some(2000.0)
    }
}

#[test]
fn nonconvex_curvature_failures_are_skipped_and_f_still_decreases() {
    let mut skipped = 0.0;
    let mut rng = StdRng::seed_from_u64(9);
    let loa = model(1, 0.5);
    for _ in 0..6 {
        let p = Rosenbrock(6);
        let x = standard_normal_point::<f64>(6, &mut rng) * 1.5;
        for (name, alg) in [
            ("BFGS", Box::new(Bfgs) as Box<dyn Algorithm<f64>>),
            ("LOA", Box::new(Frozen(&loa))),
        ] {
            let cfg = RunConfig::bare(1);
            if run(&*alg, &p, &x, &cfg).is_err() {
                continue; // no positive Barzilai-Borwein step at x_{-1}
            }
            let r = trace(&*alg, &p, &x, 150);
            assert_descent(&r, &format!("{name} on Rosenbrock"));
            skipped += r.skipped.iter().sum::<f64>();
        }
    }
    assert!(
        skipped > 0.0,
        "no curvature failure met: the test would not test it"
    );
}

/// A quadratic whose update-time gradient points the wrong way (an oracle error): no step
/// along `-H g` or `-γ g` decreases f. The warm-up (off the record) sees the true gradient.
struct LyingGradient(Ridge);

impl Problem<f64> for LyingGradient {
    fn dim(&self) -> usize {
        Problem::<f64>::dim(&self.0)
    }
    fn loss<'t>(&self, x: Var<'t, f64>, step: usize) -> Var<'t, f64> {
        self.0.loss(x, step)
    }
    fn loss_and_grad<'t>(
        &self,
        x: Var<'t, f64>,
        step: usize,
        create_graph: bool,
    ) -> (Var<'t, f64>, Var<'t, f64>) {
        let (f, g) = self.0.loss_and_grad(x, step, create_graph);
        (f, -g)
    }
    fn smoothness(&self) -> Option<f64> {
        Problem::<f64>::smoothness(&self.0)
    }
}

#[test]
fn a_step_without_decrease_is_rejected_and_x_stays() {
    let mut rng = StdRng::seed_from_u64(3);
    let p = LyingGradient(Ridge::random(8, 12, 0.1, &mut rng).unwrap());
    let x = standard_normal_point(8, &mut rng);
    let loa = model(4, 0.0);
    for alg in [&Bfgs as &dyn Algorithm<f64>, &Frozen(&loa)] {
        let r = trace(alg, &p, &x, 10);
        assert_descent(&r, &alg.name());
        // Every step rejected (the original moved: α = 1e-5 after 5 failures).
        assert!(r.fallback.iter().all(|&f| f == 3.0), "{:?}", r.fallback);
        assert!(r.alpha.iter().all(|&a| a == 0.0));
        assert!(r.f.iter().all(|&f| f == r.f[0]));
    }
    // At F* to rounding no step decreases f: BFGS's steps are then rejected (the original
    // moved by α = 1e-5 whatever f did).
    let q = Ridge::random(8, 12, 0.1, &mut rng).unwrap();
    let r = trace(&Bfgs, &q, &x, 80);
    assert_descent(&r, "BFGS to rounding");
    assert!(r.fallback.contains(&3.0), "{:?}", r.fallback);
}

#[test]
fn the_generalized_update_can_lose_positive_definiteness() {
    // Root cause of the ascent directions: H = I, d = (2, 0), Δg = (1, 0) (dᵀΔg > 0), so BFGS
    // (u = d) stays positive definite, but u = (1, 2) gives [[2, 2], [2, -3]].
    let tape = convergent_l2o::tape::Tape::<f64>::new();
    let h = tape.constant(DMatrix::identity(2, 2));
    let d = tape.constant(dmatrix![2.0; 0.0]);
    let dg = tape.constant(dmatrix![1.0; 0.0]);
    let s = d - h.matmul(dg);
    let eig = |u: DMatrix<f64>| {
        let (h1, skipped) = convergent_l2o::optim::generalized_bfgs(h, tape.constant(u), s, dg);
        assert!(!skipped);
        h1.value().symmetric_eigenvalues().min()
    };
    assert!(eig(dmatrix![2.0; 0.0]) > 0.0);
    let lowest = eig(dmatrix![1.0; 2.0]);
    assert!(lowest < 0.0, "{lowest}");
    // Along the eigenvector of that negative eigenvalue, -H g is an ascent direction.
    let h1 = DMatrix::from_row_slice(2, 2, &[2.0, 2.0, 2.0, -3.0]);
    let eigen = h1.clone().symmetric_eigen();
    let i = if eigen.eigenvalues[0] < 0.0 { 0 } else { 1 };
    let g: DMatrix<f64> = DMatrix::from_column_slice(2, 1, eigen.eigenvectors.column(i).as_slice());
    let d: DMatrix<f64> = -(&h1 * &g);
    assert!(!is_descent_direction(&d, &g));
}
