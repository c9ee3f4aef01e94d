//! L2O-PA (Liu et al., ICML 2023) meta-trained on LASSO and on ℓ1-logistic regression with the
//! one meta-trainer (truncated BPTT over K = 100 iterations in windows of 20, the mean
//! objective, Adam), then compared with ISTA, FISTA and the convergent wrapper on held-out
//! instances with the one evaluation loop, in distribution and on a shifted distribution.
//!
//! Default settings are scaled down from the paper's 500 meta-steps x 64 instances (hours on
//! two CPU cores): LASSO 50 x 100 (10-sparse; the paper's 1:2 shape and 10% sparsity) and
//! logistic at the paper's 1000 x 50 (20-sparse), each with 500 windows (100 trajectories of
//! K = 100 per particle) of 16 particles and the paper's learning rates. Evaluation: 64
//! held-out instances, 1000 iterations, F* from 5000 FISTA iterations. As in the original, the
//! meta-parameters kept are the best on fixed validation instances (16, checked every 50
//! windows; the untrained network is a candidate too). `--quick` uses the toy sizes, 100
//! windows of 4 particles and 16 test instances of 300 iterations. The settings are printed at
//! the start of each part.
//!
//! Shifted distributions: LASSO instances twice as large (rows, columns and sparsity doubled);
//! logistic instances with W entries of standard deviation 2 instead of 1.

use super::plot::log_curves_svg;
use convergent_l2o::eval::{probes, run, RunConfig};
use convergent_l2o::meta::{MeanObjective, MetaTrainConfig, MetaTrainer, TruncatedBptt};
use convergent_l2o::models::write_atomically;
use convergent_l2o::optim::{
    reference_optimum, Algorithm, ConvergentPa, Frozen, L2oPa, LearnedOptimizer, PaConfig,
    ProxGradient,
};
use convergent_l2o::problems::{
    relative_error, Draw, LassoConfig, LogisticConfig, ProblemFamily, Sampled,
};
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
/// Iterations `K` of a meta-training trajectory and of the validation meta-loss.
const HORIZON: usize = 100;
/// Iterations per window of truncated BPTT.
const SEGMENT: usize = 20;

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
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                windows: 100,
                validation: 4,
                validate_every: 25,
                report_every: 10,
                batch: 4,
                eval_instances: 16,
                eval_iterations: 300,
                fstar_iterations: 5000,
            }
        } else {
            Sizes {
                windows: 500,
                validation: 16,
                validate_every: 50,
                report_every: 50,
                batch: 16,
                eval_instances: 64,
                eval_iterations: 1000,
                fstar_iterations: 5000,
            }
        }
    }
}

/// One benchmark: the architecture, the meta learning rate, and the families of training (and
/// in-distribution test) instances and of shifted test instances.
struct Part<'a> {
    name: &'static str,
    pa: PaConfig,
    lr: f64,
    train: &'a dyn ProblemFamily<f64>,
    shifted: &'a dyn ProblemFamily<f64>,
}

/// Meta-trains L2O-PA on LASSO and evaluates it; writes `pa_lasso_*.{csv,svg}` and the
/// trained parameters to `out_dir`.
pub fn run_lasso(out_dir: &Path, quick: bool, seed: u64) -> Result<(), Box<dyn Error>> {
    let cfg = if quick {
        LassoConfig::toy()
    } else {
        LassoConfig {
            rows: 50,
            cols: 100,
            sparsity: 10,
            rho: 0.1,
        }
    };
    let big = LassoConfig {
        rows: 2 * cfg.rows,
        cols: 2 * cfg.cols,
        sparsity: 2 * cfg.sparsity,
        ..cfg
    };
    let part = Part {
        name: "lasso",
        pa: PaConfig::lasso(),
        lr: 1e-2,
        train: &cfg,
        shifted: &big,
    };
    run_part(out_dir, quick, seed, part).map_err(|e| e as Box<dyn Error>)
}

