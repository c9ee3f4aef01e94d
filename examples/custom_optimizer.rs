//! The library's spine from the outside: with the public API only, a new problem family (the
//! Rosenbrock function in n dimensions, randomly shifted and scaled) and a new learned
//! optimizer written from scratch (a per-coordinate momentum and step size from a tiny MLP on
//! (g, m, x)), meta-trained by the same `MetaTrainer` as ConvergentL2O, wrapped in the
//! convergent wrapper (its direction, a REN's ℓ2 magnitude), and evaluated with `eval` against
//! Adam and NAG tuned on other problems of the family.
//!
//! Usage: cargo run --release --example custom_optimizer -- [--meta-steps 300] [--seed 0]

use clap::Parser;
use convergent_l2o::eval::{grid_search, mean_std, run, RunConfig};
use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
use convergent_l2o::models::{
    init_from_specs, Activation, Bound, Mlp, MlpConfig, Model, Params, ParamsError, Prefixed, Spec,
};
use convergent_l2o::optim::{
    Adam, Algorithm, ConvergentL2O, Direction, Evaluation, Frozen, LearnedOptimizer, MagnitudeRen,
    OptState, OptimError, Optimizer, Oracle, Sgd, StepInfo, StepSize, Tunable,
};
use convergent_l2o::problems::{Draw, FamilyFn, Problem, ProblemError, Sampled};
use convergent_l2o::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

const DIM: usize = 10;
const TRAIN_HORIZON: usize = 50;
const EVAL_HORIZON: usize = 250;

// ------------------------------------------------------------------ a problem of one's own

/// `f(x) = s/(n-1) Σ_i [10 (y_{i+1} - y_i²)² + (1 - y_i)²]` with `y = x - c`: Rosenbrock's
/// valley, shifted by `c` and scaled by `s`; its minimum is 0 at `x = c + 1`.
struct Rosenbrock {
    shift: DMatrix<f64>,
    scale: f64,
}

impl<T: Scalar> Problem<T> for Rosenbrock {
    fn dim(&self) -> usize {
        self.shift.nrows()
    }
    fn loss<'t>(&self, x: Var<'t, T>, _step: usize) -> Var<'t, T> {
        let n = self.shift.nrows();
        let y = x - x.tape().constant(self.shift.map(T::cast));
        let (head, tail) = (y.slice(0, 0, n - 1, 1), y.slice(1, 0, n - 1, 1));
        let valley = (tail - head.square()).square().scale(T::cast(10.0));
        let lead = head.scale(-T::one()).add_scalar(T::one()).square();
        (valley + lead)
            .sum()
            .scale(T::cast(self.scale / (n - 1) as f64))
    }
    fn name(&self) -> String {
        "Rosenbrock".into()
    }
    /// A bound on the Hessian over the box |y|∞ <= 2 where the runs stay: 10 (12 y_i² + 4
    /// |y_{i+1}|) + 2 + 20 on the diagonal, Gershgorin for the rest.
    fn smoothness(&self) -> Option<f64> {
        Some(self.scale / (DIM - 1) as f64 * (10.0 * (48.0 + 8.0 + 16.0) + 22.0))
    }
    fn infimum(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// The family: shifts uniform in [-0.5, 0.5]ⁿ, scales in [0.5, 2], x0 = c + N(0, 0.5²) (near
/// the valley's start, as Rosenbrock benchmarks do).
fn rosenbrock(_: Draw, rng: &mut StdRng) -> Result<Sampled<f64>, ProblemError> {
    let shift = DMatrix::from_fn(DIM, 1, |_, _| rng.gen_range(-0.5..0.5));
    let scale = rng.gen_range(0.5..2.0);
    let x0 = &shift + DMatrix::from_fn(DIM, 1, |_, _| 0.5 * rng.gen_range(-1.0..1.0));
    Sampled::new(Rosenbrock { shift, scale }, x0)
}

// ------------------------------------------------------- a learned optimizer of one's own

/// Per coordinate, a tiny MLP on (g_i, m_i, x_i) gives a momentum β_i = σ(a_i) and a step
/// α_i = 0.05 σ(b_i) (bounded, so meta-training cannot push it past stability); then
/// m <- β m + g and the update is w = -α m. Shared weights: any dimension.
struct LearnedMomentum {
    mlp: Mlp,
}

impl LearnedMomentum {
    fn new() -> Self {
        let config = MlpConfig::new(&[3, 8, 2], Activation::Tanh);
        LearnedMomentum {
            mlp: Mlp::new(config).expect("valid sizes"),
        }
    }
}

impl<T: Scalar> Direction<T> for LearnedMomentum {
    fn name(&self) -> String {
        "learned momentum".into()
    }
    fn specs(&self) -> Vec<Spec> {
        self.mlp.specs()
    }
    fn start<'t>(&self, _: &Prefixed<'_, 't, T>, x0: Var<'t, T>, state: &mut OptState<'t, T>) {
        state.set("direction.m", x0.zeros_like());
    }
    fn propose<'t>(
        &self,
        p: &Prefixed<'_, 't, T>,
        x: Var<'t, T>,
        g: Var<'t, T>,
        _f: Var<'t, T>,
        state: &mut OptState<'t, T>,
    ) -> Var<'t, T> {
        let m = state.expect("direction.m");
        // One row per coordinate: the MLP runs on all of them in one batch.
        let out = self.mlp.forward(p, Var::concat_cols(&[g, m, x]));
        let beta = out.slice(0, 0, x.nrows(), 1).sigmoid();
        let alpha = out.slice(0, 1, x.nrows(), 1).sigmoid().scale(T::cast(0.05));
        let m = beta.mul_elem(m) + g;
        state.set("direction.m", m);
        -alpha.mul_elem(m)
    }
}

