//! The authors' published optimizers load with the paper's parameter counts, round-trip bit for
//! bit, refuse damaged files naming the tensor, and one step of the loaded ConvergentL2O matches
//! an independent f64 computation of the original code's equations.

use convergent_l2o::models::{read_safetensors, write_safetensors, Activation, Params};
use convergent_l2o::optim::{
    ConvergentL2O, LearnedOptimizer, Oracle, Recording, StepSize, UnconstrainedL2O,
};
use convergent_l2o::problems::data::{Mnist, Split};
use convergent_l2o::problems::Classifier;
use convergent_l2o::tape::Tape;
use nalgebra::{DMatrix, DVector};
use rand::{rngs::StdRng, SeedableRng};
use std::path::{Path, PathBuf};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/pretrained");

fn file(name: &str) -> Option<PathBuf> {
    let p = Path::new(DIR).join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: {} not found", p.display());
        None
    }
}

fn paper_convergent<T: convergent_l2o::tape::Scalar>() -> ConvergentL2O<T> {
    ConvergentL2O::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0)).unwrap()
}

#[test]
fn published_optimizers_load_with_the_papers_parameter_counts() {
    let Some(path) = file("convergent_l2o_tanh.safetensors") else {
        return;
    };
    let mut opt = paper_convergent::<f32>();
    let trained = read_safetensors(&path, opt.params()).unwrap();
    assert_eq!(trained.sub_params("REN").num_scalars(), 10_173);
    assert_eq!(trained.sub_params("omega").num_scalars(), 78_518);
    opt.set_params(trained).unwrap();
    let Some(path) = file("lstm_optimizer_tanh.safetensors") else {
        return;
    };
    let mut lstm = UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(0)).unwrap();
    // The LSTM's tensors live under `omega.` in the file.
    let mut template = Params::new();
    template.extend_prefixed("omega", lstm.params());
    let trained = read_safetensors(&path, &template)
        .unwrap()
        .sub_params("omega");
    assert_eq!(trained.num_scalars(), 149_246);
    lstm.set_params(trained).unwrap();
}

#[test]
fn safetensors_round_trip_is_bit_exact_and_damage_is_named() {
    let Some(path) = file("convergent_l2o_tanh.safetensors") else {
        return;
    };
    let opt = paper_convergent::<f32>();
    let original = read_safetensors(&path, opt.params()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.safetensors");
    write_safetensors(&copy, &original, None).unwrap();
    let again = read_safetensors(&copy, opt.params()).unwrap();
    for ((name, a), (_, b)) in original.iter().zip(again.iter()) {
        let bits = |m: &DMatrix<f32>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b), "tensor {name} changed in the round trip");
    }
    // The original file's raw tensor bytes are reproduced too.
    let raw = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut t: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
            .collect();
        t.sort();
        t
    };
    assert_eq!(raw(&path), raw(&copy));

    let mut missing = original.clone();
    missing = {
        let mut p = Params::new();
        for (n, m) in missing.iter().filter(|(n, _)| *n != "REN.y3") {
            p.insert(n, m.clone());
        }
        p
    };
    write_safetensors(&copy, &missing, None).unwrap();
    let err = read_safetensors(&copy, opt.params())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tensor 'REN.y3' is missing"), "{err}");
    let mut misshapen = original.clone();
    *misshapen.get_mut("omega.layer2.weight") = DMatrix::zeros(3, 4);
    write_safetensors(&copy, &misshapen, None).unwrap();
    let err = read_safetensors(&copy, opt.params())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'omega.layer2.weight' has shape [3, 4], expected [3, 3]"),
        "{err}"
    );
    let data = vec![0u8; 8 * 9];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![3, 3], &data).unwrap();
    let bytes = safetensors::serialize(vec![("REN.Y".to_string(), view)], None).unwrap();
    std::fs::write(&copy, bytes).unwrap();
    let mut only_y = Params::<f32>::new();
    only_y.insert("REN.Y", DMatrix::zeros(3, 3));
    let err = read_safetensors(&copy, &only_y).unwrap_err().to_string();
    assert!(err.contains("'REN.Y' has dtype I64"), "{err}");
    std::fs::write(&copy, b"not safetensors").unwrap();
    assert!(read_safetensors(&copy, opt.params())
        .unwrap_err()
        .to_string()
        .contains("not a valid safetensors file"));
}

