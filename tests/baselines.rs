//! The baselines follow PyTorch's published update formulas step by step (expected values are
//! computed here by independent scalar code), the recorded (tape) form gives the same iterates,
//! a meta-gradient through the learning rate is exact, and bad hyperparameters are refused.

use convergent_l2o::optim::{Adam, HeavyBall, HyperError, RmsProp, Rule, Sgd, Stepper};
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

/// Runs `stepper` from X0 for STEPS steps, returning the iterates after each step.
fn run(rule: Rule) -> Vec<Vec<f64>> {
    let mut s = Stepper::<f64>::new(rule, LR).unwrap();
    let mut x = DMatrix::from_column_slice(3, 1, &X0);
    (0..STEPS)
        .map(|_| {
            let g = DMatrix::from_column_slice(3, 1, &grad(x.as_slice()));
            x = s.step(&x, &g);
            x.as_slice().to_vec()
        })
        .collect()
}

fn assert_iterates(name: &str, got: &[Vec<f64>], expected: &[Vec<f64>]) {
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
    let rule = Rule::Sgd(Sgd {
        momentum: mu,
        dampening: tau,
        weight_decay: wd,
        nesterov: false,
    });
    let expected = formula(|t, x, g, s| {
        let g = g + wd * x;
        s[0] = if t == 0 {
            g
        } else {
            mu * s[0] + (1.0 - tau) * g
        };
        x - LR * s[0]
    });
    assert_iterates("SGD", &run(rule), &expected);
}

#[test]
fn nag_is_pytorch_nesterov() {
    let mu = 0.9;
    let expected = formula(|t, x, g, s| {
        s[0] = if t == 0 { g } else { mu * s[0] + g };
        x - LR * (g + mu * s[0])
    });
    assert_iterates(
        "NAG",
        &run(Rule::Sgd(Sgd::nesterov(mu).unwrap())),
        &expected,
    );
}

#[test]
fn adam_with_bias_correction_and_eps_outside_the_root() {
    let (b1, b2, eps, wd) = (0.9, 0.999, 1e-8, 0.02);
    let rule = Rule::Adam(Adam {
        beta1: b1,
        beta2: b2,
        eps,
        weight_decay: wd,
    });
    let expected = formula(|t, x, g, s| {
        let g = g + wd * x;
        s[0] = b1 * s[0] + (1.0 - b1) * g;
        s[1] = b2 * s[1] + (1.0 - b2) * g * g;
        let k = (t + 1) as i32;
        let m_hat = s[0] / (1.0 - b1.powi(k));
        let v_hat = s[1] / (1.0 - b2.powi(k));
        x - LR * m_hat / (v_hat.sqrt() + eps)
    });
    assert_iterates("Adam", &run(rule), &expected);
}

#[test]
fn rmsprop_plain_and_centered_with_momentum() {
    let (alpha, eps) = (0.99, 1e-8);
    let plain = formula(|_, x, g, s| {
        s[0] = alpha * s[0] + (1.0 - alpha) * g * g;
        x - LR * g / (s[0].sqrt() + eps)
    });
    assert_iterates("RMSprop", &run(Rule::RmsProp(RmsProp::default())), &plain);
    let mu = 0.5;
    let centered = formula(|_, x, g, s| {
        s[0] = alpha * s[0] + (1.0 - alpha) * g * g;
        s[1] = alpha * s[1] + (1.0 - alpha) * g;
        let den = (s[0] - s[1] * s[1]).sqrt() + eps;
        s[2] = mu * s[2] + g / den;
        x - LR * s[2]
    });
    let rule = Rule::RmsProp(RmsProp {
        momentum: mu,
        centered: true,
        ..RmsProp::default()
    });
    assert_iterates("centered RMSprop", &run(rule), &centered);
}

