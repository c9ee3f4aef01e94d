//! The main job, no data needed: meta-train a ConvergentL2O optimizer on random smooth problems
//! (quadratics and synthetic logistic regression), then compare it with tuned GD, NAG, Adam and
//! RMSprop on unseen problems, past its training horizon, and certify its trajectories with
//! Lemma 1.
//!
//! Usage: cargo run --release --example quickstart -- [--meta-steps 2000] [--seed 0]

use clap::Parser;
use convergent_l2o::eval::{probes, run, RunConfig};
use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
use convergent_l2o::optim::{
    Adam, Algorithm, ConvergentL2O, Frozen, HeavyBall, LearnedOptimizer, Lemma1, MagnitudeRen,
    RmsProp, Sgd, StepSize, Tunable,
};
use convergent_l2o::problems::{
    Draw, FamilyFn, InitialPoint, Logistic, ProblemError, Quadratic, Sampled,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

const DIM: usize = 10;
/// Every problem of the distribution has β <= 1, so η = 0.9 < 1/β meets Theorem 1.
const ETA: f64 = 0.9;
const TRAIN_HORIZON: usize = 30;
const EVAL_HORIZON: usize = 150;

#[derive(Parser, Debug)]
#[command(
    about = "Meta-train a ConvergentL2O on random smooth problems and compare it with tuned baselines"
)]
struct Args {
    /// Meta-steps of meta-training.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    meta_steps: u64,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Half quadratics (eigenvalues in [0.02, 1]), half ridge logistic regressions (β ≈ 0.45).
fn smooth_problem(draw: Draw, rng: &mut StdRng) -> Result<Sampled<f64>, ProblemError> {
    let x0 = |rng: &mut StdRng| InitialPoint::Normal { std: 1.0 }.sample(DIM, rng);
    if draw.index.is_multiple_of(2) {
        let problem = Quadratic::random(DIM, 0.02, 1.0, rng);
        Sampled::new(problem, x0(rng))
    } else {
        let problem = Logistic::random(DIM, 100, 1e-3, rng);
        Sampled::new(problem, x0(rng))
    }
}

/// A problem, its initial point and its optimal value (from 3000 NAG steps with lr 1/β).
struct Benchmark {
    sampled: Sampled<f64>,
    f_star: f64,
}

fn benchmarks(seed: u64, n: usize) -> Vec<Benchmark> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let draw = Draw {
                meta_step: 0,
                index: i,
            };
            let sampled = smooth_problem(draw, &mut rng).expect("valid problem");
            let lr = 1.0 / sampled.problem.smoothness().expect("known smoothness");
            let nag = Sgd::nesterov(lr, 0.9).expect("valid");
            let out = run(&nag, &*sampled.problem, &sampled.x0, &RunConfig::new(3000))
                .expect("valid run");
            let f_star = out
                .trace
                .values("loss")
                .into_iter()
                .fold(f64::INFINITY, f64::min);
            Benchmark { sampled, f_star }
        })
        .collect()
}

/// f(x_t) for t < steps (+inf after a divergence), |∇f(x_t)|² and, when reported, |v_t|².
struct Trace {
    f: Vec<f64>,
    g2: Vec<f64>,
    v2: Vec<f64>,
}

