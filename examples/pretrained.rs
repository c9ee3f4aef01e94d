//! Loads the paper authors' published ConvergentL2O and LSTM optimizers (safetensors), runs them
//! for 301 steps from N(0, 0.1) initial points on the held-out split next to Adam, SGD, NAG and
//! RMSprop, and prints the test accuracy at steps 20 and 300 (mean ± std over the runs) and the
//! norms of the updates, like the paper's tables. Also saves both models back to safetensors and
//! reads them again (round trip).
//!
//! Usage: cargo run --release --example pretrained -- [--data DIR] [--pretrained DIR]
//!        [--runs 10] [--tune] [--out DIR]
//! Without `--tune` the baselines use the learning rates the authors' notebook tuned; with it,
//! the grid search of `eval::grid_search`.

use clap::Parser;
use convergent_l2o::eval::{
    default_lr_grid, grid_search, probes, run_from_each, Evaluated, RunConfig,
};
use convergent_l2o::models::{read_safetensors, write_safetensors, Activation, Params};
use convergent_l2o::optim::{
    paper_baselines, Algorithm, ConvergentL2O, Frozen, LearnedOptimizer, StepSize, Tunable,
    UnconstrainedL2O,
};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{Classifier, ClassifierMetrics, InitialPoint};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

const DEFAULT_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
const DEFAULT_PRETRAINED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/pretrained");
const STEPS: usize = 301;
const BATCH: usize = 128;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Parser, Debug)]
#[command(
    about = "Evaluate the paper authors' published ConvergentL2O and LSTM optimizers \
                   against Adam, SGD, NAG and RMSprop on MNIST"
)]
struct Args {
    /// MNIST-style data directory (the four IDX files).
    #[arg(long, default_value = DEFAULT_DATA)]
    data: PathBuf,
    /// Directory of convergent_l2o_tanh.safetensors and lstm_optimizer_tanh.safetensors.
    #[arg(long, default_value = DEFAULT_PRETRAINED)]
    pretrained: PathBuf,
    /// Where the round-tripped safetensors files are written.
    #[arg(long, default_value = "out/pretrained")]
    out: PathBuf,
    /// Runs (initial points) per optimizer and activation; at least 1.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    runs: usize,
    /// Tune the baselines' learning rates by grid search (training loss after the run)
    /// instead of using the authors' rates.
    #[arg(long)]
    tune: bool,
}

/// A count of runs: the tables are means over runs, so none is refused.
fn at_least_one(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|e| format!("'{s}' is not a number of runs ({e})"))?;
    if n == 0 {
        return Err("at least one run is needed (the tables are means over runs)".into());
    }
    if n > 10_000 {
        return Err(format!("{n} runs: at most 10000"));
    }
    Ok(n)
}

/// The learning rates of the authors' notebook (`lrs_Adam`, `lrs_SGD`, `lrs_NAG`, `lrs_RMSprop`).
fn authors_lr(name: &str, act: Activation) -> f64 {
    match (name, act) {
        ("Adam", _) => 5e-3,
        ("RMSprop", _) => 1e-3,
        ("SGD", Activation::Sigmoid) | ("NAG", Activation::Sigmoid) => 0.2,
        ("NAG", Activation::Tanh) => 7.5e-2,
        _ => 1e-2,
    }
}

fn load(dir: &Path) -> Res<(ConvergentL2O<f32>, UnconstrainedL2O<f32>)> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut convergent = ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut rng)?;
    let trained = read_safetensors(
        &dir.join("convergent_l2o_tanh.safetensors"),
        convergent.params(),
    )?;
    convergent.set_params(trained)?;
    let mut lstm = UnconstrainedL2O::<f32>::paper(&mut rng)?;
    // The LSTM's tensors live under `omega.` in the file.
    let mut template = Params::new();
    template.extend_prefixed("omega", lstm.params());
    let trained = read_safetensors(&dir.join("lstm_optimizer_tanh.safetensors"), &template)?;
    lstm.set_params(trained.sub_params("omega"))?;
    Ok((convergent, lstm))
}

fn round_trip(out: &Path, name: &str, params: &Params<f32>) -> Res<()> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join(name);
    write_safetensors(&path, params, None)?;
    let again = read_safetensors(&path, params)?;
    let same = params.iter().zip(again.iter()).all(|((_, a), (_, b))| {
        a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.to_bits() == y.to_bits())
    });
    if !same {
        return Err(format!("{}: round trip changed a value", path.display()).into());
    }
    println!("round trip {}: every value identical", path.display());
    Ok(())
}

