//! PES's memory does not grow with the horizon: on the paper's classifier with inner problems
//! of T = 10,000 steps in windows of 20, the resident memory after meta-step 10 and after many
//! more differs by under 5%. (A file of its own: resident memory is the process's.)
//! The long variant (200 meta-steps): `cargo test --release --test pes_memory -- --ignored`.

use convergent_l2o::meta::{MetaTrainConfig, MetaTrainer, Pes, WeightedLoss};
use convergent_l2o::models::Activation;
use convergent_l2o::optim::{ConvergentL2O, StepSize};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{InitialPoint, SequentialClassifiers};
use rand::{rngs::StdRng, SeedableRng};
use std::path::Path;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");

/// Resident memory in MiB (0 where /proc is unavailable).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn resident_memory_after(checkpoints: [usize; 2]) -> Option<(f64, f64)> {
    if !Path::new(DATA).is_dir() {
        eprintln!("skipped: {DATA} not found");
        return None;
    }
    let data = Mnist::load(Path::new(DATA)).unwrap();
    let horizon = 10_000;
    let family = SequentialClassifiers::<f32>::new(
        data.split(Split::MetaTrain),
        Activation::Tanh,
        128,
        2,
        horizon,
        InitialPoint::META_TRAIN,
    )
    .unwrap();
    let mut opt =
        ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0)).unwrap();
    let config = MetaTrainConfig {
        lr: 1e-3,
        clip: Some(10.0),
        seed: 0,
    };
    let pes = Pes::new(1e-3, 2, 20, horizon);
    let mut trainer = MetaTrainer::new(config, pes, WeightedLoss::PAPER).unwrap();
    let mut rss = [0.0; 2];
    for k in 1..=checkpoints[1] {
        trainer.step(&mut opt, &family).unwrap();
        if let Some(i) = checkpoints.iter().position(|&c| c == k) {
            rss[i] = rss_mb();
        }
    }
    Some((rss[0], rss[1]))
}

fn check(checkpoints: [usize; 2]) {
    let Some((early, late)) = resident_memory_after(checkpoints) else {
        return;
    };
    println!(
        "resident memory after meta-step {}: {early:.1} MiB, after {}: {late:.1} MiB",
        checkpoints[0], checkpoints[1]
    );
    if early == 0.0 {
        eprintln!("skipped: no /proc/self/status");
        return;
    }
    assert!(
        (late - early).abs() < 0.05 * early,
        "resident memory {early:.1} -> {late:.1} MiB"
    );
}

#[test]
fn pes_memory_is_flat_over_meta_steps() {
    check([10, 40]);
}

#[test]
#[ignore = "200 meta-steps on the paper's classifier; run with --ignored"]
fn pes_memory_is_flat_over_200_meta_steps() {
    check([10, 200]);
}
