//! The paper's LSTM baseline against the authors' `LSTM_Optimizer.ipynb`: the notebook's
//! minibatch stream (`ShuffledClassifiers`), its meta-loss computed by hand from the notebook's
//! equations against the meta-trainer's, why the notebook's printed log cannot start from a
//! fresh network, the original code's reading of "accuracy at step t" (of x_(t+1)), and why
//! where meta-training ends depends on the initialization (the LSTM saturates into a fixed
//! direction; restarts chosen by their meta-loss, `meta::best_restart`).

use convergent_l2o::eval::{probes, run, RunConfig};
use convergent_l2o::meta::{
    best_restart, trailing_meta_loss, FullBptt, MetaTrainConfig, MetaTrainer, WeightedLoss,
};
use convergent_l2o::models::{read_safetensors, Activation, Params, TwoLayerLstm};
use convergent_l2o::optim::{Frozen, LearnedOptimizer, Sgd, UnconstrainedL2O};
use convergent_l2o::problems::data::{Batches, Mnist, Split};
use convergent_l2o::problems::{
    Classifier, ClassifierMetrics, Draw, FamilyFn, InitialPoint, Problem, ProblemFamily, Sampled,
    ShuffledClassifiers,
};
use convergent_l2o::tape::Tape;
use nalgebra::DMatrix;
use rand::{rngs::StdRng, SeedableRng};
use std::path::Path;
use std::sync::Arc;
use std::sync::OnceLock;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/mnist-10k");

fn mnist() -> &'static Mnist {
    static DATA_SET: OnceLock<Mnist> = OnceLock::new();
    DATA_SET.get_or_init(|| Mnist::load(Path::new(DATA)).expect("mnist-10k in ../shared"))
}

fn stream(seed: u64, per_step: usize, horizon: usize) -> ShuffledClassifiers<f32> {
    ShuffledClassifiers::new(
        mnist().split(Split::MetaTrain),
        Activation::Tanh,
        128,
        per_step,
        horizon,
        InitialPoint::META_TRAIN,
        seed,
    )
    .unwrap()
}

#[test]
fn the_stream_reads_every_sample_once_per_epoch_and_trajectories_read_it_in_turn() {
    let split = mnist().split(Split::MetaTrain);
    let family = stream(11, 10, 50);
    let per_epoch = family.batches_per_epoch();
    assert_eq!(per_epoch, split.len() / 128);
    for epoch in [0, 1, 7] {
        let mut order = family.epoch_order(epoch);
        assert_ne!(
            order[..128],
            (0..128).collect::<Vec<_>>()[..],
            "epoch {epoch} is shuffled"
        );
        order.sort_unstable();
        assert_eq!(order, (0..split.len()).collect::<Vec<_>>(), "epoch {epoch}");
    }
    assert_ne!(family.epoch_order(0), family.epoch_order(1));
    assert_ne!(family.epoch_order(0), stream(12, 10, 50).epoch_order(0));
    assert_eq!(family.epoch_order(3), stream(11, 10, 50).epoch_order(3));
    // Trajectory j reads stream minibatches j * 50 .. j * 50 + 49, across epoch boundaries.
    for j in [0, 1, 9, 10, 23] {
        let batches = family.trajectory_batches(j);
        assert_eq!(batches.len(), 50);
        for (t, b) in batches.iter().enumerate() {
            assert_eq!(
                *b,
                family.stream_batch(j * 50 + t),
                "trajectory {j}, step {t}"
            );
        }
    }
    // Consecutive minibatches of one epoch are disjoint.
    let (a, b) = (family.stream_batch(0), family.stream_batch(1));
    assert!(a.iter().all(|i| !b.contains(i)));
}

