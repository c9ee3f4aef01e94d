//! Times the paper's meta-step: the same computation as `../shared/bench/jax_ref.py`
//! (N = 10 trajectories of T = 50 steps of the 784 -> 10 classifier on sequential minibatches
//! of 128, ConvergentL2O with the tied REN and the 15701 -> 3 -> 3 -> 7850 Omega, meta-loss
//! `Σ_t 0.95^(T-1-t) f(x_t)`, second-order terms unless `--first-order`, Adam 1e-2).
//!
//! Prints a line per meta-step (wall time, CPU time of all threads, meta-loss, resident
//! memory) and, last,
//! `meta_step_bench meta_step_seconds=<median> peak_rss_mb=<n> rss_growth_mb=<n>` (resident
//! memory after the last timed meta-step minus after the first: `--steps 200` checks that
//! memory stays flat). Meta-step 0 is a warm-up and, like jax_ref.py's compile step, not
//! counted in the median.
//!
//! Usage: cargo run --release --example meta_step_bench -- [DATA_DIR] [--steps 5] [--T 50]
//!        [--n-init 10] [--act tanh] [--f64] [--first-order]
//! `benches/compare_jax.sh` runs it next to jax_ref.py and prints the ratios.

use clap::Parser;
use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
use convergent_l2o::models::Activation;
use convergent_l2o::optim::{ConvergentL2O, StepSize};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{InitialPoint, SequentialClassifiers};
use convergent_l2o::tape::Scalar;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Times the paper's meta-step (the computation of jax_ref.py)")]
struct Args {
    /// Directory of the MNIST IDX files.
    #[arg(default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k"))]
    data: PathBuf,
    /// Timed meta-steps (after one warm-up).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    steps: u64,
    /// Inner steps per trajectory.
    #[arg(long = "T", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    horizon: u64,
    /// Trajectories per meta-step.
    #[arg(long = "n-init", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    n_init: u64,
    /// The classifier's activation: tanh, sigmoid or relu.
    #[arg(long, default_value = "tanh")]
    act: String,
    /// Compute in f64 (default f32).
    #[arg(long)]
    f64: bool,
    /// Drop the second-order terms (stop_gradient on grad f).
    #[arg(long)]
    first_order: bool,
    /// Seed of the meta-parameters and initial points.
    #[arg(long, default_value_t = 0)]
    seed: u64,
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

/// CPU seconds (user + system, all threads) used by this process so far, from
/// /proc/self/stat (0 where unavailable).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    ticks.iter().sum::<f64>() / 100.0
}

fn run<T: Scalar>(args: &Args, data: &Mnist, activation: Activation) -> Result<(), Box<dyn Error>> {
    let estimator = FullBptt {
        trajectories: args.n_init as usize,
        horizon: args.horizon as usize,
        second_order: !args.first_order,
    };
    let family = SequentialClassifiers::new(
        data.split(Split::MetaTrain),
        activation,
        128,
        args.n_init as usize,
        args.horizon as usize,
        InitialPoint::META_TRAIN,
    )?;
    let mut opt = ConvergentL2O::<T>::paper(
        StepSize::OriginalCode,
        &mut StdRng::seed_from_u64(args.seed),
    )?;
    let config = MetaTrainConfig::paper(args.seed);
    let mut trainer = MetaTrainer::<T>::new(config, estimator, WeightedLoss::PAPER)?;
    let mut times = Vec::with_capacity(args.steps as usize);
    let mut first_rss = None;
    let mut last_rss = 0.0;
    for k in 0..=args.steps {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let report = trainer.step(&mut opt, &family)?;
        let seconds = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_start;
        let (rss, _) = rss_mb();
        let what = if k == 0 { "warm-up" } else { "meta-step" };
        println!(
            "{what} {k}: {seconds:.3}s cpu={cpu:.2}s meta_loss={:.4} rss_mb={rss:.0}",
            report.meta_loss
        );
        if k > 0 {
            times.push(seconds);
            first_rss.get_or_insert(rss);
            last_rss = rss;
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    let (_, peak) = rss_mb();
    let growth = last_rss - first_rss.unwrap_or(last_rss);
    println!(
        "meta_step_bench meta_step_seconds={median:.4} peak_rss_mb={peak:.0} rss_growth_mb={growth:.0} T={} n_init={} act={} dtype={} first_order={}",
        args.horizon as usize,
        args.n_init as usize,
        args.act,
        T::NAME,
        args.first_order
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let activation = match args.act.as_str() {
        "tanh" => Activation::Tanh,
        "sigmoid" => Activation::Sigmoid,
        "relu" => Activation::Relu,
        other => return Err(format!("--act must be tanh, sigmoid or relu, got '{other}'").into()),
    };
    let data = Mnist::load(&args.data)?;
    if args.f64 {
        run::<f64>(&args, &data, activation)
    } else {
        run::<f32>(&args, &data, activation)
    }
}