/// The original code's tied-block REN map and first step, written out from the equations
/// (eps = 1e-3, gamma = 0.3, 280 blocks of 28 and one of 10, biases in the implicit
/// equations), independently of the library's REN.
struct HandRen {
    c1: DMatrix<f64>,
    d11: DMatrix<f64>,
    lam: DVector<f64>,
    mt: DMatrix<f64>,
    mc: DMatrix<f64>,
}

fn hand_ren(p: &Params<f64>) -> HandRen {
    let (eps, gam, reps, n, l) = (1e-3, 0.3, 280.0, 3, 3);
    let g = |name: &str| p.get(&format!("REN.{name}")).clone();
    let cayley = |x: DMatrix<f64>, y: DMatrix<f64>| {
        let k = x.nrows();
        let m = x.transpose() * &x + &y - y.transpose() + DMatrix::identity(k, k) * eps;
        (DMatrix::identity(k, k) - &m) * (DMatrix::identity(k, k) + &m).try_inverse().unwrap()
    };
    let mt = cayley(g("x3"), g("y3"));
    let mc = cayley(g("x3corner"), g("y3corner"));
    let blk = |mb: &DMatrix<f64>,
               c2: DMatrix<f64>,
               d21: DMatrix<f64>,
               b2: DMatrix<f64>,
               d12: DMatrix<f64>| {
        let k = mb.nrows();
        let r = (DMatrix::identity(k, k) - mb.transpose() * mb) * gam;
        let c2cal = -(c2.transpose() * mb);
        let d21cal = -(d21.transpose() * mb) - d12;
        let mut vr = DMatrix::zeros(2 * n + l, k);
        vr.view_mut((0, 0), (n, k)).copy_from(&c2cal);
        vr.view_mut((n, 0), (l, k)).copy_from(&d21cal);
        vr.view_mut((n + l, 0), (n, k)).copy_from(&b2);
        &vr * r.try_inverse().unwrap() * vr.transpose()
    };
    let psi_r = blk(&mt, g("c2"), g("d21"), g("b2"), g("d12")) * reps
        + blk(&mc, g("c2last"), g("d21last"), g("b2last"), g("d12last"));
    let c2tc2 = g("c2").transpose() * g("c2") * reps + g("c2last").transpose() * g("c2last");
    let c2td21 = g("c2").transpose() * g("d21") * reps + g("c2last").transpose() * g("d21last");
    let d21td21 = g("d21").transpose() * g("d21") * reps + g("d21last").transpose() * g("d21last");
    let mut psi_q = DMatrix::zeros(2 * n + l, 2 * n + l);
    psi_q.view_mut((0, 0), (n, n)).copy_from(&c2tc2);
    psi_q.view_mut((0, n), (n, l)).copy_from(&c2td21);
    psi_q
        .view_mut((n, 0), (l, n))
        .copy_from(&c2td21.transpose());
    psi_q.view_mut((n, n), (l, l)).copy_from(&d21td21);
    let psi_q = psi_q * (-1.0 / gam);
    let x = g("X");
    let h = x.transpose() * &x + DMatrix::identity(2 * n + l, 2 * n + l) * eps + psi_r - psi_q;
    let h22 = h.view((n, n), (l, l)).into_owned();
    let lam = DVector::from_fn(l, |i, _| 0.5 * h22[(i, i)]);
    let d11 = DMatrix::from_fn(l, l, |i, j| if j < i { -h22[(i, j)] } else { 0.0 });
    let c1 = -h.view((n, 0), (l, n)).into_owned();
    HandRen {
        c1,
        d11,
        lam,
        mt,
        mc,
    }
}

