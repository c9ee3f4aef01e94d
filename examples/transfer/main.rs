//! The any-model convergent learned optimizer (`ConvergentAnyL2O`) on problems it never saw.
//!
//! Usage:
//!   cargo run --release --example transfer [-- demo [--train]]
//!       the shipped optimizer (`pretrained/convergent_any`) on Fashion-MNIST against Adam and
//!       NAG tuned on MNIST, with Theorem 2's bound checked on every step (about a minute);
//!       `--train` meta-trains a new one first (`train` below, into out/transfer/optimizer).
//!   cargo run --release --example transfer -- train --out DIR [--data MNIST_DIR]
//!       meta-trains on the MNIST family of MLP classifiers, writes DIR/optimizer.safetensors,
//!       DIR/config.json and DIR/meta_training.csv.
//!   cargo run --release --example transfer -- eval --optimizer DIR --data DATA --hidden 32
//!       --activation tanh --steps 300 --runs 5 --out OUT
//!       evaluates the optimizer (a directory written by `train`, or the paper's
//!       convergent_l2o_tanh.safetensors on the perceptron, `--hidden ""`) on DATA next to Adam,
//!       SGD, NAG and RMSprop tuned on --tune-on and on DATA's training split (oracle); writes
//!       OUT/accuracy.csv (optimizer,activation,step,mean,std), OUT/update_norms.csv,
//!       OUT/learning_rates.csv and OUT/loss.svg.
//!
//!   cargo run --release --example transfer -- speed
//!       seconds per inner step against Adam on 784-128-10, and the meta-step time.
//!
//! Parts: `train.rs` (meta-training), `eval.rs` (tuning and runs), `demo.rs` (the first
//! command of README), `plots.rs` (the loss figure), `speed.rs` (timings).

mod demo;
mod eval;
mod plots;
mod speed;
mod train;

use clap::{Parser, Subcommand};
use convergent_l2o::models::write_atomically;
use indicatif::{ProgressBar, ProgressStyle};
use std::error::Error;
use std::path::{Path, PathBuf};

pub(crate) type Res<T> = Result<T, Box<dyn Error>>;

pub(crate) const MNIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
pub(crate) const FASHION: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/fashion-mnist");
pub(crate) const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pretrained/convergent_any");

#[derive(Parser, Debug)]
#[command(about = "A convergent learned optimizer for any model, transferred to new data")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The shipped optimizer on Fashion-MNIST against Adam and NAG tuned on MNIST (default).
    Demo(demo::DemoArgs),
    /// Meta-trains the optimizer on the MNIST family of MLP classifiers.
    Train(train::TrainArgs),
    /// Evaluates an optimizer on a dataset against tuned baselines.
    Eval(eval::EvalArgs),
    /// Times an inner step against Adam's, and a meta-step.
    Speed(speed::SpeedArgs),
}

/// A progress bar with a prefix (hidden without a terminal; lines still print).
pub(crate) fn bar(len: usize, prefix: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}

/// Prints a line above the progress bar.
pub(crate) fn say(pb: &ProgressBar, line: String) {
    pb.suspend(|| println!("{line}"));
}

/// Writes a file atomically, naming it in the error.
pub(crate) fn write_file(path: &Path, text: &str) -> Res<()> {
    write_atomically(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Refuses a missing input directory or file before any work starts.
pub(crate) fn check_input(what: &str, path: &Path) -> Res<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(format!("{what} {} does not exist", path.display()).into())
    }
}

/// Creates an output directory, naming it in the error.
pub(crate) fn create_dir(path: &Path) -> Res<()> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Parses `--hidden`: comma-separated widths, empty for the paper's perceptron.
pub(crate) fn parse_hidden(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<usize>()
                .ok()
                .filter(|&w| w > 0 && w <= 100_000)
                .ok_or_else(|| format!("hidden width '{p}' must be an integer in 1..=100000"))
        })
        .collect()
}

/// The default output directory of a subcommand.
pub(crate) fn default_out(name: &str) -> PathBuf {
    PathBuf::from("out/transfer").join(name)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        None => demo::run(&demo::DemoArgs::default()),
        Some(Command::Demo(a)) => demo::run(&a),
        Some(Command::Train(a)) => train::run(&a).map(|_| ()),
        Some(Command::Eval(a)) => eval::run(&a),
        Some(Command::Speed(a)) => speed::run_speed(&a),
    };
    if let Err(e) = result {
        eprintln!("transfer: {e}");
        std::process::exit(1);
    }
}
