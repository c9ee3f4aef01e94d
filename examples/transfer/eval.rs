//! `eval`: a learned optimizer on a dataset next to Adam, SGD, NAG and RMSprop whose learning
//! rates are tuned (by grid search on the training loss of the same architecture) on
//! `--tune-on` and, as an oracle, on the evaluated dataset's own training split. Never on a
//! test set: test accuracy is only measured.

use crate::{bar, check_input, create_dir, parse_hidden, plots, say, write_file, Res, MNIST};
use convergent_l2o::eval::{
    accuracy_csv, grid_search, run_from_each, series_csv, Evaluated, Probe, RunConfig, Steps,
};
use convergent_l2o::models::{read_safetensors, Activation};
use convergent_l2o::optim::{
    paper_baselines, Algorithm, ConvergentAnyL2O, ConvergentL2O, Frozen, LearnedOptimizer,
    StepSize, Tunable,
};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{
    load_dataset, InitialPoint, MlpClassifier, MlpMetrics, PixelNormalization,
};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Flags of `eval`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct EvalArgs {
    /// The learned optimizer: a directory written by `train` (ConvergentAnyL2O), or the
    /// paper's convergent_l2o_tanh.safetensors (the perceptron only); repeat to compare.
    #[arg(long, required = true)]
    pub(crate) optimizer: Vec<PathBuf>,
    /// The evaluated dataset (an IDX directory): trained on its held-out 20% of the training
    /// file, accuracy on its test file.
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// Hidden widths, comma-separated ("" is the paper's perceptron).
    #[arg(long, default_value = "32")]
    pub(crate) hidden: String,
    /// Activation: tanh, sigmoid or relu.
    #[arg(long, default_value = "tanh")]
    pub(crate) activation: Activation,
    /// Inner steps; accuracy is measured at t = 20, 300 and --steps (those not above it).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) steps: u64,
    /// Runs (initial points) per optimizer.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub(crate) runs: u64,
    /// Output directory.
    #[arg(long, default_value_os_t = crate::default_out("eval"))]
    pub(crate) out: PathBuf,
    /// Where the baselines' learning rates are tuned (its held-out training split).
    #[arg(long, default_value = MNIST)]
    pub(crate) tune_on: PathBuf,
    /// Steps of the tuning runs (the score is the training loss after them).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) tune_steps: u64,
    /// Runs per learning rate in the grid search.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub(crate) tuning_runs: u64,
    /// Skip the oracle baselines (tuned on --data's training split).
    #[arg(long)]
    pub(crate) no_oracle: bool,
    /// Pixel normalization: `paper` (MNIST's mean and std) or `dataset` (each dataset's own).
    #[arg(long, default_value = "paper", value_parser = ["paper", "dataset"])]
    pub(crate) normalization: String,
    /// Minibatch size.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub(crate) batch: u64,
    /// Seed of the initial points.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

/// The learning-rate grid: half decades from 1e-4 to 1.
pub(crate) const GRID: [f64; 9] = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0];

/// A learned optimizer read from disk.
pub(crate) enum Learned {
    /// Ours.
    Any(Box<ConvergentAnyL2O<f32>>),
    /// The paper's 7850-dimensional one.
    Paper(ConvergentL2O<f32>),
}

impl Learned {
    /// Reads a `train` directory, or the paper's safetensors file when `hidden` is empty.
    pub(crate) fn load(path: &Path, hidden: &[usize]) -> Res<Learned> {
        if path.is_dir() {
            return Ok(Learned::Any(Box::new(ConvergentAnyL2O::load(path)?)));
        }
        if !hidden.is_empty() {
            return Err(format!(
                "{} is the paper's optimizer, which runs only on the 784-10 perceptron \
                 (--hidden \"\"), not on hidden layers {hidden:?}",
                path.display()
            )
            .into());
        }
        let mut opt =
            ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0))?;
        let params =
            read_safetensors(path, opt.params()).map_err(|e| format!("{}: {e}", path.display()))?;
        opt.set_params(params)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Learned::Paper(opt))
    }

    /// As an algorithm for evaluation.
    pub(crate) fn algorithm(&self) -> Box<dyn Algorithm<f32> + '_> {
        match self {
            Learned::Any(o) => Box::new(Frozen(&**o)),
            Learned::Paper(o) => Box::new(Frozen(o)),
        }
    }
}

