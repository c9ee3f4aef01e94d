//! Reproduces the MNIST experiment of Martin & Furieri (2024), section IV, end to end:
//! meta-trains ConvergentL2O (40 meta-steps, on jax_ref.py's sequential minibatches) and the
//! LSTM optimizer (200 meta-steps, the best of 4 initializations after 100, on the notebook's
//! reshuffled minibatch stream) on the tanh classifier, evaluates them against Adam, SGD, NAG
//! and RMSprop (learning rates tuned by grid search on the training loss, the paper's
//! protocol) on the held-out 20% of the training set for tanh, sigmoid and ReLU, and writes the paper's two accuracy tables, the
//! training curves of Fig. 1 and the long-horizon norms of the divergence figure.
//!
//! Usage: cargo run --release --example reproduce_paper -- [--quick] [--out DIR] [--resume]
//!        [--data DIR] [--transfer DIR] [--meta-steps 40] [--lstm-meta-steps 200] [--runs 10]
//!        [--steps 301] [--long-steps 3000] [--seed 0] [--lstm-sampler notebook|sequential]
//!        [--accuracy-reading after-update|iterate] [--estimator bptt|pes]
//!        [--lstm-restarts 4] [--lstm-pilot-steps 100]
//!
//! "Test accuracy at step t" is of x_(t+1), after step t's update, as the original code reads
//! it (`--accuracy-reading iterate` reads x_t).
//!
//! Writes to --out: accuracy.csv, curves.csv, divergence.csv, learning_rates.csv,
//! grid_search.csv, meta_<optimizer>.csv, table.md, fig1_<activation>.svg, divergence.svg,
//! checkpoints (<optimizer>.ckpt, after every meta-step, holding the meta-loss history; the
//! LSTM's restarts as lstm_init<r>.ckpt, their pilot scores in lstm_restarts.csv) and final
//! meta-parameters (<optimizer>.params); with --transfer also transfer_*.csv and
//! transfer_fig1_*.svg.
//!
//! The parts: `training.rs` (meta-training with checkpoints), `evaluation.rs` (grid search,
//! runs, long runs), `plots.rs` (the figures), `tables.rs` (table.md and the paper's numbers).

mod evaluation;
mod plots;
mod tables;
mod training;

use clap::Parser;
use convergent_l2o::eval::{accuracy_csv, curves_csv, default_lr_grid, mean_std, Evaluated};
use convergent_l2o::meta::{FullBptt, GradientEstimator, MetaTrainConfig, Pes};
use convergent_l2o::models::{write_atomically, Activation};
use convergent_l2o::optim::{ConvergentL2O, LearnedOptimizer, StepSize, UnconstrainedL2O};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{
    InitialPoint, ProblemFamily, SequentialClassifiers, ShuffledClassifiers,
};
use evaluation::{divergence_csv, evaluate, learning_rates_csv, long_runs};
use indicatif::{ProgressBar, ProgressStyle};
use plots::{plot_divergence, plot_losses};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tables::{print_table, table_md};
use training::{meta_train, meta_train_lstm};

pub(crate) type Res<T> = Result<T, Box<dyn Error>>;

const DEFAULT_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
pub(crate) const BATCH: usize = 128;
/// The paper's row order.
pub(crate) const ROW_ORDER: [&str; 6] = ["Adam", "SGD", "NAG", "RMSprop", "ConvergentL2O", "LSTM"];

