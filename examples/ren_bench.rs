//! Times the paper's tied-block REN (m = p = 7850, n = l = 3, gamma = 0.3) in f32 and f64,
//! recorded (parameters as tape leaves) and unrecorded (constants):
//! - `param_map`: binding the parameters and building the explicit model (once per update);
//! - `step_zero_input` / `step_input`: one time step with `u = None` / a 7850-vector
//!   (timed over chained 50-step rollouts, per step);
//! - `rollout50_grad`: parameter map, a 50-step impulse response and the gradient of its
//!   squared norm w.r.t. all parameters (recorded only).
//!
//! Each line ends in `seconds=<median>`.
//! Usage: cargo run --release --example ren_bench -- [--reps 500] [--dtype f32|f64|both]

use convergent_l2o::models::ren::TiedRen;
use convergent_l2o::models::Params;
use convergent_l2o::tape::{Scalar, Tape};
use nalgebra::DMatrix;
use rand::{rngs::StdRng, SeedableRng};
use std::time::Instant;

/// Steps per timed batch (the paper's horizon T).
const ROLLOUT: usize = 50;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// Median wall time of `f` over `reps` calls (after one warm-up call).
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let times = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    median(times)
}

fn report<T: Scalar>(what: &str, mode: &str, seconds: f64) {
    println!("ren_bench {} {what} {mode} seconds={seconds:.3e}", T::NAME);
}

fn bench<T: Scalar>(reps: usize) {
    let ren = TiedRen::paper();
    let params: Params<T> = ren.init_params(&mut StdRng::seed_from_u64(0), 0.01);
    let m = ren.dims().m;
    let delta = DMatrix::from_fn(m, 1, |i, _| T::cast(0.005 * (1.0 + (i as f64).sin())));
    for recorded in [false, true] {
        let mode = if recorded { "recorded" } else { "unrecorded" };
        let tape = Tape::<T>::new();
        let bind = |tape| {
            if recorded {
                params.bind(tape)
            } else {
                params.bind_constants(tape)
            }
        };
        let start = tape.mark();
        let map = time(reps, || {
            let _ = ren.build(&bind(&tape));
            tape.truncate(start);
        });
        report::<T>("param_map", mode, map);
        let bound = bind(&tape);
        let model = ren.build(&bound);
        let u = tape.constant(delta.clone());
        let (_, x1) = model.step(model.initial_state(), Some(u), 0);
        // Steps are chained as in a rollout (the tape grows, as it does there) and timed in
        // batches of ROLLOUT, so freeing and re-faulting memory is not timed per step.
        let mark = tape.mark();
        let per_step = |input: bool| {
            time(reps.div_ceil(ROLLOUT).max(5), || {
                let mut x = x1;
                for t in 1..=ROLLOUT {
                    x = model.step(x, input.then_some(u), t).1;
                }
                tape.truncate(mark);
            }) / ROLLOUT as f64
        };
        report::<T>("step_zero_input", mode, per_step(false));
        let input = per_step(true);
        report::<T>("step_input", mode, input);
    }
    let tape = Tape::<T>::new();
    let start = tape.mark();
    let rollout = time(reps.div_ceil(10).max(5), || {
        let bound = params.bind(&tape);
        let model = ren.build(&bound);
        let mut x = model.initial_state();
        let mut loss = tape.scalar(T::zero());
        for t in 0..50 {
            let u = (t == 0).then(|| tape.constant(delta.clone()));
            let (z, next) = model.step(x, u, t);
            loss = loss + z.square().sum();
            x = next;
        }
        let _ = tape.grad(&[loss], &bound.vars(), false);
        tape.truncate(start);
    });
    report::<T>("rollout50_grad", "recorded", rollout);
}

fn main() {
    let mut reps = 500;
    let mut dtypes = vec!["f32".to_string(), "f64".to_string()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--reps" => reps = value().parse().expect("--reps takes a number"),
            "--dtype" => {
                let d = value();
                dtypes = if d == "both" {
                    vec!["f32".into(), "f64".into()]
                } else {
                    vec![d]
                };
            }
            _ => panic!("unknown argument {a}"),
        }
    }
    for d in dtypes {
        match d.as_str() {
            "f32" => bench::<f32>(reps),
            "f64" => bench::<f64>(reps),
            other => panic!("unknown dtype {other} (f32, f64 or both)"),
        }
    }
}