#[test]
fn gathered_minibatches_hold_the_chosen_samples_and_labels() {
    let split = mnist().split(Split::MetaTrain);
    let all = split.batch::<f32>(0, split.len());
    let samples = split.samples_as_columns::<f32>();
    assert_eq!(samples, all.images.transpose());
    let indices = [17, 3, 4000, 5, 123, split.len() - 1];
    let batches = Batches::gathered(&samples, &all.labels, &indices, 3).unwrap();
    assert_eq!((batches.len(), batches.batch_size()), (2, 3));
    for (k, chunk) in indices.chunks(3).enumerate() {
        for (r, &i) in chunk.iter().enumerate() {
            let expected: Vec<f32> = split.image(i).iter().map(|&p| p as f32).collect();
            let row: Vec<f32> = batches.images(k).row(r).iter().copied().collect();
            assert_eq!(row, expected, "batch {k}, row {r}");
            assert_eq!(
                batches.images_transposed(k).column(r),
                batches.images(k).row(r).transpose()
            );
            let hot = batches
                .one_hot(k)
                .row(r)
                .iter()
                .position(|&v| v == 1.0)
                .unwrap();
            assert_eq!(hot, split.labels()[i] as usize);
        }
    }
    assert!(Batches::gathered(&samples, &all.labels, &[0, split.len()], 1).is_err());
    assert!(Batches::gathered(&samples, &all.labels, &[0, 1], 3).is_err());
    assert!(Batches::gathered(&samples, &all.labels, &[0, 1], 0).is_err());

    // Read in place, the same minibatches: on a tape (never copied), formed on request, and
    // refused for the same bad input.
    let shared = Arc::new(samples);
    let in_place = Batches::gathered_shared(Arc::clone(&shared), &all.labels, &indices, 3).unwrap();
    assert_eq!((in_place.len(), in_place.batch_size()), (2, 3));
    assert_eq!(in_place.num_features(), batches.num_features());
    let tape = Tape::<f32>::new();
    for k in 0..batches.len() {
        let ((x, y), (x_in_place, y_in_place)) =
            (batches.on_tape(&tape, k), in_place.on_tape(&tape, k));
        assert_eq!(x_in_place.shape(), x.shape());
        assert_eq!(x_in_place.value(), x.value());
        assert_eq!(y_in_place.value(), y.value());
        assert_eq!(in_place.images_transposed(k), batches.images_transposed(k));
    }
    let bad = |indices: &[usize], size| {
        Batches::gathered_shared(Arc::clone(&shared), &all.labels, indices, size).is_err()
    };
    assert!(bad(&[0, split.len()], 1) && bad(&[0, 1], 3) && bad(&[0, 1], 0));
}

#[test]
fn a_sampled_trajectory_is_a_function_of_its_draw() {
    let family = stream(5, 10, 4);
    let draw = Draw {
        meta_step: 2,
        index: 3,
    };
    let x = InitialPoint::PAPER_TEST.sample(7850, &mut StdRng::seed_from_u64(1));
    let losses = |s: Sampled<f32>| -> Vec<f64> {
        (0..4).map(|t| s.problem.value_and_grad(&x, t).0).collect()
    };
    let first = losses(family.sample(draw, &mut StdRng::seed_from_u64(0)).unwrap());
    let again = losses(family.sample(draw, &mut StdRng::seed_from_u64(9)).unwrap());
    assert_eq!(first, again);
    let other = Draw { index: 4, ..draw };
    assert_ne!(
        first,
        losses(family.sample(other, &mut StdRng::seed_from_u64(0)).unwrap())
    );
}

/// The notebook's meta-loss, by hand: `mloss = sum_t 0.95^(T-1-t) CE(x_t; batch t)` per initial
/// point, averaged over the initial points as the notebook prints it, from unrecorded runs.
fn notebook_meta_loss(
    lstm: &UnconstrainedL2O<f32>,
    family: &dyn ProblemFamily<f32>,
    per_step: usize,
    horizon: usize,
) -> (f64, f64) {
    let mut total = 0.0;
    let mut last_losses = 0.0;
    for index in 0..per_step {
        let s = family
            .sample(
                Draw {
                    meta_step: 0,
                    index,
                },
                &mut StdRng::seed_from_u64(0),
            )
            .unwrap();
        let out = run(&Frozen(lstm), &*s.problem, &s.x0, &RunConfig::new(horizon)).unwrap();
        let losses = out.trace.values("loss");
        assert_eq!(losses.len(), horizon);
        total += losses
            .iter()
            .enumerate()
            .map(|(t, f)| 0.95f64.powi((horizon - 1 - t) as i32) * f)
            .sum::<f64>();
        last_losses += losses[horizon - 1];
    }
    (total / per_step as f64, last_losses / per_step as f64)
}

