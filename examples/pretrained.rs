//! Loads the paper authors' published ConvergentL2O and LSTM optimizers (safetensors), runs them
//! for 301 steps from N(0, 0.1) initial points on the held-out split next to Adam, SGD, NAG and
//! RMSprop, and prints the test accuracy at steps 20 and 300 (mean ± std over the runs) and the
//! norms of the updates, like the paper's tables. Also saves both models back to safetensors and
//! reads them again (round trip).
//!
//! Usage: cargo run --release --example pretrained -- [--data DIR] [--runs 10] [--tune]
//!        [--out DIR]
//! Without `--tune` the baselines use the learning rates the authors' notebook tuned; with it,
//! the grid search of `meta::grid_search`.

use convergent_l2o::meta::data::{Mnist, Split};
use convergent_l2o::meta::{
    default_lr_grid, grid_search, mean_std, run_optimizer, Candidate, Classifier,
    ClassifierMetrics, EvalConfig, InitialPoint, Learned,
};
use convergent_l2o::models::{read_safetensors, write_safetensors, Activation, Params};
use convergent_l2o::optim::{ConvergentL2O, Rule, StepSize, UnconstrainedL2O};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");
const STEPS: usize = 301;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The learning rates of the authors' notebook (`lrs_Adam`, `lrs_SGD`, `lrs_NAG`, `lrs_RMSprop`).
fn authors_lr(rule: &Rule, act: Activation) -> f64 {
    let name = rule.to_string();
    match (name.as_str(), act) {
        ("Adam", _) => 5e-3,
        ("RMSprop", _) => 1e-3,
        ("SGD", Activation::Sigmoid) | ("NAG", Activation::Sigmoid) => 0.2,
        ("NAG", Activation::Tanh) => 7.5e-2,
        _ => 1e-2,
    }
}

fn load() -> Res<(ConvergentL2O<f32>, UnconstrainedL2O<f32>)> {
    let dir = Path::new(SHARED).join("pretrained");
    let mut rng = StdRng::seed_from_u64(0);
    let mut convergent = ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut rng)?;
    let trained = read_safetensors(
        &dir.join("convergent_l2o_tanh.safetensors"),
        convergent.params(),
    )?;
    convergent.set_params(trained)?;
    let mut lstm = UnconstrainedL2O::<f32>::paper(&mut rng)?;
    let mut template = Params::new();
    template.extend_prefixed("omega", lstm.params());
    let trained = read_safetensors(&dir.join("lstm_optimizer_tanh.safetensors"), &template)?;
    lstm.set_params(trained.sub_params("omega"))?;
    Ok((convergent, lstm))
}

fn round_trip(out: &Path, name: &str, params: &Params<f32>) -> Res<()> {
    std::fs::create_dir_all(out)?;
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

fn main() -> Res<()> {
    let mut data = PathBuf::from(SHARED).join("mnist-10k");
    let mut out = PathBuf::from("out/pretrained");
    let (mut runs, mut tune) = (10usize, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--data" => data = PathBuf::from(value()?),
            "--out" => out = PathBuf::from(value()?),
            "--runs" => runs = value()?.parse()?,
            "--tune" => tune = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let (convergent, lstm) = load()?;
    println!(
        "loaded ConvergentL2O ({} parameters) and LSTM ({} parameters)",
        convergent.params().num_scalars(),
        lstm.params().num_scalars()
    );
    round_trip(&out, "convergent_l2o_tanh.safetensors", convergent.params())?;
    let mut lstm_file = Params::new();
    lstm_file.extend_prefixed("omega", lstm.params());
    round_trip(&out, "lstm_optimizer_tanh.safetensors", &lstm_file)?;

    let mnist = Mnist::load(&data)?;
    let eval_train = mnist.split(Split::EvalTrain);
    let mut rng = StdRng::seed_from_u64(5678);
    let x0s: Vec<_> = (0..runs)
        .map(|_| InitialPoint::PAPER_TEST.sample::<f32>(7850, &mut rng))
        .collect();
    let cfg = EvalConfig {
        steps: STEPS,
        accuracy_at: vec![20, STEPS - 1],
    };
    for act in Activation::PAPER {
        let task = Classifier::<f32>::new(eval_train, act, 128, 0);
        let test = ClassifierMetrics::<f32>::new(mnist.split(Split::Test), act);
        let train = ClassifierMetrics::<f32>::new(eval_train, act);
        let learned: [&(dyn Learned<f32> + Sync); 2] = [&convergent, &lstm];
        let mut candidates: Vec<Candidate<'_, f32>> =
            learned.iter().map(|&l| Candidate::Learned(l)).collect();
        for rule in Rule::paper_baselines() {
            let lr = if tune {
                let tuning: Vec<_> = (0..3)
                    .map(|_| InitialPoint::PAPER_TEST.sample::<f32>(7850, &mut rng))
                    .collect();
                grid_search(rule, &default_lr_grid(), &task, &tuning, STEPS, &|x| {
                    train.loss(x)
                })?
                .lr
            } else {
                authors_lr(&rule, act)
            };
            candidates.push(Candidate::Rule { rule, lr });
        }
        println!("\n{act}: test accuracy (%) and update norms over {runs} runs of {STEPS} steps");
        println!(
            "{:<14} {:>9} {:>16} {:>16} {:>12} {:>12}",
            "optimizer", "lr", "acc t=20", "acc t=300", "|dx| t=20", "|dx| t=300"
        );
        for c in &candidates {
            let traces: Vec<_> = x0s
                .iter()
                .map(|x0| run_optimizer(*c, &task, x0, &cfg, Some(&test)).map(|r| r.trace))
                .collect::<Result<_, _>>()?;
            let acc = |t: usize| {
                mean_std(
                    &traces
                        .iter()
                        .filter_map(|tr| tr.accuracy_at(t))
                        .map(|a| 100.0 * a)
                        .collect::<Vec<_>>(),
                )
            };
            let dx = |t: usize| {
                mean_std(
                    &traces
                        .iter()
                        .filter_map(|tr| tr.update_norm.get(t).copied())
                        .collect::<Vec<_>>(),
                )
                .0
            };
            let ((a20, s20), (a300, s300)) = (acc(20), acc(STEPS - 1));
            let lr = c.lr().map_or("learned".to_string(), |l| format!("{l}"));
            println!("{:<14} {lr:>9} {a20:>9.1} ± {s20:<4.1} {a300:>9.1} ± {s300:<4.1} {:>12.3e} {:>12.3e}", c.name(), dx(20), dx(STEPS - 2));
        }
    }
    Ok(())
}