/// The learned optimizer itself: meta-parameters (the MLP's, one `Params`) and the optimizer
/// they define, `x_{t+1} = x_t + w_t`.
struct Momentum {
    net: LearnedMomentum,
    params: Params<f64>,
}

impl LearnedOptimizer<f64> for Momentum {
    fn name(&self) -> String {
        "LearnedMomentum".into()
    }
    fn params(&self) -> &Params<f64> {
        &self.params
    }
    fn set_params(&mut self, params: Params<f64>) -> Result<(), ParamsError> {
        params.check_matches(&self.params)?;
        self.params = params;
        Ok(())
    }
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, f64>) -> Box<dyn Optimizer<'t, f64> + 'a> {
        Box::new(MomentumRun {
            net: &self.net,
            theta,
        })
    }
}

struct MomentumRun<'a, 't> {
    net: &'a LearnedMomentum,
    theta: Bound<'t, f64>,
}

impl<'t> Optimizer<'t, f64> for MomentumRun<'_, 't> {
    fn name(&self) -> String {
        "LearnedMomentum".into()
    }
    fn init(
        &self,
        x0: Var<'t, f64>,
        _: &Oracle<'_, 't, f64>,
    ) -> Result<OptState<'t, f64>, OptimError> {
        let mut state = OptState::new(x0);
        let p = Prefixed {
            bound: &self.theta,
            prefix: "",
        };
        Direction::<f64>::start(self.net, &p, x0, &mut state);
        Ok(state)
    }
    fn update(
        &self,
        state: &mut OptState<'t, f64>,
        at: &Evaluation<'t, f64>,
        _: &Oracle<'_, 't, f64>,
    ) -> Result<StepInfo<'t, f64>, OptimError> {
        let p = Prefixed {
            bound: &self.theta,
            prefix: "",
        };
        let x = state.x();
        let w = self.net.propose(&p, x, at.grad, at.loss, state);
        state.set_x(x + w);
        Ok(StepInfo::none())
    }
}

// ------------------------------------------------------------------------------ the run

