//! Fuzzing every loader with mutations of real files (bit flips, truncations, huge header
//! fields, spliced and random bytes): no panic, no abort, no hang, and every `Ok` holds only
//! valid values. A bounded number of cases runs in `cargo test` (`FUZZ_CASES`, default 150 per
//! loader); the long run is `cargo test --release --test fuzz_loaders -- --ignored`.

use convergent_l2o::meta::{
    load_checkpoint, save_checkpoint, FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss,
};
use convergent_l2o::models::{read_safetensors, Params};
use convergent_l2o::optim::{ConvergentL2O, LearnedOptimizer, MagnitudeRen, StepSize};
use convergent_l2o::problems::data::parse_idx;
use convergent_l2o::problems::{all_finite, FamilyFn, InitialPoint, Quadratic, Sampled};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

fn cases() -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

/// One random mutation of `bytes`.
fn mutate(bytes: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let len = b.len().max(1);
    match rng.gen_range(0..6) {
        0 => {
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..len).min(b.len().saturating_sub(1));
                if !b.is_empty() {
                    b[i] ^= 1 << rng.gen_range(0..8);
                }
            }
        }
        1 => b.truncate(rng.gen_range(0..len)),
        2 => {
            // A huge length or dimension field near the start (headers live there).
            let at = rng.gen_range(0..len.min(64));
            for k in 0..8 {
                if let Some(x) = b.get_mut(at + k) {
                    *x = 0xff;
                }
            }
        }
        3 => {
            let at = rng.gen_range(0..len);
            let junk: Vec<u8> = (0..rng.gen_range(1..64)).map(|_| rng.gen()).collect();
            b.splice(at.min(b.len())..at.min(b.len()), junk);
        }
        4 => {
            let at = rng.gen_range(0..len).min(b.len());
            let n = rng.gen_range(0..32).min(b.len() - at);
            b.drain(at..at + n);
        }
        _ => b = (0..rng.gen_range(0..256)).map(|_| rng.gen()).collect(),
    }
    b
}

fn fuzz_idx(n: usize, seed: u64) {
    for file in ["t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"] {
        let path = Path::new(DATA).join("mnist-10k").join(file);
        let Ok(gz) = std::fs::read(&path) else {
            eprintln!("skipped: {} not found", path.display());
            return;
        };
        let raw = parse_idx(&gz, file).unwrap();
        let mut raw_bytes = vec![0u8, 0, 8, raw.dims.len() as u8];
        for d in &raw.dims {
            raw_bytes.extend_from_slice(&(*d as u32).to_be_bytes());
        }
        raw_bytes.extend_from_slice(&raw.data);
        let mut rng = StdRng::seed_from_u64(seed);
        for case in 0..n {
            let source = if case % 2 == 0 { &gz } else { &raw_bytes };
            let bytes = mutate(source, &mut rng);
            if let Ok(a) = parse_idx(&bytes, "fuzz") {
                let product: usize = a.dims.iter().product();
                assert_eq!(product, a.data.len(), "case {case} of {file}");
            }
        }
    }
}

fn fuzz_safetensors(n: usize, seed: u64) {
    let path = Path::new(DATA).join("pretrained/convergent_l2o_tanh.safetensors");
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("skipped: {} not found", path.display());
        return;
    };
    let template =
        ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0))
            .unwrap()
            .params()
            .clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.safetensors");
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..n {
        std::fs::write(&file, mutate(&bytes, &mut rng)).unwrap();
        if let Ok(p) = read_safetensors(&file, &template) {
            assert!(p.check_matches(&template).is_ok(), "case {case}");
            assert!(p.iter().all(|(_, m)| all_finite(m)), "case {case}");
        }
    }
}

fn small() -> ConvergentL2O<f64> {
    let ren = MagnitudeRen::dense(2, 2, 2, 1.0).unwrap();
    ConvergentL2O::new(
        2,
        ren,
        4,
        StepSize::Constant { eta: 0.2 },
        &mut StdRng::seed_from_u64(1),
    )
    .unwrap()
}

fn trainer() -> MetaTrainer<f64> {
    let estimator = FullBptt {
        trajectories: 2,
        horizon: 3,
        second_order: true,
    };
    let config = MetaTrainConfig {
        lr: 1e-2,
        clip: None,
        seed: 0,
    };
    MetaTrainer::new(config, estimator, WeightedLoss::PAPER).unwrap()
}

fn fuzz_params_and_checkpoints(n: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (params_path, ckpt_path) = (dir.path().join("p.bin"), dir.path().join("c.ckpt"));
    let mut opt = small();
    let mut t = trainer();
    let family = FamilyFn::new("q", |_, rng: &mut StdRng| {
        let q = Quadratic::<f64>::random(2, 0.5, 1.0, rng);
        Sampled::new(q, InitialPoint::Normal { std: 1.0 }.sample(2, rng))
    });
    for _ in 0..2 {
        t.step(&mut opt, &family).unwrap();
    }
    opt.params().save(&params_path).unwrap();
    save_checkpoint(&ckpt_path, &t, &opt).unwrap();
    let (params_bytes, ckpt_bytes) = (
        std::fs::read(&params_path).unwrap(),
        std::fs::read(&ckpt_path).unwrap(),
    );
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..n {
        std::fs::write(&params_path, mutate(&params_bytes, &mut rng)).unwrap();
        if let Ok(p) = Params::<f64>::load(&params_path) {
            assert!(p.iter().all(|(_, m)| all_finite(m)), "params case {case}");
        }
        std::fs::write(&ckpt_path, mutate(&ckpt_bytes, &mut rng)).unwrap();
        let (mut fresh_t, mut fresh) = (trainer(), small());
        if load_checkpoint(&ckpt_path, &mut fresh_t, &mut fresh).is_ok() {
            assert!(
                fresh.params().iter().all(|(_, m)| all_finite(m)),
                "case {case}"
            );
            assert_eq!(fresh_t.history().len(), fresh_t.meta_step(), "case {case}");
            // A loaded checkpoint must also train on without trouble.
            fresh_t.step(&mut fresh, &family).unwrap();
        }
    }
}

#[test]
fn idx_loader_survives_mutations() {
    fuzz_idx(cases(), 1);
}

#[test]
fn safetensors_loader_survives_mutations() {
    fuzz_safetensors(cases(), 2);
}

#[test]
fn params_and_checkpoint_loaders_survive_mutations() {
    fuzz_params_and_checkpoints(cases(), 3);
}

#[test]
#[ignore = "long fuzzing run (about 20,000 cases per loader); run with --ignored"]
fn long_fuzzing_run() {
    let n = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    fuzz_idx(n, 11);
    fuzz_safetensors(n / 10, 12);
    fuzz_params_and_checkpoints(n, 13);
}
