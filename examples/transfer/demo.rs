//! README's first command: the shipped ConvergentAnyL2O (meta-trained on MLPs on MNIST) on
//! Fashion-MNIST, which it never saw, against Adam and NAG tuned on MNIST; then its
//! certificates: Theorem 2's bound (15) on the realized minibatch runs, and Lemma 1 on
//! full-batch logistic regressions under Theorem 1's rule.

use crate::eval::{evaluate, summary, tune, Task};
use crate::{check_input, train, Res, FASHION, MNIST, SHIPPED};
use convergent_l2o::eval::{self as ev, probes, RunConfig};
use convergent_l2o::models::Activation;
use convergent_l2o::optim::{Adam, AnyStepRule, ConvergentAnyL2O, Frozen, Lemma1, Sgd, Tunable};
use convergent_l2o::problems::{load_dataset, Logistic, PixelNormalization, Problem};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

/// Flags of `demo`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DemoArgs {
    /// Meta-train a new optimizer first (as `train` with its defaults) instead of loading the
    /// shipped one.
    #[arg(long)]
    pub(crate) train: bool,
    /// The optimizer directory to load (without --train).
    #[arg(long, default_value = SHIPPED)]
    pub(crate) optimizer: PathBuf,
    /// The unseen dataset.
    #[arg(long, default_value = FASHION)]
    pub(crate) data: PathBuf,
    /// Where Adam's and NAG's learning rates are tuned.
    #[arg(long, default_value = MNIST)]
    pub(crate) tune_on: PathBuf,
    /// Inner steps.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) steps: u64,
    /// Runs (initial points).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub(crate) runs: u64,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            train: false,
            optimizer: PathBuf::from(SHIPPED),
            data: PathBuf::from(FASHION),
            tune_on: PathBuf::from(MNIST),
            steps: 1000,
            runs: 5,
        }
    }
}

/// The demo.
pub(crate) fn run(a: &DemoArgs) -> Res<()> {
    let start = Instant::now();
    check_input("--data", &a.data)?;
    check_input("--tune-on", &a.tune_on)?;
    let opt = if a.train {
        train::run(&train::TrainArgs::default())?
    } else {
        check_input("--optimizer", &a.optimizer)?;
        ConvergentAnyL2O::load(&a.optimizer)?
    };
    let (steps, runs) = (a.steps as usize, a.runs as usize);
    let data = load_dataset(&a.data, PixelNormalization::Paper)?;
    let mnist = load_dataset(&a.tune_on, PixelNormalization::Paper)?;
    let (hidden, act) = (vec![32], Activation::Tanh);
    let task = Task::new(&data, &hidden, act, 128)?;
    let tune_task = Task::new(&mnist, &hidden, act, 128)?;
    println!(
        "ConvergentAnyL2O, meta-trained on MLP classifiers of MNIST, on {} (never seen): \
         {} {}, {} parameters, {runs} runs of {steps} steps",
        a.data.display(),
        task.problem.shape(),
        act,
        task.problem.shape().num_params()
    );
    let baselines: Vec<Box<dyn Tunable<f32>>> = vec![
        Box::new(Adam::default()),
        Box::new(Sgd::nesterov(1e-3, 0.9)?),
    ];
    let tune_x0s = task.initial_points(1234, 2);
    let tuned = tune(&baselines, &tune_task, &tune_x0s, 300, "MNIST")?;
    let x0s = task.initial_points(5678, runs);
    let learned = Frozen(&opt);
    let mut results = vec![evaluate(
        "ConvergentAnyL2O",
        &learned,
        None,
        &task,
        &x0s,
        steps,
        "tanh",
    )?];
    for (alg, lr) in &tuned {
        let name = format!("{} (tuned on MNIST)", alg.name());
        results.push(evaluate(
            &name,
            &**alg,
            Some(*lr),
            &task,
            &x0s,
            steps,
            "tanh",
        )?);
    }
    print!("{}", summary(&results, steps));
    theorem2_certificate(&opt, &task, &x0s, steps)?;
    lemma1_certificate(&opt)?;
    println!("({:.0} s)", start.elapsed().as_secs_f64());
    Ok(())
}