#[test]
fn one_step_of_the_loaded_optimizer_matches_the_equations() {
    let Some(path) = file("convergent_l2o_tanh.safetensors") else {
        return;
    };
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");
    if !Path::new(data).is_dir() {
        return;
    }
    let mut opt = paper_convergent::<f64>();
    let trained = read_safetensors(&path, opt.params()).unwrap();
    opt.set_params(trained.clone()).unwrap();
    let mnist = Mnist::load(Path::new(data)).unwrap();
    // The first minibatch of 128 of the meta-training split.
    let problem =
        Classifier::<f64>::new(mnist.split(Split::MetaTrain), Activation::Tanh, 128, 0).unwrap();
    let x0 = DMatrix::from_fn(7850, 1, |i, _| 0.1 * ((i as f64) * 0.37).sin());

    // The library.
    let tape = Tape::new();
    let run = opt.optimizer(opt.params().bind_constants(&tape));
    let oracle = Oracle::new(&problem, &tape, 0, Recording::Off);
    let mut state = run.init(tape.constant(x0.clone()), &oracle).unwrap();
    let at = oracle.evaluate(run.query(&state));
    let info = run.update(&mut state, &at, &oracle).unwrap();
    let step_v = info.tensor("v").unwrap().value();
    let step_update = state.x().value() - &x0;
    let (g, f) = (at.grad.value(), at.loss.scalar());

    // By hand: z_0 = REN output at t = 0 for input x0 (0.95^0 = 1 on the biases).
    let hand = hand_ren(&trained);
    let p = |name: &str| trained.get(name).clone();
    let xi = p("REN.x0").transpose();
    let ub = DMatrix::from_fn(28, 1, |j, _| (0..280).map(|r| x0[r * 28 + j]).sum::<f64>());
    let uc = x0.rows(7840, 10).into_owned();
    let d12u = p("REN.d12") * &ub + p("REN.d12last") * &uc;
    let mut w_ren = DVector::zeros(3);
    for i in 0..3 {
        let v =
            (hand.c1.row(i) * &xi)[0] + (hand.d11.row(i) * &w_ren)[0] + d12u[i] + p("REN.bv")[i];
        w_ren[i] = (v / hand.lam[i]).tanh();
    }
    let shared = p("REN.c2") * &xi + p("REN.d21") * &w_ren;
    let corner = p("REN.c2last") * &xi + p("REN.d21last") * &w_ren;
    let mut z = DMatrix::zeros(7850, 1);
    for r in 0..280 {
        let chunk = DMatrix::from_fn(28, 1, |j, _| x0[r * 28 + j]);
        let d22u = &hand.mt * chunk * 0.3;
        for j in 0..28 {
            z[r * 28 + j] = shared[j] + d22u[j] + p("REN.bu")[r * 28 + j];
        }
    }
    let d22c = &hand.mc * &uc * 0.3;
    for j in 0..10 {
        z[7840 + j] = corner[j] + d22c[j] + p("REN.bu")[7840 + j];
    }
    // Omega on [x, grad, f] with ReLU hidden layers.
    let mut input = DMatrix::zeros(15701, 1);
    input.rows_mut(0, 7850).copy_from(&x0);
    input.rows_mut(7850, 7850).copy_from(&g);
    input[15700] = f;
    let relu = |m: DMatrix<f64>| m.map(|v| v.max(0.0));
    let h1 = relu(p("omega.layer1.weight") * &input + p("omega.layer1.bias"));
    let h2 = relu(p("omega.layer2.weight") * h1 + p("omega.layer2.bias"));
    let w = p("omega.output_layer.weight") * h2 + p("omega.output_layer.bias");
    let v = &w * (z.norm() / w.norm());
    let update = &v - &g * (1.0 / 100.0);

    let close = |a: &DMatrix<f64>, b: &DMatrix<f64>, what: &str| {
        let err = (a - b).norm() / b.norm().max(1e-300);
        assert!(err < 1e-10, "{what}: relative error {err:e}");
    };
    assert!(
        (step_v.norm() - z.norm()).abs() < 1e-10 * z.norm(),
        "|z_0|: {} vs {}",
        step_v.norm(),
        z.norm()
    );
    close(&step_v, &v, "v_0");
    close(&step_update, &update, "update");
    assert_eq!(info.number("eta"), Some(0.01));
    println!(
        "|z_0| = {:.6e}, |w_0| = {:.6e}, |update| = {:.6e}",
        z.norm(),
        w.norm(),
        update.norm()
    );
}