#[test]
fn the_first_meta_loss_is_the_notebooks_and_a_fresh_lstm_is_far_from_its_printed_log() {
    // Initial points fixed by the draw, so the hand computation sees the trainer's problems.
    let (per_step, horizon) = (10, 50);
    let shuffled = stream(0, per_step, horizon);
    let family = FamilyFn::new(
        "notebook stream, fixed x0",
        move |draw: Draw, _: &mut StdRng| {
            let s = shuffled.sample(draw, &mut StdRng::seed_from_u64(0))?;
            let x0 = InitialPoint::META_TRAIN
                .sample(7850, &mut StdRng::seed_from_u64(100 + draw.index as u64));
            Ok(Sampled { x0, ..s })
        },
    );
    for seed in [1, 2] {
        let mut lstm = UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(seed)).unwrap();
        let (by_hand, _) = notebook_meta_loss(&lstm, &family, per_step, horizon);
        let mut trainer = MetaTrainer::new(
            MetaTrainConfig::paper(seed),
            FullBptt::PAPER,
            WeightedLoss::PAPER,
        )
        .unwrap();
        let report = trainer.step(&mut lstm, &family).unwrap();
        assert!(
            (report.meta_loss - by_hand).abs() < 1e-4 * by_hand,
            "init {seed}: trainer {} vs the notebook's formula {by_hand}",
            report.meta_loss
        );
        // PyTorch's initialization moves every coordinate by O(1/sqrt(2)) per step: the
        // tanh outputs saturate at random and the weighted sum of 50 cross-entropies is far
        // above the 20.12 the notebook prints after its "first" epoch (its log continues an
        // earlier training run: a fresh network cannot give 82% test accuracy after 50 steps).
        assert!(by_hand > 30.0, "init {seed}: {by_hand}");
        assert!(report.grad_norm.is_finite() && report.grad_norm > 0.0);
    }
}

#[test]
fn accuracy_after_update_is_the_original_codes_reading_of_step_t() {
    let data = mnist();
    let task =
        Classifier::<f32>::new(data.split(Split::EvalTrain), Activation::Sigmoid, 128, 0).unwrap();
    let test = ClassifierMetrics::<f32>::new(data.split(Split::Test), Activation::Sigmoid);
    let x0 = InitialPoint::PAPER_TEST.sample(7850, &mut StdRng::seed_from_u64(4));
    let steps = 21;
    let at: Vec<usize> = (0..steps).collect();
    let sgd = Sgd::new(0.5).unwrap();
    let after = run(
        &sgd,
        &task,
        &x0,
        &RunConfig::new(steps).with(probes::accuracy(&test, at.clone(), true)),
    )
    .unwrap();
    let iterate = run(
        &sgd,
        &task,
        &x0,
        &RunConfig::new(steps).with(probes::accuracy(&test, (0..=steps).collect(), false)),
    )
    .unwrap();
    let (after, iterate) = (
        after.trace.values("accuracy"),
        iterate.trace.values("accuracy"),
    );
    // "Accuracy at step t" after the update is the iterate's accuracy at t + 1.
    assert_eq!(after[..], iterate[1..=steps]);
    // The original loop, by hand: the gradient on minibatch t at x_t, x_(t+1) = x_t - lr g,
    // then the test accuracy of x_(t+1).
    let mut x: DMatrix<f32> = x0.clone();
    for (t, &reading) in after.iter().enumerate() {
        let (_, g) = task.value_and_grad(&x, t);
        x -= g * 0.5;
        let by_hand = test.accuracy(&x);
        assert!(
            (by_hand - reading).abs() <= 2.0 / test.len() as f64,
            "step {t}: {by_hand} vs {reading}"
        );
    }
    // The two readings differ somewhere in the first steps: the choice matters for the table.
    assert_ne!(after[..], iterate[..steps]);
}

/// The authors' published LSTM (`omega.*` of their file).
fn published_lstm() -> UnconstrainedL2O<f32> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/pretrained"
    ));
    let mut lstm = UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(0)).unwrap();
    let mut template = Params::new();
    template.extend_prefixed("omega", lstm.params());
    let trained =
        read_safetensors(&dir.join("lstm_optimizer_tanh.safetensors"), &template).unwrap();
    lstm.set_params(trained.sub_params("omega")).unwrap();
    lstm
}

