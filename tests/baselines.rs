//! The baselines follow PyTorch's published update formulas step by step (expected values are
//! computed here by independent scalar code), the recorded (tape) form gives the same iterates,
//! a meta-gradient through the learning rate is exact, and bad hyperparameters are refused.

use convergent_l2o::eval::{self, Probe, RunConfig, Steps};
use convergent_l2o::optim::{
    heavy_ball_step, Adam, Algorithm, HeavyBall, HyperError, OptState, Oracle, Rate, Recording,
    RmsProp, Sgd,
};
use convergent_l2o::problems::Problem;
use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::DMatrix;

/// f(x) = 1/2 Σ a_i x_i², gradient a_i x_i (coordinates decouple, so scalar recursions apply).
const A: [f64; 3] = [1.0, 3.0, 0.5];
const X0: [f64; 3] = [1.0, -2.0, 0.5];
const STEPS: usize = 6;
const LR: f64 = 0.05;

fn grad(x: &[f64]) -> Vec<f64> {
    x.iter().zip(A).map(|(x, a)| a * x).collect()
}

/// The test's f as a problem.
struct Diagonal;

impl Problem<f64> for Diagonal {
    fn dim(&self) -> usize {
        3
    }
    fn loss<'t>(&self, x: Var<'t, f64>, _step: usize) -> Var<'t, f64> {
        let a = x.tape().constant(DMatrix::from_column_slice(3, 1, &A));
        x.square().mul_elem(a).sum().scale(0.5)
    }
}

fn x0() -> DMatrix<f64> {
    DMatrix::from_column_slice(3, 1, &X0)
}

/// Runs `alg` (unrecorded) from X0 for STEPS steps, returning the iterates after each step.
fn run(alg: &dyn Algorithm<f64>) -> Vec<Vec<f64>> {
    let mut cfg = RunConfig::bare(STEPS);
    for i in 0..3 {
        cfg = cfg.with(Probe::new(
            &format!("x[{i}]"),
            Steps::At((1..=STEPS).collect()),
            move |v| v.x[i],
        ));
    }
    let out = eval::run(alg, &Diagonal, &x0(), &cfg).unwrap();
    assert_eq!(out.trace.non_finite_at, None, "{}", alg.name());
    (1..=STEPS)
        .map(|t| {
            (0..3)
                .map(|i| out.trace.at(&format!("x[{i}]"), t).unwrap())
                .collect()
        })
        .collect()
}

fn assert_iterates(name: &str, got: &[Vec<f64>], expected: &[Vec<f64>]) {
    assert_eq!(got.len(), expected.len(), "{name}: number of iterates");
    for (t, (g, e)) in got.iter().zip(expected).enumerate() {
        for i in 0..3 {
            assert!(
                (g[i] - e[i]).abs() <= 1e-14 * e[i].abs().max(1.0),
                "{name}, step {t}, coordinate {i}: got {}, formula gives {}",
                g[i],
                e[i]
            );
        }
    }
}

/// The scalar formula, per coordinate, of each optimizer.
fn formula(step: impl Fn(usize, f64, f64, &mut [f64; 4]) -> f64) -> Vec<Vec<f64>> {
    let mut x = X0.to_vec();
    let mut states = [[0.0; 4]; 3];
    (0..STEPS)
        .map(|t| {
            let g = grad(&x);
            for i in 0..3 {
                x[i] = step(t, x[i], g[i], &mut states[i]);
            }
            x.clone()
        })
        .collect()
}

#[test]
fn sgd_with_momentum_dampening_and_weight_decay() {
    let (mu, tau, wd) = (0.9, 0.1, 0.01);
    let sgd = Sgd {
        lr: LR,
        momentum: mu,
        dampening: tau,
        weight_decay: wd,
        nesterov: false,
    };
    let expected = formula(|t, x, g, s| {
        let g = g + wd * x;
        s[0] = if t == 0 {
            g
        } else {
            mu * s[0] + (1.0 - tau) * g
        };
        x - LR * s[0]
    });
    assert_iterates("SGD", &run(&sgd), &expected);
}

#[test]
fn nag_is_pytorch_nesterov() {
    let mu = 0.9;
    let expected = formula(|t, x, g, s| {
        s[0] = if t == 0 { g } else { mu * s[0] + g };
        x - LR * (g + mu * s[0])
    });
    assert_iterates("NAG", &run(&Sgd::nesterov(LR, mu).unwrap()), &expected);
}