#[test]
fn gradient_descent_and_heavy_ball() {
    let gd = formula(|_, x, g, _| x - LR * g);
    assert_iterates("GD", &run(Rule::HeavyBall(HeavyBall::GD)), &gd);
    let beta = 0.7;
    let hb = formula(|t, x, g, s| {
        let prev = if t == 0 { x } else { s[0] };
        s[0] = x;
        x - LR * g + beta * (x - prev)
    });
    assert_iterates(
        "heavy ball",
        &run(Rule::HeavyBall(HeavyBall::new(beta).unwrap())),
        &hb,
    );
}

/// f(x_T) after T recorded steps of `rule`, as a function of (lr, x0) on the tape.
fn unrolled<'t>(rule: Rule, lr: Var<'t, f64>, x0: Var<'t, f64>) -> Var<'t, f64> {
    let tape = x0.tape();
    let a = tape.constant(DMatrix::from_column_slice(3, 1, &A));
    let f = |x: Var<'t, f64>| x.square().mul_elem(a).sum().scale(0.5);
    let mut state = rule.new_state();
    let mut x = x0;
    for _ in 0..4 {
        let g = tape.grad(&[f(x)], &[x], true)[0];
        x = rule.step(&mut state, &x, &g, &lr);
    }
    f(x)
}

#[test]
fn recorded_steps_match_off_tape_steps_and_lr_meta_gradients_are_exact() {
    for rule in [
        Rule::Sgd(Sgd {
            momentum: 0.9,
            dampening: 0.1,
            weight_decay: 0.01,
            nesterov: false,
        }),
        Rule::Sgd(Sgd::nesterov(0.9).unwrap()),
        Rule::Adam(Adam {
            weight_decay: 0.02,
            ..Adam::default()
        }),
        Rule::RmsProp(RmsProp {
            momentum: 0.5,
            centered: true,
            ..RmsProp::default()
        }),
        Rule::HeavyBall(HeavyBall::new(0.7).unwrap()),
    ] {
        let tape = Tape::<f64>::new();
        let x = tape.constant(DMatrix::from_column_slice(3, 1, &X0));
        let mut state = rule.new_state();
        let lr = tape.scalar(LR);
        let mut xs = x;
        for t in 0..STEPS {
            let g = tape.constant(DMatrix::from_column_slice(
                3,
                1,
                &grad(xs.value().as_slice()),
            ));
            xs = rule.step(&mut state, &xs, &g, &lr);
            let off = &run(rule)[t];
            for i in 0..3 {
                assert!(
                    (xs.value()[i] - off[i]).abs() < 1e-14,
                    "{rule}: step {t} differs"
                );
            }
        }
        let f = tape_fn(move |v| unrolled(rule, v[0], v[1]));
        let inputs = [
            DMatrix::from_element(1, 1, LR),
            DMatrix::from_column_slice(3, 1, &X0),
        ];
        check_gradients(&f, &inputs, 5).unwrap_or_else(|e| panic!("{rule}: {e}"));
    }
}

#[test]
fn inadmissible_hyperparameters_are_refused() {
    let msg = |r: Result<Stepper<f64>, HyperError>| r.unwrap_err().to_string();
    assert!(msg(Stepper::new(
        Rule::Adam(Adam {
            beta1: 1.0,
            ..Adam::default()
        }),
        0.1
    ))
    .contains("beta1 = 1"));
    assert!(msg(Stepper::new(
        Rule::RmsProp(RmsProp {
            eps: 0.0,
            ..RmsProp::default()
        }),
        0.1
    ))
    .contains("eps = 0"));
    assert!(msg(Stepper::new(Rule::Sgd(Sgd::PLAIN), -0.1)).contains("lr = -0.1"));
    assert!(msg(Stepper::new(Rule::Sgd(Sgd::PLAIN), f64::NAN)).contains("lr = NaN"));
    assert!(Sgd::nesterov(0.0)
        .unwrap_err()
        .to_string()
        .contains("Nesterov"));
    assert!(HeavyBall::new(1.5).is_err());
}
