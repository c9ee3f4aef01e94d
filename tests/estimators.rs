//! The gradient estimators against exact answers: on gradient descent with a learned step size
//! on a fixed quadratic, the gradient of the Gaussian-smoothed full-horizon meta-loss (Gauss-
//! Hermite quadrature over the perturbation of exact tape gradients) agrees with the mean of ES
//! estimates and with the mean of PES estimates summed over the truncation windows of an inner
//! problem, within 3 standard errors, while truncated BPTT is off by many; meta-training the
//! step size on a long horizon, PES finds the step that minimizes the full-horizon loss and
//! truncated BPTT does not (short-horizon bias); same seed same bits on any number of threads;
//! PES resumes exactly from a checkpoint.

use convergent_l2o::meta::{
    load_checkpoint, save_checkpoint, Es, EstimateContext, FullBptt, GradientEstimator,
    MetaTrainConfig, MetaTrainer, Pes, TruncatedBptt, WeightedLoss, Workers,
};
use convergent_l2o::optim::{LearnedHeavyBall, LearnedOptimizer};
use convergent_l2o::problems::{FamilyFn, ProblemFamily, Quadratic, Sampled};
use nalgebra::{DMatrix, SymmetricEigen};
use rand::rngs::StdRng;

/// The sum of the losses (γ_t = 1): every step of the horizon counts the same.
const SUM: WeightedLoss = WeightedLoss {
    decay: 1.0,
    grad_weight: 0.0,
};

/// The fixed problem: `1/2 Σ_i a_i x_i²` from `x0`.
fn fixed_from(eigs: &[f64], x0: &[f64]) -> impl ProblemFamily<f64> {
    let n = eigs.len();
    let a = DMatrix::from_diagonal(&nalgebra::DVector::from_column_slice(eigs));
    let q = Quadratic::new(a, DMatrix::zeros(n, 1)).unwrap();
    let x0 = DMatrix::from_column_slice(n, 1, x0);
    FamilyFn::new("fixed quadratic", move |_, _: &mut StdRng| {
        Sampled::new(q.clone(), x0.clone())
    })
}

/// The fixed problem from `x0 = 1`.
fn fixed(eigs: &[f64]) -> impl ProblemFamily<f64> {
    fixed_from(eigs, &vec![1.0; eigs.len()])
}

fn gd(lr: f64) -> LearnedHeavyBall<f64> {
    LearnedHeavyBall::new(lr, None)
}

fn config(seed: u64) -> MetaTrainConfig {
    MetaTrainConfig {
        lr: 1e-2,
        clip: None,
        seed,
    }
}

/// d/d lr of the full-horizon meta-loss at `lr`, exactly (the tape through all T steps).
fn exact(family: &dyn ProblemFamily<f64>, lr: f64, horizon: usize) -> f64 {
    let bptt = FullBptt {
        trajectories: 1,
        horizon,
        second_order: true,
    };
    let mut trainer = MetaTrainer::new(config(0), bptt, SUM).unwrap();
    let e = trainer.meta_gradient(&gd(lr), family).unwrap();
    e.gradient.get("lr")[0]
}

/// Nodes and weights of `n`-point Gauss-Hermite quadrature for `E_{z ~ N(0, 1)}[h(z)]`
/// (Golub-Welsch: the eigen-decomposition of the Jacobi matrix of the Hermite polynomials).
fn gauss_hermite(n: usize) -> Vec<(f64, f64)> {
    let mut j = DMatrix::zeros(n, n);
    for k in 1..n {
        let b = (k as f64 / 2.0).sqrt();
        j[(k, k - 1)] = b;
        j[(k - 1, k)] = b;
    }
    let eig = SymmetricEigen::new(j);
    (0..n)
        .map(|i| {
            let v0 = eig.eigenvectors[(0, i)];
            (std::f64::consts::SQRT_2 * eig.eigenvalues[i], v0 * v0)
        })
        .collect()
}

/// The gradient of `E_ε[L(lr + ε)]`, ε ~ N(0, σ²): quadrature over exact tape gradients.
fn smoothed(family: &dyn ProblemFamily<f64>, lr: f64, sigma: f64, horizon: usize) -> f64 {
    gauss_hermite(24)
        .iter()
        .map(|(z, w)| w * exact(family, lr + sigma * z, horizon))
        .sum()
}

