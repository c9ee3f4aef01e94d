//! The main job, no data needed: meta-train a ConvergentL2O optimizer on random smooth problems
//! (quadratics and synthetic logistic regression), then compare it with tuned GD, NAG, Adam and
//! RMSprop on unseen problems, past its training horizon, and certify its trajectories with
//! Lemma 1.
//!
//! Usage: cargo run --release --example quickstart -- [--meta-steps 2000] [--seed 0]

use convergent_l2o::meta::{
    InitialPoint, Logistic, MetaTrainConfig, MetaTrainer, Quadratic, Task, TaskSampler, Unroll,
};
use convergent_l2o::optim::{
    Adam, ConvergentL2O, HeavyBall, Lemma1, MagnitudeRen, RmsProp, Rule, Sgd, StepSize, Stepper,
};
use convergent_l2o::tape::Tape;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

const DIM: usize = 10;
/// Every problem of the distribution has β <= 1, so η = 0.9 < 1/β meets Theorem 1.
const ETA: f64 = 0.9;
const TRAIN_HORIZON: usize = 30;
const EVAL_HORIZON: usize = 150;

/// Half quadratics (eigenvalues in [0.02, 1]), half ridge logistic regressions (β ≈ 0.45).
struct SmoothProblems;

impl TaskSampler<f64> for SmoothProblems {
    fn sample<'a>(
        &'a self,
        _: usize,
        i: usize,
        rng: &mut StdRng,
    ) -> (Box<dyn Task<f64> + 'a>, DMatrix<f64>) {
        let task: Box<dyn Task<f64>> = if i % 2 == 0 {
            Box::new(Quadratic::random(DIM, 0.02, 1.0, rng))
        } else {
            Box::new(Logistic::random(DIM, 100, 1e-3, rng))
        };
        (task, InitialPoint::Normal { std: 1.0 }.sample(DIM, rng))
    }
}

fn value_and_grad(task: &dyn Task<f64>, x: &DMatrix<f64>) -> (f64, DMatrix<f64>) {
    let tape = Tape::new();
    let xv = tape.param(x.clone());
    let f = task.loss(xv, 0);
    (f.scalar(), tape.grad(&[f], &[xv], false)[0].value())
}

/// A trajectory's f(x_t), |∇f(x_t)|² and |v_t|² (v = x_{t+1} - x_t + η ∇f(x_t)).
struct Trace {
    f: Vec<f64>,
    g2: Vec<f64>,
    v2: Vec<f64>,
}

fn run_learned(opt: &ConvergentL2O<f64>, task: &dyn Task<f64>, x0: &DMatrix<f64>) -> Trace {
    let tape = Tape::new();
    let bound = opt.params().bind_constants(&tape);
    let prepared = opt.prepare(&bound);
    let mut x = tape.param(x0.clone());
    let mut traj = prepared.start(x);
    let mut trace = Trace {
        f: vec![],
        g2: vec![],
        v2: vec![],
    };
    for t in 0..EVAL_HORIZON {
        let f = task.loss(x, t);
        let g = tape.grad(&[f], &[x], false)[0];
        let step = prepared.step(&mut traj, x, g, f);
        trace.f.push(f.scalar());
        trace.g2.push(g.value().norm_squared());
        trace.v2.push(step.v.value().norm_squared());
        x = tape.param((x + step.update).value());
    }
    trace
}

fn run_baseline(
    rule: Rule,
    lr: f64,
    task: &dyn Task<f64>,
    x0: &DMatrix<f64>,
    steps: usize,
) -> Trace {
    let mut stepper = Stepper::new(rule, lr).expect("valid");
    let mut x = x0.clone();
    let mut trace = Trace {
        f: vec![],
        g2: vec![],
        v2: vec![],
    };
    for _ in 0..steps {
        let (f, g) = value_and_grad(task, &x);
        trace.f.push(if f.is_finite() { f } else { f64::INFINITY });
        trace.g2.push(g.norm_squared());
        if !f.is_finite() {
            break;
        }
        x = stepper.step(&x, &g);
    }
    trace
}

/// A problem, its initial point and its optimal value (from 3000 NAG steps with lr 1/β).
struct Problem {
    task: Box<dyn Task<f64>>,
    x0: DMatrix<f64>,
    f_star: f64,
}