/// Meta-trains L2O-PA on ℓ1-logistic regression and evaluates it; writes
/// `pa_logistic_*.{csv,svg}` and the trained parameters to `out_dir`.
pub fn run_logistic(out_dir: &Path, quick: bool, seed: u64) -> Result<(), Box<dyn Error>> {
    let cfg = if quick {
        LogisticConfig::toy()
    } else {
        LogisticConfig::paper()
    };
    let scaled = LogisticConfig { w_std: 2.0, ..cfg };
    let part = Part {
        name: "logistic",
        pa: PaConfig::logistic(),
        lr: 3e-3,
        train: &cfg,
        shifted: &scaled,
    };
    run_part(out_dir, quick, seed, part).map_err(|e| e as Box<dyn Error>)
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

fn run_part(out_dir: &Path, quick: bool, seed: u64, part: Part<'_>) -> Res<()> {
    let sizes = Sizes::new(quick);
    let name = part.name;
    println!(
        "== L2O-PA on {} (shifted: {})\n   {} windows of {SEGMENT} iterations x {} particles \
         (K = {HORIZON}), Adam lr {}, eval {} instances x {} iterations, F* from {} FISTA \
         iterations, seed {seed}",
        part.train.name(),
        part.shifted.name(),
        sizes.windows,
        sizes.batch,
        part.lr,
        sizes.eval_instances,
        sizes.eval_iterations,
        sizes.fstar_iterations
    );
    let mut model = L2oPa::<f64>::new(part.pa, &mut StdRng::seed_from_u64(seed))?;
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
        meta_loss(&Frozen(&model), &validation)?,
        model.params().clone(),
        0,
    );
    println!("   validation meta-loss before training: {:.5}", best.0);
    let start = Instant::now();
    for window in 1..=sizes.windows {
        let report = trainer.step(&mut model, part.train)?;
        if window % sizes.report_every == 0 || window == sizes.windows {
            println!(
                "   window {window:>4}/{}: meta-loss {:.5}, |meta-grad| {:.3e}, {:.1}s",
                sizes.windows,
                report.meta_loss,
                report.grad_norm,
                start.elapsed().as_secs_f64()
            );
        }
        if let Some(w) = report.warning {
            println!("   warning: {w}");
        }
        if window % sizes.validate_every == 0 || window == sizes.windows {
            let v = meta_loss(&Frozen(&model), &validation)?;
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
    println!(
        "   keeping the meta-parameters after {} windows (validation meta-loss {:.5})",
        best.2, best.0
    );
    model.set_params(best.1)?;
    model
        .params()
        .save(&out_dir.join(format!("pa_{name}.params")))?;
    let wrapped = ConvergentPa::new(model.clone(), BUDGET, DECAY)?;
    let methods: [(&'static str, &dyn Algorithm<f64>); 4] = [
        ("ISTA", &ProxGradient::ista()),
        ("FISTA", &ProxGradient::fista()),
        ("L2O-PA", &Frozen(&model)),
        ("Convergent L2O-PA", &Frozen(&wrapped)),
    ];
    for (tag, label, family, test_seed) in [
        ("in", "in distribution", part.train, seed ^ 0x7e57),
        ("shift", "shifted", part.shifted, seed ^ 0x5_41f7),
    ] {
        let started = Instant::now();
        let instances = draw(family, sizes.eval_instances, test_seed)?;
        let (curves, diverged) = evaluate(&instances, &methods, &sizes)?;
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
        print!(
            "   {label} ({seconds:.1}s): mean relative error at k = 100 / {}:",
            sizes.eval_iterations
        );
        for ((n, c), d) in curves.iter().zip(&diverged) {
            print!(
                "  {n} {:.2e} / {:.2e}",
                c[100.min(c.len() - 1)],
                c[c.len() - 1]
            );
            if *d > 0 {
                print!(" ({d} of {} runs diverged)", instances.len());
            }
        }
        println!();
    }
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
