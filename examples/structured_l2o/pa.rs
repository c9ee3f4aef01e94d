//! L2O-PA (Liu et al., ICML 2023) meta-trained on LASSO and on ℓ1-logistic regression, then
//! compared with ISTA, FISTA and the convergent wrapper on held-out instances, in distribution
//! and on a shifted distribution.
//!
//! Default settings are scaled down from the paper's 500 meta-steps x 64 instances (hours on
//! two CPU cores): LASSO 50 x 100 (10-sparse; the paper's 1:2 shape and 10% sparsity) with
//! 100 meta-steps of 16 instances; logistic at the paper's 1000 x 50 (20-sparse) with 100
//! meta-steps of 16. K = 100 in segments of 20 and the paper's learning rates. Evaluation: 64
//! held-out instances, 1000 iterations, F* from 5000 FISTA iterations. As in the original, the
//! meta-parameters kept are the best on fixed validation instances (16, checked every 10
//! meta-steps; the untrained network is a candidate too). `--quick` uses the toy sizes and 30
//! meta-steps of 4. The settings are printed at the start of each part.
//!
//! Shifted distributions: LASSO instances twice as large (rows, columns and sparsity doubled);
//! logistic instances with W entries of standard deviation 2 instead of 1.

use super::plot::log_curves_svg;
use convergent_l2o::meta::{
    pa_meta_loss, reference_optimum, relative_error, CompositeProblem, L1Logistic, Lasso,
    LassoConfig, LogisticConfig, PaTrainConfig, PaTrainer, ProblemError,
};
use convergent_l2o::models::write_atomically;
use convergent_l2o::optim::{ConvergentPa, L2oPa, PaConfig, ProxGradient};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

/// Budget and decay of the convergent wrapper: free at first, FISTA after a few hundred steps.
const BUDGET: f64 = 1.0;
const DECAY: f64 = 0.99;

struct Sizes {
    meta_steps: usize,
    validation: usize,
    validate_every: usize,
    batch: usize,
    eval_instances: usize,
    eval_iterations: usize,
    fstar_iterations: usize,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                meta_steps: 30,
                validation: 4,
                validate_every: 5,
                batch: 4,
                eval_instances: 16,
                eval_iterations: 300,
                fstar_iterations: 5000,
            }
        } else {
            Sizes {
                meta_steps: 100,
                validation: 16,
                validate_every: 10,
                batch: 16,
                eval_instances: 64,
                eval_iterations: 1000,
                fstar_iterations: 5000,
            }
        }
    }
}

/// One benchmark: how to draw training, test and shifted instances.
struct Part<P, F, G, H> {
    name: &'static str,
    pa: PaConfig,
    train: PaTrainConfig,
    sample: F,
    test: G,
    shifted: H,
    shift_desc: String,
    _p: std::marker::PhantomData<P>,
}

/// Meta-trains L2O-PA on LASSO and evaluates it; writes `pa_lasso_*.{csv,svg}` and the
/// trained parameters to `out_dir`.
pub fn run_lasso(out_dir: &Path, quick: bool, seed: u64) -> Res<()> {
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
    run_part(
        out_dir,
        quick,
        seed,
        Part {
            name: "lasso",
            pa: PaConfig::lasso(),
            train: PaTrainConfig::lasso(),
            sample: move |r: &mut StdRng| Lasso::random(cfg, r),
            test: move |r: &mut StdRng| Lasso::random(cfg, r),
            shifted: move |r: &mut StdRng| Lasso::random(big, r),
            shift_desc: format!("{cfg:?} (shifted: {big:?})"),
            _p: std::marker::PhantomData,
        },
    )
}

/// Meta-trains L2O-PA on ℓ1-logistic regression and evaluates it; writes
/// `pa_logistic_*.{csv,svg}` and the trained parameters to `out_dir`.
pub fn run_logistic(out_dir: &Path, quick: bool, seed: u64) -> Res<()> {
    let cfg = if quick {
        LogisticConfig::toy()
    } else {
        LogisticConfig::paper()
    };
    let scaled = LogisticConfig { w_std: 2.0, ..cfg };
    run_part(
        out_dir,
        quick,
        seed,
        Part {
            name: "logistic",
            pa: PaConfig::logistic(),
            train: PaTrainConfig::logistic(),
            sample: move |r: &mut StdRng| L1Logistic::random(cfg, r),
            test: move |r: &mut StdRng| L1Logistic::random(cfg, r),
            shifted: move |r: &mut StdRng| L1Logistic::random(scaled, r),
            shift_desc: format!("{cfg:?} (shifted: {scaled:?})"),
            _p: std::marker::PhantomData,
        },
    )
}

