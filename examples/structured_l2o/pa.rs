//! L2O-PA (Liu et al., ICML 2023) meta-trained on LASSO and on ℓ1-logistic regression with the
//! one meta-trainer (truncated BPTT over K = 100 iterations in windows of 20, the mean
//! objective, Adam), then compared with ISTA, FISTA and the convergent wrapper on held-out
//! instances with the one evaluation loop, in distribution and shifted.
//!
//! Defaults are the paper's (MS4L2O's): LASSO 250 x 500 (50-sparse, rho = 0.1), logistic
//! 1000 x 50 (20-sparse, rho = 0.1), 500 meta-steps of 64 instances, each K = 100 iterations
//! in 5 windows of 20 with an Adam step per window (2500 windows), Adam lr 1e-2
//! (LASSO) / 3e-3 (logistic), evaluation over 1000 iterations with F* from 5000 FISTA
//! iterations; the meta-training budget and the number of test instances are flags
//! (`--pa-windows`, `--pa-batch`, `--pa-eval-instances`; the paper tests 1024 instances, the
//! default here is 64). As in the original, the meta-parameters kept are the best on fixed
//! validation instances (16, checked every 50 windows; the untrained network is a candidate
//! too). `--quick` uses the toy sizes (LASSO 20 x 40, logistic 100 x 20), 100 windows of 4
//! and 16 test instances of 300 iterations.
//!
//! Shifted test sets: the paper's real data transferred from synthetic training, with MNIST
//! standing in for BSD500 and Ionosphere/Spambase (`pa_data.rs`); for logistic regression also
//! synthetic instances with W entries of standard deviation 2 instead of 1.

use super::pa_data;
use super::plot::log_curves_svg;
use convergent_l2o::eval::{probes, run, RunConfig};
use convergent_l2o::meta::{MeanObjective, MetaTrainConfig, MetaTrainer, TruncatedBptt};
use convergent_l2o::models::write_atomically;
use convergent_l2o::models::Params;
use convergent_l2o::optim::{
    reference_optimum, Algorithm, ConvergentPa, Frozen, L2oPa, LearnedOptimizer, PaConfig,
    ProxGradient,
};
use convergent_l2o::problems::data::Mnist;
use convergent_l2o::problems::{
    relative_error, Draw, LassoConfig, LogisticConfig, ProblemFamily, Sampled,
};
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;
use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Budget and decay of the convergent wrapper: free at first, FISTA after a few hundred steps.
const BUDGET: f64 = 1.0;
const DECAY: f64 = 0.99;
/// Where the MNIST files are looked for (relative to the repository).
const MNIST: &str = "../shared/data/mnist-10k";
/// Iterations `K` of a meta-training trajectory and of the validation meta-loss.
const HORIZON: usize = 100;
/// Iterations per window of truncated BPTT.
const SEGMENT: usize = 20;

/// The meta-training and evaluation budget (command-line flags, see `main.rs`).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Meta-steps (windows of truncated BPTT).
    pub windows: usize,
    /// Instances (particles) per window.
    pub batch: usize,
    /// Test instances per test set (synthetic; the real-data sets have their own count).
    pub eval_instances: usize,
    /// Iterations of every test run.
    pub eval_iterations: usize,
    /// Skip meta-training: load the parameters a previous run saved in the output directory.
    pub load: bool,
}

impl Budget {
    /// The paper's budget (64 test instances instead of 1024), or the quick one.
    pub fn new(quick: bool) -> Self {
        if quick {
            Budget {
                windows: 100,
                batch: 4,
                eval_instances: 16,
                eval_iterations: 300,
                load: false,
            }
        } else {
            Budget {
                windows: 2500,
                batch: 64,
                eval_instances: 64,
                eval_iterations: 1000,
                load: false,
            }
        }
    }
}

struct Sizes {
    windows: usize,
    validation: usize,
    validate_every: usize,
    report_every: usize,
    batch: usize,
    eval_instances: usize,
    eval_iterations: usize,
    fstar_iterations: usize,
}

