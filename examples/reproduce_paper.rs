//! Reproduces the MNIST experiment of Martin & Furieri (2024), section IV, end to end:
//! meta-trains ConvergentL2O (40 meta-steps) and the LSTM optimizer (100 meta-steps) on the
//! tanh classifier, evaluates them against Adam, SGD, NAG and RMSprop (learning rates tuned
//! by grid search on the training loss, the paper's protocol) on the held-out 20% of the
//! training set for tanh, sigmoid and ReLU, and writes the paper's two accuracy tables, the
//! training curves of Fig. 1 and the long-horizon norms of the divergence figure.
//!
//! Usage: cargo run --release --example reproduce_paper -- [--quick] [--out DIR] [--resume]
//!        [--data DIR] [--transfer DIR] [--meta-steps 40] [--lstm-meta-steps 100] [--runs 10]
//!        [--steps 301] [--long-steps 3000] [--seed 0]
//!
//! Writes to --out: accuracy.csv, curves.csv, divergence.csv, learning_rates.csv,
//! grid_search.csv, meta_<optimizer>.csv, table.md, fig1_<activation>.svg, divergence.svg,
//! checkpoints (<optimizer>.ckpt, after every meta-step) and final meta-parameters
//! (<optimizer>.params); with --transfer also transfer_*.csv and transfer_fig1_*.svg.

use clap::Parser;
use convergent_l2o::meta::data::{Mnist, Split};
use convergent_l2o::meta::{
    accuracy_csv, accuracy_table, curves_csv, default_lr_grid, grid_search, load_checkpoint,
    mean_std, run_from_each, save_checkpoint, Candidate, Classifier, ClassifierMetrics, EvalConfig,
    Evaluated, InitialPoint, Learned, MetaStepReport, MetaTrainConfig, MetaTrainer,
    SequentialClassifierTasks, Unroll,
};
use convergent_l2o::models::{write_atomically, Activation};
use convergent_l2o::optim::{ConvergentL2O, Rule, StepSize, UnconstrainedL2O};
use indicatif::{ProgressBar, ProgressStyle};
use nalgebra::DMatrix;
use plotters::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

const DEFAULT_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
const BATCH: usize = 128;
/// The paper's row order.
const ROW_ORDER: [&str; 6] = ["Adam", "SGD", "NAG", "RMSprop", "ConvergentL2O", "LSTM"];

/// Flags; an unset number takes its full-run default, or its smoke-run value under --quick.
#[derive(Parser, Debug)]
#[command(about = "Reproduce the MNIST experiment of Martin & Furieri (2024), section IV")]
struct Args {
    /// MNIST-style data directory (the four IDX files).
    #[arg(long, default_value = DEFAULT_DATA)]
    data: PathBuf,
    /// Output directory (checkpoints, CSV files, table.md, SVG plots).
    #[arg(long, default_value = "out/reproduce")]
    out: PathBuf,
    /// Meta-steps of ConvergentL2O [default: 40; --quick: 2].
    #[arg(long)]
    meta_steps: Option<usize>,
    /// Meta-steps of the LSTM optimizer [default: 100; --quick: 2].
    #[arg(long)]
    lstm_meta_steps: Option<usize>,
    /// Evaluation runs (initial points) per optimizer and activation [default: 10; --quick: 2].
    #[arg(long)]
    runs: Option<usize>,
    /// Evaluation steps; the tables are at t = 20 and t = steps - 1 [default: 301; --quick: 31].
    #[arg(long)]
    steps: Option<usize>,
    /// Steps of the long runs of the learned optimizers [default: 3000; --quick: 100].
    #[arg(long)]
    long_steps: Option<usize>,
    /// Runs per learning rate in the grid search [default: 3; --quick: 1].
    #[arg(long)]
    tuning_runs: Option<usize>,
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
}

/// The settings after --quick is applied.
struct Settings {
    meta_steps: usize,
    lstm_meta_steps: usize,
    runs: usize,
    steps: usize,
    long_steps: usize,
    tuning_runs: usize,
    grid: Vec<f64>,
    meta: MetaTrainConfig,
    seed: u64,
}

