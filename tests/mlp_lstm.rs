//! The MLP and LSTM models: PyTorch's equations and layouts, the paper's parameter counts and
//! tensor names, first- and second-order gradient checks, coordinatewise equivariance and
//! linear cost, reproducible initialization, and parameter files.

use convergent_l2o::models::{
    Activation, CellState, CoordinatewiseConfig, CoordinatewiseLstm, LstmCell, LstmState, Mlp,
    MlpConfig, Model, Params, Preprocessing, StackedLstm, TwoLayerLstm,
};
use convergent_l2o::tape::gradcheck::{check_gradients, tape_fn, uniform};
use convergent_l2o::tape::{Tape, Var};
use nalgebra::{dmatrix, DMatrix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn names(p: &Params<f64>) -> Vec<String> {
    p.iter().map(|(n, _)| n.to_string()).collect()
}

/// Gradient-check inputs: the data first, then every parameter tensor in order.
fn with_params(data: Vec<DMatrix<f64>>, p: &Params<f64>) -> Vec<DMatrix<f64>> {
    data.into_iter()
        .chain(p.iter().map(|(_, m)| m.clone()))
        .collect()
}

/// The gradient check's leaves for the parameters, under their names.
fn named<'a, 't>(names: &'a [String], vars: &[Var<'t, f64>]) -> Vec<(&'a str, Var<'t, f64>)> {
    assert_eq!(names.len(), vars.len());
    names
        .iter()
        .map(String::as_str)
        .zip(vars.iter().copied())
        .collect()
}