/// Flags; an unset number takes its full-run default, or its smoke-run value under --quick.
#[derive(Parser, Debug)]
#[command(about = "Reproduce the MNIST experiment of Martin & Furieri (2024), section IV")]
pub(crate) struct Args {
    /// MNIST-style data directory (the four IDX files).
    #[arg(long, default_value = DEFAULT_DATA)]
    pub(crate) data: PathBuf,
    /// Output directory (checkpoints, CSV files, table.md, SVG plots).
    #[arg(long, default_value = "out/reproduce")]
    out: PathBuf,
    /// Meta-steps of ConvergentL2O [default: 40; --quick: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    meta_steps: Option<u64>,
    /// Meta-steps of the LSTM optimizer [default: 200, the paper's "200 epochs" (the notebook's
    /// log of 100 continues an earlier 100); --quick: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    lstm_meta_steps: Option<u64>,
    /// Initializations of the LSTM optimizer meta-trained for --lstm-pilot-steps each; the one
    /// with the lowest meta-loss over its last 25 goes on to --lstm-meta-steps. Where a run
    /// ends depends on its initialization [default: 4; --quick: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    lstm_restarts: Option<u64>,
    /// Meta-steps of each LSTM restart before the choice [default: 100; --quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    lstm_pilot_steps: Option<u64>,
    /// Evaluation runs (initial points) per optimizer and activation [default: 10; --quick: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    runs: Option<u64>,
    /// Evaluation steps; the tables are at t = 20 and t = steps - 1 [default: 301; --quick: 31].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    steps: Option<u64>,
    /// Steps of the long runs of the learned optimizers [default: 3000; --quick: 100].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=10_000_000))]
    long_steps: Option<u64>,
    /// Runs per learning rate in the grid search [default: 3; --quick: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    tuning_runs: Option<u64>,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue meta-training from the checkpoints in --out.
    #[arg(long)]
    resume: bool,
    /// Also evaluate the MNIST-trained optimizers on this dataset (e.g. Fashion-MNIST).
    #[arg(long)]
    transfer: Option<PathBuf>,
    /// Tiny settings for a smoke run (short meta-training on 2 trajectories of 10 steps).
    #[arg(long)]
    quick: bool,
    /// The meta-gradient estimator: `bptt` (the paper: full backpropagation through T = 50
    /// steps) or `pes` (persistent evolution strategies over --pes-horizon steps in windows of
    /// --pes-window).
    #[arg(long, default_value = "bptt", value_parser = ["bptt", "pes"])]
    estimator: String,
    /// PES: inner-problem horizon.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pes_horizon: u64,
    /// PES: updates per window.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pes_window: u64,
    /// PES: standard deviation of the perturbations.
    #[arg(long, default_value_t = 1e-3)]
    sigma: f64,
    /// Adam's learning rate on the meta-parameters (the paper: 1e-2).
    #[arg(long, default_value_t = 1e-2)]
    meta_lr: f64,
    /// The minibatches the LSTM optimizer is meta-trained on: `notebook` (LSTM_Optimizer.ipynb:
    /// one stream of reshuffled epochs read in turn by every trajectory) or `sequential` (the
    /// unshuffled cursor of jax_ref.py, which ConvergentL2O is trained on).
    #[arg(long, default_value = "notebook", value_parser = ["notebook", "sequential"])]
    lstm_sampler: String,
    /// When "the test accuracy at step t" is read: `after-update` (of x_(t+1), after step t's
    /// update, as the original code reads it) or `iterate` (of x_t).
    #[arg(long, default_value = "after-update", value_parser = ["after-update", "iterate"])]
    accuracy_reading: String,
}

/// The settings after --quick is applied.
pub(crate) struct Settings {
    pub(crate) meta_steps: usize,
    pub(crate) lstm_meta_steps: usize,
    pub(crate) lstm_restarts: usize,
    pub(crate) lstm_pilot_steps: usize,
    pub(crate) runs: usize,
    pub(crate) steps: usize,
    pub(crate) long_steps: usize,
    pub(crate) tuning_runs: usize,
    pub(crate) grid: Vec<f64>,
    pub(crate) meta: MetaTrainConfig,
    pub(crate) estimator: FullBptt,
    pub(crate) pes: Option<(f64, usize, usize)>,
    pub(crate) seed: u64,
    /// Whether accuracy "at step t" is of x_(t+1) (the original code's reading).
    pub(crate) accuracy_after_update: bool,
    /// Whether the LSTM is meta-trained on the notebook's shuffled minibatch stream.
    pub(crate) lstm_shuffled: bool,
}

impl Settings {
    fn from(a: &Args) -> Self {
        let q = a.quick;
        let pick = |v: Option<u64>, full: usize, quick: usize| {
            v.map_or(if q { quick } else { full }, |v| v as usize)
        };
        let meta = MetaTrainConfig {
            lr: a.meta_lr,
            ..MetaTrainConfig::paper(a.seed)
        };
        let estimator = if q {
            FullBptt {
                trajectories: 2,
                horizon: 10,
                ..FullBptt::PAPER
            }
        } else {
            FullBptt::PAPER
        };
        Settings {
            meta_steps: pick(a.meta_steps, 40, 2),
            lstm_meta_steps: pick(a.lstm_meta_steps, 200, 2),
            lstm_restarts: pick(a.lstm_restarts, 4, 2),
            lstm_pilot_steps: pick(a.lstm_pilot_steps, 100, 1),
            runs: pick(a.runs, 10, 2),
            steps: pick(a.steps, 301, 31),
            long_steps: pick(a.long_steps, 3000, 100),
            tuning_runs: pick(a.tuning_runs, 3, 1),
            grid: if q {
                vec![1e-3, 1e-2, 1e-1, 1.0]
            } else {
                default_lr_grid()
            },
            meta,
            estimator,
            pes: (a.estimator == "pes").then_some((
                a.sigma,
                a.pes_window as usize,
                a.pes_horizon as usize,
            )),
            seed: a.seed,
            accuracy_after_update: a.accuracy_reading == "after-update",
            lstm_shuffled: a.lstm_sampler == "notebook",
        }
    }

