//! Meta-training of ConvergentAnyL2O on the MNIST family of MLP classifiers with the one
//! meta-trainer (full BPTT through the unroll, the paper's weighted meta-loss).

use crate::{bar, check_input, create_dir, default_out, say, write_file, Res, MNIST};
use convergent_l2o::meta::{FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss};
use convergent_l2o::optim::{AnyConfig, ConvergentAnyL2O};
use convergent_l2o::problems::data::Split;
use convergent_l2o::problems::{load_dataset, MlpFamily, MlpFamilyConfig, PixelNormalization};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// Flags of `train`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TrainArgs {
    /// Where the optimizer is written (optimizer.safetensors, config.json, meta_training.csv).
    #[arg(long, default_value_os_t = default_out("optimizer"))]
    pub(crate) out: PathBuf,
    /// The meta-training data (an IDX directory; its first 80% of training samples are used).
    #[arg(long, default_value = MNIST)]
    pub(crate) data: PathBuf,
    /// Meta-steps.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) meta_steps: u64,
    /// Trajectories per meta-step.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub(crate) trajectories: u64,
    /// Inner steps per trajectory (the unroll's horizon T).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub(crate) horizon: u64,
    /// Do not differentiate through the inner gradients (Andrychowicz et al.'s first-order
    /// approximation; the default is the exact, second-order meta-gradient).
    #[arg(long)]
    pub(crate) first_order: bool,
    /// Adam's learning rate on the meta-parameters.
    #[arg(long, default_value_t = 5e-3)]
    pub(crate) meta_lr: f64,
    /// Decay of the meta-loss weights `decay^(T-1-t)` (the paper: 0.95; 1 weighs every step
    /// the same).
    #[arg(long, default_value_t = 0.95)]
    pub(crate) decay: f64,
    /// Seed of everything random.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
}

impl Default for TrainArgs {
    fn default() -> Self {
        TrainArgs {
            out: default_out("optimizer"),
            data: PathBuf::from(MNIST),
            meta_steps: 600,
            trajectories: 4,
            horizon: 50,
            first_order: false,
            meta_lr: 5e-3,
            decay: 0.95,
            seed: 0,
        }
    }
}

/// Meta-trains, writes the optimizer to `--out` and returns it.
pub(crate) fn run(a: &TrainArgs) -> Res<ConvergentAnyL2O<f32>> {
    if !(a.meta_lr.is_finite() && a.meta_lr > 0.0) {
        return Err(format!("--meta-lr {} must be positive and finite", a.meta_lr).into());
    }
    check_input("--data", &a.data)?;
    let data = load_dataset(&a.data, PixelNormalization::Paper)?;
    create_dir(&a.out)?;
    let family = MlpFamily::<f32>::new(data.split(Split::MetaTrain), MlpFamilyConfig::transfer())?;
    let mut opt =
        ConvergentAnyL2O::<f32>::new(AnyConfig::default(), &mut StdRng::seed_from_u64(a.seed))?;
    let estimator = FullBptt {
        trajectories: a.trajectories as usize,
        horizon: a.horizon as usize,
        second_order: !a.first_order,
    };
    let config = MetaTrainConfig {
        lr: a.meta_lr,
        clip: Some(1.0),
        seed: a.seed,
    };
    let loss = WeightedLoss::new(a.decay, 0.0)?;
    let mut trainer = MetaTrainer::new(config, estimator, loss)?;
    println!(
        "meta-training ConvergentAnyL2O on {} ({} meta-steps of {} trajectories x {} steps, \
         {} order)",
        family_name(&family),
        a.meta_steps,
        a.trajectories,
        a.horizon,
        if a.first_order { "first" } else { "second" }
    );
    let pb = bar(a.meta_steps as usize, "meta-training");
    let start = Instant::now();
    let mut csv = String::from("meta_step,meta_loss,grad_norm,final_loss,seconds\n");
    let mut window = Vec::new();
    for k in 0..a.meta_steps as usize {
        let t0 = Instant::now();
        let r = trainer.step(&mut opt, &family)?;
        let dt = t0.elapsed().as_secs_f64();
        let _ = writeln!(
            csv,
            "{k},{},{},{},{dt:.3}",
            r.meta_loss, r.grad_norm, r.final_loss
        );
        window.push(r.final_loss);
        if (k + 1) % 25 == 0 || k + 1 == a.meta_steps as usize {
            let mean = window.iter().sum::<f64>() / window.len() as f64;
            say(
                &pb,
                format!(
                    "  meta-step {:>4}: mean final loss {mean:.4} over the last {}, {dt:.2} s/step",
                    k + 1,
                    window.len()
                ),
            );
            window.clear();
            opt.save(&a.out)?;
            write_file(&a.out.join("meta_training.csv"), &csv)?;
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    opt.save(&a.out)?;
    write_file(&a.out.join("meta_training.csv"), &csv)?;
    println!(
        "wrote {} ({:.0} s of meta-training, {:.2} s per meta-step)",
        a.out.display(),
        start.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64() / a.meta_steps as f64
    );
    Ok(opt)
}

fn family_name(f: &MlpFamily<f32>) -> String {
    convergent_l2o::problems::ProblemFamily::<f32>::name(f)
}
