//! LOA learned BFGS (Castera & Ochs): meta-train on random quadratics with the library's one
//! `MetaTrainer`, then compare with GD, Nesterov, heavy ball and BFGS (every method through
//! `eval::run`) in distribution; out of distribution in `loa_ood.rs`.
//!
//! Writes `loa_<suite>.csv` (per step: median, min and max over instances of the relative
//! suboptimality `(f(x_k) - F*)/(f(x_0) - F*)` for every method), `loa_<suite>.svg` (medians)
//! `loa_in_distribution_table.csv` (median and worst at the early iterations) and
//! `loa_params.bin` (the trained 216 parameters) to `out_dir`.

use convergent_l2o::eval::{probes, run as eval_run, RunConfig};
use convergent_l2o::meta::{draw_rng, FullBptt, LogRelative, MetaTrainConfig, MetaTrainer};
use convergent_l2o::models::write_atomically;
use convergent_l2o::optim::{
    loa_gradient_descent, loa_heavy_ball, loa_nesterov, loa_warm_up, Algorithm, Bfgs, Frozen,
    LoaBfgs,
};
use convergent_l2o::problems::{
    standard_normal_point, Draw, LoaQuadratics, Problem, ProblemFamily, Ridge, Sampled,
};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;
use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const METHODS: [&str; 5] = ["LOA BFGS", "BFGS", "GD", "Nesterov", "heavy ball"];

/// The floor of the meta-loss `mean_k log(r_k + ε)`.
const FLOOR: f64 = 1e-12;

type Point = DMatrix<f64>;

/// `f(x_0), ..., f(x_steps)` of `alg` started at `start` (`x_{-1}` for the quasi-Newton methods,
/// which warm up in `init`; `x_0` for the others), NaN past a divergence, and how many steps
/// took each safeguard of the quasi-Newton methods (`fallback` 0..=3; zeros for the others).
fn values_and_fallbacks(
    alg: &dyn Algorithm<f64>,
    p: &dyn Problem<f64>,
    start: &Point,
    steps: usize,
) -> Result<(Vec<f64>, [usize; 4]), String> {
    let cfg = RunConfig::bare(steps)
        .with(probes::objective(steps))
        .with(probes::reported("fallback"));
    let out = eval_run(alg, p, start, &cfg).map_err(|e| format!("{}: {e}", alg.name()))?;
    let mut v = out.trace.values("objective");
    v.resize(steps + 1, f64::NAN);
    let mut fallbacks = [0; 4];
    for f in out.trace.values("fallback") {
        if f.is_finite() && (0.0..4.0).contains(&f) {
            fallbacks[f as usize] += 1;
        }
    }
    Ok((v, fallbacks))
}

/// `f(x_0), ..., f(x_steps)` of `alg` started at `start` (see [`values_and_fallbacks`]).
fn values(
    alg: &dyn Algorithm<f64>,
    p: &dyn Problem<f64>,
    start: &Point,
    steps: usize,
) -> Result<Vec<f64>, String> {
    Ok(values_and_fallbacks(alg, p, start, steps)?.0)
}

/// `(f(x_k) - F*)/(f(x_0) - F*)`.
fn relative(values: &[f64], f_star: f64) -> Vec<f64> {
    let gap = values[0] - f_star;
    values.iter().map(|v| (v - f_star) / gap).collect()
}

/// LOA's meta-loss of one run, offline: the mean over `k = 1..=T` of `log(r_k + ε)` (the
/// formula `LogRelative` records).
fn log_relative(values: &[f64], f_star: f64) -> f64 {
    let r = relative(values, f_star);
    let t = (r.len() - 1).max(1);
    r[1..]
        .iter()
        .map(|r| {
            if r + FLOOR > 0.0 {
                (r + FLOOR).ln()
            } else {
                FLOOR.ln()
            }
        })
        .sum::<f64>()
        / t as f64
}

/// The mean held-out meta-loss of `model` over `horizon` steps.
fn held_out_loss(
    model: &LoaBfgs<f64>,
    problems: &[Sampled<f64>],
    horizon: usize,
) -> Result<f64, String> {
    let losses = problems
        .par_iter()
        .map(|s| {
            let v = values(&Frozen(model), &*s.problem, &s.x0, horizon)?;
            let f_star = s.problem.infimum().ok_or("the problem has no F*")?;
            Ok(log_relative(&v, f_star))
        })
        .collect::<Result<Vec<f64>, String>>()?;
    Ok(losses.iter().sum::<f64>() / losses.len().max(1) as f64)
}