impl Sizes {
    fn new(quick: bool, budget: Budget) -> Self {
        let (validation, validate_every, report_every) =
            if quick { (4, 25, 10) } else { (16, 50, 10) };
        Sizes {
            windows: budget.windows,
            validation,
            validate_every: validate_every.min(budget.windows.max(1)),
            report_every,
            batch: budget.batch,
            eval_instances: budget.eval_instances,
            eval_iterations: budget.eval_iterations,
            fstar_iterations: 5000,
        }
    }
}

/// The iterations of the tables (the paper plots 0..1000 on a log scale).
const TABLE_KS: [usize; 6] = [10, 50, 100, 200, 500, 1000];

/// One benchmark: the architecture, the meta learning rate, and the families of training (and
/// in-distribution test) instances and of shifted test instances.
struct Part<'a> {
    name: &'static str,
    pa: PaConfig,
    lr: f64,
    train: &'a dyn ProblemFamily<f64>,
    /// `(tag, label, instances)` of each shifted test set.
    shifted: Vec<(&'static str, String, Vec<Sampled<f64>>)>,
}

/// The MNIST files, for the real-data test sets (`None`, with a note, when absent).
fn mnist() -> Option<Mnist> {
    match Mnist::load(Path::new(MNIST)) {
        Ok(m) => Some(m),
        Err(e) => {
            println!("   real-data test sets skipped: {MNIST}: {e}");
            None
        }
    }
}

/// Meta-trains L2O-PA on LASSO and evaluates it; writes `pa_lasso_*.{csv,svg}` and the
/// trained parameters to `out_dir`.
pub fn run_lasso(
    out_dir: &Path,
    quick: bool,
    seed: u64,
    budget: Budget,
) -> Result<(), Box<dyn Error>> {
    let cfg = if quick {
        LassoConfig::toy()
    } else {
        LassoConfig::paper()
    };
    let mut shifted = Vec::new();
    if let Some(data) = mnist() {
        let count = budget.eval_instances.min(if quick { 16 } else { 64 });
        let label = "MNIST 8x8 patches, 64 x 128 dictionary, rho 0.5 (for BSD500)".to_string();
        shifted.push((
            "real",
            label,
            pa_data::lasso_patches(&data, count, seed ^ 0xb5d)?,
        ));
    }
    let part = Part {
        name: "lasso",
        pa: PaConfig::lasso(),
        lr: 1e-2,
        train: &cfg,
        shifted,
    };
    run_part(out_dir, quick, seed, budget, part).map_err(|e| e as Box<dyn Error>)
}

/// Meta-trains L2O-PA on ℓ1-logistic regression and evaluates it; writes
/// `pa_logistic_*.{csv,svg}` and the trained parameters to `out_dir`.
pub fn run_logistic(
    out_dir: &Path,
    quick: bool,
    seed: u64,
    budget: Budget,
) -> Result<(), Box<dyn Error>> {
    let cfg = if quick {
        LogisticConfig::toy()
    } else {
        LogisticConfig::paper()
    };
    let scaled = LogisticConfig { w_std: 2.0, ..cfg };
    let mut shifted = vec![(
        "shift",
        ProblemFamily::<f64>::name(&scaled),
        draw(&scaled, budget.eval_instances, seed ^ 0x5_41f7).map_err(|e| e.to_string())?,
    )];
    if let Some(data) = mnist() {
        let label = "MNIST digit pairs, 1000 x 50, rho 0.1 (for Ionosphere/Spambase)".to_string();
        shifted.push(("real", label, pa_data::logistic_digits(&data, 10)?));
    }
    let part = Part {
        name: "logistic",
        pa: PaConfig::logistic(),
        lr: 3e-3,
        train: &cfg,
        shifted,
    };
    run_part(out_dir, quick, seed, budget, part).map_err(|e| e as Box<dyn Error>)
}

/// `count` instances of `family` from a generator of their own (never seen in training).
fn draw(family: &dyn ProblemFamily<f64>, count: usize, seed: u64) -> Res<Vec<Sampled<f64>>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    for index in 0..count {
        out.push(family.sample(
            Draw {
                meta_step: 0,
                index,
            },
            &mut rng,
        )?);
    }
    Ok(out)
}