    /// The estimator of meta-training.
    pub(crate) fn gradient_estimator(&self) -> Box<dyn GradientEstimator<f32>> {
        match self.pes {
            Some((sigma, window, horizon)) => Box::new(Pes::new(
                sigma,
                self.estimator.trajectories,
                window,
                horizon,
            )),
            None => Box::new(self.estimator),
        }
    }

    /// The inner-problem horizon of meta-training.
    pub(crate) fn meta_horizon(&self) -> usize {
        self.pes.map_or(self.estimator.horizon, |(_, _, h)| h)
    }

    /// Steps at which the test accuracy is measured.
    pub(crate) fn accuracy_steps(&self) -> Vec<usize> {
        let last = self.steps - 1;
        let mut v: Vec<usize> = [0, 10, 20, 50, 100, 150, 200, 250, 300]
            .into_iter()
            .filter(|&t| t <= last)
            .collect();
        v.push(last);
        v.dedup();
        v
    }
}

pub(crate) fn bar(len: usize, prefix: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix:>26} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}

/// Prints a line whether or not the progress bar is drawn (it is hidden without a terminal).
pub(crate) fn say(pb: &ProgressBar, line: String) {
    pb.suspend(|| println!("{line}"));
}

pub(crate) fn write_file(path: &Path, text: &str) -> Res<()> {
    write_atomically(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()).into())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("reproduce_paper: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let args = Args::parse();
    let start = Instant::now();
    let s = Settings::from(&args);
    if !(args.sigma.is_finite() && args.sigma > 0.0) {
        return Err(format!("--sigma {} must be positive and finite", args.sigma).into());
    }
    // Every run keeps three series of (step, value) pairs: refuse what cannot fit in memory
    // before any work starts.
    let recorded = (s.runs as u128) * (s.steps.max(s.long_steps) as u128) * 3 * 16;
    if recorded > 8 << 30 {
        return Err(format!(
            "--runs {} with {} steps would record {:.0} GB of curves; use fewer runs or steps",
            s.runs,
            s.steps.max(s.long_steps),
            recorded as f64 / 1e9
        )
        .into());
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let data = Mnist::load(&args.data)?;
    // Every input is checked before any work starts.
    let other = match &args.transfer {
        Some(dir) => Some(Mnist::load(dir)?),
        None => None,
    };
    println!(
        "data {}: {} training samples ({} meta-train, {} held-out), {} test",
        args.data.display(),
        data.num_train(),
        data.meta_train_len(),
        data.num_train() - data.meta_train_len(),
        data.num_test()
    );

    let family = SequentialClassifiers::new(
        data.split(Split::MetaTrain),
        Activation::Tanh,
        BATCH,
        s.estimator.trajectories,
        s.meta_horizon(),
        InitialPoint::META_TRAIN,
    )?;
    let lstm_family: Box<dyn ProblemFamily<f32>> = if s.lstm_shuffled {
        Box::new(ShuffledClassifiers::new(
            data.split(Split::MetaTrain),
            Activation::Tanh,
            BATCH,
            s.estimator.trajectories,
            s.meta_horizon(),
            InitialPoint::META_TRAIN,
            s.seed,
        )?)
    } else {
        Box::new(family.clone())
    };
    let mut convergent =
        ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(s.seed))?;
    println!(
        "ConvergentL2O: {} meta-parameters; LSTM: {}",
        convergent.params().num_scalars(),
        UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(0))?
            .params()
            .num_scalars()
    );
    let t0 = Instant::now();
    let h_conv = meta_train(
        &mut convergent,
        "convergent_l2o",
        s.meta_steps,
        &s,
        &family,
        &args.out,
        args.resume,
    )?;
    println!(
        "meta-training ConvergentL2O: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    let (lstm, h_lstm) = meta_train_lstm(&s, &*lstm_family, &args.out, args.resume)?;
    println!("meta-training LSTM: {:.1} s", t0.elapsed().as_secs_f64());

    let learned: [&dyn LearnedOptimizer<f32>; 2] = [&convergent, &lstm];
    let t0 = Instant::now();
    // Labels of the tables and logs: "MNIST" for the paper's data, else the directory's name.
    let data_name = match args
        .data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    {
        Some(n) if !n.to_lowercase().starts_with("mnist") => n,
        _ => "MNIST".to_string(),
    };
    let (results, mut tuned) = evaluate(&data_name, &data, &learned, &s)?;
    println!("evaluation: {:.1} s", t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    let long = long_runs(&data, &learned, &s)?;
    println!("long runs: {:.1} s", t0.elapsed().as_secs_f64());

    let mut transfer = None;
    if let (Some(dir), Some(other)) = (&args.transfer, &other) {
        let name = dir
            .file_name()
            .map_or("transfer".into(), |n| n.to_string_lossy().into_owned());
        let t0 = Instant::now();
        let (tr, tr_tuned) = evaluate(&name, other, &learned, &s)?;
        println!("transfer to {name}: {:.1} s", t0.elapsed().as_secs_f64());
        tuned.extend(tr_tuned);
        transfer = Some((name, tr));
    }

    let out = &args.out;
    write_file(&out.join("accuracy.csv"), &accuracy_csv(&results))?;
    write_file(&out.join("curves.csv"), &curves_csv(&results))?;
    write_file(&out.join("divergence.csv"), &divergence_csv(&long))?;
    let (chosen, grid) = learning_rates_csv(&tuned);
    write_file(&out.join("learning_rates.csv"), &chosen)?;
    write_file(&out.join("grid_search.csv"), &grid)?;
    for act in Activation::PAPER {
        let of_act: Vec<&Evaluated> = results
            .iter()
            .filter(|r| r.scenario == act.to_string())
            .collect();
        plot_losses(
            &out.join(format!("fig1_{act}.svg")),
            &format!("MNIST, {act}"),
            &of_act,
        )?;
    }
    plot_divergence(&out.join("divergence.svg"), &long)?;
    if let Some((name, tr)) = &transfer {
        write_file(&out.join("transfer_accuracy.csv"), &accuracy_csv(tr))?;
        write_file(&out.join("transfer_curves.csv"), &curves_csv(tr))?;
        for act in Activation::PAPER {
            let of_act: Vec<&Evaluated> = tr
                .iter()
                .filter(|r| r.scenario == act.to_string())
                .collect();
            plot_losses(
                &out.join(format!("transfer_fig1_{act}.svg")),
                &format!("{name}, {act}"),
                &of_act,
            )?;
        }
    }
    let histories = [
        ("ConvergentL2O".to_string(), h_conv),
        ("LSTM".to_string(), h_lstm),
    ];
    let md = table_md(
        &args,
        &s,
        &data,
        &results,
        &tuned,
        &long,
        &histories,
        transfer.as_ref().map(|(n, t)| (n.as_str(), t.as_slice())),
    );
    write_file(&out.join("table.md"), &md)?;

    println!("\nchosen learning rates:");
    for t in &tuned {
        println!("  {} {} {}: {}", t.dataset, t.activation, t.optimizer, t.lr);
    }
    let reading = if s.accuracy_after_update {
        "of x_(t+1) after step t, the original code's reading"
    } else {
        "of the iterate x_t"
    };
    print_table(
        &format!("test accuracy ({reading}), {data_name}:"),
        &results,
        20.min(s.steps - 1),
    );
    print_table("", &results, s.steps - 1);
    if let Some((name, tr)) = &transfer {
        print_table(
            &format!("test accuracy ({reading}), {name}:"),
            tr,
            20.min(s.steps - 1),
        );
        print_table("", tr, s.steps - 1);
    }
    for r in &long {
        let (pm, _) = mean_std(
            &r.traces
                .iter()
                .filter_map(|t| t.values("param_norm").last().copied())
                .collect::<Vec<_>>(),
        );
        let (um, _) = mean_std(
            &r.traces
                .iter()
                .filter_map(|t| t.values("update_norm").last().copied())
                .collect::<Vec<_>>(),
        );
        println!(
            "long run {}: at t = {}: mean |x_t| = {pm:.3}, mean |x_(t+1) - x_t| = {um:.3e}",
            r.optimizer,
            s.long_steps - 1
        );
    }
    println!("outputs in {}", out.display());
    println!(
        "reproduce_paper done seconds={:.1}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
