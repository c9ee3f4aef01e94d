//! The gradient estimators side by side on the paper's task (ConvergentL2O with the tied REN
//! and Omega on the MNIST classifier): seconds and peak memory of one meta-step of each at an
//! equal inner-step budget (N trajectories, or antithetic pairs, of W steps each), and the
//! spread of its per-sample gradients, `sqrt(mean |g_i|² - |mean g_i|²)`, with which a user
//! can weigh cost against variance (the standard error of an estimate is spread / sqrt(N)).
//!
//! Each estimator runs in a process of its own (the program re-runs itself), so peak memories
//! are the estimator's. Prints one line per estimator:
//! `estimator_bench estimator=<name> seconds=<median> peak_rss_mb=<n> spread=<s> grad_norm=<g>`.
//!
//! Usage: cargo run --release --example estimator_bench -- [--data DIR] [--n 10] [--window 50]
//!        [--horizon 300] [--sigma 1e-3] [--steps 3]

use clap::Parser;
use convergent_l2o::meta::{
    Es, FullBptt, GradientEstimator, MetaTrainConfig, MetaTrainer, Pes, TruncatedBptt, WeightedLoss,
};
use convergent_l2o::models::Activation;
use convergent_l2o::optim::{ConvergentL2O, StepSize};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{InitialPoint, SequentialClassifiers};
use rand::{rngs::StdRng, SeedableRng};
use std::error::Error;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const ESTIMATORS: [&str; 5] = ["bptt", "bptt-first-order", "truncated", "es", "pes"];

#[derive(Parser, Debug)]
#[command(about = "Seconds, peak memory and gradient spread of every gradient estimator")]
struct Args {
    /// MNIST-style data directory.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k"))]
    data: PathBuf,
    /// Trajectories (BPTT) or antithetic pairs (ES, PES) per meta-step.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=1000))]
    n: u64,
    /// Inner steps per trajectory or window.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    window: u64,
    /// Inner-problem horizon of the persistent estimators (truncated BPTT, PES).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    horizon: u64,
    /// Standard deviation of ES/PES perturbations.
    #[arg(long, default_value_t = 1e-3)]
    sigma: f64,
    /// Timed meta-steps (after one warm-up).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    steps: u64,
    /// Run only this estimator (what the program does in its child processes).
    #[arg(long, value_parser = ESTIMATORS)]
    only: Option<String>,
}

/// (current, peak) resident memory in MiB, from /proc/self/status (0 where unavailable).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn estimator(name: &str, a: &Args) -> Box<dyn GradientEstimator<f32>> {
    let (n, w, h) = (a.n as usize, a.window as usize, a.horizon as usize);
    match name {
        "bptt" => Box::new(FullBptt {
            trajectories: n,
            horizon: w,
            second_order: true,
        }),
        "bptt-first-order" => Box::new(FullBptt {
            trajectories: n,
            horizon: w,
            second_order: false,
        }),
        "truncated" => Box::new(TruncatedBptt::new(n, h, w)),
        "es" => Box::new(Es {
            sigma: a.sigma,
            pairs: n,
            horizon: w,
        }),
        _ => Box::new(Pes::new(a.sigma, n, w, h)),
    }
}

fn measure(name: &str, a: &Args) -> Result<(), Box<dyn Error>> {
    let data = Mnist::load(&a.data)?;
    let horizon = if matches!(name, "truncated" | "pes") {
        a.horizon as usize
    } else {
        a.window as usize
    };
    let family = SequentialClassifiers::<f32>::new(
        data.split(Split::MetaTrain),
        Activation::Tanh,
        128,
        a.n as usize,
        horizon,
        InitialPoint::META_TRAIN,
    )?;
    let opt = ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0))?;
    let config = MetaTrainConfig::paper(0);
    let mut trainer = MetaTrainer::new(config, estimator(name, a), WeightedLoss::PAPER)?;
    let mut times = Vec::new();
    let (mut spread, mut norm) = (0.0, 0.0);
    for k in 0..=a.steps {
        let start = Instant::now();
        let e = trainer.meta_gradient(&opt, &family)?;
        if k > 0 {
            times.push(start.elapsed().as_secs_f64());
            spread = e.spread;
            norm = e
                .gradient
                .iter()
                .map(|(_, g)| g.iter().map(|v| (*v as f64).powi(2)).sum::<f64>())
                .sum::<f64>()
                .sqrt();
        }
    }
    times.sort_by(f64::total_cmp);
    let (_, peak) = rss_mb();
    println!(
        "estimator_bench estimator={name} seconds={:.4} peak_rss_mb={peak:.0} spread={spread:.4e} grad_norm={norm:.4e} n={} window={} horizon={horizon}",
        times[times.len() / 2],
        a.n,
        a.window
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    if let Some(name) = &args.only {
        return measure(name, &args);
    }
    println!(
        "one meta-step of each estimator on the paper's task: {} trajectories or pairs of {} steps",
        args.n, args.window
    );
    let exe = std::env::current_exe()?;
    for name in ESTIMATORS {
        let out = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .args(["--only", name])
            .output()?;
        if !out.status.success() {
            return Err(format!("{name}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}
