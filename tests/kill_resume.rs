//! Kill tests: a meta-training run killed at any moment (between the write of a file and its
//! rename, right after a rename, or by a SIGKILL at a random time), then resumed with
//! `--resume`, leaves exactly the files of an uninterrupted run, byte for byte.
//!
//! The kill points come from the library's fault injection (`CONVERGENT_L2O_KILL_AT_WRITE=N`
//! aborts the process at its N-th atomic write, before the rename, or after it with `N:after`),
//! so every interesting moment is hit deterministically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");

/// The example binary, built with this test's profile.
fn example() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "--profile",
            "test",
            "--example",
            "reproduce_paper",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building reproduce_paper failed");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/examples");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("debug/examples"))
        .unwrap_or(dir);
    target.join("reproduce_paper")
}

/// A tiny reproduction: 3 + 3 meta-steps of 2 trajectories of 10 steps, 1 run of 4 steps.
fn tiny(bin: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--quick",
        "--meta-steps",
        "3",
        "--lstm-meta-steps",
        "3",
        "--runs",
        "1",
        "--steps",
        "4",
        "--long-steps",
        "4",
        "--tuning-runs",
        "1",
        "--data",
        DATA,
        "--out",
    ])
    .arg(out)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    cmd
}

fn run(bin: &Path, out: &Path, resume: bool, kill_at: Option<&str>) -> std::process::ExitStatus {
    let mut cmd = tiny(bin, out);
    if resume {
        cmd.arg("--resume");
    }
    if let Some(k) = kill_at {
        cmd.env("CONVERGENT_L2O_KILL_AT_WRITE", k);
    }
    cmd.status().expect("the example runs")
}

/// Every file of `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn killed_and_resumed_runs_leave_the_files_of_an_uninterrupted_run() {
    if !Path::new(DATA).is_dir() {
        eprintln!("skipped: {DATA} not found");
        return;
    }
    let bin = example();
    let straight = tempfile::tempdir().unwrap();
    assert!(run(&bin, straight.path(), false, None).success());
    let expected = files(straight.path());
    // Each meta-step writes its checkpoint, then the meta-loss CSV: writes 1-2 are
    // ConvergentL2O's first meta-step, 3-4 its second, 7 its parameters; 8-10 the LSTM's first
    // restart (one pilot meta-step, its parameters), 11-13 the second, 14 lstm_restarts.csv,
    // 15-20 the chosen restart's continuation (its history, two meta-steps, its parameters),
    // 21-22 lstm.params and meta_lstm.csv, then the evaluation's files.
    for kill_at in [
        "1:after", "2", "3:after", "4", "7", "8:after", "14", "18:after", "22",
    ] {
        let out = tempfile::tempdir().unwrap();
        let killed = run(&bin, out.path(), false, Some(kill_at));
        assert!(!killed.success(), "kill point {kill_at} was not reached");
        assert!(
            run(&bin, out.path(), true, None).success(),
            "resume after {kill_at}"
        );
        let got = files(out.path());
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "kill at write {kill_at}: other files (a temporary left behind?)"
        );
        for (name, bytes) in &expected {
            assert!(
                got[name] == *bytes,
                "kill at write {kill_at}: {name} differs"
            );
        }
    }
}

#[test]
fn a_sigkill_at_a_random_moment_loses_nothing() {
    if !Path::new(DATA).is_dir() {
        eprintln!("skipped: {DATA} not found");
        return;
    }
    let bin = example();
    let straight = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    assert!(run(&bin, straight.path(), false, None).success());
    let duration = start.elapsed();
    let expected = files(straight.path());
    for fraction in [0.2, 0.5, 0.8] {
        let out = tempfile::tempdir().unwrap();
        let mut child = tiny(&bin, out.path()).spawn().unwrap();
        std::thread::sleep(duration.mul_f64(fraction));
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        assert!(run(&bin, out.path(), true, None).success());
        assert_eq!(
            files(out.path()),
            expected,
            "killed after {:.0}% of a run",
            100.0 * fraction
        );
    }
}