/// Per method, per instance, the relative suboptimality curve from `x_{-1}` (clipped at 1e-16
/// for the log plot: below that it is rounding noise), and the safeguard counts of LOA and of
/// BFGS over all runs.
type Curves = (Vec<Vec<Vec<f64>>>, [[usize; 4]; 2]);

fn curves<P: Problem<f64>>(
    model: &LoaBfgs<f64>,
    problems: &[(P, Point)],
    steps: usize,
) -> Result<Curves, String> {
    let per_instance = problems
        .par_iter()
        .enumerate()
        .map(|(i, (p, x))| {
            let tag = |e: String| format!("instance {i}: {e}");
            let f_star = p.infimum().ok_or("the problem has no F*")?;
            let x0 = loa_warm_up(p, x).map_err(|e| tag(e.to_string()))?;
            let gd = loa_gradient_descent(p).map_err(|e| tag(e.to_string()))?;
            let nesterov = loa_nesterov(p).map_err(|e| tag(e.to_string()))?;
            let heavy_ball = loa_heavy_ball(p).map_err(|e| tag(e.to_string()))?;
            let runs: [(&dyn Algorithm<f64>, &Point); 5] = [
                (&Frozen(model), x),
                (&Bfgs, x),
                (&gd, &x0),
                (&nesterov, &x0),
                (&heavy_ball, &x0),
            ];
            runs.iter()
                .map(|(alg, start)| {
                    let (v, fb) = values_and_fallbacks(*alg, p, start, steps).map_err(tag)?;
                    let clip = |r: f64| if r.is_nan() { r } else { r.max(1e-16) };
                    Ok((relative(&v, f_star).into_iter().map(clip).collect(), fb))
                })
                .collect::<Result<Vec<(Vec<f64>, [usize; 4])>, String>>()
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut out = vec![Vec::new(); METHODS.len()];
    let mut fallbacks = [[0; 4]; 2];
    for runs in per_instance {
        for (m, (curve, fb)) in runs.into_iter().enumerate() {
            if m < 2 {
                (0..4).for_each(|j| fallbacks[m][j] += fb[j]);
            }
            out[m].push(curve);
        }
    }
    Ok((out, fallbacks))
}

/// The median, minimum and maximum over instances at step `k`.
fn stats(runs: &[Vec<f64>], k: usize) -> (f64, f64, f64) {
    let mut v: Vec<f64> = runs.iter().map(|r| r[k]).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    (median, v[0], v[n - 1])
}

/// One suite's result: per method, the median and the maximum over instances at every step.
pub struct Suite {
    /// `(method, medians, maxima)` for `k = 0..=steps`.
    pub methods: Vec<(&'static str, Vec<f64>, Vec<f64>)>,
}

/// Runs every method on `problems`, writes `loa_<suite>.csv` (median, min, max per step) and
/// `loa_<suite>.svg` (medians), prints the medians at `k = steps/4` and `steps` (and the
/// safeguards taken), and returns the curves.
pub fn report<P: Problem<f64>>(
    out_dir: &Path,
    suite: &str,
    title: &str,
    model: &LoaBfgs<f64>,
    problems: &[(P, Point)],
    steps: usize,
) -> Result<Suite, Box<dyn Error>> {
    let t = Instant::now();
    let (all, fallbacks) = curves(model, problems, steps)?;
    let mut csv = String::from("k");
    for m in METHODS {
        let m = m.replace(' ', "_");
        write!(csv, ",{m}_median,{m}_min,{m}_max")?;
    }
    csv.push('\n');
    let mut medians = vec![Vec::with_capacity(steps + 1); METHODS.len()];
    let mut maxima = vec![Vec::with_capacity(steps + 1); METHODS.len()];
    for k in 0..=steps {
        write!(csv, "{k}")?;
        for (m, runs) in all.iter().enumerate() {
            let (med, lo, hi) = stats(runs, k);
            medians[m].push(med);
            maxima[m].push(hi);
            write!(csv, ",{med:e},{lo:e},{hi:e}")?;
        }
        csv.push('\n');
    }
    let csv_path = out_dir.join(format!("loa_{suite}.csv"));
    write_atomically(&csv_path, csv.as_bytes())
        .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let series: Vec<(&str, &[f64])> = METHODS
        .iter()
        .zip(&medians)
        .map(|(n, m)| (*n, m.as_slice()))
        .collect();
    super::plot::log_curves_svg(
        &out_dir.join(format!("loa_{suite}.svg")),
        title,
        "median (f(x_k) - F*)/(f(x_0) - F*)",
        &series,
    )?;
    println!(
        "  {suite} ({} instances, {steps} steps, {:.1} s), median at k = {} and {steps}:",
        problems.len(),
        t.elapsed().as_secs_f64(),
        steps / 4
    );
    for (name, m) in METHODS.iter().zip(&medians) {
        println!("    {name:<10} {:.2e}  {:.2e}", m[steps / 4], m[steps]);
    }
    for (name, fb) in ["LOA BFGS", "BFGS"].iter().zip(&fallbacks) {
        println!(
            "    {name} steps: {} quasi-Newton, restarted along -g: {} (not a descent direction) \
             + {} (Armijo failed), {} rejected",
            fb[0], fb[1], fb[2], fb[3]
        );
    }
    Ok(Suite {
        methods: METHODS
            .iter()
            .zip(medians.into_iter().zip(maxima))
            .map(|(n, (m, x))| (*n, m, x))
            .collect(),
    })
}

/// `count` instances of `make` with `x_{-1} ~ N(0, I)`, all from `rng`.
pub fn instances<P>(
    count: usize,
    dim: usize,
    rng: &mut StdRng,
    mut make: impl FnMut(&mut StdRng) -> Result<P, Box<dyn Error>>,
) -> Result<Vec<(P, Point)>, Box<dyn Error>> {
    (0..count)
        .map(|_| Ok((make(rng)?, standard_normal_point(dim, rng))))
        .collect()
}

/// Meta-trains LOA on quadratics and evaluates it against the classical baselines; `quick` is a
/// smoke run (well under a minute in release mode).
pub fn run(out_dir: &Path, quick: bool, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let t0 = Instant::now();
    let dim = if quick { 10 } else { 20 };
    let meta_steps = if quick { 400 } else { 3000 };
    let family = LoaQuadratics::new(dim)?;
    // Horizon dim/2: shorter than the dim steps BFGS needs, so the model has something to gain.
    let estimator = FullBptt {
        trajectories: 8,
        horizon: (dim / 2).max(1),
        second_order: true,
    };
    let config = MetaTrainConfig {
        lr: 5e-4,
        clip: Some(1.0),
        seed,
    };
    println!(
        "LOA: meta-training on quadratics (dim {dim}, horizon {}, {} trajectories, {meta_steps} \
         meta-steps)",
        estimator.horizon, estimator.trajectories
    );
    let mut model = LoaBfgs::bfgs_init(&mut StdRng::seed_from_u64(seed));
    let mut trainer = MetaTrainer::new(config, estimator, LogRelative { floor: FLOOR })?;
    // Held out: the draws of a meta-step training never reaches.
    let held_out: Vec<Sampled<f64>> = (0..estimator.trajectories)
        .map(|i| {
            let draw = Draw {
                meta_step: usize::MAX,
                index: i,
            };
            ProblemFamily::<f64>::sample(&family, draw, &mut draw_rng(seed, usize::MAX, i))
        })
        .collect::<Result<_, _>>()?;
    let bfgs_loss = held_out_loss(&model, &held_out, estimator.horizon)?;
    let every = (meta_steps / 10).max(1);
    for _ in 0..meta_steps {
        let r = trainer.step(&mut model, &family)?;
        if r.meta_step % every == 0 || r.meta_step + 1 == meta_steps {
            println!(
                "  meta-step {:4}  meta-loss {:9.4}  |grad| {:.3e}",
                r.meta_step, r.meta_loss, r.grad_norm
            );
        }
        if let Some(w) = r.warning {
            println!("  warning: {w}");
        }
    }
    println!(
        "  held-out meta-loss: BFGS (initialization) {bfgs_loss:.4}, trained LOA {:.4}",
        held_out_loss(&model, &held_out, estimator.horizon)?
    );
    model.save(&out_dir.join("loa_params.bin"))?;

    let mut rng = StdRng::seed_from_u64(seed ^ 0x10a);
    let count = if quick { 8 } else { 20 };
    let steps = if quick { 60 } else { 310 };
    println!("LOA: evaluation (relative suboptimality, median over instances)");
    let in_dist: Vec<(Ridge, Point)> =
        instances(count, dim, &mut rng, |rng| Ok(family.sample(rng)?))?;
    let title = format!("Quadratics, dim {dim} (training distribution)");
    let result = report(out_dir, "quadratics", &title, &model, &in_dist, steps)?;
    let mut csv = String::from("suite,method,k,median,max\n");
    let mut ks = super::loa_ood::table_ks(steps);
    ks.push(27.min(steps)); // where the issue compares LOA and BFGS in distribution
    ks.sort_unstable();
    ks.dedup();
    super::loa_ood::table("quadratics", &result, &ks, &mut csv);
    let path = out_dir.join("loa_in_distribution_table.csv");
    write_atomically(&path, csv.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "LOA: trained and evaluated in distribution in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    super::loa_ood::run(out_dir, quick, seed, &model)?;
    println!("LOA: done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