/// Theorem 2 on the realized Fashion-MNIST runs: `|v_t| <= η_t² (C + D' |∇f_i(x_t)|)` with the
/// constants of the meta-parameters, and `Σ|v_t|²` (square-summable: the tail is small).
fn theorem2_certificate(
    opt: &ConvergentAnyL2O<f32>,
    task: &Task,
    x0s: &[nalgebra::DMatrix<f32>],
    steps: usize,
) -> Res<()> {
    let n = task.problem.dim();
    let cfg = RunConfig::bare(steps)
        .with(probes::reported_norm_sq("v"))
        .with(probes::reported_norm_sq("z"))
        .with(probes::reported("eta"))
        .with(probes::grad_norm_sq());
    let (mut worst, mut sums, mut tails, mut consts) = (0.0f64, Vec::new(), Vec::new(), (0.0, 0.0));
    for x0 in x0s {
        let out = ev::run(&Frozen(opt), &task.problem, x0, &cfg)?;
        let tr = &out.trace;
        let (v, z, eta, g) = (
            tr.values("v_norm_sq"),
            tr.values("z_norm_sq"),
            tr.values("eta"),
            tr.values("grad_norm_sq"),
        );
        let sup_z = z.iter().fold(0.0f64, |m, z| m.max(z.sqrt()));
        let (c, d) = opt
            .theorem2_constants(n, sup_z)
            .ok_or("the optimizer does not use Theorem 2's rule")?;
        consts = (f64::max(consts.0, c), d);
        for t in 0..v.len() {
            let bound = eta[t] * eta[t] * (c + d * g[t].sqrt());
            worst = worst.max(v[t].sqrt() / bound);
        }
        sums.push(v.iter().sum::<f64>());
        tails.push(v[v.len() / 2..].iter().sum::<f64>());
    }
    let mean = |x: &[f64]| x.iter().sum::<f64>() / x.len() as f64;
    let AnyStepRule::Theorem2 {
        scale,
        offset,
        power,
        ..
    } = opt.config().rule
    else {
        return Err("the optimizer does not use Theorem 2's rule".into());
    };
    println!(
        "certificate, Theorem 2 (minibatches, eta_t = {scale:.3} / ({offset} + t)^{power}):\n  \
         |v_t| <= eta_t^2 (C + D' |grad f_i(x_t)|) with C = {:.3}, D' = {:.3} at every step of \
         every run (largest ratio {worst:.4});\n  sum_t |v_t|^2 = {:.3e}, of which {:.2e} after \
         t = {}",
        consts.0,
        consts.1,
        mean(&sums),
        mean(&tails),
        steps / 2
    );
    if worst > 1.0 + 1e-4 {
        return Err(format!("Theorem 2's bound (15) is violated: ratio {worst}").into());
    }
    Ok(())
}

/// Theorem 1 and Lemma 1: the same meta-parameters with a constant `η = 0.9/β` on full-batch
/// logistic regressions (never seen, dimensions 10 to 400); the realized `Σ|∇f(x_t)|²` must stay
/// below Lemma 1's bound.
fn lemma1_certificate(opt: &ConvergentAnyL2O<f32>) -> Res<()> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut lines = Vec::new();
    for dim in [10, 100, 400] {
        let f = Logistic::<f32>::random(dim, 500, 1e-3, &mut rng);
        let beta = f.smoothness().expect("logistic regression knows beta");
        let eta = 0.9 / beta;
        let t1 = opt.with_rule(AnyStepRule::Theorem1 { eta })?;
        let x0 = nalgebra::DMatrix::from_fn(dim, 1, |_, _| rng.gen_range(-1.0f32..1.0));
        let cfg = RunConfig::bare(500)
            .with(probes::grad_norm_sq())
            .with(probes::reported_norm_sq("v"));
        let out = ev::run(&Frozen(&t1), &f, &x0, &cfg)?;
        let gap = f.objective(&x0, 0);
        let cert = Lemma1::new(beta, eta)?.check(
            gap,
            &out.trace.values("grad_norm_sq"),
            &out.trace.values("v_norm_sq"),
        );
        if !cert.holds() {
            return Err(format!("Lemma 1 violated in dimension {dim}: {cert:?}").into());
        }
        let last = f.value_and_grad(&out.last, 0).1.norm();
        lines.push(format!(
            "  dim {dim}: sum_t |grad f(x_t)|^2 = {:.3} <= {:.1} (Lemma 1), |grad f(x_500)| = \
             {last:.1e}",
            cert.sum_grad_sq, cert.bound
        ));
    }
    println!(
        "certificate, Theorem 1 + Lemma 1 (the same meta-parameters, eta = 0.9/beta, full-batch \
         logistic regressions):\n{}",
        lines.join("\n")
    );
    Ok(())
}
