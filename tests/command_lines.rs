//! The example command lines under bad input: every example parses its arguments with clap
//! (`--help` works, an unknown flag is an error), counts are range-checked before any work
//! starts, input paths are checked before meta-training, and no error is a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");

/// The example binaries, built with this test's profile.
fn example(name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "--profile", "test", "--example", name])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {name} failed");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/examples");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("debug/examples"))
        .unwrap_or(dir)
        .join(name)
}

fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .expect("the example starts")
}

/// A refusal: a non-zero exit with a message that names `what`, and no panic.
fn refused(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted; stderr: {err}");
    assert!(!err.contains("panicked"), "a panic: {err}");
    assert!(
        err.contains(what),
        "the message does not name '{what}': {err}"
    );
}

#[test]
fn every_example_answers_help_and_refuses_unknown_flags() {
    for name in ["reproduce_paper", "pretrained", "quickstart"] {
        let bin = example(name);
        let help = run(&bin, &["--help"]);
        assert!(help.status.success(), "{name} --help failed");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("Usage"),
            "{name} --help"
        );
        refused(&run(&bin, &["--no-such-flag"]), "--no-such-flag");
    }
}

#[test]
fn counts_out_of_range_are_refused_before_any_work() {
    let bin = example("reproduce_paper");
    let out = std::env::temp_dir().join(format!("cl2o_cli_{}", std::process::id()));
    let out_s = out.to_str().unwrap();
    // (flag, value, what the message must name): a negative count is not a value clap
    // can parse for an unsigned flag, so its message names the value.
    for (flag, value, named) in [
        ("--steps", "1000000000000", "--steps"),
        ("--steps", "18446744073709551615", "--steps"),
        ("--runs", "1000000000", "--runs"),
        ("--runs", "0", "--runs"),
        ("--meta-steps", "-1", "-1"),
    ] {
        refused(&run(&bin, &[flag, value, "--out", out_s]), named);
    }
    // Allowed individually, too large together: refused with the size before any work.
    refused(
        &run(
            &bin,
            &[
                "--runs",
                "10000",
                "--long-steps",
                "10000000",
                "--out",
                out_s,
            ],
        ),
        "GB",
    );
    refused(&run(&bin, &["--sigma", "0", "--out", out_s]), "--sigma");
    assert!(!out.join("convergent_l2o.ckpt").exists());
    let pretrained = example("pretrained");
    refused(&run(&pretrained, &["--runs", "0"]), "run");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_bad_transfer_directory_is_found_before_meta_training() {
    let bin = example("reproduce_paper");
    let out = std::env::temp_dir().join(format!("cl2o_cli_transfer_{}", std::process::id()));
    let missing = out.join("no-such-dataset");
    let res = run(
        &bin,
        &[
            "--quick",
            "--data",
            DATA,
            "--transfer",
            missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    refused(&res, "no-such-dataset");
    // Nothing was meta-trained.
    assert!(!out.join("convergent_l2o.ckpt").exists());
    let _ = std::fs::remove_dir_all(&out);
}