fn shapes(p: &Params<f32>) -> Vec<(String, (usize, usize))> {
    let mut v: Vec<_> = p.iter().map(|(n, m)| (n.to_string(), m.shape())).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<(&str, (usize, usize))>) -> Vec<(String, (usize, usize))> {
    v.sort();
    v.into_iter().map(|(n, s)| (n.to_string(), s)).collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

// ---------------------------------------------------------------------------------------------
// The paper's modules: counts and the tensor names of data/pretrained/README.md

#[test]
fn paper_omega_mlp_has_78518_parameters_named_as_the_pretrained_file() {
    let omega = Mlp::new(MlpConfig::paper_omega(7850)).unwrap();
    let params = omega.init_params::<f32>(&mut rng(0));
    assert_eq!(omega.num_params(), 78_518);
    assert_eq!(params.num_scalars(), 78_518);
    // `omega.*` of convergent_l2o_tanh.safetensors; 1-D biases are n x 1 columns.
    let expected = sorted(vec![
        ("layer1.weight", (3, 15701)),
        ("layer1.bias", (3, 1)),
        ("layer2.weight", (3, 3)),
        ("layer2.bias", (3, 1)),
        ("output_layer.weight", (7850, 3)),
        ("output_layer.bias", (7850, 1)),
    ]);
    assert_eq!(shapes(&params), expected);
    // One flat [x, grad f, f] column in, one update direction column out.
    let tape = Tape::new();
    let p = params.bind(&tape);
    let input = tape.constant(DMatrix::from_element(15701, 1, 0.01f32));
    let w = omega.forward_column(&p, input);
    assert_eq!(w.shape(), (7850, 1));
    let g = tape.grad(&[w.square().sum()], &p.vars(), false);
    assert_eq!(g[0].shape(), (3, 15701));
}

#[test]
fn paper_lstm_body_has_149246_parameters_named_as_the_pretrained_file() {
    let body = TwoLayerLstm::paper(7850).unwrap();
    let params = body.init_params::<f32>(&mut rng(0));
    assert_eq!(body.num_params(), 149_246);
    assert_eq!(params.num_scalars(), 149_246);
    // `omega.*` of lstm_optimizer_tanh.safetensors.
    let expected = sorted(vec![
        ("hidden1_0", (1, 2)),
        ("cell1_0", (1, 2)),
        ("hidden2_0", (1, 2)),
        ("cell2_0", (1, 2)),
        ("recurs.weight_ih", (8, 15701)),
        ("recurs.weight_hh", (8, 2)),
        ("recurs.bias_ih", (8, 1)),
        ("recurs.bias_hh", (8, 1)),
        ("recurs2.weight_ih", (8, 2)),
        ("recurs2.weight_hh", (8, 2)),
        ("recurs2.bias_ih", (8, 1)),
        ("recurs2.bias_hh", (8, 1)),
        ("output.weight", (7850, 2)),
        ("output.bias", (7850, 1)),
    ]);
    assert_eq!(shapes(&params), expected);
    let tape = Tape::new();
    let p = params.bind(&tape);
    let s0 = body.initial_state(&p, 1);
    let x = tape.constant(DMatrix::from_element(1, 15701, 0.01f32));
    let (w, s1) = body.step(&p, x, &s0);
    let (w2, _) = body.step(&p, x, &s1);
    assert_eq!((w.shape(), w2.shape()), ((1, 7850), (1, 7850)));
    // The learned initial state receives gradient.
    let g = tape.grad(&[w2.sum()], &[p.get("hidden1_0")], false);
    assert!(g[0].value().iter().any(|v| *v != 0.0));
}

#[test]
fn coordinatewise_2x20_lstm_has_pytorch_parameter_count() {
    let net = CoordinatewiseLstm::new(CoordinatewiseConfig::andrychowicz()).unwrap();
    let params = net.init_params::<f32>(&mut rng(0));
    // Layer 0 (2 preprocessed inputs): 80 x 2 + 80 x 20 + 2 x 80; layer 1: 80 x 20 + 80 x 20
    // + 2 x 80; output 20 + 1. (Sonnet's single bias per layer gives learning-to-learn 5141.)
    assert_eq!(net.num_params(), 1920 + 3360 + 21);
    assert_eq!(params.num_scalars(), net.num_params());
    assert_eq!(params.get("lstm.weight_ih_l0").shape(), (80, 2));
    assert_eq!(params.get("lstm.weight_hh_l1").shape(), (80, 20));
    assert_eq!(params.get("output.weight").shape(), (1, 20));
}

// ---------------------------------------------------------------------------------------------
// PyTorch's LSTM cell equations, by hand

#[test]
fn lstm_cell_matches_pytorch_equations_computed_by_hand() {
    let (n_in, h, batch) = (3, 2, 2);
    let cell = LstmCell::new("", n_in, h).unwrap();
    let mut p = cell.init_params::<f64>(&mut rng(0));
    // Distinct values everywhere, so a swapped gate, a transposed weight or a dropped bias
    // changes the result.
    let w_ih = DMatrix::from_fn(4 * h, n_in, |r, c| {
        0.1 * (r as f64) - 0.07 * (c as f64) + 0.05
    });
    let w_hh = DMatrix::from_fn(4 * h, h, |r, c| 0.03 * (r as f64) * (c as f64 + 1.0) - 0.11);
    let b_ih = DMatrix::from_fn(4 * h, 1, |r, _| 0.02 * r as f64 - 0.04);
    let b_hh = DMatrix::from_fn(4 * h, 1, |r, _| -0.015 * r as f64 + 0.01);
    *p.get_mut("weight_ih") = w_ih.clone();
    *p.get_mut("weight_hh") = w_hh.clone();
    *p.get_mut("bias_ih") = b_ih.clone();
    *p.get_mut("bias_hh") = b_hh.clone();
    let x = dmatrix![0.5, -1.0, 2.0; -0.3, 0.8, 0.1];
    let h0 = dmatrix![0.2, -0.4; 0.7, 0.05];
    let c0 = dmatrix![-0.6, 0.3; 0.25, -0.9];

    // torch.nn.LSTMCell: gates = W_ih x + b_ih + W_hh h + b_hh, rows [i; f; g; o].
    let mut h1 = DMatrix::zeros(batch, h);
    let mut c1 = DMatrix::zeros(batch, h);
    for b in 0..batch {
        let gate = |k: usize| -> f64 {
            let mut s = b_ih[k] + b_hh[k];
            for j in 0..n_in {
                s += w_ih[(k, j)] * x[(b, j)];
            }
            for j in 0..h {
                s += w_hh[(k, j)] * h0[(b, j)];
            }
            s
        };
        for u in 0..h {
            let i = sigmoid(gate(u));
            let f = sigmoid(gate(h + u));
            let g = gate(2 * h + u).tanh();
            let o = sigmoid(gate(3 * h + u));
            c1[(b, u)] = f * c0[(b, u)] + i * g;
            h1[(b, u)] = o * c1[(b, u)].tanh();
        }
    }

    let tape = Tape::new();
    let bound = p.bind_constants(&tape);
    let state = CellState {
        h: tape.constant(h0),
        c: tape.constant(c0),
    };
    let next = cell.step(&bound, tape.constant(x), state);
    assert!(
        (next.h.value() - &h1).amax() < 1e-15,
        "{} vs {h1}",
        next.h.value()
    );
    assert!(
        (next.c.value() - &c1).amax() < 1e-15,
        "{} vs {c1}",
        next.c.value()
    );
    // One value checked to the digits (first row, first unit).
    let pre = |k: usize| -> f64 {
        b_ih[k]
            + b_hh[k]
            + (0..3)
                .map(|j| w_ih[(k, j)] * [0.5, -1.0, 2.0][j])
                .sum::<f64>()
            + (0..2).map(|j| w_hh[(k, j)] * [0.2, -0.4][j]).sum::<f64>()
    };
    let c00 = sigmoid(pre(2)) * -0.6 + sigmoid(pre(0)) * pre(4).tanh();
    assert!((next.c.value()[(0, 0)] - c00).abs() < 1e-15);
}

// ---------------------------------------------------------------------------------------------
// Gradient checks, f64, first and second order, with respect to inputs and parameters

#[test]
fn mlp_gradients_first_and_second_order() {
    for (activation, seed) in [(Activation::Tanh, 1), (Activation::Relu, 2)] {
        let config =
            MlpConfig::new(&[3, 4, 3, 2], activation).with_output_activation(Activation::Sigmoid);
        let mlp = Mlp::new(config).unwrap();
        let params = mlp.init_params::<f64>(&mut rng(seed));
        let names = names(&params);
        let f = tape_fn(|v| mlp.forward(&named(&names, &v[1..]), v[0]));
        let x = uniform(&mut rng(seed + 10), 2, 3, -1.0, 1.0);
        check_gradients(&f, &with_params(vec![x], &params), seed)
            .unwrap_or_else(|e| panic!("{activation}: {e}"));
        // The column form used for flat parameter vectors.
        let col = tape_fn(|v| mlp.forward_column(&named(&names, &v[1..]), v[0]));
        let x = uniform(&mut rng(seed + 20), 3, 1, -1.0, 1.0);
        check_gradients(&col, &with_params(vec![x], &params), seed).unwrap();
    }
}

#[test]
fn lstm_cell_gradients_first_and_second_order() {
    let cell = LstmCell::new("cell", 3, 2).unwrap();
    let p = cell.init_params::<f64>(&mut rng(3));
    let names = names(&p);
    let f = tape_fn(|v| {
        let next = cell.step(
            &named(&names, &v[3..]),
            v[0],
            CellState { h: v[1], c: v[2] },
        );
        Var::concat_cols(&[next.h, next.c])
    });
    let data = vec![
        uniform(&mut rng(4), 2, 3, -1.0, 1.0),
        uniform(&mut rng(5), 2, 2, -1.0, 1.0),
        uniform(&mut rng(6), 2, 2, -1.0, 1.0),
    ];
    check_gradients(&f, &with_params(data, &p), 3).unwrap();
}

#[test]
fn stacked_lstm_gradients_over_three_steps() {
    let lstm = StackedLstm::new("lstm", 2, &[3, 2]).unwrap();
    let p = lstm.init_params::<f64>(&mut rng(7));
    let names = names(&p);
    // Inputs: three steps of a 2-row batch, then the parameters; the state starts at zero.
    let f = tape_fn(|v| {
        let p = named(&names, &v[3..]);
        let mut state = lstm.zero_state(2).to_tape(v[0].tape());
        let mut outputs = Vec::new();
        for x in &v[..3] {
            state = lstm.step(&p, *x, &state);
            outputs.push(*state.output());
        }
        outputs.push(state.layers[0].c);
        Var::concat_cols(&outputs)
    });
    let data = (0..3)
        .map(|k| uniform(&mut rng(8 + k), 2, 2, -1.5, 1.5))
        .collect();
    check_gradients(&f, &with_params(data, &p), 7).unwrap();
}

#[test]
fn two_layer_lstm_gradients_through_learned_initial_state() {
    let body = TwoLayerLstm::new(3, 2, 4).unwrap();
    let params = body.init_params::<f64>(&mut rng(11));
    let names = names(&params);
    let f = tape_fn(|v| {
        let p = named(&names, &v[2..]);
        let s0 = body.initial_state(&p, 1);
        let (_, s1) = body.step(&p, v[0], &s0);
        let (w, _) = body.step(&p, v[1], &s1);
        w
    });
    let data = vec![
        uniform(&mut rng(12), 1, 3, -1.0, 1.0),
        uniform(&mut rng(13), 1, 3, -1.0, 1.0),
    ];
    check_gradients(&f, &with_params(data, &params), 11).unwrap();
}

#[test]
fn coordinatewise_lstm_gradients_with_log_sign_preprocessing() {
    // p = 2 puts the kink at |g| = e^-2 ~ 0.135; magnitudes on both sides of it exercise the
    // log part (large gradients) and the linear part of the sign (small ones).
    let config = CoordinatewiseConfig {
        input_features: 1,
        hidden_sizes: vec![3, 2],
        preprocessing: Preprocessing::LogSign { p: 2.0 },
        output_scale: 0.5,
    };
    let net = CoordinatewiseLstm::new(config).unwrap();
    let params = net.init_params::<f64>(&mut rng(14));
    let names = names(&params);
    let f = tape_fn(|v| {
        let p = named(&names, &v[2..]);
        let s0 = net.initial_state(v[0].tape(), 4);
        let (u1, s1) = net.step(&p, v[0], &s0);
        let (u2, _) = net.step(&p, v[1], &s1);
        Var::concat_cols(&[u1, u2])
    });
    let g1 = dmatrix![0.02; -0.5; 1.3; -0.07];
    let g2 = dmatrix![-0.9; 0.05; -0.03; 0.4];
    check_gradients(&f, &with_params(vec![g1, g2], &params), 14).unwrap();
}

#[test]
fn log_sign_preprocessing_follows_its_formula() {
    let tape = Tape::<f64>::new();
    let g = dmatrix![2.0; -0.3; 1e-5; -4e-5; 0.0; -1e-9];
    let y = Preprocessing::PAPER.apply(tape.constant(g.clone())).value();
    assert_eq!(y.shape(), (6, 2));
    for (i, &gi) in g.iter().enumerate() {
        let log = ((gi.abs() + f64::EPSILON).ln() / 10.0).max(-1.0);
        let sign = (gi * 10f64.exp()).clamp(-1.0, 1.0);
        assert!((y[(i, 0)] - log).abs() < 1e-14, "log part of {gi}");
        assert!((y[(i, 1)] - sign).abs() < 1e-14, "sign part of {gi}");
    }
    // The epsilon inside the log is the machine epsilon of the scalar type: with p = 50,
    // g = 0 gives ln(2^-23) / 50 = -0.3188 in f32 and ln(2^-52) / 50 = -0.7208 in f64.
    let p50 = Preprocessing::LogSign { p: 50.0 };
    let tape32 = Tape::<f32>::new();
    let y32 = p50.apply(tape32.constant(DMatrix::zeros(1, 1))).value();
    assert!(
        (y32[(0, 0)] - (f32::EPSILON.ln() / 50.0)).abs() < 1e-6,
        "{y32}"
    );
    assert_eq!(y32[(0, 1)], 0.0);
    let y64 = p50.apply(tape.constant(DMatrix::zeros(1, 1))).value();
    assert!(
        (y64[(0, 0)] - f64::EPSILON.ln() / 50.0).abs() < 1e-14,
        "{y64}"
    );
    let id = Preprocessing::Identity
        .apply(tape.constant(g.clone()))
        .value();
    assert_eq!(id, g);
}

// ---------------------------------------------------------------------------------------------
// The coordinatewise LSTM: equivariance and linear cost

#[test]
fn coordinatewise_lstm_permuting_coordinates_permutes_outputs() {
    let net = CoordinatewiseLstm::new(CoordinatewiseConfig::andrychowicz()).unwrap();
    let params = net.init_params::<f64>(&mut rng(15));
    let n = 9;
    let mut r = rng(16);
    let grads: Vec<DMatrix<f64>> = (0..4)
        .map(|_| {
            DMatrix::from_fn(n, 1, |_, _| {
                r.gen_range(-1.0..1.0) * 10f64.powi(r.gen_range(-6..1))
            })
        })
        .collect();
    let perm = [4, 7, 0, 2, 8, 1, 6, 3, 5];
    let permute = |m: &DMatrix<f64>| DMatrix::from_fn(m.nrows(), m.ncols(), |i, j| m[(perm[i], j)]);
    let run = |gs: &[DMatrix<f64>]| -> Vec<DMatrix<f64>> {
        let tape = Tape::new();
        let p = params.bind_constants(&tape);
        let mut state = net.initial_state(&tape, n);
        let mut outs = Vec::new();
        for g in gs {
            let (u, next) = net.step(&p, tape.constant(g.clone()), &state);
            state = next;
            outs.push(u.value());
        }
        outs.push(state.layers[0].c.value());
        outs
    };
    let plain = run(&grads);
    let permuted = run(&grads.iter().map(permute).collect::<Vec<_>>());
    for (a, b) in plain.iter().zip(&permuted) {
        assert!((permute(a) - b).amax() < 1e-14);
    }
}

/// Nodes recorded and scalars stored by a forward of 3 steps and a recorded backward (the
/// meta-training pattern) for `n` coordinates.
fn coordinatewise_footprint(
    net: &CoordinatewiseLstm,
    params: &Params<f64>,
    n: usize,
) -> (usize, usize) {
    let tape = Tape::new();
    let p = params.bind(&tape);
    let mut state = net.initial_state(&tape, n);
    let mut loss = tape.scalar(0.0);
    for t in 0..3 {
        let g = tape.param(DMatrix::from_fn(n, 1, |i, _| ((i + t) as f64).sin() * 1e-2));
        let (u, next) = net.step(&p, g, &state);
        assert_eq!(u.shape(), (n, 1));
        for layer in &next.layers {
            assert_eq!((layer.h.shape(), layer.c.shape()), ((n, 20), (n, 20)));
        }
        state = next;
        loss = loss + u.square().sum();
    }
    let grads = tape.grad(&[loss], &p.vars(), true);
    for (g, (_, m)) in grads.iter().zip(params.iter()) {
        assert_eq!(g.shape(), m.shape());
    }
    (tape.len(), tape.num_scalars())
}

#[test]
fn coordinatewise_lstm_cost_is_linear_in_the_number_of_coordinates() {
    let net = CoordinatewiseLstm::new(CoordinatewiseConfig::andrychowicz()).unwrap();
    let params = net.init_params::<f64>(&mut rng(17));
    // By construction: the ops are the same for any n (one row per coordinate, shared
    // weights), and storage affine in n means every value is n x (fixed width) or of fixed
    // size, never n x n. Each op (elementwise, n x k times k x m, or k x n times n x m for
    // weight gradients) then costs O(n), so a step costs O(n): 2n coordinates, twice the
    // flops of the n-dependent part.
    let (nodes1, s1) = coordinatewise_footprint(&net, &params, 50);
    let (nodes2, s2) = coordinatewise_footprint(&net, &params, 100);
    let (nodes4, s4) = coordinatewise_footprint(&net, &params, 200);
    assert_eq!((nodes1, nodes2), (nodes2, nodes4));
    assert_eq!(
        s4 - s2,
        2 * (s2 - s1),
        "storage is not affine in n: {s1}, {s2}, {s4}"
    );
    // The n-independent part is parameters and their gradients (a few copies), not O(n^2).
    let fixed = 2 * s1 - s2;
    assert!(fixed < 40 * net.num_params(), "{fixed}");
}

// ---------------------------------------------------------------------------------------------
// Recorded and unrecorded runs, reproducibility, parameter files

#[test]
fn unrecorded_steps_with_truncation_match_recorded_steps() {
    let body = TwoLayerLstm::new(5, 3, 4).unwrap();
    let params = body.init_params::<f64>(&mut rng(18));
    let xs: Vec<DMatrix<f64>> = (0..6)
        .map(|k| uniform(&mut rng(19 + k), 1, 5, -1.0, 1.0))
        .collect();
    // Recorded: one trajectory on the tape, differentiable end to end.
    let tape = Tape::new();
    let p = params.bind(&tape);
    let mut state = body.initial_state(&p, 1);
    let mut recorded = Vec::new();
    for x in &xs {
        let (w, next) = body.step(&p, tape.constant(x.clone()), &state);
        state = next;
        recorded.push(w);
    }
    let g = tape.grad(&[recorded[5].sum()], &[p.get("cell1_0")], false);
    assert!(g[0].value().iter().all(|v| v.is_finite() && *v != 0.0));
    // Unrecorded: state kept as values, the tape truncated after every step.
    let eval = Tape::new();
    let pc = params.bind_constants(&eval);
    let mut values = body.initial_state(&pc, 1).values();
    let mark = eval.mark();
    let kept = eval.len();
    for (x, w_rec) in xs.iter().zip(&recorded) {
        let (w, next) = body.step(&pc, eval.constant(x.clone()), &values.to_tape(&eval));
        assert!(!w.requires_grad());
        assert_eq!(w.value(), w_rec.value());
        values = next.values();
        eval.truncate(mark);
    }
    assert_eq!(eval.len(), kept);
    assert_eq!(values, state.values());
    // stop_gradient keeps values and cuts the path (truncated backpropagation).
    let cut = state.stop_gradient();
    assert_eq!(cut.values(), state.values());
    assert!(!cut.output().requires_grad());
}

#[test]
fn same_seed_gives_same_parameters() {
    let mlp = Mlp::new(MlpConfig::new(&[6, 5, 2], Activation::Tanh)).unwrap();
    let mlp_params = |seed| mlp.init_params::<f64>(&mut rng(seed));
    assert_eq!(mlp_params(21), mlp_params(21));
    assert_ne!(mlp_params(21), mlp_params(22));
    let body = TwoLayerLstm::new(7, 2, 3).unwrap();
    let body_params = |seed| body.init_params::<f64>(&mut rng(seed));
    assert_eq!(body_params(21), body_params(21));
    assert_ne!(body_params(21), body_params(22));
    let config = CoordinatewiseConfig::andrychowicz();
    let net = CoordinatewiseLstm::new(config).unwrap();
    let net_params = |seed| net.init_params::<f64>(&mut rng(seed));
    assert_eq!(net_params(21), net_params(21));
    assert_ne!(net_params(21), net_params(22));
    // f32 and f64 from one seed agree up to rounding.
    let net32 = net.init_params::<f32>(&mut rng(21));
    for ((n64, m64), (n32, m32)) in net_params(21).iter().zip(net32.iter()) {
        assert_eq!(n64, n32);
        assert!(m64.iter().zip(m32.iter()).all(|(a, b)| (*a as f32) == *b));
    }
    // The learned initial states are small normals, the cells uniform in ±1/sqrt(h).
    let big = TwoLayerLstm::new(4, 50, 2)
        .unwrap()
        .init_params::<f64>(&mut rng(23));
    let h0 = big.get("hidden1_0");
    assert!(h0.amax() < 0.05 && h0.amax() > 0.005);
    let w = big.get("recurs.weight_hh");
    assert!(w.amax() <= 1.0 / 50f64.sqrt() && w.amax() > 0.9 / 50f64.sqrt());
}

/// Models hold no parameters: a parameter file is rebuilt into a model by building the model
/// from its configuration and checking the loaded tensors against it.
#[test]
fn params_round_trip_through_files_and_rebuild_the_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");

    let config = MlpConfig::paper_omega(20);
    let mlp = Mlp::new(config.clone()).unwrap();
    let params = mlp.init_params::<f32>(&mut rng(24));
    params.save(&path).unwrap();
    let loaded = Params::<f32>::load(&path).unwrap();
    let rebuilt = Mlp::new(config).unwrap();
    rebuilt.check_params(&loaded).unwrap();
    assert_eq!((rebuilt, loaded), (mlp, params));

    let body = TwoLayerLstm::paper(20).unwrap();
    let params = body.init_params::<f64>(&mut rng(25));
    params.save(&path).unwrap();
    let loaded = Params::<f64>::load(&path).unwrap();
    let rebuilt = TwoLayerLstm::new(41, 2, 20).unwrap();
    rebuilt.check_params(&loaded).unwrap();
    assert_eq!((rebuilt, loaded), (body, params));

    let config = CoordinatewiseConfig::andrychowicz();
    let net = CoordinatewiseLstm::new(config.clone()).unwrap();
    let params = net.init_params::<f64>(&mut rng(26));
    params.save(&path).unwrap();
    let loaded = Params::<f64>::load(&path).unwrap();
    let rebuilt = CoordinatewiseLstm::new(config).unwrap();
    rebuilt.check_params(&loaded).unwrap();
    assert_eq!((rebuilt, loaded), (net, params));
}