fn problems(seed: u64, n: usize) -> Vec<Problem> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let (task, x0) = SmoothProblems.sample(0, i, &mut rng);
            let lr = 1.0 / task.smoothness().expect("known smoothness");
            let nag = Rule::Sgd(Sgd::nesterov(0.9).expect("valid"));
            let f_star = run_baseline(nag, lr, task.as_ref(), &x0, 3000)
                .f
                .iter()
                .cloned()
                .fold(f64::INFINITY, f64::min);
            Problem { task, x0, f_star }
        })
        .collect()
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// The learning rate minimizing the mean f(x_T) at the training horizon, over a log grid.
fn tune(rule: Rule, tuning: &[Problem]) -> f64 {
    let grid: Vec<f64> = (0..17)
        .map(|k| 10f64.powf(-3.0 + 0.25 * k as f64))
        .collect();
    let score = |lr: f64| {
        mean(tuning.iter().map(|p| {
            *run_baseline(rule, lr, p.task.as_ref(), &p.x0, TRAIN_HORIZON + 1)
                .f
                .last()
                .unwrap()
        }))
    };
    *grid
        .iter()
        .min_by(|a, b| {
            score(**a)
                .partial_cmp(&score(**b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap()
}

fn main() {
    let mut meta_steps = 2000;
    let mut seed = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--meta-steps" => meta_steps = value().parse().expect("--meta-steps takes a number"),
            "--seed" => seed = value().parse().expect("--seed takes a number"),
            other => panic!("unknown argument {other} (use --meta-steps N, --seed S)"),
        }
    }
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let ren = MagnitudeRen::dense(DIM, 8, 8, 1.0).expect("valid REN");
    let mut opt =
        ConvergentL2O::<f64>::new(DIM, ren, 32, StepSize::Constant { eta: ETA }, &mut rng)
            .expect("valid");
    let config = MetaTrainConfig {
        initial_points: 8,
        unroll: Unroll {
            horizon: TRAIN_HORIZON,
            ..Unroll::PAPER
        },
        lr: 1e-2,
        clip: Some(100.0),
        seed,
    };
    let mut trainer = MetaTrainer::new(config).expect("valid settings");
    println!("meta-training ConvergentL2O ({} meta-parameters) on random quadratics and logistic regressions, dim {DIM}, T = {TRAIN_HORIZON}", opt.params().num_scalars());
    for k in 0..meta_steps {
        let report = trainer.step(&mut opt, &SmoothProblems).unwrap_or_else(|e| {
            eprintln!("quickstart: {e}");
            std::process::exit(1)
        });
        if k % 100 == 0 || k + 1 == meta_steps {
            println!(
                "  meta-step {:4}  meta-loss {:.5}  mean f(x_T) {:.5}  |grad| {:.3e}",
                k, report.meta_loss, report.final_loss, report.grad_norm
            );
        }
    }
    println!("meta-training took {:.1} s", start.elapsed().as_secs_f64());

    let tuning = problems(seed + 1000, 16);
    let unseen = problems(seed + 2000, 40);
    let baselines = [
        ("GD", Rule::HeavyBall(HeavyBall::GD)),
        ("NAG", Rule::Sgd(Sgd::nesterov(0.9).expect("valid"))),
        ("Adam", Rule::Adam(Adam::default())),
        ("RMSprop", Rule::RmsProp(RmsProp::default())),
    ];
    println!("\n{} unseen problems, x0 ~ N(0, 1); learning rates tuned on {} other problems at t = {TRAIN_HORIZON}", unseen.len(), tuning.len());
    println!(
        "{:<14} {:>9} {:>13} {:>13} {:>15}",
        "optimizer", "lr", "f(x_30)-f*", "f(x_150)-f*", "|grad f(x_150)|"
    );
    let row = |name: &str, lr: String, traces: &[Trace]| {
        let at = |t: usize| {
            mean(
                traces
                    .iter()
                    .zip(&unseen)
                    .map(|(tr, p)| tr.f.get(t).copied().unwrap_or(f64::INFINITY) - p.f_star),
            )
        };
        let g = mean(
            traces
                .iter()
                .map(|tr| tr.g2.last().copied().unwrap_or(f64::INFINITY).sqrt()),
        );
        println!(
            "{name:<14} {lr:>9} {:>13.6} {:>13.6} {:>15.3e}",
            at(TRAIN_HORIZON),
            at(EVAL_HORIZON - 1),
            g
        );
    };
    for (name, rule) in baselines {
        let lr = tune(rule, &tuning);
        let traces: Vec<Trace> = unseen
            .iter()
            .map(|p| run_baseline(rule, lr, p.task.as_ref(), &p.x0, EVAL_HORIZON))
            .collect();
        row(name, format!("{lr:.3}"), &traces);
    }
    // What the learned term adds: the same gradient step without v.
    let plain: Vec<Trace> = unseen
        .iter()
        .map(|p| {
            run_baseline(
                Rule::HeavyBall(HeavyBall::GD),
                ETA,
                p.task.as_ref(),
                &p.x0,
                EVAL_HORIZON,
            )
        })
        .collect();
    row("GD (same eta)", format!("{ETA:.3}"), &plain);
    let learned: Vec<Trace> = unseen
        .iter()
        .map(|p| run_learned(&opt, p.task.as_ref(), &p.x0))
        .collect();
    row("ConvergentL2O", format!("eta {ETA}"), &learned);

    let mut certified = 0;
    let mut worst: f64 = 0.0;
    for (p, trace) in unseen.iter().zip(&learned) {
        let beta = p.task.smoothness().expect("known smoothness");
        let lemma = Lemma1::new(beta, ETA).expect("eta < 1/beta on this distribution");
        let gap = trace.f[0] - p.f_star;
        let cert = lemma.check(gap, &trace.g2, &trace.v2);
        certified += cert.holds() as usize;
        worst = worst.max(cert.sum_grad_sq / cert.bound);
    }
    println!(
        "\nLemma 1 certificate (sum_t |grad f(x_t)|^2 <= bound from f(x0) - inf f and sum_t |v_t|^2): \
         holds on {certified}/{} unseen problems; largest ratio sum/bound = {worst:.3}",
        unseen.len()
    );
    println!(
        "quickstart done seconds={:.1}",
        start.elapsed().as_secs_f64()
    );
}