#[derive(Parser, Debug)]
#[command(about = "A problem and a learned optimizer of one's own, on the library's spine")]
struct Args {
    /// Meta-steps for each learned optimizer.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    meta_steps: u64,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn train(
    opt: &mut dyn LearnedOptimizer<f64>,
    meta_steps: u64,
    seed: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let family = FamilyFn::new("shifted, scaled Rosenbrock", rosenbrock);
    let estimator = FullBptt {
        trajectories: 8,
        horizon: TRAIN_HORIZON,
        second_order: true,
    };
    let config = MetaTrainConfig {
        lr: 1e-2,
        clip: Some(10.0),
        seed,
    };
    let mut trainer = MetaTrainer::new(config, estimator, WeightedLoss::PAPER)?;
    for k in 0..meta_steps {
        let r = trainer.step(opt, &family)?;
        if k == 0 || (k + 1) % 100 == 0 {
            println!(
                "  {} meta-step {:4}  meta-loss {:.4}",
                opt.name(),
                k + 1,
                r.meta_loss
            );
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("custom_optimizer: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let net = LearnedMomentum::new();
    let params = init_from_specs(&Direction::<f64>::specs(&net), &mut rng);
    let mut learned = Momentum { net, params };
    // The convergent wrapper: the same network's direction, a REN's ℓ2 magnitude, and
    // Theorem 1's step 0.5/β with β the family's largest smoothness bound (scale 2).
    let beta = 2.0 / (DIM - 1) as f64 * (10.0 * 72.0 + 22.0);
    let ren = MagnitudeRen::dense(DIM, 8, 8, 1.0)?;
    let step = StepSize::Constant { eta: 0.5 / beta };
    let mut wrapped =
        ConvergentL2O::with_direction(DIM, ren, LearnedMomentum::new(), step, &mut rng)?;
    println!("meta-training on shifted, scaled {DIM}-dimensional Rosenbrock functions, T = {TRAIN_HORIZON}");
    train(&mut learned, args.meta_steps, args.seed)?;
    train(&mut wrapped, args.meta_steps, args.seed)?;

    let draw = |i: usize, seed: u64| {
        rosenbrock(
            Draw {
                meta_step: 0,
                index: i,
            },
            &mut StdRng::seed_from_u64(seed + i as u64),
        )
    };
    let tuning: Vec<Sampled<f64>> = (0..8)
        .map(|i| draw(i, args.seed + 10_000))
        .collect::<Result<_, _>>()?;
    let unseen: Vec<Sampled<f64>> = (0..20)
        .map(|i| draw(i, args.seed + 20_000))
        .collect::<Result<_, _>>()?;
    let grid: Vec<f64> = (0..13)
        .map(|k| 10f64.powf(-4.0 + 0.25 * k as f64))
        .collect();
    let tune =
        |base: &dyn Tunable<f64>| -> Result<Box<dyn Tunable<f64>>, Box<dyn std::error::Error>> {
            // The rate minimizing the mean f(x_T) over the tuning problems (one grid search each).
            let mut totals = vec![0.0; grid.len()];
            for s in &tuning {
                let f = |x: &DMatrix<f64>| s.problem.objective(x, 0);
                let gs = grid_search(
                    base,
                    &grid,
                    &*s.problem,
                    std::slice::from_ref(&s.x0),
                    TRAIN_HORIZON,
                    &f,
                )?;
                for (t, (_, score)) in totals.iter_mut().zip(gs.scores) {
                    *t += score;
                }
            }
            let best = (0..grid.len())
                .min_by(|&a, &b| totals[a].total_cmp(&totals[b]))
                .expect("a grid");
            Ok(base.with_lr(grid[best])?)
        };
    let adam = tune(&Adam::default())?;
    let nag = tune(&Sgd::nesterov(1e-3, 0.9)?)?;
    let frozen_learned = Frozen(&learned as &dyn LearnedOptimizer<f64>);
    let frozen_wrapped = Frozen(&wrapped as &dyn LearnedOptimizer<f64>);
    let rows: [(&str, &dyn Algorithm<f64>, String); 4] = [
        ("Adam (tuned)", &*adam, format!("lr {:.2e}", adam.lr())),
        ("NAG (tuned)", &*nag, format!("lr {:.2e}", nag.lr())),
        ("LearnedMomentum", &frozen_learned, "learned".into()),
        (
            "its convergent wrapper",
            &frozen_wrapped,
            format!("eta {:.1e}", 0.5 / beta),
        ),
    ];
    println!("\n{} unseen problems; f(x_t) - f* (mean ± std), the learned optimizers trained at T = {TRAIN_HORIZON}", unseen.len());
    println!(
        "{:<24} {:>12} {:>22} {:>22} {:>14}",
        "optimizer", "setting", "t = 50", "t = 250", "|x_250 - x_249|"
    );
    for (name, alg, setting) in rows {
        let runs: Vec<_> = unseen
            .iter()
            .map(|s| run(alg, &*s.problem, &s.x0, &RunConfig::new(EVAL_HORIZON)))
            .collect::<Result<_, _>>()?;
        let at = |t: usize| {
            let v: Vec<f64> = runs
                .iter()
                .map(|r| {
                    r.trace
                        .values("loss")
                        .get(t)
                        .copied()
                        .unwrap_or(f64::INFINITY)
                })
                .collect();
            mean_std(&v)
        };
        let last_update: Vec<f64> = runs
            .iter()
            .map(|r| {
                r.trace
                    .values("update_norm")
                    .last()
                    .copied()
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let ((m50, s50), (m250, s250)) = (at(TRAIN_HORIZON), at(EVAL_HORIZON - 1));
        println!(
            "{name:<24} {setting:>12} {:>22} {:>22} {:>14.3e}",
            format!("{m50:.3e} ± {s50:.1e}"),
            format!("{m250:.3e} ± {s250:.1e}"),
            mean_std(&last_update).0
        );
    }
    println!(
        "custom_optimizer done seconds={:.1}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