#[test]
fn mismatched_params_are_refused_naming_the_tensor() {
    let config = MlpConfig::paper_omega(20);
    let omega = Mlp::new(config.clone()).unwrap();
    let mut p = omega.init_params::<f64>(&mut rng(27));
    *p.get_mut("layer2.weight") = DMatrix::zeros(3, 4);
    let err = omega.check_params(&p).unwrap_err().to_string();
    assert_eq!(
        err,
        "parameters do not fit the MLP: parameter 'layer2.weight' is 3 x 4, expected 3 x 3"
    );
    // The same tensors under the default names are not the paper's Omega.
    let plain = Mlp::new(MlpConfig::new(&config.sizes, Activation::Relu)).unwrap();
    let p = plain.init_params::<f64>(&mut rng(27));
    let err = omega.check_params(&p).unwrap_err().to_string();
    assert!(err.contains("'layer1.weight' is missing"), "{err}");

    let full = TwoLayerLstm::new(3, 2, 4)
        .unwrap()
        .init_params::<f64>(&mut rng(28));
    let mut p = Params::new();
    for (name, m) in full.iter().filter(|(n, _)| *n != "cell2_0") {
        p.insert(name, m.clone());
    }
    let err = TwoLayerLstm::new(3, 2, 4)
        .unwrap()
        .check_params(&p)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'cell2_0' is missing"), "{err}");
    // A checkpoint of another size is refused, naming the first tensor that differs.
    let err = TwoLayerLstm::new(3, 3, 4)
        .unwrap()
        .check_params(&full)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'hidden1_0' is 1 x 2, expected 1 x 3"),
        "{err}"
    );

    let config = CoordinatewiseConfig::andrychowicz();
    let net = CoordinatewiseLstm::new(config.clone()).unwrap();
    let mut p = net.init_params::<f64>(&mut rng(29));
    p.insert("lstm.weight_ih_l2", DMatrix::zeros(80, 20));
    let err = net.check_params(&p).unwrap_err().to_string();
    assert!(err.contains("'lstm.weight_ih_l2' does not belong"), "{err}");
    let identity = CoordinatewiseConfig {
        preprocessing: Preprocessing::Identity,
        ..config
    };
    let p = net.init_params::<f64>(&mut rng(29));
    let err = CoordinatewiseLstm::new(identity)
        .unwrap()
        .check_params(&p)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'lstm.weight_ih_l0' is 80 x 2, expected 80 x 1"),
        "{err}"
    );
}

