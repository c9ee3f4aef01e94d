//! The unconstrained LSTM optimizers do not converge in general (nothing makes their updates
//! vanish), while the same LSTMs inside the convergent wrapper (direction from the LSTM,
//! magnitude from the REN's ℓ2 signal) converge, certified by Lemma 1; meta-gradients through
//! the wrapped LSTM are exact.

use convergent_l2o::models::{Bound, CoordinatewiseConfig};
use convergent_l2o::optim::{
    ConvergentL2O, DirectionNet, FeatureOrder, Lemma1, MagnitudeRen, StepSize, UnconstrainedL2O,
};
use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::DMatrix;
use rand::{rngs::StdRng, Rng, SeedableRng};

const DIM: usize = 4;
const STEPS: usize = 1500;

/// f(x) = 1/2 (x - c)ᵀ A (x - c), λ(A) in [0.5, 2].
fn problem(seed: u64) -> (DMatrix<f64>, DMatrix<f64>, f64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let q = DMatrix::from_fn(DIM, DIM, |_, _| rng.gen_range(-1.0..1.0))
        .qr()
        .q();
    let eig = DMatrix::from_diagonal(&nalgebra::DVector::from_fn(DIM, |_, _| {
        rng.gen_range(0.5..2.0)
    }));
    let a = &q * eig * q.transpose();
    let c = DMatrix::from_fn(DIM, 1, |_, _| rng.gen_range(-1.0..1.0));
    (a, c, 2.0)
}

fn value<'t>(a: &DMatrix<f64>, c: &DMatrix<f64>, x: Var<'t, f64>) -> Var<'t, f64> {
    let tape = x.tape();
    let d = x - tape.constant(c.clone());
    d.dot(tape.constant(a.clone()).matmul(d)).scale(0.5)
}

fn nets() -> [DirectionNet; 2] {
    [
        DirectionNet::Coordinatewise(CoordinatewiseConfig::andrychowicz()),
        DirectionNet::PaperLstm {
            hidden: 2,
            order: FeatureOrder::GradPointLoss,
        },
    ]
}

/// Final |∇f| after STEPS unrecorded steps of `step`, and the per-step (|∇f|², |v|²).
fn final_gradient(
    a: &DMatrix<f64>,
    c: &DMatrix<f64>,
    mut step: impl FnMut(
        &Tape<f64>,
        Var<'_, f64>,
        Var<'_, f64>,
        Var<'_, f64>,
        usize,
    ) -> (DMatrix<f64>, f64),
) -> (f64, Vec<f64>, Vec<f64>) {
    let tape = Tape::new();
    let mut x = DMatrix::from_element(DIM, 1, 1.0);
    let (mut gs, mut vs) = (Vec::new(), Vec::new());
    for t in 0..STEPS {
        let xv = tape.param(x.clone());
        let f = value(a, c, xv);
        let g = tape.grad(&[f], &[xv], false)[0];
        gs.push(g.value().norm_squared());
        let (update, v_sq) = step(&tape, xv, g, f, t);
        vs.push(v_sq);
        x += update;
        if !x.iter().all(|v| v.is_finite()) || x.norm() > 1e6 {
            return (f64::INFINITY, gs, vs);
        }
    }
    let xv = tape.param(x);
    let g = tape.grad(&[value(a, c, xv)], &[xv], false)[0];
    (g.value().norm(), gs, vs)
}

