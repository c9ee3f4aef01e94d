//! `speed`: seconds per inner step of ConvergentAnyL2O against Adam on the same model
//! (784-128-10 by default), evaluation runs (unrecorded), and the meta-step time of `train`'s
//! settings.

use crate::eval::Task;
use crate::{check_input, parse_hidden, train, Res, MNIST};
use convergent_l2o::eval::{run, RunConfig};
use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
use convergent_l2o::models::Activation;
use convergent_l2o::optim::{Adam, Algorithm, AnyConfig, ConvergentAnyL2O, Frozen};
use convergent_l2o::problems::data::Split;
use convergent_l2o::problems::{load_dataset, MlpFamily, MlpFamilyConfig, PixelNormalization};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::Instant;

/// Flags of `speed`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct SpeedArgs {
    /// The data (an IDX directory).
    #[arg(long, default_value = MNIST)]
    data: PathBuf,
    /// Hidden widths of the timed model.
    #[arg(long, default_value = "128")]
    hidden: String,
    /// Timed inner steps per optimizer.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    steps: u64,
    /// Timed meta-steps (after one warm-up).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    meta_steps: u64,
}

/// `speed`.
pub(crate) fn run_speed(a: &SpeedArgs) -> Res<()> {
    check_input("--data", &a.data)?;
    let hidden = parse_hidden(&a.hidden)?;
    let data = load_dataset(&a.data, PixelNormalization::Paper)?;
    let task = Task::new(&data, &hidden, Activation::Tanh, 128)?;
    let x0 = task.initial_points(0, 1).remove(0);
    let opt = ConvergentAnyL2O::<f32>::new(AnyConfig::default(), &mut StdRng::seed_from_u64(0))?;
    let learned = Frozen(&opt);
    let adam = Adam::new(1e-3)?;
    let algorithms: [&dyn Algorithm<f32>; 2] = [&learned, &adam];
    let steps = a.steps as usize;
    println!(
        "inner steps on {} tanh ({} parameters, minibatch 128, f32, unrecorded):",
        task.problem.shape(),
        task.problem.shape().num_params()
    );
    for alg in algorithms {
        let _ = run(alg, &task.problem, &x0, &RunConfig::bare(10))?;
        let t0 = Instant::now();
        let _ = run(alg, &task.problem, &x0, &RunConfig::bare(steps))?;
        let dt = t0.elapsed().as_secs_f64() / steps as f64;
        println!("  {:<18} {:.2} ms per step", alg.name(), dt * 1e3);
    }
    let defaults = train::TrainArgs::default();
    let family = MlpFamily::<f32>::new(data.split(Split::MetaTrain), MlpFamilyConfig::transfer())?;
    let mut opt = opt.clone();
    let estimator = FullBptt {
        trajectories: defaults.trajectories as usize,
        horizon: defaults.horizon as usize,
        second_order: true,
    };
    let config = MetaTrainConfig {
        lr: defaults.meta_lr,
        clip: Some(1.0),
        seed: 0,
    };
    let mut trainer = MetaTrainer::new(config, estimator, WeightedLoss::PAPER)?;
    trainer.step(&mut opt, &family)?;
    let t0 = Instant::now();
    for _ in 0..a.meta_steps {
        trainer.step(&mut opt, &family)?;
    }
    println!(
        "meta-step (train's defaults: {} trajectories x {} steps of the MNIST MLP family, second \
         order): {:.2} s",
        defaults.trajectories,
        defaults.horizon,
        t0.elapsed().as_secs_f64() / a.meta_steps as f64
    );
    Ok(())
}
