//! The evaluation protocol: learning rates of the baselines by grid search, runs of every
//! optimizer from the same initial points, and the learned optimizers' long runs.

use crate::{bar, say, Res, Settings, BATCH, ROW_ORDER};
use convergent_l2o::eval::{grid_search, probes, run_from_each, Evaluated, RunConfig};
use convergent_l2o::models::Activation;
use convergent_l2o::optim::{paper_baselines, Algorithm, Frozen, LearnedOptimizer};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{Classifier, ClassifierMetrics, InitialPoint};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fmt::Write as _;

/// A tuned learning rate, for learning_rates.csv and the table.
pub(crate) struct Tuned {
    pub(crate) dataset: String,
    pub(crate) activation: Activation,
    pub(crate) optimizer: String,
    pub(crate) lr: f64,
    pub(crate) score: f64,
    pub(crate) grid: Vec<(f64, f64)>,
}

/// `n` initial points of the paper's test distribution N(0, 0.1), from `seed`.
fn initial_points(seed: u64, n: usize) -> Vec<DMatrix<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| InitialPoint::PAPER_TEST.sample(7850, &mut rng))
        .collect()
}

/// The evaluation protocol on one dataset: per activation, the baselines' learning rates by
/// grid search (mean full-split training loss at the last step over `tuning_runs` initial
/// points other than the evaluation's), then `runs` runs of every optimizer from the same
/// initial points, each starting at the first minibatch of the held-out split.
pub(crate) fn evaluate(
    dataset: &str,
    data: &Mnist,
    learned: &[&dyn LearnedOptimizer<f32>],
    s: &Settings,
) -> Res<(Vec<Evaluated>, Vec<Tuned>)> {
    let eval_train = data.split(Split::EvalTrain);
    let test = data.split(Split::Test);
    let x0s = initial_points(s.seed.wrapping_add(5678), s.runs);
    let tuning_x0s = initial_points(s.seed.wrapping_add(1234), s.tuning_runs);
    let baselines = paper_baselines::<f32>();
    let mut results = Vec::new();
    let mut tuned = Vec::new();
    for act in Activation::PAPER {
        let task = Classifier::<f32>::new(eval_train, act, BATCH, 0)?;
        let train_metrics = ClassifierMetrics::<f32>::new(eval_train, act);
        let test_metrics = ClassifierMetrics::<f32>::new(test, act);
        let cfg = RunConfig::new(s.steps).with(probes::accuracy(
            &test_metrics,
            s.accuracy_steps(),
            s.accuracy_after_update,
        ));
        let pb = bar(baselines.len(), &format!("{dataset} {act}: tune lr"));
        let mut candidates: Vec<(Box<dyn Algorithm<f32> + '_>, Option<f64>)> = learned
            .iter()
            .map(|&l| (Box::new(Frozen(l)) as Box<dyn Algorithm<f32>>, None))
            .collect();
        for base in &baselines {
            let gs = grid_search(&**base, &s.grid, &task, &tuning_x0s, s.steps, &|x| {
                train_metrics.loss(x)
            })?;
            say(
                &pb,
                format!(
                    "  {dataset} {act}: {} lr = {} (mean training loss at t = {}: {:.4})",
                    gs.optimizer,
                    gs.lr,
                    s.steps - 1,
                    gs.score
                ),
            );
            pb.inc(1);
            let chosen: Box<dyn Algorithm<f32>> = base.with_lr(gs.lr)?;
            candidates.push((chosen, Some(gs.lr)));
            tuned.push(Tuned {
                dataset: dataset.into(),
                activation: act,
                optimizer: gs.optimizer,
                lr: gs.lr,
                score: gs.score,
                grid: gs.scores,
            });
        }
        pb.finish();
        let pb = bar(
            candidates.len() * x0s.len(),
            &format!("{dataset} {act}: evaluate"),
        );
        for (c, lr) in &candidates {
            let runs = run_from_each(&**c, &task, &x0s, &cfg)?;
            let traces: Vec<_> = runs.into_iter().map(|r| r.trace).collect();
            pb.inc(x0s.len() as u64);
            let r = Evaluated {
                optimizer: c.name(),
                scenario: act.to_string(),
                lr: *lr,
                traces,
            };
            if r.diverged() > 0 {
                say(
                    &pb,
                    format!(
                        "  {dataset} {act}: {} diverged in {}/{} runs",
                        r.optimizer,
                        r.diverged(),
                        r.traces.len()
                    ),
                );
            }
            results.push(r);
        }
        pb.finish();
    }
    results.sort_by_key(|r| {
        let row = ROW_ORDER.iter().position(|n| *n == r.optimizer);
        (row.unwrap_or(ROW_ORDER.len()), r.optimizer.clone())
    });
    Ok((results, tuned))
}

/// The learned optimizers' long runs on the tanh classifier: `|x_t|` and `|x_{t+1} - x_t|`.
pub(crate) fn long_runs(
    data: &Mnist,
    learned: &[&dyn LearnedOptimizer<f32>],
    s: &Settings,
) -> Res<Vec<Evaluated>> {
    let eval_train = data.split(Split::EvalTrain);
    let task = Classifier::<f32>::new(eval_train, Activation::Tanh, BATCH, 0)?;
    let test_metrics = ClassifierMetrics::<f32>::new(data.split(Split::Test), Activation::Tanh);
    let x0s = initial_points(s.seed.wrapping_add(5678), s.runs);
    let mut accuracy_at = vec![0, 20, s.steps - 1, s.long_steps - 1];
    accuracy_at.retain(|&t| t < s.long_steps);
    accuracy_at.sort_unstable();
    accuracy_at.dedup();
    let cfg = RunConfig::new(s.long_steps).with(probes::accuracy(
        &test_metrics,
        accuracy_at,
        s.accuracy_after_update,
    ));
    let pb = bar(
        learned.len() * x0s.len(),
        &format!("long runs ({} steps)", s.long_steps),
    );
    let mut out = Vec::new();
    for &opt in learned {
        let runs = run_from_each(&Frozen(opt), &task, &x0s, &cfg)?;
        let traces: Vec<_> = runs.into_iter().map(|r| r.trace).collect();
        pb.inc(x0s.len() as u64);
        out.push(Evaluated {
            optimizer: opt.name(),
            scenario: Activation::Tanh.to_string(),
            lr: None,
            traces,
        });
    }
    pb.finish();
    Ok(out)
}

pub(crate) fn divergence_csv(long: &[Evaluated]) -> String {
    let mut out = String::from(
        "optimizer,activation,step,param_norm_mean,param_norm_std,update_norm_mean,update_norm_std\n",
    );
    for r in long {
        let p = r.per_step("param_norm");
        let u = r.per_step("update_norm");
        for (t, ((pm, ps), (um, us))) in p.into_iter().zip(u).enumerate() {
            let _ = writeln!(
                out,
                "{},{},{t},{pm:.6e},{ps:.6e},{um:.6e},{us:.6e}",
                r.optimizer, r.scenario
            );
        }
    }
    out
}

pub(crate) fn learning_rates_csv(tuned: &[Tuned]) -> (String, String) {
    let mut chosen = String::from("dataset,activation,optimizer,lr,score\n");
    let mut grid = String::from("dataset,activation,optimizer,lr,score\n");
    for t in tuned {
        let _ = writeln!(
            chosen,
            "{},{},{},{},{}",
            t.dataset, t.activation, t.optimizer, t.lr, t.score
        );
        for (lr, score) in &t.grid {
            let _ = writeln!(
                grid,
                "{},{},{},{lr},{score}",
                t.dataset, t.activation, t.optimizer
            );
        }
    }
    (chosen, grid)
}