#[test]
fn unconstrained_lstms_do_not_converge_in_general_wrapped_ones_do() {
    for net in nets() {
        let mut unconstrained_failures = 0;
        for seed in 0..4u64 {
            let (a, c, beta) = problem(seed);
            let mut rng = StdRng::seed_from_u64(100 + seed);
            // Unconstrained: x + w, with w the LSTM's output. States live on one tape: fine for
            // a test of this size.
            let lstm = UnconstrainedL2O::<f64>::new(DIM, net.clone(), &mut rng).unwrap();
            let outer = Tape::new();
            let bound = lstm.params().bind_constants(&outer);
            let run = lstm.prepare(&bound);
            let mut traj = run.start(outer.constant(DMatrix::zeros(DIM, 1)));
            let (free, _, _) = final_gradient(&a, &c, |_, x, g, f, _| {
                let (x, g, f) = (
                    outer.constant(x.value()),
                    outer.constant(g.value()),
                    outer.constant(f.value()),
                );
                (run.step(&mut traj, x, g, f).value(), 0.0)
            });
            if !(free < 1e-4) {
                unconstrained_failures += 1;
            }
            // Wrapped: the same kind of LSTM as direction, the REN as magnitude.
            let eta = 0.9 / beta;
            let ren = MagnitudeRen::dense(DIM, 3, 3, 0.5).unwrap();
            let wrapped = ConvergentL2O::<f64>::with_direction(
                DIM,
                ren,
                net.clone(),
                StepSize::Constant { eta },
                &mut rng,
            )
            .unwrap();
            let outer2 = Tape::new();
            let bound2 = wrapped.params().bind_constants(&outer2);
            let run2 = wrapped.prepare(&bound2);
            let mut traj2 = None;
            let (conv, gs, vs) = final_gradient(&a, &c, |_, x, g, f, _| {
                let (x, g, f) = (
                    outer2.constant(x.value()),
                    outer2.constant(g.value()),
                    outer2.constant(f.value()),
                );
                let tr = traj2.get_or_insert_with(|| run2.start(x));
                let s = run2.step(tr, x, g, f);
                (s.update.value(), s.v.value().norm_squared())
            });
            let gap = {
                let t = Tape::new();
                value(&a, &c, t.constant(DMatrix::from_element(DIM, 1, 1.0))).scalar()
            };
            let cert = Lemma1::new(beta, eta).unwrap().check(gap, &gs, &vs);
            assert!(
                cert.holds(),
                "{net:?} seed {seed}: Lemma 1 violated {cert:?}"
            );
            assert!(
                conv < 1e-6,
                "{net:?} seed {seed}: wrapped LSTM did not converge, |grad| = {conv}"
            );
        }
        assert!(
            unconstrained_failures >= 3,
            "{net:?}: the unconstrained LSTM converged on {} of 4 problems",
            4 - unconstrained_failures
        );
    }
}

#[test]
fn wrapped_lstm_meta_gradients_match_finite_differences() {
    let (a, c, beta) = problem(9);
    let net = DirectionNet::Coordinatewise(CoordinatewiseConfig::andrychowicz());
    let ren = MagnitudeRen::dense(DIM, 2, 2, 0.5).unwrap();
    let opt = ConvergentL2O::<f64>::with_direction(
        DIM,
        ren,
        net,
        StepSize::Constant { eta: 0.5 / beta },
        &mut StdRng::seed_from_u64(2),
    )
    .unwrap();
    let names: Vec<String> = opt.params().iter().map(|(n, _)| n.to_string()).collect();
    let values: Vec<DMatrix<f64>> = opt.params().iter().map(|(_, m)| m.clone() * 5.0).collect();
    let meta_loss = tape_fn(move |vars| {
        let tape = vars[0].tape();
        let bound = Bound::from_named(names.iter().cloned().zip(vars.iter().copied()).collect());
        let run = opt.prepare(&bound);
        let mut x = tape.param(DMatrix::from_element(DIM, 1, 0.8));
        let mut traj = run.start(x);
        let mut loss = tape.scalar(0.0);
        for _ in 0..2 {
            let f = value(&a, &c, x);
            let g = tape.grad(&[f], &[x], true)[0];
            x = x + run.step(&mut traj, x, g, f).update;
            loss = loss + value(&a, &c, x);
        }
        loss
    });
    check_gradients(&meta_loss, &values, 4).unwrap();
}

#[test]
fn paper_lstm_baseline_has_the_papers_parameter_count() {
    let lstm = UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(0)).unwrap();
    assert_eq!(lstm.params().num_scalars(), 149_246);
}