/// A dataset's problem (held-out training split), its metrics (test split) and the training
/// loss on the held-out split (what tuning scores).
pub(crate) struct Task {
    pub(crate) problem: MlpClassifier<f32>,
    pub(crate) test: MlpMetrics<f32>,
    pub(crate) train: MlpMetrics<f32>,
}

impl Task {
    /// The MLP with `hidden` and `act` on `data`.
    pub(crate) fn new(data: &Mnist, hidden: &[usize], act: Activation, batch: usize) -> Res<Task> {
        let problem = MlpClassifier::new(data.split(Split::EvalTrain), hidden, act, batch, 0)?;
        let test = MlpMetrics::new(data.split(Split::Test), problem.shape(), act)?;
        let train = MlpMetrics::new(data.split(Split::EvalTrain), problem.shape(), act)?;
        Ok(Task {
            problem,
            test,
            train,
        })
    }

    /// `n` initial points from `seed`: PyTorch's initialization, or the paper's N(0, 0.1)
    /// for the perceptron.
    pub(crate) fn initial_points(&self, seed: u64, n: usize) -> Vec<DMatrix<f32>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let shape = self.problem.shape();
        (0..n)
            .map(|_| {
                if shape.hidden().is_empty() {
                    InitialPoint::PAPER_TEST.sample(shape.num_params(), &mut rng)
                } else {
                    shape.init(1.0, &mut rng)
                }
            })
            .collect()
    }
}

/// Steps at which accuracy is measured: 20, 300 and `steps`, those not above `steps`.
pub(crate) fn accuracy_steps(steps: usize) -> Vec<usize> {
    let mut at: Vec<usize> = [20, 300, steps]
        .into_iter()
        .filter(|&t| t <= steps)
        .collect();
    at.dedup();
    at
}

/// The run configuration: `steps + 1` updates (so `x_steps` is measured), the default probes
/// (loss, parameter and update norms) and test accuracy at `accuracy_steps`.
pub(crate) fn run_config(test: &MlpMetrics<f32>, steps: usize) -> RunConfig<'_, f32> {
    RunConfig::new(steps + 1).with(Probe::new(
        "accuracy",
        Steps::At(accuracy_steps(steps)),
        move |v| test.accuracy(v.x),
    ))
}

/// Baselines with their tuned learning rates.
pub(crate) type TunedList = Vec<(Box<dyn Tunable<f32>>, f64)>;