/// `mean ± std` of an accuracy in percent, or the number of runs that diverged before `t`.
fn accuracy_cell(r: &Evaluated, t: usize) -> String {
    match r.accuracy(t) {
        Some((m, s)) if m.is_finite() => format!("{:>9.1} ± {:<4.1}", 100.0 * m, 100.0 * s),
        Some(_) => format!(
            "{:>16}",
            format!("diverged {}/{}", r.diverged(), r.traces.len())
        ),
        None => format!("{:>16}", "-"),
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("pretrained: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let args = Args::parse();
    let (convergent, lstm) = load(&args.pretrained)?;
    println!(
        "loaded ConvergentL2O ({} parameters) and LSTM ({} parameters)",
        convergent.params().num_scalars(),
        lstm.params().num_scalars()
    );
    round_trip(
        &args.out,
        "convergent_l2o_tanh.safetensors",
        convergent.params(),
    )?;
    let mut lstm_file = Params::new();
    lstm_file.extend_prefixed("omega", lstm.params());
    round_trip(&args.out, "lstm_optimizer_tanh.safetensors", &lstm_file)?;

    let mnist = Mnist::load(&args.data)?;
    let eval_train = mnist.split(Split::EvalTrain);
    let test = mnist.split(Split::Test);
    let mut rng = StdRng::seed_from_u64(5678);
    let x0s: Vec<_> = (0..args.runs)
        .map(|_| InitialPoint::PAPER_TEST.sample::<f32>(7850, &mut rng))
        .collect();
    let (early, last) = (20, STEPS - 1);
    for act in Activation::PAPER {
        let task = Classifier::<f32>::new(eval_train, act, BATCH, 0)?;
        let test_metrics = ClassifierMetrics::<f32>::new(test, act);
        let train_metrics = ClassifierMetrics::<f32>::new(eval_train, act);
        let cfg =
            RunConfig::new(STEPS).with(probes::accuracy(&test_metrics, vec![early, last], false));
        let learned: [&dyn LearnedOptimizer<f32>; 2] = [&convergent, &lstm];
        let mut candidates: Vec<(Box<dyn Algorithm<f32> + '_>, Option<f64>)> = learned
            .iter()
            .map(|&l| (Box::new(Frozen(l)) as Box<dyn Algorithm<f32>>, None))
            .collect();
        for base in paper_baselines::<f32>() {
            let lr = if args.tune {
                let tuning: Vec<_> = (0..3)
                    .map(|_| InitialPoint::PAPER_TEST.sample::<f32>(7850, &mut rng))
                    .collect();
                grid_search(&*base, &default_lr_grid(), &task, &tuning, STEPS, &|x| {
                    train_metrics.loss(x)
                })?
                .lr
            } else {
                authors_lr(&base.name(), act)
            };
            let tuned: Box<dyn Tunable<f32>> = base.with_lr(lr)?;
            candidates.push((tuned, Some(lr)));
        }
        println!(
            "\n{act}: test accuracy (%) and update norms over {} runs of {STEPS} steps",
            args.runs
        );
        println!(
            "{:<14} {:>9} {:>16} {:>16} {:>12} {:>12}",
            "optimizer",
            "lr",
            format!("acc t={early}"),
            format!("acc t={last}"),
            format!("|dx| t={early}"),
            format!("|dx| t={last}")
        );
        for (c, lr) in &candidates {
            let traces = run_from_each(&**c, &task, &x0s, &cfg)?
                .into_iter()
                .map(|r| r.trace)
                .collect();
            let r = Evaluated {
                optimizer: c.name(),
                scenario: act.to_string(),
                lr: *lr,
                traces,
            };
            let dx = |t: usize| r.at("update_norm", t).map_or(f64::NAN, |(m, _)| m);
            let lr = lr.map_or("learned".to_string(), |l| format!("{l}"));
            println!(
                "{:<14} {lr:>9} {} {} {:>12.3e} {:>12.3e}",
                r.optimizer,
                accuracy_cell(&r, early),
                accuracy_cell(&r, last),
                dx(early),
                dx(last)
            );
        }
    }
    Ok(())
}
