//! The meta-training of `reproduce_paper` (Martin & Furieri 2024, section IV: ConvergentL2O,
//! then the LSTM optimizer, on the tanh MNIST classifier) on MPI ranks: every rank holds the
//! same meta-parameters and runs its share of each meta-step's trajectories (or PES pairs);
//! the meta-gradient is the single-process one, bit for bit, on any number of ranks.
//!
//! Usage: mpirun -np 4 target/release/examples/meta_train_mpi -- [--quick] [--out DIR]
//!        [--resume] [--data DIR] [--meta-steps 40] [--lstm-meta-steps 100] [--seed 0]
//!        [--estimator bptt|pes] [--pes-horizon 300] [--pes-window 50] [--sigma 1e-3]
//!        [--meta-lr 1e-2] [--trajectories 10] [--horizon 50] [--threads N]
//!
//! Same flags and files as `reproduce_paper`'s meta-training (written by rank 0 to --out,
//! default `out/reproduce`): `<optimizer>.ckpt` after every meta-step (resumable with --resume
//! on any number of ranks, and by `reproduce_paper --resume`), `meta_<optimizer>.csv`,
//! `<optimizer>.params`. Progress is printed by rank 0. `--trajectories`, `--horizon` (the
//! paper's 10 and 50) and `--threads` (per rank; default: this machine's cores shared among
//! its ranks) are this program's own.
//!
//! Failures end the job: a meta-step that fails on any rank (a NaN, an operation's panic) is
//! reported by rank 0 with the rank and the meta-step, and every rank exits with status 1; a
//! panic elsewhere aborts the job (`MPI_Abort`) naming the rank and the meta-step; a rank that
//! exits or is killed makes `mpirun` stop the others, each saying which meta-step it was in.
//! The last checkpoint is always whole. Fault injection for tests:
//! `CONVERGENT_L2O_MPI_FAULT=exit:RANK:STEP` (or `panic:RANK:STEP`) makes rank RANK exit with
//! status 3 (or panic) as meta-step STEP (counting from 0) starts.

use clap::Parser;
use convergent_l2o::meta::{
    load_checkpoint, save_checkpoint, CheckpointError, Communicator, FullBptt, GradientEstimator,
    MetaStepReport, MetaTrainConfig, MetaTrainer, MpiCommunicator, Pes, WeightedLoss,
};
use convergent_l2o::models::{write_atomically, Activation};
use convergent_l2o::optim::{ConvergentL2O, LearnedOptimizer, StepSize, UnconstrainedL2O};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{InitialPoint, ProblemFamily, SequentialClassifiers};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

const DEFAULT_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
const BATCH: usize = 128;

/// Flags; an unset number takes its full-run default, or its smoke-run value under --quick.
#[derive(Parser, Debug)]
#[command(about = "Meta-train the paper's optimizers (Martin & Furieri 2024) on MPI ranks")]
struct Args {
    /// MNIST-style data directory (the four IDX files), on every rank's machine.
    #[arg(long, default_value = DEFAULT_DATA)]
    data: PathBuf,
    /// Output directory of rank 0 (checkpoints, meta-loss CSV files, final meta-parameters).
    #[arg(long, default_value = "out/reproduce")]
    out: PathBuf,
    /// Meta-steps of ConvergentL2O [default: 40; --quick: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    meta_steps: Option<u64>,
    /// Meta-steps of the LSTM optimizer [default: 100; --quick: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    lstm_meta_steps: Option<u64>,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Continue meta-training from the checkpoints in --out (on any number of ranks).
    #[arg(long)]
    resume: bool,
    /// Tiny settings for a smoke run (2 trajectories of 10 steps, 2 meta-steps).
    #[arg(long)]
    quick: bool,
    /// The meta-gradient estimator: `bptt` (the paper's) or `pes`.
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
    /// Trajectories (PES: antithetic pairs) per meta-step [default: 10; --quick: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    trajectories: Option<u64>,
    /// BPTT: inner steps T [default: 50; --quick: 10].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    horizon: Option<u64>,
    /// Threads per rank [default: this machine's cores / its ranks].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    threads: Option<u64>,
}

/// The settings after --quick is applied.
struct Settings {
    meta_steps: usize,
    lstm_meta_steps: usize,
    meta: MetaTrainConfig,
    estimator: FullBptt,
    pes: Option<(f64, usize, usize)>,
}

impl Settings {
    fn from(a: &Args) -> Self {
        let q = a.quick;
        let pick = |v: Option<u64>, full: usize, quick: usize| {
            v.map_or(if q { quick } else { full }, |v| v as usize)
        };
        Settings {
            meta_steps: pick(a.meta_steps, 40, 2),
            lstm_meta_steps: pick(a.lstm_meta_steps, 100, 2),
            meta: MetaTrainConfig {
                lr: a.meta_lr,
                ..MetaTrainConfig::paper(a.seed)
            },
            estimator: FullBptt {
                trajectories: pick(a.trajectories, 10, 2),
                horizon: pick(a.horizon, 50, 10),
                ..FullBptt::PAPER
            },
            pes: (a.estimator == "pes").then_some((
                a.sigma,
                a.pes_window as usize,
                a.pes_horizon as usize,
            )),
        }
    }

