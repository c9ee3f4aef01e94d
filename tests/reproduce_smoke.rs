//! Smoke run of `examples/reproduce_paper.rs` with `--quick` (builds the example in release
//! first, so it is ignored by default): `cargo test --test reproduce_smoke -- --ignored`.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "builds and runs the reproduction example (about a minute); run with --ignored"]
fn quick_reproduction_writes_every_output() {
    let out = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "--release",
            "--example",
            "reproduce_paper",
            "--",
            "--quick",
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "reproduce_paper failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("reproduce_paper done seconds=")),
        "{stdout}"
    );
    for file in [
        "accuracy.csv",
        "curves.csv",
        "divergence.csv",
        "learning_rates.csv",
        "grid_search.csv",
        "table.md",
        "fig1_tanh.svg",
        "fig1_sigmoid.svg",
        "fig1_relu.svg",
        "divergence.svg",
        "convergent_l2o.ckpt",
        "convergent_l2o.params",
        "lstm_init1.ckpt",
        "lstm_init2.ckpt",
        "lstm_restarts.csv",
        "lstm.params",
        "meta_convergent_l2o.csv",
        "meta_lstm.csv",
    ] {
        let path = out.path().join(file);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} missing or empty", path.display());
    }
    let accuracy = std::fs::read_to_string(out.path().join("accuracy.csv")).unwrap();
    for line in accuracy.lines().skip(1) {
        let mean: f64 = line.split(',').nth(3).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&mean), "{line}");
    }
    let table = std::fs::read_to_string(out.path().join("table.md")).unwrap();
    assert!(table.contains("| ConvergentL2O |") && table.contains("| LSTM |"));
    let svg = std::fs::read_to_string(out.path().join("fig1_tanh.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("ConvergentL2O"));

    // A resumed run continues from the checkpoints: nothing left to train, same tables.
    let resumed = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "--release",
            "--example",
            "reproduce_paper",
            "--",
            "--quick",
            "--resume",
            "--out",
        ])
        .arg(out.path())
        .output()
        .expect("cargo runs");
    assert!(resumed.status.success());
    let again = std::fs::read_to_string(out.path().join("table.md")).unwrap();
    assert_eq!(
        table, again,
        "resuming a finished run must give the same tables"
    );
    assert!(Path::new(&out.path().join("meta_lstm.csv")).exists());
}