fn run_part<P, F, G, H>(out_dir: &Path, quick: bool, seed: u64, part: Part<P, F, G, H>) -> Res<()>
where
    P: CompositeProblem<f64>,
    F: Fn(&mut StdRng) -> Result<P, ProblemError>,
    G: Fn(&mut StdRng) -> Result<P, ProblemError>,
    H: Fn(&mut StdRng) -> Result<P, ProblemError>,
{
    let sizes = Sizes::new(quick);
    let name = part.name;
    println!(
        "== L2O-PA on {name}: {}\n   meta-steps {} x batch {}, K = {} in segments of {}, Adam lr {}, \
         eval {} instances x {} iterations, F* from {} FISTA iterations, seed {seed}",
        part.shift_desc,
        sizes.meta_steps,
        sizes.batch,
        part.train.iterations,
        part.train.segment,
        part.train.lr,
        sizes.eval_instances,
        sizes.eval_iterations,
        sizes.fstar_iterations
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = L2oPa::<f64>::new(part.pa, &mut rng)?;
    let mut trainer = PaTrainer::new(part.train)?;
    // As the original: validate on fixed instances and keep the best meta-parameters (the
    // meta-gradients are noisy, and one bad Adam step can undo the training).
    let mut vrng = StdRng::seed_from_u64(seed ^ 0x0a11d);
    let validation = (0..sizes.validation)
        .map(|_| (part.test)(&mut vrng))
        .collect::<Result<Vec<P>, _>>()?;
    let k = part.train.iterations;
    let mut best = (
        pa_meta_loss(&model, &validation, k),
        model.params().clone(),
        0,
    );
    println!("   validation meta-loss before training: {:.5}", best.0);
    let start = Instant::now();
    for step in 0..sizes.meta_steps {
        let batch = (0..sizes.batch)
            .map(|_| (part.sample)(&mut rng))
            .collect::<Result<Vec<P>, _>>()?;
        let report = trainer.step(&mut model, &batch)?;
        if quick || step % 10 == 0 || step + 1 == sizes.meta_steps {
            println!(
                "   meta-step {:>4}/{}: segment loss {:.5}, |meta-grad| {:.3e}, {:.1}s",
                step + 1,
                sizes.meta_steps,
                report.loss,
                report.grad_norm,
                start.elapsed().as_secs_f64()
            );
        }
        if (step + 1) % sizes.validate_every == 0 || step + 1 == sizes.meta_steps {
            let v = pa_meta_loss(&model, &validation, k);
            let improved = v < best.0;
            if improved {
                best = (v, model.params().clone(), step + 1);
            }
            println!(
                "   validation meta-loss after {} meta-steps: {v:.5}{}",
                step + 1,
                if improved { " (best)" } else { "" }
            );
        }
    }
    println!(
        "   keeping the meta-parameters after {} meta-steps (validation meta-loss {:.5})",
        best.2, best.0
    );
    model.set_params(best.1)?;
    model
        .params()
        .save(&out_dir.join(format!("pa_{name}.params")))?;
    let wrapped = ConvergentPa::new(model.clone(), BUDGET, DECAY)?;
    // Test instances come from their own seeds, never seen in training.
    for (tag, label, sampler, test_seed) in [
        (
            "in",
            "in distribution",
            &part.test as &dyn Fn(&mut StdRng) -> Result<P, ProblemError>,
            seed ^ 0x7e57,
        ),
        ("shift", "shifted", &part.shifted, seed ^ 0x5_41f7),
    ] {
        let mut rng = StdRng::seed_from_u64(test_seed);
        let problems = (0..sizes.eval_instances)
            .map(|_| sampler(&mut rng))
            .collect::<Result<Vec<P>, _>>()?;
        let curves = evaluate(&problems, &model, &wrapped, &sizes);
        let stem = format!("pa_{name}_{tag}");
        write_csv(&out_dir.join(format!("{stem}.csv")), &curves)?;
        let refs: Vec<(&str, &[f64])> = curves.iter().map(|(n, c)| (*n, c.as_slice())).collect();
        log_curves_svg(
            &out_dir.join(format!("{stem}.svg")),
            &format!("L2O-PA on {name}, {label}"),
            "mean (F - F*) / F*",
            &refs,
        )?;
        print!(
            "   {label}: mean relative error at k = 100 / {}:",
            sizes.eval_iterations
        );
        for (n, c) in &curves {
            print!(
                "  {n} {:.2e} / {:.2e}",
                c[100.min(c.len() - 1)],
                c[c.len() - 1]
            );
        }
        println!();
    }
    Ok(())
}

type Curves = Vec<(&'static str, Vec<f64>)>;

fn evaluate<P: CompositeProblem<f64>>(
    problems: &[P],
    model: &L2oPa<f64>,
    wrapped: &ConvergentPa<f64>,
    sizes: &Sizes,
) -> Curves {
    let iters = sizes.eval_iterations;
    let names = ["ISTA", "FISTA", "L2O-PA", "Convergent L2O-PA"];
    let mut sums = vec![vec![0.0; iters + 1]; names.len()];
    for p in problems {
        let f_star = reference_optimum(p, sizes.fstar_iterations);
        let runs = [
            ProxGradient::ista(p).objectives(p, iters),
            ProxGradient::fista(p).objectives(p, iters),
            model.objectives(p, iters),
            wrapped.objectives(p, iters),
        ];
        for (sum, run) in sums.iter_mut().zip(&runs) {
            for (s, f) in sum.iter_mut().zip(run) {
                *s += relative_error(*f, f_star) / problems.len() as f64;
            }
        }
    }
    names.into_iter().zip(sums).collect()
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