/// Tunes each baseline's learning rate on `task` (training loss after `steps` steps, mean
/// over `x0s`); returns them with `(name, lr)` lines.
pub(crate) fn tune(
    baselines: &[Box<dyn Tunable<f32>>],
    task: &Task,
    x0s: &[DMatrix<f32>],
    steps: usize,
    label: &str,
) -> Res<TunedList> {
    let pb = bar(baselines.len(), &format!("tune on {label}"));
    let mut out = Vec::new();
    for base in baselines {
        let gs = grid_search(&**base, &GRID, &task.problem, x0s, steps, &|x| {
            task.train.loss(x)
        })?;
        say(
            &pb,
            format!(
                "  {} tuned on {label}: lr {} (training loss {:.4} after {steps} steps)",
                gs.optimizer, gs.lr, gs.score
            ),
        );
        out.push((base.with_lr(gs.lr)?, gs.lr));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(out)
}

/// Runs `algorithm` from every initial point.
pub(crate) fn evaluate(
    name: &str,
    algorithm: &dyn Algorithm<f32>,
    lr: Option<f64>,
    task: &Task,
    x0s: &[DMatrix<f32>],
    steps: usize,
    scenario: &str,
) -> Res<Evaluated> {
    let runs = run_from_each(
        algorithm,
        &task.problem,
        x0s,
        &run_config(&task.test, steps),
    )?;
    Ok(Evaluated {
        optimizer: name.to_string(),
        scenario: scenario.to_string(),
        lr,
        traces: runs.into_iter().map(|r| r.trace).collect(),
    })
}

/// A Markdown-ish summary: accuracy (mean ± std) at each measured step and the last update
/// norm, one line per optimizer.
pub(crate) fn summary(results: &[Evaluated], steps: usize) -> String {
    let at = accuracy_steps(steps);
    let mut s = format!("{:<26}", "optimizer");
    for t in &at {
        let _ = write!(s, " {:>15}", format!("acc t={t}"));
    }
    let _ = writeln!(s, " {:>12} {:>12}", "|dx| t=1", format!("|dx| t={steps}"));
    for r in results {
        let _ = write!(s, "{:<26}", r.optimizer);
        for &t in &at {
            let (m, sd) = r.accuracy(t).unwrap_or((f64::NAN, f64::NAN));
            let _ = write!(
                s,
                " {:>15}",
                format!("{:.1} ± {:.1}%", 100.0 * m, 100.0 * sd)
            );
        }
        let u = |t| r.at("update_norm", t).map_or(f64::NAN, |(m, _)| m);
        let _ = writeln!(s, " {:>12.3e} {:>12.3e}", u(1), u(steps));
        if r.diverged() > 0 {
            let _ = writeln!(
                s,
                "  ({} of {} runs diverged)",
                r.diverged(),
                r.traces.len()
            );
        }
    }
    s
}

/// `eval`.
pub(crate) fn run(a: &EvalArgs) -> Res<()> {
    let hidden = parse_hidden(&a.hidden)?;
    for p in &a.optimizer {
        check_input("--optimizer", p)?;
    }
    check_input("--data", &a.data)?;
    check_input("--tune-on", &a.tune_on)?;
    let norm = match a.normalization.as_str() {
        "dataset" => PixelNormalization::Dataset,
        _ => PixelNormalization::Paper,
    };
    let learned: Vec<Learned> = a
        .optimizer
        .iter()
        .map(|p| Learned::load(p, &hidden))
        .collect::<Res<_>>()?;
    let data = load_dataset(&a.data, norm)?;
    let tune_data = load_dataset(&a.tune_on, norm)?;
    create_dir(&a.out)?;
    let (steps, runs, batch) = (a.steps as usize, a.runs as usize, a.batch as usize);
    let task = Task::new(&data, &hidden, a.activation, batch)?;
    let tune_task = Task::new(&tune_data, &hidden, a.activation, batch)?;
    let scenario = a.activation.to_string();
    println!(
        "eval on {} ({} {}, {} parameters, {} steps, {} runs); baselines tuned on {}",
        a.data.display(),
        task.problem.shape(),
        a.activation,
        task.problem.shape().num_params(),
        steps,
        runs,
        a.tune_on.display()
    );
    let x0s = task.initial_points(a.seed.wrapping_add(5678), runs);
    let tune_x0s = task.initial_points(a.seed.wrapping_add(1234), a.tuning_runs as usize);
    let tune_steps = a.tune_steps as usize;
    let baselines = paper_baselines::<f32>();
    let tuned = tune(&baselines, &tune_task, &tune_x0s, tune_steps, "--tune-on")?;
    let oracle = if a.no_oracle {
        Vec::new()
    } else {
        tune(&baselines, &task, &tune_x0s, tune_steps, "--data (oracle)")?
    };
    let mut results = Vec::new();
    let mut rates = String::from("optimizer,tuned_on,lr\n");
    let total = learned.len() + tuned.len() + oracle.len();
    let pb = bar(total, "evaluate");
    for l in &learned {
        let alg = l.algorithm();
        results.push(evaluate(
            &alg.name(),
            &*alg,
            None,
            &task,
            &x0s,
            steps,
            &scenario,
        )?);
        pb.inc(1);
    }
    for (list, suffix, on) in [(&tuned, "", &a.tune_on), (&oracle, " (oracle)", &a.data)] {
        for (alg, lr) in list.iter() {
            let name = format!("{}{suffix}", alg.name());
            let _ = writeln!(rates, "{name},{},{lr}", on.display());
            results.push(evaluate(
                &name,
                &**alg,
                Some(*lr),
                &task,
                &x0s,
                steps,
                &scenario,
            )?);
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    write_file(&a.out.join("accuracy.csv"), &accuracy_csv(&results))?;
    write_file(
        &a.out.join("update_norms.csv"),
        &series_csv(&results, "update_norm"),
    )?;
    write_file(&a.out.join("learning_rates.csv"), &rates)?;
    let title = format!(
        "{} {} on {}",
        task.problem.shape(),
        a.activation,
        a.data.display()
    );
    plots::plot_loss(&a.out.join("loss.svg"), &title, &results)?;
    print!("{}", summary(&results, steps));
    println!(
        "wrote {}/accuracy.csv, update_norms.csv, learning_rates.csv, loss.svg",
        a.out.display()
    );
    Ok(())
}
