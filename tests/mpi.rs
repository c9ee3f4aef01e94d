//! Meta-training under `mpirun` (feature `mpi`; `scripts/setup-mpi.sh` installs Open MPI;
//! `.ci/run` runs these after `cargo test`): the paper's task (ConvergentL2O on the tanh MNIST
//! classifier, full BPTT with second-order terms, 5 trajectories of 10 steps per meta-step) run
//! by `examples/meta_train_mpi.rs`.
//!
//! - 1, 2 and 3 ranks write the checkpoint, meta-parameters and meta-loss history of the
//!   threaded single process (the library's trainer without a communicator), byte for byte,
//!   after 3 meta-steps;
//! - 2 meta-steps on 3 ranks, then 1 more on 2 ranks from the checkpoint == 3 on 1 rank (with
//!   full BPTT, and with PES, whose persistent pairs rank 0 gathers into the checkpoint);
//! - a rank that exits (or panics) mid-run ends the job with a message naming the rank and the
//!   meta-step, and leaves a checkpoint that loads and resumes to the same bits.

use convergent_l2o::meta::{
    load_checkpoint, save_checkpoint, FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss,
};
use convergent_l2o::models::Activation;
use convergent_l2o::optim::{ConvergentL2O, LearnedOptimizer, StepSize};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::{InitialPoint, SequentialClassifiers};
use rand::{rngs::StdRng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
const TRAJECTORIES: usize = 5;
const HORIZON: usize = 10;

/// The example binary, built once with this test's profile and features.
fn example() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        assert!(Path::new(DATA).is_dir(), "the MNIST data {DATA} is missing");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--profile", "test", "--features", "mpi"])
            .args(["--example", "meta_train_mpi"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building meta_train_mpi failed");
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
            PathBuf::from,
        );
        target.join("debug/examples/meta_train_mpi")
    })
}

/// `mpirun -np ranks meta_train_mpi` on the paper's task (3 trajectories more than --quick's
/// 2, so that 2 and 3 ranks get unequal shares), with `extra` flags and `fault` injected.
fn mpirun(ranks: usize, out: &Path, extra: &[&str], fault: Option<&str>) -> Output {
    let mut cmd = Command::new("mpirun");
    cmd.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "--bind-to",
        "none",
    ])
    .args(["-np", &ranks.to_string()])
    .arg(example())
    .args(["--quick", "--lstm-meta-steps", "0", "--data", DATA])
    .args(["--trajectories", &TRAJECTORIES.to_string()])
    .args(["--horizon", &HORIZON.to_string()])
    .arg("--out")
    .arg(out)
    .args(extra)
    .env_remove("CONVERGENT_L2O_MPI_FAULT");
    if let Some(f) = fault {
        cmd.env("CONVERGENT_L2O_MPI_FAULT", f);
    }
    let output = cmd
        .output()
        .expect("mpirun runs (scripts/setup-mpi.sh installs Open MPI)");
    eprintln!(
        "--- mpirun -np {ranks} {extra:?} (fault {fault:?}): {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn ok(output: Output) {
    assert!(output.status.success(), "mpirun failed: {}", output.status);
}

/// The files a run of ConvergentL2O's meta-training leaves.
const FILES: [&str; 3] = [
    "convergent_l2o.ckpt",
    "convergent_l2o.params",
    "meta_convergent_l2o.csv",
];

fn same_files(a: &Path, b: &Path, what: &str) {
    for f in FILES {
        let (x, y) = (std::fs::read(a.join(f)), std::fs::read(b.join(f)));
        assert!(
            x.is_ok() && x.ok() == y.ok(),
            "{what}: {f} differs or is missing"
        );
    }
}

/// The paper's optimizer, family and trainer, as the example builds them.
fn paper_task() -> (
    ConvergentL2O<f32>,
    SequentialClassifiers<f32>,
    MetaTrainer<f32>,
) {
    let data = Mnist::load(Path::new(DATA)).unwrap();
    let family = SequentialClassifiers::new(
        data.split(Split::MetaTrain),
        Activation::Tanh,
        128,
        TRAJECTORIES,
        HORIZON,
        InitialPoint::META_TRAIN,
    )
    .unwrap();
    let opt = ConvergentL2O::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0)).unwrap();
    let estimator = FullBptt {
        trajectories: TRAJECTORIES,
        horizon: HORIZON,
        second_order: true,
    };
    let trainer =
        MetaTrainer::new(MetaTrainConfig::paper(0), estimator, WeightedLoss::PAPER).unwrap();
    (opt, family, trainer)
}