/// The held-out meta-loss: mean over `instances` of `(1/K) Σ_{j=1..K} F(y_j)`, unrecorded
/// (infinite if a run diverges).
fn meta_loss(alg: &dyn Algorithm<f64>, instances: &[Sampled<f64>]) -> Res<f64> {
    let cfg = RunConfig::bare(HORIZON).with(probes::reported_objective("y"));
    let losses = instances
        .par_iter()
        .map(|s| {
            let out = run(alg, &*s.problem, &s.x0, &cfg)?;
            let f = out.trace.values("y_objective");
            Ok(if out.trace.non_finite_at.is_some() {
                f64::INFINITY
            } else {
                f.iter().sum::<f64>() / f.len() as f64
            })
        })
        .collect::<Res<Vec<f64>>>()?;
    Ok(losses.iter().sum::<f64>() / losses.len() as f64)
}

fn run_part(out_dir: &Path, quick: bool, seed: u64, budget: Budget, part: Part<'_>) -> Res<()> {
    let sizes = Sizes::new(quick, budget);
    let name = part.name;
    println!(
        "== L2O-PA on {} (shifted: {})\n   {} windows of {SEGMENT} iterations x {} particles \
         (K = {HORIZON}), Adam lr {}, eval {} instances x {} iterations, F* from {} FISTA \
         iterations, seed {seed}",
        part.train.name(),
        part.shifted
            .iter()
            .map(|s| s.1.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        sizes.windows,
        sizes.batch,
        part.lr,
        sizes.eval_instances,
        sizes.eval_iterations,
        sizes.fstar_iterations
    );
    let mut model = L2oPa::<f64>::new(part.pa, &mut StdRng::seed_from_u64(seed))?;
    let params_path = out_dir.join(format!("pa_{name}.params"));
    if budget.load {
        let params =
            Params::load(&params_path).map_err(|e| format!("{}: {e}", params_path.display()))?;
        model.set_params(params)?;
        println!("   meta-parameters loaded from {}", params_path.display());
    } else {
        train(&mut model, &part, &sizes, seed)?;
        model.params().save(&params_path)?;
    }
    let wrapped = ConvergentPa::new(model.clone(), BUDGET, DECAY)?;
    let methods: [(&'static str, &dyn Algorithm<f64>); 4] = [
        ("ISTA", &ProxGradient::ista()),
        ("FISTA", &ProxGradient::fista()),
        ("L2O-PA", &Frozen(&model)),
        ("Convergent L2O-PA", &Frozen(&wrapped)),
    ];
    let mut tests = vec![(
        "in",
        "in distribution".to_string(),
        draw(part.train, sizes.eval_instances, seed ^ 0x7e57)?,
    )];
    tests.extend(part.shifted);
    for (tag, label, instances) in &tests {
        let started = Instant::now();
        let (curves, diverged) = evaluate(instances, &methods, &sizes)?;
        let seconds = started.elapsed().as_secs_f64();
        let stem = format!("pa_{name}_{tag}");
        write_csv(&out_dir.join(format!("{stem}.csv")), &curves)?;
        let refs: Vec<(&str, &[f64])> = curves.iter().map(|(n, c)| (*n, c.as_slice())).collect();
        log_curves_svg(
            &out_dir.join(format!("{stem}.svg")),
            &format!("L2O-PA on {name}, {label}"),
            "mean (F - F*) / F*",
            &refs,
        )
        .map_err(|e| e.to_string())?;
        let ks: Vec<usize> = TABLE_KS
            .into_iter()
            .filter(|&k| k <= sizes.eval_iterations)
            .collect();
        println!(
            "   {label}: {} instances, {seconds:.1}s; mean (F - F*)/F* at k =",
            instances.len()
        );
        let mut head = format!("     {:<18}", "k");
        for k in &ks {
            let _ = write!(head, " {k:>9}");
        }
        println!("{head}");
        for ((n, c), d) in curves.iter().zip(&diverged) {
            let mut line = format!("     {n:<18}");
            for &k in &ks {
                let _ = write!(line, " {:>9.2e}", c[k]);
            }
            if *d > 0 {
                let _ = write!(line, "  ({d} of {} runs end above F(x_0))", instances.len());
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// Meta-trains `model` on `part.train` and leaves it at the best meta-parameters on the
/// validation instances.
fn train(model: &mut L2oPa<f64>, part: &Part<'_>, sizes: &Sizes, seed: u64) -> Res<()> {
    let config = MetaTrainConfig {
        lr: part.lr,
        clip: None,
        seed,
    };
    let estimator = TruncatedBptt::new(sizes.batch, HORIZON, SEGMENT);
    let mut trainer = MetaTrainer::new(config, estimator, MeanObjective)?;
    // As the original: validate on fixed instances and keep the best meta-parameters (the
    // meta-gradients are noisy, and one bad Adam step can undo the training).
    let validation = draw(part.train, sizes.validation, seed ^ 0x0a11d)?;
    let mut best = (
        meta_loss(&Frozen(&*model), &validation)?,
        model.params().clone(),
        0,
    );
    println!("   validation meta-loss before training: {:.5}", best.0);
    let start = Instant::now();
    let bar = ProgressBar::new(sizes.windows as u64);
    for window in 1..=sizes.windows {
        let report = trainer.step(model, part.train)?;
        bar.inc(1);
        if window % sizes.report_every == 0 || window == sizes.windows {
            let line = format!(
                "   window {window:>4}/{}: meta-loss {:.5}, |meta-grad| {:.3e}, {:.1}s",
                sizes.windows,
                report.meta_loss,
                report.grad_norm,
                start.elapsed().as_secs_f64()
            );
            // A hidden bar (output not a terminal) prints nothing: the log gets the lines.
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
        if let Some(w) = report.warning {
            println!("   warning: {w}");
        }
        if window % sizes.validate_every == 0 || window == sizes.windows {
            let v = meta_loss(&Frozen(&*model), &validation)?;
            let improved = v < best.0;
            if improved {
                best = (v, model.params().clone(), window);
            }
            println!(
                "   validation meta-loss after {window} windows: {v:.5}{}",
                if improved { " (best)" } else { "" }
            );
        }
    }
    bar.finish_and_clear();
    println!(
        "   keeping the meta-parameters after {} windows (validation meta-loss {:.5})",
        best.2, best.0
    );
    model.set_params(best.1)?;
    Ok(())
}

type Curves = Vec<(&'static str, Vec<f64>)>;

/// Per method, the mean over instances of `(F(x_k) - F*) / F*` for `k = 0..=iterations` (NaN
/// from where a run diverged), and how many runs end above where they started (or not finite).
fn evaluate(
    instances: &[Sampled<f64>],
    methods: &[(&'static str, &dyn Algorithm<f64>)],
    sizes: &Sizes,
) -> Res<(Curves, Vec<usize>)> {
    let iters = sizes.eval_iterations;
    let cfg = RunConfig::bare(iters).with(probes::objective(iters));
    let per_instance = instances
        .par_iter()
        .map(|s| {
            let f_star = reference_optimum(&*s.problem, sizes.fstar_iterations)?;
            methods
                .iter()
                .map(|(_, alg)| {
                    let mut f = run(*alg, &*s.problem, &s.x0, &cfg)?
                        .trace
                        .values("objective");
                    f.resize(iters + 1, f64::NAN);
                    Ok(f.into_iter().map(|f| relative_error(f, f_star)).collect())
                })
                .collect::<Res<Vec<Vec<f64>>>>()
        })
        .collect::<Res<Vec<_>>>()?;
    let n = instances.len() as f64;
    let curves = methods
        .iter()
        .enumerate()
        .map(|(m, (label, _))| {
            let mean = (0..=iters)
                .map(|k| per_instance.iter().map(|runs| runs[m][k]).sum::<f64>() / n)
                .collect();
            (*label, mean)
        })
        .collect();
    let diverged = (0..methods.len())
        .map(|m| {
            let up = |r: &[f64]| r[iters].is_nan() || r[iters] > r[0];
            per_instance.iter().filter(|runs| up(&runs[m])).count()
        })
        .collect();
    Ok((curves, diverged))
}

fn write_csv(path: &Path, curves: &Curves) -> Res<()> {
    let mut out = String::from("k");
    for (n, _) in curves {
        write!(out, ",{n}")?;
    }
    out.push('\n');
    for k in 0..curves[0].1.len() {
        write!(out, "{k}")?;
        for (_, c) in curves {
            write!(out, ",{:.6e}", c[k])?;
        }
        out.push('\n');
    }
    write_atomically(path, out.as_bytes())?;
    Ok(())
}
