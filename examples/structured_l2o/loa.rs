//! LOA learned BFGS (Castera & Ochs): meta-train on random quadratics, then compare with GD,
//! Nesterov, heavy ball and BFGS in distribution and on shifted problems (larger ridge
//! regressions, the original's synthetic logistic regression and a larger one).
//!
//! Writes `loa_<suite>.csv` (per step: median, min and max over instances of the relative
//! suboptimality `(f(x_k) - F*)/(f(x_0) - F*)` for every method), `loa_<suite>.svg` (medians)
//! and `loa_params.bin` (the trained 216 parameters) to `out_dir`.

use convergent_l2o::meta::{LoaQuadratics, Objective, Ridge, SyntheticLogistic, Task};
use convergent_l2o::models::write_atomically;
use convergent_l2o::optim::{
    bfgs, gradient_descent, heavy_ball, nesterov, standard_normal_point, LineSearch, LoaBfgs,
    LoaTrainConfig, LoaTrainer, Start,
};
use nalgebra::DVector;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

const METHODS: [&str; 5] = ["LOA BFGS", "BFGS", "GD", "Nesterov", "heavy ball"];

/// A problem both the tape (LOA) and the plain baselines can run.
trait Problem: Objective + Task<f64> {}
impl<P: Objective + Task<f64>> Problem for P {}

/// Per method, per instance, the relative suboptimality curve (clipped at 1e-16 for the log
/// plot: below that it is rounding noise).
fn curves<P: Problem>(
    model: &LoaBfgs<f64>,
    problems: &[(P, DVector<f64>)],
    steps: usize,
) -> Result<Vec<Vec<Vec<f64>>>, Box<dyn Error>> {
    let mut out = vec![Vec::new(); METHODS.len()];
    for (i, (p, x)) in problems.iter().enumerate() {
        let start = Start::for_objective(p, x)?;
        let loa = model
            .run(p, x, steps, LineSearch::Armijo)
            .map_err(|e| format!("LOA on instance {i}: {e}"))?;
        let runs = [
            loa,
            bfgs(p, &start, steps),
            gradient_descent(p, &start, steps),
            nesterov(p, &start, steps, 3.01),
            heavy_ball(p, &start, steps),
        ];
        for (m, run) in runs.iter().enumerate() {
            let rel = run.relative(p.minimum());
            out[m].push(rel.iter().map(|r| r.max(1e-16)).collect());
        }
    }
    Ok(out)
}

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

fn report<P: Problem>(
    out_dir: &Path,
    suite: &str,
    title: &str,
    model: &LoaBfgs<f64>,
    problems: &[(P, DVector<f64>)],
    steps: usize,
) -> Result<(), Box<dyn Error>> {
    let t = Instant::now();
    let all = curves(model, problems, steps)?;
    let mut csv = String::from("k");
    for m in METHODS {
        let m = m.replace(' ', "_");
        write!(csv, ",{m}_median,{m}_min,{m}_max")?;
    }
    csv.push('\n');
    let mut medians = vec![Vec::with_capacity(steps + 1); METHODS.len()];
    for k in 0..=steps {
        write!(csv, "{k}")?;
        for (m, runs) in all.iter().enumerate() {
            let (med, lo, hi) = stats(runs, k);
            medians[m].push(med);
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
    Ok(())
}

/// Meta-trains LOA on quadratics and evaluates it against the classical baselines; `quick` is a
/// smoke run (well under a minute in release mode).
pub fn run(out_dir: &Path, quick: bool, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let t0 = Instant::now();
    let dim = if quick { 10 } else { 20 };
    let meta_steps = if quick { 400 } else { 3000 };
    let mut cfg = LoaTrainConfig::new(dim, seed);
    cfg.lr = 5e-4;
    cfg.batch = 8;
    println!(
        "LOA: meta-training on quadratics (dim {dim}, horizon {}, batch {}, {meta_steps} meta-steps)",
        cfg.unroll.steps, cfg.batch
    );
    let mut model = LoaBfgs::bfgs_init(&mut StdRng::seed_from_u64(seed));
    let mut trainer = LoaTrainer::new(cfg)?;
    let held_out = trainer.batch_for(usize::MAX);
    let bfgs_loss = trainer.evaluate(&model, &held_out)?;
    let every = (meta_steps / 10).max(1);
    for _ in 0..meta_steps {
        let r = trainer.step(&mut model)?;
        if r.meta_step % every == 0 || r.meta_step + 1 == meta_steps {
            println!(
                "  meta-step {:4}  meta-loss {:9.4}  |grad| {:.3e}",
                r.meta_step, r.meta_loss, r.grad_norm
            );
        }
    }
    println!(
        "  held-out meta-loss: BFGS (initialization) {bfgs_loss:.4}, trained LOA {:.4}",
        trainer.evaluate(&model, &held_out)?
    );
    model.save(&out_dir.join("loa_params.bin"))?;

    let mut rng = StdRng::seed_from_u64(seed ^ 0x10a);
    let count = if quick { 8 } else { 20 };
    let steps = if quick { 60 } else { 310 };
    println!("LOA: evaluation (relative suboptimality, median over instances)");
    let quads = LoaQuadratics::new(dim)?;
    let in_dist: Vec<(Ridge, DVector<f64>)> = (0..count)
        .map(|_| {
            Ok((
                quads.sample(&mut rng)?,
                standard_normal_point(dim, &mut rng),
            ))
        })
        .collect::<Result<_, Box<dyn Error>>>()?;
    let title = format!("Quadratics, dim {dim} (training distribution)");
    report(out_dir, "quadratics", &title, &model, &in_dist, steps)?;

    let big = if quick { 3 * dim } else { 5 * dim };
    let ridge: Vec<(Ridge, DVector<f64>)> = (0..count)
        .map(|_| {
            Ok((
                Ridge::random(big, 2 * big, 0.1, &mut rng)?,
                standard_normal_point(big, &mut rng),
            ))
        })
        .collect::<Result<_, Box<dyn Error>>>()?;
    let title = format!("Ridge regression, dim {big}, lambda 0.1");
    report(out_dir, "ridge", &title, &model, &ridge, steps)?;

    for (p, m) in [(10, 50), (5 * dim, 25 * dim)] {
        let logistic: Vec<(SyntheticLogistic, DVector<f64>)> = (0..count)
            .map(|_| {
                Ok((
                    SyntheticLogistic::random(p, m, &mut rng)?,
                    standard_normal_point(p, &mut rng),
                ))
            })
            .collect::<Result<_, Box<dyn Error>>>()?;
        let title = format!("Synthetic logistic regression, P = {p}, M = {m}");
        report(
            out_dir,
            &format!("logistic_p{p}"),
            &title,
            &model,
            &logistic,
            steps,
        )?;
    }
    println!("LOA: done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}