#[test]
fn adam_with_bias_correction_and_eps_outside_the_root() {
    let (b1, b2, eps, wd) = (0.9, 0.999, 1e-8, 0.02);
    let adam = Adam {
        lr: LR,
        beta1: b1,
        beta2: b2,
        eps,
        weight_decay: wd,
    };
    let expected = formula(|t, x, g, s| {
        let g = g + wd * x;
        s[0] = b1 * s[0] + (1.0 - b1) * g;
        s[1] = b2 * s[1] + (1.0 - b2) * g * g;
        let k = (t + 1) as i32;
        let m_hat = s[0] / (1.0 - b1.powi(k));
        let v_hat = s[1] / (1.0 - b2.powi(k));
        x - LR * m_hat / (v_hat.sqrt() + eps)
    });
    assert_iterates("Adam", &run(&adam), &expected);
}

#[test]
fn rmsprop_plain_and_centered_with_momentum() {
    let (alpha, eps) = (0.99, 1e-8);
    let plain = formula(|_, x, g, s| {
        s[0] = alpha * s[0] + (1.0 - alpha) * g * g;
        x - LR * g / (s[0].sqrt() + eps)
    });
    assert_iterates("RMSprop", &run(&RmsProp::new(LR).unwrap()), &plain);
    let mu = 0.5;
    let centered = formula(|_, x, g, s| {
        s[0] = alpha * s[0] + (1.0 - alpha) * g * g;
        s[1] = alpha * s[1] + (1.0 - alpha) * g;
        let den = (s[0] - s[1] * s[1]).sqrt() + eps;
        s[2] = mu * s[2] + g / den;
        x - LR * s[2]
    });
    let rms = RmsProp {
        lr: LR,
        momentum: mu,
        centered: true,
        ..RmsProp::default()
    };
    assert_iterates("centered RMSprop", &run(&rms), &centered);
}

#[test]
fn gradient_descent_and_heavy_ball() {
    let gd = formula(|_, x, g, _| x - LR * g);
    assert_iterates("GD", &run(&HeavyBall::gd(LR).unwrap()), &gd);
    let beta = 0.7;
    let hb = formula(|t, x, g, s| {
        let prev = if t == 0 { x } else { s[0] };
        s[0] = x;
        x - LR * g + beta * (x - prev)
    });
    assert_iterates("heavy ball", &run(&HeavyBall::new(LR, beta).unwrap()), &hb);
}

/// The iterates x_1..x_steps of `rule` driven recorded (second order) on `x0`'s tape.
///
/// With `lr` given, the learning rate is that tape variable: every rule tested this way moves
/// `x_t` to `x_t - LR d_t` with a direction `d_t` that does not depend on the learning rate
/// (SGD and its momenta, Adam, RMSprop); `d_t = (x_t - x_{t+1}) / LR` is recorded, and the
/// trajectory goes on from `x_t - lr d_t`, so the rule's state (momenta, moments) is fed the
/// gradients of that trajectory.
fn recorded<'t>(
    rule: &dyn Algorithm<f64>,
    lr: Option<Var<'t, f64>>,
    x0: Var<'t, f64>,
    steps: usize,
) -> Vec<Var<'t, f64>> {
    let tape = x0.tape();
    let opt = rule.instantiate(tape);
    let oracle = Oracle::new(&Diagonal, tape, 0, Recording::On { second_order: true });
    let mut state: OptState<'t, f64> = opt.init(x0, &oracle).unwrap();
    let mut xs = Vec::new();
    for t in 0..steps {
        let oracle = oracle.at_step(t);
        let x = state.x();
        let at = oracle.evaluate(opt.query(&state));
        opt.update(&mut state, &at, &oracle).unwrap();
        state.advance();
        if let Some(lr) = lr {
            let d = (x - state.x()).scale(1.0 / LR);
            state.set_x(x - d.mul_scalar(lr));
        }
        xs.push(state.x());
    }
    xs
}