    /// The estimator of meta-training (as `reproduce_paper`'s).
    fn gradient_estimator(&self) -> Box<dyn GradientEstimator<f32>> {
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
    fn meta_horizon(&self) -> usize {
        self.pes.map_or(self.estimator.horizon, |(_, _, h)| h)
    }
}

fn main() {
    let comm = match MpiCommunicator::init() {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("meta_train_mpi: {e}");
            std::process::exit(1);
        }
    };
    let outcome = comm.abort_on_panic(|| run(&comm));
    let code = match outcome {
        Ok(code) => code,
        // Errors outside a meta-step need not be the same on every rank: end the job.
        Err(e) => comm.abort(&format!("meta_train_mpi: {e}")),
    };
    drop(comm); // MPI_Finalize
    std::process::exit(code);
}

/// The whole run on this rank: its exit status (every rank returns the same).
fn run(comm: &Arc<MpiCommunicator>) -> Res<i32> {
    let root = comm.rank() == 0;
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            if root {
                let _ = e.print();
            }
            return Ok(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let start = Instant::now();
    if !(args.sigma.is_finite() && args.sigma > 0.0) {
        return Err(format!("--sigma {} must be positive and finite", args.sigma).into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args
        .threads
        .map_or((cores / comm.local_size()).max(1), |t| t as usize);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()?;
    let s = Settings::from(&args);
    if root {
        std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    }
    let data = Mnist::load(&args.data)?;
    let family = SequentialClassifiers::new(
        data.split(Split::MetaTrain),
        Activation::Tanh,
        BATCH,
        s.estimator.trajectories,
        s.meta_horizon(),
        InitialPoint::META_TRAIN,
    )?;
    let mut convergent = ConvergentL2O::<f32>::paper(
        StepSize::OriginalCode,
        &mut StdRng::seed_from_u64(args.seed),
    )?;
    let mut lstm =
        UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(args.seed.wrapping_add(1)))?;
    if root {
        println!(
            "{} ranks x {threads} threads; data {}: {} meta-training samples; ConvergentL2O: {} \
             meta-parameters; LSTM: {}",
            comm.size(),
            args.data.display(),
            data.meta_train_len(),
            convergent.params().num_scalars(),
            lstm.params().num_scalars()
        );
    }
    let mut ok = true;
    let runs: [(&mut dyn LearnedOptimizer<f32>, &str, usize); 2] = [
        (&mut convergent, "convergent_l2o", s.meta_steps),
        (&mut lstm, "lstm", s.lstm_meta_steps),
    ];
    for (opt, file, steps) in runs {
        let t0 = Instant::now();
        let trained = meta_train(comm, opt, file, steps, &s, &family, &args)?;
        ok &= trained.ok;
        let mut times = trained.seconds.clone();
        times.sort_by(f64::total_cmp);
        // Bytes sent and CPU time of every rank during the meta-steps (not the
        // checkpoints), added up.
        let mine = [trained.bytes.to_le_bytes(), trained.cpu.to_le_bytes()].concat();
        let (mut bytes, mut cpu) = (0u64, 0.0f64);
        for b in comm.all_gather(&mine)? {
            let word = |i: usize| -> [u8; 8] {
                b.get(8 * i..8 * i + 8)
                    .and_then(|w| w.try_into().ok())
                    .unwrap_or_default()
            };
            bytes += u64::from_le_bytes(word(0));
            cpu += f64::from_le_bytes(word(1));
        }
        if root && !times.is_empty() {
            let n = times.len() as f64;
            println!(
                "meta-training {}: {:.1} s; {} meta-steps on {} ranks x {threads} threads: \
                 median {:.3} s, min {:.3} s; CPU {:.3} s per meta-step (all ranks); {:.0} \
                 bytes sent per meta-step (all ranks)",
                opt.name(),
                t0.elapsed().as_secs_f64(),
                times.len(),
                comm.size(),
                times[times.len() / 2],
                times[0],
                cpu / n,
                bytes as f64 / n
            );
        }
    }
    if root {
        println!(
            "meta_train_mpi done ranks={} threads={threads} seconds={:.1}",
            comm.size(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(if ok { 0 } else { 1 })
}

/// What one optimizer's meta-training did on this rank.
struct Trained {
    /// No meta-step failed.
    ok: bool,
    /// Wall time of each meta-step taken (estimate and update, without the checkpoint).
    seconds: Vec<f64>,
    /// Bytes this rank sent during those meta-steps.
    bytes: u64,
    /// CPU seconds this rank used during those meta-steps (Linux; 10 ms resolution).
    cpu: f64,
}

/// CPU seconds used by this process so far (all threads; 0 where /proc is missing).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After the command name (in parentheses): state, ppid, ..., utime (14th), stime (15th);
    // /proc counts in USER_HZ = 100 ticks per second.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

/// `CONVERGENT_L2O_MPI_FAULT=exit:RANK:STEP` or `panic:RANK:STEP`: fails rank RANK as
/// meta-step STEP starts, once every rank has started it (a barrier, only with the variable
/// set, which mpirun gives every rank).
fn inject_fault(comm: &MpiCommunicator, meta_step: usize) {
    let Ok(spec) = std::env::var("CONVERGENT_L2O_MPI_FAULT") else {
        return;
    };
    comm.barrier();
    let parts: Vec<&str> = spec.split(':').collect();
    let at = |i: usize| parts.get(i).and_then(|p| p.parse::<usize>().ok());
    let rank = comm.rank();
    if at(1) != Some(rank) || at(2) != Some(meta_step) {
        return;
    }
    match parts[0] {
        "exit" => {
            eprintln!("rank {rank}: exiting at meta-step {meta_step} (CONVERGENT_L2O_MPI_FAULT)");
            std::process::exit(3);
        }
        "panic" => panic!("injected at meta-step {meta_step} (CONVERGENT_L2O_MPI_FAULT)"),
        _ => {}
    }
}

/// Meta-trains `opt` for `meta_steps` meta-steps on every rank (continuing from `<file>.ckpt`
/// with --resume), rank 0 writing the checkpoint after every meta-step, the meta-loss history
/// in `meta_<file>.csv` and the final meta-parameters in `<file>.params`. A failed meta-step
/// (on any rank) is reported and ends training with the last good meta-parameters.
fn meta_train(
    comm: &Arc<MpiCommunicator>,
    opt: &mut dyn LearnedOptimizer<f32>,
    file: &str,
    meta_steps: usize,
    s: &Settings,
    family: &dyn ProblemFamily<f32>,
    args: &Args,
) -> Res<Trained> {
    let root = comm.rank() == 0;
    let out = &args.out;
    let ckpt = out.join(format!("{file}.ckpt"));
    let history_path = out.join(format!("meta_{file}.csv"));
    let shared: Arc<dyn Communicator> = comm.clone();
    let mut trainer = MetaTrainer::new(s.meta, s.gradient_estimator(), WeightedLoss::PAPER)?
        .with_communicator(shared);
    if args.resume {
        match load_checkpoint(&ckpt, &mut trainer, opt) {
            Ok(()) if root => {
                write_file(&history_path, &history_csv(trainer.history()))?;
                println!(
                    "{}: resumed from {} at meta-step {}",
                    opt.name(),
                    ckpt.display(),
                    trainer.meta_step()
                );
            }
            Ok(()) => {}
            Err(CheckpointError::Io { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut trained = Trained {
        ok: true,
        seconds: Vec::new(),
        bytes: 0,
        cpu: 0.0,
    };
    while trainer.meta_step() < meta_steps {
        comm.begin_meta_step(trainer.meta_step());
        inject_fault(comm, trainer.meta_step());
        let (t0, sent, cpu) = (Instant::now(), comm.bytes_sent(), cpu_seconds());
        match trainer.step(opt, family) {
            Ok(r) => {
                let step = t0.elapsed().as_secs_f64();
                trained.seconds.push(step);
                trained.bytes += comm.bytes_sent() - sent;
                trained.cpu += cpu_seconds() - cpu;
                save_checkpoint(&ckpt, &trainer, opt)?;
                if root {
                    report(opt.name(), &r, step, t0.elapsed().as_secs_f64());
                    write_file(&history_path, &history_csv(trainer.history()))?;
                }
            }
            Err(e) => {
                if root {
                    println!(
                        "  {}: {e}; meta-training stops at meta-step {} with the last good \
                         meta-parameters (checkpoint {})",
                        opt.name(),
                        trainer.meta_step(),
                        ckpt.display()
                    );
                }
                trained.ok = false;
                break;
            }
        }
    }
    if root {
        opt.params().save(&out.join(format!("{file}.params")))?;
    }
    Ok(trained)
}

/// Rank 0's progress line for a meta-step.
fn report(name: String, r: &MetaStepReport, step: f64, total: f64) {
    println!(
        "  {name} meta-step {:3}  meta-loss {:.5}  mean f(x_T) {:.4}  |grad| {:.3e}  {step:.3} s \
         ({total:.3} s with the checkpoint)",
        r.meta_step + 1,
        r.meta_loss,
        r.final_loss,
        r.grad_norm,
    );
    if let Some(w) = &r.warning {
        println!("  {name}: warning: {w}");
    }
}

fn write_file(path: &Path, text: &str) -> Res<()> {
    write_atomically(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// The meta-loss history as `reproduce_paper` writes it.
fn history_csv(history: &[MetaStepReport]) -> String {
    let mut out = String::from("meta_step,meta_loss,final_loss,grad_norm\n");
    for r in history {
        let _ = writeln!(
            out,
            "{},{},{},{}",
            r.meta_step + 1,
            r.meta_loss,
            r.final_loss,
            r.grad_norm
        );
    }
    out
}