fn trace(algorithm: &dyn Algorithm<f64>, b: &Benchmark, steps: usize) -> Trace {
    let cfg = RunConfig::new(steps)
        .with(probes::grad_norm_sq())
        .with(probes::reported_norm_sq("v"));
    let out = run(algorithm, &*b.sampled.problem, &b.sampled.x0, &cfg).expect("valid run");
    let mut f = out.trace.values("loss");
    f.resize(steps, f64::INFINITY);
    Trace {
        f,
        g2: out.trace.values("grad_norm_sq"),
        v2: out.trace.values("v_norm_sq"),
    }
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// The learning rate minimizing the mean f(x_T) at the training horizon, over a log grid.
fn tune(base: &dyn Tunable<f64>, tuning: &[Benchmark]) -> f64 {
    let grid: Vec<f64> = (0..17)
        .map(|k| 10f64.powf(-3.0 + 0.25 * k as f64))
        .collect();
    let score = |lr: f64| {
        let opt = base.with_lr(lr).expect("positive rate");
        mean(
            tuning
                .iter()
                .map(|b| trace(&*opt, b, TRAIN_HORIZON + 1).f[TRAIN_HORIZON]),
        )
    };
    let scores: Vec<f64> = grid.iter().map(|&lr| score(lr)).collect();
    let best = (0..grid.len())
        .min_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .expect("a non-empty grid");
    grid[best]
}

fn main() {
    let args = Args::parse();
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let ren = MagnitudeRen::dense(DIM, 8, 8, 1.0).expect("valid REN");
    let mut opt =
        ConvergentL2O::<f64>::new(DIM, ren, 32, StepSize::Constant { eta: ETA }, &mut rng)
            .expect("valid");
    let config = MetaTrainConfig {
        lr: 1e-2,
        clip: Some(100.0),
        seed: args.seed,
    };
    let estimator = FullBptt {
        trajectories: 8,
        horizon: TRAIN_HORIZON,
        second_order: true,
    };
    let mut trainer =
        MetaTrainer::new(config, estimator, WeightedLoss::PAPER).expect("valid settings");
    let family = FamilyFn::new("quadratics and logistic regressions", smooth_problem);
    println!(
        "meta-training ConvergentL2O ({} meta-parameters) on random quadratics and logistic \
         regressions, dim {DIM}, T = {TRAIN_HORIZON}",
        opt.params().num_scalars()
    );
    let meta_steps = args.meta_steps as usize;
    for k in 0..meta_steps {
        let report = trainer.step(&mut opt, &family).unwrap_or_else(|e| {
            eprintln!("quickstart: {e}");
            std::process::exit(1)
        });
        if let Some(w) = &report.warning {
            eprintln!("quickstart: warning: {w}");
        }
        if k % 100 == 0 || k + 1 == meta_steps {
            println!(
                "  meta-step {:4}  meta-loss {:.5}  mean f(x_T) {:.5}  |grad| {:.3e}",
                k, report.meta_loss, report.final_loss, report.grad_norm
            );
        }
    }
    println!("meta-training took {:.1} s", start.elapsed().as_secs_f64());

    let tuning = benchmarks(args.seed + 1000, 16);
    let unseen = benchmarks(args.seed + 2000, 40);
    let baselines: [Box<dyn Tunable<f64>>; 4] = [
        Box::new(HeavyBall::gd(0.1).expect("valid")),
        Box::new(Sgd::nesterov(0.1, 0.9).expect("valid")),
        Box::new(Adam::default()),
        Box::new(RmsProp::default()),
    ];
    println!(
        "\n{} unseen problems, x0 ~ N(0, 1); learning rates tuned on {} other problems at t = {TRAIN_HORIZON}",
        unseen.len(),
        tuning.len()
    );
    println!(
        "{:<14} {:>9} {:>13} {:>13} {:>15}",
        "optimizer", "lr", "f(x_30)-f*", "f(x_150)-f*", "|grad f(x_150)|"
    );
    let row = |name: &str, lr: String, traces: &[Trace]| {
        let at = |t: usize| mean(traces.iter().zip(&unseen).map(|(tr, b)| tr.f[t] - b.f_star));
        let g = mean(
            traces
                .iter()
                .map(|tr| tr.g2.last().copied().unwrap_or(f64::INFINITY).sqrt()),
        );
        println!(
            "{name:<14} {lr:>9} {:>13.6} {:>13.6} {:>15.3e}",
            at(TRAIN_HORIZON),
            at(EVAL_HORIZON - 1),
            g
        );
    };
    for base in &baselines {
        let lr = tune(&**base, &tuning);
        let tuned = base.with_lr(lr).expect("positive rate");
        let traces: Vec<Trace> = unseen
            .iter()
            .map(|b| trace(&*tuned, b, EVAL_HORIZON))
            .collect();
        row(&tuned.name(), format!("{lr:.3}"), &traces);
    }
    // What the learned term adds: the same gradient step without v.
    let plain = HeavyBall::gd(ETA).expect("valid");
    let traces: Vec<Trace> = unseen
        .iter()
        .map(|b| trace(&plain, b, EVAL_HORIZON))
        .collect();
    row("GD (same eta)", format!("{ETA:.3}"), &traces);
    let learned: Vec<Trace> = unseen
        .iter()
        .map(|b| trace(&Frozen(&opt), b, EVAL_HORIZON))
        .collect();
    row("ConvergentL2O", format!("eta {ETA}"), &learned);

    let mut certified = 0;
    let mut worst: f64 = 0.0;
    for (b, trace) in unseen.iter().zip(&learned) {
        let beta = b.sampled.problem.smoothness().expect("known smoothness");
        let lemma = Lemma1::new(beta, ETA).expect("eta < 1/beta on this distribution");
        let gap = trace.f[0] - b.f_star;
        let cert = lemma.check(gap, &trace.g2, &trace.v2);
        certified += cert.holds() as usize;
        worst = worst.max(cert.sum_grad_sq / cert.bound);
    }
    println!(
        "\nLemma 1 certificate (sum_t |grad f(x_t)|^2 <= bound from f(x0) - inf f and sum_t |v_t|^2): \
         holds on {certified}/{} unseen problems; largest ratio sum/bound = {worst:.3}",
        unseen.len()
    );
    println!(
        "quickstart done seconds={:.1}",
        start.elapsed().as_secs_f64()
    );
}