#[test]
fn the_lstm_saturates_into_a_fixed_direction_where_the_tanh_gradient_vanishes() {
    // The notebook's loop written out by hand: at step t the input row [grad f, x, f], the two
    // LSTM cells, w_t = W_out h2_t + b_out, x_(t+1) = x_t + w_t. After a few steps the iterate
    // is so large that the cells' gates saturate: h1, h2 and so w_t stop changing, and the
    // "optimizer" is a fixed direction d walked at unit pace. The classifier's tanh outputs
    // saturate with it and the gradient f's derivative 1 - tanh² carries vanishes: the sign
    // pattern of d, which decides the meta-loss, gets almost no meta-gradient, so a run of
    // meta-training stays near the pattern its initialization found (restarts, below).
    let lstm = published_lstm();
    let body = TwoLayerLstm::paper(7850).unwrap();
    let task =
        Classifier::<f32>::new(mnist().split(Split::MetaTrain), Activation::Tanh, 128, 0).unwrap();
    let mut x = InitialPoint::META_TRAIN.sample::<f32>(7850, &mut StdRng::seed_from_u64(3));
    let tape = Tape::<f32>::new();
    let p = lstm.params().bind_constants(&tape);
    let mut state = body.initial_state(&p, 1);
    let (mut ws, mut grads) = (Vec::new(), Vec::new());
    for t in 0..50 {
        let (f, g) = task.value_and_grad(&x, t);
        let mut row = DMatrix::<f32>::zeros(1, 2 * 7850 + 1);
        for i in 0..7850 {
            row[(0, i)] = g[i];
            row[(0, 7850 + i)] = x[i];
        }
        row[(0, 2 * 7850)] = f as f32;
        let (w, next) = body.step(&p, tape.constant(row), &state);
        state = next;
        let w = w.value().transpose();
        x += &w;
        grads.push(g.norm() as f64);
        ws.push(w);
    }
    let last = &ws[49];
    for (t, w) in ws.iter().enumerate().skip(20) {
        let change = (w - last).norm() / last.norm();
        assert!(change < 1e-3, "step {t}: |w_t - w_49| / |w_49| = {change}");
    }
    // The fixed direction by hand: the output layer at the last hidden state.
    let (w_out, b_out) = (
        lstm.params().get("output.weight"),
        lstm.params().get("output.bias"),
    );
    let d = w_out * state.layers[1].h.value().transpose() + b_out;
    assert!((&d - last).norm() < 1e-4 * last.norm());
    // The gradient the LSTM reads has all but vanished after the first steps.
    let mut late = grads[20..].to_vec();
    late.sort_by(f64::total_cmp);
    let median = late[late.len() / 2];
    eprintln!(
        "|grad f| at t = 0: {:.3e}, median over t >= 20: {median:.3e}",
        grads[0]
    );
    assert!(median < 1e-2 * grads[0], "{median} vs {}", grads[0]);
}

#[test]
#[ignore = "200 meta-steps of the LSTM (one to two minutes in release); run with \
            cargo test --release --test lstm_notebook -- --ignored"]
fn where_meta_training_ends_depends_on_the_initialization_and_restarts_choose() {
    // The default run's first two restarts (reproduce_paper, seed 0): the same notebook stream
    // and draws, initializations from seeds 1 and 2, 100 meta-steps each. The first (the only
    // initialization the old default trained, for 500 meta-steps, ending at meta-loss 20.8)
    // stays in a worse minimum; the second is near the notebook's log at the same point
    // (20.12 after 100 of the paper's 200 epochs). Choosing by the last 25 meta-losses
    // (training data only) picks the second.
    let family = stream(0, 10, 50);
    let mut pilots = Vec::new();
    for init_seed in [1, 2] {
        let mut lstm =
            UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(init_seed)).unwrap();
        let mut trainer = MetaTrainer::new(
            MetaTrainConfig::paper(0),
            FullBptt::PAPER,
            WeightedLoss::PAPER,
        )
        .unwrap();
        for _ in 0..100 {
            trainer.step(&mut lstm, &family).unwrap();
        }
        let score = trailing_meta_loss(trainer.history(), 25);
        eprintln!("init seed {init_seed}: mean meta-loss over meta-steps 76..100 {score:.3}");
        pilots.push(trainer.history().to_vec());
    }
    let (bad, good) = (
        trailing_meta_loss(&pilots[0], 25),
        trailing_meta_loss(&pilots[1], 25),
    );
    assert!(bad > 22.0, "init seed 1: {bad}");
    assert!(good < 21.0, "init seed 2: {good}");
    assert_eq!(best_restart(&[&pilots[0], &pilots[1]], 25), Some(1));
}

#[test]
fn the_authors_published_lstm_is_at_the_meta_loss_the_notebook_prints() {
    // The notebook prints an average meta-loss of 20.12 after its "first" epoch and 19.16
    // after its last; the published weights, under our meta-loss on the notebook's stream,
    // must sit at that level (and a fresh network near 50, test above): the meta-losses agree,
    // and what separates our LSTM from the authors' is the length of training (the paper's
    // 200 epochs) and the initialization (restarts, above).
    let lstm = published_lstm();
    let (meta_loss, last) = notebook_meta_loss(&lstm, &stream(0, 10, 50), 10, 50);
    eprintln!("published LSTM: meta-loss {meta_loss:.3}, mean f(x_49) {last:.4}");
    assert!(
        (17.5..20.5).contains(&meta_loss),
        "the published LSTM's meta-loss {meta_loss} (mean f(x_50) {last})"
    );
}