/// The threaded single process's checkpoint and meta-parameters after `steps` meta-steps.
fn single_process(steps: usize, dir: &Path) {
    let (mut opt, family, mut trainer) = paper_task();
    for _ in 0..steps {
        trainer.step(&mut opt, &family).unwrap();
    }
    save_checkpoint(&dir.join(FILES[0]), &trainer, &opt).unwrap();
    opt.params().save(&dir.join(FILES[1])).unwrap();
}

#[test]
fn one_two_and_three_ranks_write_the_bits_of_the_threaded_single_process() {
    let single = tempfile::tempdir().unwrap();
    single_process(3, single.path());
    let mut outs = Vec::new();
    for ranks in 1..=3 {
        let out = tempfile::tempdir().unwrap();
        ok(mpirun(ranks, out.path(), &["--meta-steps", "3"], None));
        for f in &FILES[..2] {
            assert!(
                std::fs::read(single.path().join(f)).unwrap()
                    == std::fs::read(out.path().join(f)).unwrap(),
                "{ranks} ranks: {f} differs from the single process's"
            );
        }
        outs.push(out);
    }
    same_files(outs[0].path(), outs[1].path(), "1 and 2 ranks");
    same_files(outs[0].path(), outs[2].path(), "1 and 3 ranks");
}

#[test]
fn two_meta_steps_on_three_ranks_then_one_on_two_equal_three_on_one() {
    let pes = [
        "--estimator",
        "pes",
        "--pes-horizon",
        "20",
        "--pes-window",
        "5",
    ];
    for estimator in [&[][..], &pes[..]] {
        let flags = |steps: &'static str| [&["--meta-steps", steps][..], estimator].concat();
        let straight = tempfile::tempdir().unwrap();
        ok(mpirun(1, straight.path(), &flags("3"), None));
        let resumed = tempfile::tempdir().unwrap();
        ok(mpirun(3, resumed.path(), &flags("2"), None));
        ok(mpirun(
            2,
            resumed.path(),
            &[&flags("3")[..], &["--resume"]].concat(),
            None,
        ));
        same_files(straight.path(), resumed.path(), &format!("{estimator:?}"));
    }
}

/// Loads `out`'s checkpoint into the paper's task: its meta-step.
fn loadable(out: &Path) -> usize {
    let (mut opt, _, mut trainer) = paper_task();
    load_checkpoint(&out.join(FILES[0]), &mut trainer, &mut opt).expect("a loadable checkpoint");
    trainer.meta_step()
}

#[test]
fn a_rank_that_exits_or_panics_ends_the_job_naming_it_and_leaves_a_good_checkpoint() {
    let straight = tempfile::tempdir().unwrap();
    ok(mpirun(1, straight.path(), &["--meta-steps", "4"], None));
    // (fault, what the output must say, the checkpoint's meta-step)
    let cases = [
        ("exit:1:2", "stopped by the launcher during meta-step 2", 2),
        (
            "panic:2:1",
            "rank 2 at meta-step 1 (counting from 0): panicked",
            1,
        ),
    ];
    for (fault, says, at) in cases {
        let out = tempfile::tempdir().unwrap();
        let run = mpirun(3, out.path(), &["--meta-steps", "4"], Some(fault));
        assert!(!run.status.success(), "{fault}: the job went on");
        let text = String::from_utf8_lossy(&run.stdout).into_owned()
            + &String::from_utf8_lossy(&run.stderr);
        assert!(text.contains(says), "{fault}: no '{says}' in the output");
        if fault.starts_with("exit") {
            // mpirun names the process that exited ("Process name: [[job,1],RANK]").
            let named = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Process name: [["))
                .filter_map(|l| l.rsplit_once("],").map(|(_, r)| r.trim_end_matches(']')))
                .collect::<Vec<_>>();
            assert_eq!(named, ["1"], "{fault}: mpirun does not name rank 1");
        }
        assert_eq!(
            loadable(out.path()),
            at,
            "{fault}: the last good checkpoint"
        );
        ok(mpirun(
            2,
            out.path(),
            &["--meta-steps", "4", "--resume"],
            None,
        ));
        same_files(straight.path(), out.path(), fault);
    }
}
