//! Math-structured learned optimizers on their benchmark problems (issues 7, 18): L2O-PA (Liu
//! et al., ICML 2023) on LASSO and ℓ1-logistic regression, LOA (Castera & Ochs) in and out of
//! distribution.
//!
//! ```text
//! cargo run --release --example structured_l2o -- --quick
//! cargo run --release --example structured_l2o -- --part pa-lasso --out out/structured_l2o
//! cargo run --release --example structured_l2o -- --part loa-ood   # reuses loa_params.bin
//! ```

mod loa;
mod loa_ood;
mod pa;
mod pa_data;
mod plot;

use clap::{Parser, ValueEnum};
use convergent_l2o::optim::LoaBfgs;
use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

/// Which experiment to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PartArg {
    /// L2O-PA on LASSO.
    PaLasso,
    /// L2O-PA on ℓ1-logistic regression.
    PaLogistic,
    /// LOA: meta-training, in distribution, then out of distribution.
    Loa,
    /// LOA out of distribution only, with the parameters saved by `--part loa` in `--out`.
    LoaOod,
    /// Everything available.
    All,
}

/// Meta-trains structured learned optimizers and writes relative-error curves (CSV, SVG).
#[derive(Parser, Debug)]
struct Cli {
    /// Output directory.
    #[arg(long, default_value = "out/structured_l2o")]
    out: PathBuf,
    /// Small sizes and few meta-steps (under a minute in release mode).
    #[arg(long)]
    quick: bool,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 118)]
    seed: u64,
    /// Which part to run.
    #[arg(long, value_enum, default_value_t = PartArg::All)]
    part: PartArg,
    /// L2O-PA meta-training windows (default: the paper's 500 meta-steps x 5 windows; 100
    /// with --quick).
    #[arg(long)]
    pa_windows: Option<usize>,
    /// L2O-PA instances per window (default: the paper's 64; 4 with --quick).
    #[arg(long)]
    pa_batch: Option<usize>,
    /// L2O-PA synthetic test instances per test set (default 64, the paper 1024; 16 with
    /// --quick).
    #[arg(long)]
    pa_eval_instances: Option<usize>,
    /// L2O-PA test iterations (default: the paper's 1000; 300 with --quick).
    #[arg(long)]
    pa_eval_iterations: Option<usize>,
    /// L2O-PA: skip meta-training, evaluate the parameters saved by a previous run in --out.
    #[arg(long)]
    pa_load: bool,
}

fn main() -> Result<(), Box<dyn Error>> {
    let cli = Cli::parse();
    std::fs::create_dir_all(&cli.out)?;
    let start = Instant::now();
    let all = cli.part == PartArg::All;
    let mut budget = pa::Budget::new(cli.quick);
    budget.windows = cli.pa_windows.unwrap_or(budget.windows);
    budget.batch = cli.pa_batch.unwrap_or(budget.batch);
    budget.eval_instances = cli.pa_eval_instances.unwrap_or(budget.eval_instances);
    budget.eval_iterations = cli.pa_eval_iterations.unwrap_or(budget.eval_iterations);
    budget.load = cli.pa_load;
    if budget.batch == 0 || budget.eval_instances == 0 || budget.eval_iterations == 0 {
        return Err("--pa-batch, --pa-eval-instances and --pa-eval-iterations must be > 0".into());
    }
    if all || cli.part == PartArg::PaLasso {
        pa::run_lasso(&cli.out, cli.quick, cli.seed, budget)?;
    }
    if all || cli.part == PartArg::PaLogistic {
        pa::run_logistic(&cli.out, cli.quick, cli.seed, budget)?;
    }
    if all || cli.part == PartArg::Loa {
        loa::run(&cli.out, cli.quick, cli.seed)?;
    }
    if cli.part == PartArg::LoaOod {
        let path = cli.out.join("loa_params.bin");
        let model = LoaBfgs::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        loa_ood::run(&cli.out, cli.quick, cli.seed, &model)?;
    }
    println!(
        "done in {:.1}s; outputs in {}",
        start.elapsed().as_secs_f64(),
        cli.out.display()
    );
    Ok(())
}