impl Settings {
    fn from(a: &Args) -> Self {
        let q = a.quick;
        let pick =
            |v: Option<usize>, full: usize, quick: usize| v.unwrap_or(if q { quick } else { full });
        let mut meta = MetaTrainConfig::paper(a.seed);
        if q {
            meta.initial_points = 2;
            meta.unroll = Unroll {
                horizon: 10,
                ..Unroll::PAPER
            };
        }
        Settings {
            meta_steps: pick(a.meta_steps, 40, 2),
            lstm_meta_steps: pick(a.lstm_meta_steps, 100, 2),
            runs: pick(a.runs, 10, 2).max(1),
            steps: pick(a.steps, 301, 31).max(2),
            long_steps: pick(a.long_steps, 3000, 100).max(2),
            tuning_runs: pick(a.tuning_runs, 3, 1).max(1),
            grid: if q {
                vec![1e-3, 1e-2, 1e-1, 1.0]
            } else {
                default_lr_grid()
            },
            meta,
            seed: a.seed,
        }
    }

    /// Steps at which the test accuracy is measured.
    fn accuracy_steps(&self) -> Vec<usize> {
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

fn bar(len: usize, prefix: &str) -> ProgressBar {
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
fn say(pb: &ProgressBar, line: String) {
    pb.suspend(|| println!("{line}"));
}

fn write_file(path: &Path, text: &str) -> Res<()> {
    write_atomically(path, text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// Meta-trains `opt` for `meta_steps` meta-steps (continuing from `<file>.ckpt` with
/// `resume`), with a checkpoint after every meta-step and the meta-loss history in
/// `meta_<file>.csv`; writes the final meta-parameters to `<file>.params`. A non-finite
/// meta-step is reported and ends training with the last good meta-parameters.
fn meta_train<L: Learned<f32>>(
    opt: &mut L,
    file: &str,
    meta_steps: usize,
    s: &Settings,
    tasks: &SequentialClassifierTasks<f32>,
    out: &Path,
    resume: bool,
) -> Res<Vec<MetaStepReport>> {
    let ckpt = out.join(format!("{file}.ckpt"));
    let history_path = out.join(format!("meta_{file}.csv"));
    let mut history = Vec::new();
    let mut trainer = if resume && ckpt.exists() {
        let trainer = load_checkpoint(&ckpt, s.meta, opt)?;
        history = read_history(&history_path, trainer.meta_step());
        println!(
            "{}: resumed from {} at meta-step {}",
            opt.name(),
            ckpt.display(),
            trainer.meta_step()
        );
        trainer
    } else {
        MetaTrainer::new(s.meta)?
    };
    let pb = bar(meta_steps, &format!("meta-train {}", opt.name()));
    pb.set_position(trainer.meta_step().min(meta_steps) as u64);
    while trainer.meta_step() < meta_steps {
        let t0 = Instant::now();
        match trainer.step(opt, tasks) {
            Ok(r) => {
                save_checkpoint(&ckpt, &trainer, opt)?;
                pb.set_message(format!("meta-loss {:.4}", r.meta_loss));
                pb.inc(1);
                say(
                    &pb,
                    format!(
                        "  {} meta-step {:3}  meta-loss {:.5}  mean f(x_T) {:.4}  |grad| {:.3e}  {:.2} s",
                        opt.name(),
                        r.meta_step + 1,
                        r.meta_loss,
                        r.final_loss,
                        r.grad_norm,
                        t0.elapsed().as_secs_f64()
                    ),
                );
                history.push(r);
                write_file(&history_path, &history_csv(&history))?;
            }
            Err(e) => {
                say(
                    &pb,
                    format!(
                        "  {}: {e}; meta-training stops at meta-step {} with the last finite meta-parameters",
                        opt.name(),
                        trainer.meta_step()
                    ),
                );
                break;
            }
        }
    }
    pb.finish();
    opt.params().save(&out.join(format!("{file}.params")))?;
    Ok(history)
}

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

/// The history written before an interruption, up to the checkpoint's meta-step.
fn read_history(path: &Path, upto: usize) -> Vec<MetaStepReport> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let step: usize = f.first()?.parse().ok()?;
            Some(MetaStepReport {
                meta_step: step.checked_sub(1)?,
                meta_loss: f.get(1)?.parse().ok()?,
                final_loss: f.get(2)?.parse().ok()?,
                grad_norm: f.get(3)?.parse().ok()?,
            })
        })
        .filter(|r| r.meta_step < upto)
        .collect()
}

/// A tuned learning rate, for learning_rates.csv and the table.
struct Tuned {
    dataset: String,
    activation: Activation,
    optimizer: String,
    lr: f64,
    score: f64,
    grid: Vec<(f64, f64)>,
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
fn evaluate(
    dataset: &str,
    data: &Mnist,
    learned: &[&(dyn Learned<f32> + Sync)],
    s: &Settings,
) -> Res<(Vec<Evaluated>, Vec<Tuned>)> {
    let eval_train = data.split(Split::EvalTrain);
    let test = data.split(Split::Test);
    let x0s = initial_points(s.seed.wrapping_add(5678), s.runs);
    let tuning_x0s = initial_points(s.seed.wrapping_add(1234), s.tuning_runs);
    let cfg = EvalConfig {
        steps: s.steps,
        accuracy_at: s.accuracy_steps(),
    };
    let rules = Rule::paper_baselines();
    let mut results = Vec::new();
    let mut tuned = Vec::new();
    for act in Activation::PAPER {
        let task = Classifier::<f32>::new(eval_train, act, BATCH, 0);
        let train_metrics = ClassifierMetrics::<f32>::new(eval_train, act);
        let test_metrics = ClassifierMetrics::<f32>::new(test, act);
        let pb = bar(rules.len(), &format!("{dataset} {act}: tune lr"));
        let mut candidates: Vec<Candidate<'_, f32>> =
            learned.iter().map(|&l| Candidate::Learned(l)).collect();
        for rule in rules {
            let gs = grid_search(rule, &s.grid, &task, &tuning_x0s, s.steps, &|x| {
                train_metrics.loss(x)
            })?;
            say(
                &pb,
                format!(
                    "  {dataset} {act}: {rule} lr = {} (mean training loss at t = {}: {:.4})",
                    gs.lr,
                    s.steps - 1,
                    gs.score
                ),
            );
            pb.inc(1);
            candidates.push(Candidate::Rule { rule, lr: gs.lr });
            tuned.push(Tuned {
                dataset: dataset.into(),
                activation: act,
                optimizer: rule.to_string(),
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
        for c in &candidates {
            let runs = run_from_each(*c, &task, &x0s, &cfg, Some(&test_metrics))?;
            let traces: Vec<_> = runs.into_iter().map(|r| r.trace).collect();
            pb.inc(x0s.len() as u64);
            let r = Evaluated {
                optimizer: c.name(),
                scenario: act.to_string(),
                lr: c.lr(),
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
fn long_runs(
    data: &Mnist,
    learned: &[&(dyn Learned<f32> + Sync)],
    s: &Settings,
) -> Res<Vec<Evaluated>> {
    let eval_train = data.split(Split::EvalTrain);
    let task = Classifier::<f32>::new(eval_train, Activation::Tanh, BATCH, 0);
    let test_metrics = ClassifierMetrics::<f32>::new(data.split(Split::Test), Activation::Tanh);
    let x0s = initial_points(s.seed.wrapping_add(5678), s.runs);
    let mut accuracy_at = vec![0, 20, s.steps - 1, s.long_steps - 1];
    accuracy_at.retain(|&t| t < s.long_steps);
    accuracy_at.sort_unstable();
    accuracy_at.dedup();
    let cfg = EvalConfig {
        steps: s.long_steps,
        accuracy_at,
    };
    let pb = bar(
        learned.len() * x0s.len(),
        &format!("long runs ({} steps)", s.long_steps),
    );
    let mut out = Vec::new();
    for &opt in learned {
        let runs = run_from_each(
            Candidate::Learned(opt),
            &task,
            &x0s,
            &cfg,
            Some(&test_metrics),
        )?;
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

fn divergence_csv(long: &[Evaluated]) -> String {
    let mut out = String::from(
        "optimizer,activation,step,param_norm_mean,param_norm_std,update_norm_mean,update_norm_std\n",
    );
    for r in long {
        let p = r.per_step(|t| &t.param_norm);
        let u = r.per_step(|t| &t.update_norm);
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

fn learning_rates_csv(tuned: &[Tuned]) -> (String, String) {
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

// ---------------------------------------------------------------------------------- plots

fn color(name: &str) -> RGBColor {
    match name {
        "ConvergentL2O" => RGBColor(214, 39, 40),
        "LSTM" => RGBColor(148, 103, 189),
        "Adam" => RGBColor(31, 119, 180),
        "SGD" => RGBColor(44, 160, 44),
        "NAG" => RGBColor(255, 127, 14),
        "RMSprop" => RGBColor(127, 127, 127),
        _ => RGBColor(0, 0, 0),
    }
}

/// One curve: mean and a band (lower, upper) per step.
struct Band {
    label: String,
    points: Vec<(f64, f64, f64, f64)>,
}

/// Draws bands (shaded) and means (lines) on one panel; non-finite points are skipped.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    bands: &[Band],
    x_range: (f64, f64),
    y_range: (f64, f64),
) -> Res<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    chart
        .configure_mesh()
        .x_desc("step t")
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let clamp = |v: f64| v.clamp(y_range.0, y_range.1);
    let inside = |p: &&(f64, f64, f64, f64)| {
        p.0 >= x_range.0
            && p.0 <= x_range.1
            && p.1.is_finite()
            && p.2.is_finite()
            && p.3.is_finite()
    };
    for b in bands {
        let c = color(&b.label);
        let pts: Vec<&(f64, f64, f64, f64)> = b.points.iter().filter(inside).collect();
        if pts.is_empty() {
            continue;
        }
        let mut poly: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, clamp(p.3))).collect();
        poly.extend(pts.iter().rev().map(|p| (p.0, clamp(p.2))));
        chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.2).filled())))?;
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, clamp(p.1))),
                c.stroke_width(2),
            ))?
            .label(b.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn y_range_of(bands: &[Band], x_from: f64, floor_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for b in bands {
        for p in b.points.iter().filter(|p| p.0 >= x_from) {
            for v in [p.1, p.2, p.3] {
                if v.is_finite() {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if floor_zero {
        lo = lo.min(0.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - if floor_zero { 0.0 } else { pad }, hi + pad)
}

/// Fig. 1 for one activation: the training loss (mean ± std over runs), all steps and the
/// last 50.
fn plot_losses(path: &Path, title: &str, results: &[&Evaluated]) -> Res<()> {
    let bands: Vec<Band> = results
        .iter()
        .map(|r| Band {
            label: r.optimizer.clone(),
            points: r
                .per_step(|t| &t.loss)
                .into_iter()
                .enumerate()
                .map(|(t, (m, s))| (t as f64, m, m - s, m + s))
                .collect(),
        })
        .collect();
    let last = bands
        .iter()
        .map(|b| b.points.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1) as f64;
    // The initial loss can be far above the rest (ReLU); the full panel is capped at 1.2x the
    // largest mean at t = 0 so the curves stay readable.
    let start_max = bands
        .iter()
        .filter_map(|b| b.points.first().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let (lo, hi) = y_range_of(&bands, 0.0, true);
    let full_hi = if start_max > 0.0 {
        hi.min(1.2 * start_max)
    } else {
        hi
    };
    let zoom_from = (last - 50.0).max(0.0);
    let zoom = y_range_of(&bands, zoom_from, false);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1300, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        draw_panel(
            &panels[0],
            title,
            "training loss f(x_t)",
            &bands,
            (0.0, last),
            (lo, full_hi),
        )?;
        draw_panel(
            &panels[1],
            &format!("{title}: last {} steps", (last - zoom_from) as usize),
            "training loss f(x_t)",
            &bands,
            (zoom_from, last),
            zoom,
        )?;
        root.present()?;
    }
    write_file(path, &svg)
}

/// The divergence figure: log10 of the update and parameter norms over the long runs.
fn plot_divergence(path: &Path, long: &[Evaluated]) -> Res<()> {
    let log_bands = |series: fn(&convergent_l2o::meta::Trace) -> &[f64]| -> Vec<Band> {
        long.iter()
            .map(|r| Band {
                label: r.optimizer.clone(),
                points: r
                    .per_step(series)
                    .into_iter()
                    .enumerate()
                    .map(|(t, (m, s))| {
                        // A log scale cannot show mean - std <= 0: the band's floor is m / 100.
                        let lower = (m - s).max(m / 100.0);
                        (t as f64, m.log10(), lower.log10(), (m + s).log10())
                    })
                    .collect(),
            })
            .collect()
    };
    let updates = log_bands(|t| &t.update_norm);
    let params = log_bands(|t| &t.param_norm);
    let last = long
        .iter()
        .flat_map(|r| r.traces.iter().map(|t| t.loss.len()))
        .max()
        .unwrap_or(1)
        .saturating_sub(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1300, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        draw_panel(
            &panels[0],
            "norm of the updates (tanh)",
            "log10 |x_{t+1} - x_t|",
            &updates,
            (0.0, last),
            y_range_of(&updates, 0.0, false),
        )?;
        draw_panel(
            &panels[1],
            "norm of the classifier parameters (tanh)",
            "log10 |x_t|",
            &params,
            (0.0, last),
            y_range_of(&params, 0.0, false),
        )?;
        root.present()?;
    }
    write_file(path, &svg)
}

// ---------------------------------------------------------------------------------- tables

/// The paper's tables (section IV), rows in `ROW_ORDER`, columns tanh, sigmoid, ReLU.
const PAPER_T20: [[&str; 3]; 6] = [
    ["71.7 ± 5.1%", "76.1 ± 3.1%", "52.7 ± 11.1%"],
    ["44.9 ± 4.2%", "79.7 ± 1.9%", "49.8 ± 9.3%"],
    ["79.7 ± 1.4%", "81.1 ± 1.5%", "52.7 ± 10.2%"],
    ["69.4 ± 2.9%", "72.8 ± 2.3%", "61.1 ± 8.9%"],
    ["87.0 ± 0.5%", "86.8 ± 0.6%", "86.3 ± 0.6%"],
    ["82.2 ± 0.1%", "83.3 ± 0.1%", "88.3 ± 0.0%"],
];
const PAPER_T300: [[&str; 3]; 6] = [
    ["89.5 ± 0.5%", "89.6 ± 0.3%", "70.3 ± 12.2%"],
    ["87.4 ± 0.4%", "89.3 ± 0.3%", "80.6 ± 8.1%"],
    ["89.4 ± 0.2%", "89.4 ± 0.2%", "82.2 ± 7.6%"],
    ["87.6 ± 2.1%", "88.5 ± 0.4%", "81.5 ± 7.5%"],
    ["88.5 ± 0.2%", "88.4 ± 0.3%", "87.7 ± 0.2%"],
    ["81.4 ± 0.0%", "81.4 ± 0.0%", "88.3 ± 0.0%"],
];

fn paper_table(t: usize, cells: &[[&str; 3]; 6]) -> String {
    let mut out = format!("| Step t = {t} (paper) | tanh | sigmoid | relu |\n|---|---|---|---|\n");
    for (name, row) in ROW_ORDER.iter().zip(cells) {
        let _ = writeln!(out, "| {name} | {} | {} | {} |", row[0], row[1], row[2]);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn table_md(
    args: &Args,
    s: &Settings,
    data: &Mnist,
    results: &[Evaluated],
    tuned: &[Tuned],
    long: &[Evaluated],
    histories: &[(String, Vec<MetaStepReport>)],
    transfer: Option<(&str, &[Evaluated])>,
) -> String {
    let last = s.steps - 1;
    let mut md = String::from("# Reproduction of Martin & Furieri (2024), section IV (MNIST)\n\n");
    let _ = writeln!(
        md,
        "Data: `{}` ({} training samples: {} meta-train, {} held-out; {} test). Meta-training: \
         {} initial points x T = {} steps per meta-step, Adam {}; ConvergentL2O {} meta-steps, \
         LSTM {} meta-steps. Evaluation: {} runs of {} steps from x0 ~ N(0, 0.1) on the \
         held-out split (minibatches of {BATCH} in order), test accuracy on the test split, \
         mean ± std (ddof 0) over runs. Baselines' learning rates: grid search ({} rates, {} \
         runs, full held-out training loss at t = {last}). Seed {}.\n",
        args.data.display(),
        data.num_train(),
        data.meta_train_len(),
        data.num_train() - data.meta_train_len(),
        data.num_test(),
        s.meta.initial_points,
        s.meta.unroll.horizon,
        s.meta.lr,
        s.meta_steps,
        s.lstm_meta_steps,
        s.runs,
        s.steps,
        s.grid.len(),
        s.tuning_runs,
        s.seed
    );
    for (t, paper) in [(20, &PAPER_T20), (last, &PAPER_T300)] {
        if t > last {
            continue;
        }
        let _ = writeln!(
            md,
            "## Test accuracy at t = {t}\n\nOurs:\n\n{}",
            accuracy_table(results, t)
        );
        if t == 20 || t == 300 {
            let _ = writeln!(md, "Paper:\n\n{}", paper_table(t, paper));
        }
    }
    md.push_str("## Learning rates chosen by grid search\n\n| dataset | optimizer | tanh | sigmoid | relu |\n|---|---|---|---|---|\n");
    let mut seen: Vec<(String, String)> = Vec::new();
    for t in tuned {
        let key = (t.dataset.clone(), t.optimizer.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let lr = |a: Activation| {
            tuned
                .iter()
                .find(|u| u.dataset == t.dataset && u.optimizer == t.optimizer && u.activation == a)
                .map_or("".into(), |u| format!("{}", u.lr))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            t.dataset,
            t.optimizer,
            lr(Activation::Tanh),
            lr(Activation::Sigmoid),
            lr(Activation::Relu)
        );
    }
    md.push_str("\nThe original code's tuned rates for tanh: Adam 5e-3, SGD 1e-2, NAG 7.5e-2, RMSprop 1e-3.\n\n");
    md.push_str("## Meta-training\n\n| optimizer | meta-steps | first meta-loss | last meta-loss |\n|---|---|---|---|\n");
    for (name, h) in histories {
        let first = h.first().map_or(f64::NAN, |r| r.meta_loss);
        let lastl = h.last().map_or(f64::NAN, |r| r.meta_loss);
        let _ = writeln!(md, "| {name} | {} | {first:.4} | {lastl:.4} |", h.len());
    }
    md.push_str("\n(The original notebook: ConvergentL2O meta-loss 42.51 at epoch 1, 18.94 at epoch 40.)\n\n");
    let _ = writeln!(
        md,
        "## Long runs (tanh, {} steps, {} runs): norms, mean over runs\n\n| optimizer | t | \\|x_t\\| | \\|x_(t+1) - x_t\\| | test accuracy |\n|---|---|---|---|---|",
        s.long_steps, s.runs
    );
    for r in long {
        let p = r.per_step(|t| &t.param_norm);
        let u = r.per_step(|t| &t.update_norm);
        let mut ts = vec![0, 20, last, s.long_steps - 1];
        ts.retain(|&t| t < s.long_steps);
        ts.sort_unstable();
        ts.dedup();
        for t in ts {
            let acc = r.accuracy(t).map_or("".into(), |(m, sd)| {
                format!("{:.1} ± {:.1}%", 100.0 * m, 100.0 * sd)
            });
            let (pm, um) = (
                p.get(t).map_or(f64::NAN, |v| v.0),
                u.get(t).map_or(f64::NAN, |v| v.0),
            );
            let _ = writeln!(md, "| {} | {t} | {pm:.4} | {um:.3e} | {acc} |", r.optimizer);
        }
    }
    if let Some((name, tr)) = transfer {
        let _ = writeln!(
            md,
            "\n## Transfer: the MNIST-trained optimizers on {name}\n\nBaselines re-tuned on {name}; same protocol.\n"
        );
        for t in [20, last] {
            if t <= last {
                let _ = writeln!(md, "{}", accuracy_table(tr, t));
            }
        }
    }
    md
}

fn print_table(title: &str, results: &[Evaluated], t: usize) {
    println!("\n{title}\n{}", accuracy_table(results, t));
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
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let data = Mnist::load(&args.data)?;
    println!(
        "data {}: {} training samples ({} meta-train, {} held-out), {} test",
        args.data.display(),
        data.num_train(),
        data.meta_train_len(),
        data.num_train() - data.meta_train_len(),
        data.num_test()
    );

    let tasks = SequentialClassifierTasks::new(
        data.split(Split::MetaTrain),
        Activation::Tanh,
        BATCH,
        s.meta.initial_points,
        s.meta.unroll.horizon,
        InitialPoint::META_TRAIN,
    );
    let mut convergent =
        ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(s.seed))?;
    let mut lstm =
        UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(s.seed.wrapping_add(1)))?;
    println!(
        "ConvergentL2O: {} meta-parameters; LSTM: {}",
        convergent.params().num_scalars(),
        lstm.params().num_scalars()
    );
    let t0 = Instant::now();
    let h_conv = meta_train(
        &mut convergent,
        "convergent_l2o",
        s.meta_steps,
        &s,
        &tasks,
        &args.out,
        args.resume,
    )?;
    println!(
        "meta-training ConvergentL2O: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let t0 = Instant::now();
    let h_lstm = meta_train(
        &mut lstm,
        "lstm",
        s.lstm_meta_steps,
        &s,
        &tasks,
        &args.out,
        args.resume,
    )?;
    println!("meta-training LSTM: {:.1} s", t0.elapsed().as_secs_f64());

    let learned: [&(dyn Learned<f32> + Sync); 2] = [&convergent, &lstm];
    let t0 = Instant::now();
    let (results, mut tuned) = evaluate("MNIST", &data, &learned, &s)?;
    println!("evaluation: {:.1} s", t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    let long = long_runs(&data, &learned, &s)?;
    println!("long runs: {:.1} s", t0.elapsed().as_secs_f64());

    let mut transfer = None;
    if let Some(dir) = &args.transfer {
        let other = Mnist::load(dir)?;
        let name = dir
            .file_name()
            .map_or("transfer".into(), |n| n.to_string_lossy().into_owned());
        let t0 = Instant::now();
        let (tr, tr_tuned) = evaluate(&name, &other, &learned, &s)?;
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
    print_table("test accuracy, MNIST:", &results, 20.min(s.steps - 1));
    print_table("", &results, s.steps - 1);
    if let Some((name, tr)) = &transfer {
        print_table(&format!("test accuracy, {name}:"), tr, 20.min(s.steps - 1));
        print_table("", tr, s.steps - 1);
    }
    for r in &long {
        let (pm, _) = mean_std(
            &r.traces
                .iter()
                .filter_map(|t| t.param_norm.last().copied())
                .collect::<Vec<_>>(),
        );
        let (um, _) = mean_std(
            &r.traces
                .iter()
                .filter_map(|t| t.update_norm.last().copied())
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