fn mean_and_standard_error(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// The lr-gradient of one estimate of `estimator` at meta-step `k`.
fn estimate(
    estimator: &mut dyn GradientEstimator<f64>,
    family: &dyn ProblemFamily<f64>,
    opt: &LearnedHeavyBall<f64>,
    k: usize,
) -> f64 {
    let ctx = EstimateContext {
        meta_step: k,
        seed: 5,
        optimizer: opt,
        family,
        meta_loss: &SUM,
        workers: Workers::single(),
    };
    estimator.estimate(&ctx).unwrap().gradient.get("lr")[0]
}

#[test]
fn es_and_pes_are_unbiased_for_the_smoothed_full_horizon_gradient_and_truncated_bptt_is_not() {
    let family = fixed(&[0.05, 0.1, 0.3, 0.6, 1.0]);
    let (lr, sigma, horizon, window) = (0.5, 0.02, 200, 20);
    let target = smoothed(&family, lr, sigma, horizon);
    let plain = exact(&family, lr, horizon);
    let opt = gd(lr);

    // ES: 150 estimates of 16 antithetic pairs over the whole horizon.
    let mut es = Es {
        sigma,
        pairs: 16,
        horizon,
    };
    let es_values: Vec<f64> = (0..150)
        .map(|k| estimate(&mut es, &family, &opt, k))
        .collect();
    let (es_mean, es_se) = mean_and_standard_error(&es_values);

    // PES: each inner problem spans 10 windows; the sum of a problem's 10 window estimates
    // estimates the full-horizon gradient. 150 inner problems of 16 pairs.
    let windows = horizon / window;
    let mut pes = Pes::new(sigma, 16, window, horizon).aligned();
    let pes_values: Vec<f64> = (0..150)
        .map(|e| {
            (0..windows)
                .map(|w| estimate(&mut pes, &family, &opt, e * windows + w))
                .sum()
        })
        .collect();
    let (pes_mean, pes_se) = mean_and_standard_error(&pes_values);

    // Truncated BPTT over the same windows (deterministic here: one fixed problem).
    let mut tbptt = TruncatedBptt::new(1, horizon, window);
    let truncated: f64 = (0..windows)
        .map(|w| estimate(&mut tbptt, &family, &opt, w))
        .sum();

    println!(
        "smoothed {target:.5} (plain {plain:.5}); ES {es_mean:.5} ± {es_se:.5}; \
         PES {pes_mean:.5} ± {pes_se:.5}; truncated BPTT {truncated:.5}"
    );
    // At this σ the smoothing moves the gradient by a fraction of the estimators' errors, so
    // ES's target and PES's (independent perturbations per window) coincide at this precision.
    assert!(
        (target - plain).abs() < 0.25 * es_se.min(pes_se),
        "{target} vs {plain}"
    );
    assert!(
        (es_mean - target).abs() <= 3.0 * es_se,
        "ES {es_mean} ± {es_se} vs {target}"
    );
    assert!(
        (pes_mean - target).abs() <= 3.0 * pes_se,
        "PES {pes_mean} ± {pes_se} vs {target}"
    );
    assert!(
        (truncated - target).abs() >= 5.0 * pes_se,
        "truncated BPTT {truncated} should be far from {target} (PES error {pes_se})"
    );
}

/// The full-horizon meta-loss `Σ_{t<T} f(x_t)` of GD with step `lr` on `1/2 Σ a_i x_i²` from
/// `x0`, in closed form.
fn full_horizon_loss(eigs: &[f64], x0: &[f64], lr: f64, horizon: usize) -> f64 {
    eigs.iter()
        .zip(x0)
        .map(|(&a, &x)| {
            let r = (1.0 - lr * a).powi(2);
            0.5 * a * x * x * (0..horizon).map(|t| r.powi(t as i32)).sum::<f64>()
        })
        .sum()
}

fn meta_train(
    estimator: impl GradientEstimator<f64> + 'static,
    family: &dyn ProblemFamily<f64>,
    steps: usize,
) -> f64 {
    let mut opt = gd(1.0);
    let config = MetaTrainConfig {
        lr: 2e-2,
        clip: None,
        seed: 1,
    };
    let mut trainer = MetaTrainer::new(config, estimator, SUM).unwrap();
    for _ in 0..steps {
        trainer.step(&mut opt, family).unwrap();
    }
    opt.params().get("lr")[0]
}

#[test]
fn pes_finds_the_full_horizon_step_size_and_truncated_bptt_has_short_horizon_bias() {
    // Condition number 500, the slow direction ten times farther: the full horizon wants a
    // step near 2/β, a window of 10 steps sees mostly the fast direction.
    let (eigs, x0) = ([0.002, 1.0], [10.0, 1.0]);
    let family = fixed_from(&eigs, &x0);
    let horizon = 1000;
    let loss = |lr: f64| full_horizon_loss(&eigs, &x0, lr, horizon);
    let grid: Vec<f64> = (50..200).map(|i| i as f64 * 0.01).collect();
    let best = grid
        .iter()
        .copied()
        .min_by(|a, b| loss(*a).total_cmp(&loss(*b)))
        .unwrap();
    let pes = meta_train(Pes::new(0.02, 8, 10, horizon), &family, 1500);
    let truncated = meta_train(TruncatedBptt::new(1, horizon, 10), &family, 1500);
    println!("full-horizon optimum {best:.3}; PES {pes:.3}; truncated BPTT {truncated:.3}");
    assert!(
        (pes - best).abs() <= 0.1 * best,
        "PES {pes} vs the optimum {best}"
    );
    assert!(
        best - truncated > 0.2 * best,
        "truncated BPTT {truncated} should stay short of {best}"
    );
}

#[test]
fn estimates_are_the_same_on_any_number_of_threads_and_pes_resumes_exactly() {
    let family = fixed(&[0.1, 0.5, 1.0]);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut opt = LearnedHeavyBall::<f64>::new(0.5, Some(0.3));
            let mut trainer = MetaTrainer::new(config(9), Pes::new(0.05, 4, 5, 30), SUM).unwrap();
            for _ in 0..7 {
                trainer.step(&mut opt, &family).unwrap();
            }
            let mut es_trainer = MetaTrainer::new(
                config(9),
                Es {
                    sigma: 0.05,
                    pairs: 4,
                    horizon: 20,
                },
                SUM,
            )
            .unwrap();
            es_trainer.step(&mut opt, &family).unwrap();
            opt.params().clone()
        })
    };
    let one = on(1);
    assert_eq!(one, on(2));
    assert_eq!(one, on(3));

    // 4 meta-steps, checkpoint, 4 more == 8 straight (particles and accumulators included).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pes.ckpt");
    let new = || MetaTrainer::new(config(9), Pes::new(0.05, 4, 5, 30), SUM).unwrap();
    let (mut straight_opt, mut straight) = (LearnedHeavyBall::<f64>::new(0.5, Some(0.3)), new());
    for k in 0..8 {
        if k == 4 {
            save_checkpoint(&path, &straight, &straight_opt).unwrap();
        }
        straight.step(&mut straight_opt, &family).unwrap();
    }
    let (mut resumed_opt, mut resumed) = (LearnedHeavyBall::<f64>::new(0.9, Some(0.0)), new());
    load_checkpoint(&path, &mut resumed, &mut resumed_opt).unwrap();
    for _ in 0..4 {
        resumed.step(&mut resumed_opt, &family).unwrap();
    }
    assert_eq!(resumed_opt.params(), straight_opt.params());
    assert_eq!(resumed.history(), straight.history());
}

#[test]
fn a_nan_in_a_particle_names_the_meta_step_the_trajectory_and_the_inner_step() {
    let family = fixed(&[0.1, 1.0]);
    // A step size of 1000 on curvature 1 overflows after about 50 steps.
    let mut opt = gd(1e3);
    let mut trainer = MetaTrainer::new(config(0), Pes::new(0.01, 2, 200, 400), SUM).unwrap();
    let err = trainer.step(&mut opt, &family).unwrap_err().to_string();
    assert!(
        err.contains("meta-step 0") && err.contains("inner step") && err.contains("trajectory"),
        "{err}"
    );
}