/// The iterates x_1..x_steps of heavy ball (β) with the learning rate `lr` on the tape, written
/// with the library's step (`heavy_ball_step` with `Rate::Var`).
fn heavy_ball_recorded<'t>(
    beta: f64,
    lr: Var<'t, f64>,
    x0: Var<'t, f64>,
    steps: usize,
) -> Vec<Var<'t, f64>> {
    let tape = x0.tape();
    let (mut x, mut previous) = (x0, None);
    let mut xs = Vec::new();
    for t in 0..steps {
        let oracle = Oracle::new(&Diagonal, tape, t, Recording::On { second_order: true });
        let g = oracle.evaluate(x).grad;
        let next = heavy_ball_step(x, previous, g, Rate::Var(lr), Rate::Fixed(beta));
        previous = Some(x);
        x = next;
        xs.push(x);
    }
    xs
}

fn assert_close_to_run(name: &str, xs: &[Var<'_, f64>], off: &[Vec<f64>]) {
    assert_eq!(xs.len(), off.len(), "{name}: number of iterates");
    for (t, (x, off)) in xs.iter().zip(off).enumerate() {
        for (on, off) in x.value().iter().zip(off) {
            assert!((on - off).abs() < 1e-14, "{name}: step {t} differs");
        }
    }
}

#[test]
fn recorded_steps_match_off_tape_steps_and_lr_meta_gradients_are_exact() {
    let inputs = [
        DMatrix::from_element(1, 1, LR),
        DMatrix::from_column_slice(3, 1, &X0),
    ];
    let rules: [Box<dyn Algorithm<f64>>; 4] = [
        Box::new(Sgd {
            lr: LR,
            momentum: 0.9,
            dampening: 0.1,
            weight_decay: 0.01,
            nesterov: false,
        }),
        Box::new(Sgd::nesterov(LR, 0.9).unwrap()),
        Box::new(Adam {
            lr: LR,
            weight_decay: 0.02,
            ..Adam::default()
        }),
        Box::new(RmsProp {
            lr: LR,
            momentum: 0.5,
            centered: true,
            ..RmsProp::default()
        }),
    ];
    for rule in &rules {
        let name = rule.name();
        let off = run(rule.as_ref());
        let tape = Tape::<f64>::new();
        let x = tape.constant(x0());
        assert_close_to_run(&name, &recorded(rule.as_ref(), None, x, STEPS), &off);
        let lr = tape.scalar(LR);
        assert_close_to_run(&name, &recorded(rule.as_ref(), Some(lr), x, STEPS), &off);
        // f(x_4) as a function of (lr, x0) on the tape.
        let f = tape_fn(|v| {
            let xs = recorded(rule.as_ref(), Some(v[0]), v[1], 4);
            Diagonal.loss(xs[3], 4)
        });
        check_gradients(&f, &inputs, 5).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let beta = 0.7;
    let hb = HeavyBall::new(LR, beta).unwrap();
    let off = run(&hb);
    let tape = Tape::<f64>::new();
    let x = tape.constant(x0());
    assert_close_to_run("heavy ball", &recorded(&hb, None, x, STEPS), &off);
    let lr = tape.scalar(LR);
    let xs = heavy_ball_recorded(beta, lr, x, STEPS);
    assert_close_to_run("heavy ball", &xs, &off);
    let f = tape_fn(|v| {
        let xs = heavy_ball_recorded(beta, v[0], v[1], 4);
        Diagonal.loss(xs[3], 4)
    });
    check_gradients(&f, &inputs, 5).unwrap_or_else(|e| panic!("heavy ball: {e}"));
}

#[test]
fn inadmissible_hyperparameters_are_refused() {
    fn msg<O: std::fmt::Debug>(r: Result<O, HyperError>) -> String {
        r.unwrap_err().to_string()
    }
    let adam = Adam {
        lr: 0.1,
        beta1: 1.0,
        ..Adam::default()
    };
    assert!(msg(adam.validated()).contains("beta1 = 1"));
    let rms = RmsProp {
        lr: 0.1,
        eps: 0.0,
        ..RmsProp::default()
    };
    assert!(msg(rms.validated()).contains("eps = 0"));
    assert!(msg(Sgd::new(-0.1)).contains("lr = -0.1"));
    assert!(msg(Sgd::new(f64::NAN)).contains("lr = NaN"));
    assert!(Sgd::nesterov(LR, 0.0)
        .unwrap_err()
        .to_string()
        .contains("Nesterov"));
    assert!(HeavyBall::new(LR, 1.5).is_err());
    // A struct literal skips the constructors' checks: a run refuses it when it starts.
    let err = eval::run(&adam, &Diagonal, &x0(), &RunConfig::new(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("beta1 = 1"), "{err}");
}