#[test]
fn invalid_configurations_are_refused_with_a_message() {
    let err = |r: Result<(), String>| r.unwrap_err();
    let e = err(LstmCell::new("rnn", 0, 2)
        .map(drop)
        .map_err(|e| e.to_string()));
    assert!(
        e.contains("LSTM cell") && e.contains("rnn.weight_ih") && e.contains("positive"),
        "{e}"
    );
    let e = err(StackedLstm::new("", 3, &[])
        .map(drop)
        .map_err(|e| e.to_string()));
    assert!(e.contains("at least one layer"), "{e}");
    let e = err(StackedLstm::new("", 3, &[4, 0])
        .map(drop)
        .map_err(|e| e.to_string()));
    assert!(e.contains("weight_ih_l1"), "{e}");
    let cells = vec![
        LstmCell::new("a", 3, 4).unwrap(),
        LstmCell::new("b", 5, 2).unwrap(),
    ];
    let e = err(StackedLstm::from_cells(cells)
        .map(drop)
        .map_err(|e| e.to_string()));
    assert!(
        e.contains("layer 1 takes 5 inputs but layer 0 outputs 4"),
        "{e}"
    );
    let cells = vec![
        LstmCell::new("a", 3, 3).unwrap(),
        LstmCell::new("a", 3, 3).unwrap(),
    ];
    let e = err(StackedLstm::from_cells(cells)
        .map(drop)
        .map_err(|e| e.to_string()));
    assert!(e.contains("'a.weight_ih' appears twice"), "{e}");
    let e = err(TwoLayerLstm::new(3, 0, 4)
        .map(drop)
        .map_err(|e| e.to_string()));
    assert!(e.contains("positive"), "{e}");
    let bad_p = CoordinatewiseConfig {
        preprocessing: Preprocessing::LogSign { p: 0.0 },
        ..CoordinatewiseConfig::andrychowicz()
    };
    let e = err(CoordinatewiseLstm::new(bad_p)
        .map(drop)
        .map_err(|e| e.to_string()));
    assert!(e.contains("p > 0"), "{e}");
    let no_features = CoordinatewiseConfig {
        input_features: 0,
        ..CoordinatewiseConfig::andrychowicz()
    };
    let e = err(CoordinatewiseLstm::new(no_features)
        .map(drop)
        .map_err(|e| e.to_string()));
    assert!(e.contains("input_features"), "{e}");
}

#[test]
fn lstm_state_values_round_trip_and_report_shapes() {
    let zeros = LstmState::<DMatrix<f32>>::zeros(7, &[20, 20]);
    assert_eq!((zeros.num_layers(), zeros.output().shape()), (2, (7, 20)));
    let tape = Tape::new();
    let on_tape = zeros.to_tape(&tape);
    assert_eq!(on_tape.batch_size(), 7);
    assert_eq!(on_tape.values(), zeros);
}
