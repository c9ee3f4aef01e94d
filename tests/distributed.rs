//! Distributed meta-training on ranks that are threads of this process (`ThreadRanks`: the
//! protocol of the MPI runs, without MPI): for every estimator (full and truncated BPTT, ES,
//! PES) 1, 2 and 3 ranks give the meta-parameters and reports of the single process, bit for
//! bit; a checkpoint written by rank 0 of 3 ranks is the single process's, byte for byte, and
//! resumes on 2 ranks (or 1 process) as if never stopped; a NaN in one rank's trajectory and a
//! rank with other meta-parameters end the meta-step on every rank with an error naming that
//! rank and the meta-step.

use convergent_l2o::meta::{
    load_checkpoint, save_checkpoint, Es, FullBptt, GradientEstimator, MetaError, MetaStepReport,
    MetaTrainConfig, MetaTrainer, Pes, ThreadRanks, TruncatedBptt, WeightedLoss,
};
use convergent_l2o::models::Params;
use convergent_l2o::optim::{ConvergentL2O, LearnedOptimizer, MagnitudeRen, StepSize};
use convergent_l2o::problems::{Draw, FamilyFn, InitialPoint, ProblemFamily, Quadratic, Sampled};
use rand::{rngs::StdRng, SeedableRng};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Full,
    Truncated,
    Es,
    Pes,
}

const KINDS: [Kind; 4] = [Kind::Full, Kind::Truncated, Kind::Es, Kind::Pes];

/// Random quadratics in 3 dimensions; draw `poison` gets a NaN initial point.
fn family(poison: Option<Draw>) -> impl ProblemFamily<f64> {
    FamilyFn::new("quadratics", move |draw: Draw, rng: &mut StdRng| {
        let q = Quadratic::<f64>::random(3, 0.1, 1.0, rng);
        let mut x0 = InitialPoint::Normal { std: 1.0 }.sample(3, rng);
        if Some(draw) == poison {
            x0[1] = f64::NAN;
        }
        Sampled::new(q, x0)
    })
}

fn optimizer(seed: u64) -> ConvergentL2O<f64> {
    let ren = MagnitudeRen::dense(3, 4, 4, 1.0).unwrap();
    let eta = StepSize::Constant { eta: 0.5 };
    ConvergentL2O::new(3, ren, 8, eta, &mut StdRng::seed_from_u64(seed)).unwrap()
}

/// Five samples per meta-step, so that 2 and 3 ranks get unequal shares.
fn estimator(kind: Kind) -> Box<dyn GradientEstimator<f64>> {
    match kind {
        Kind::Full => Box::new(FullBptt {
            trajectories: 5,
            horizon: 6,
            second_order: true,
        }),
        Kind::Truncated => Box::new(TruncatedBptt::new(5, 9, 3)),
        Kind::Es => Box::new(Es {
            sigma: 0.01,
            pairs: 5,
            horizon: 6,
        }),
        Kind::Pes => Box::new(Pes::new(0.01, 5, 3, 9)),
    }
}

fn trainer(kind: Kind) -> MetaTrainer<f64> {
    let config = MetaTrainConfig {
        lr: 1e-2,
        clip: None,
        seed: 3,
    };
    MetaTrainer::new(config, estimator(kind), WeightedLoss::PAPER).unwrap()
}

type Outcome = Result<(Params<f64>, Vec<MetaStepReport>), String>;

/// One rank's (or the single process's) run: optionally resumed, meta-trained up to meta-step
/// `to`, optionally checkpointed.
fn run(
    mut t: MetaTrainer<f64>,
    mut opt: ConvergentL2O<f64>,
    to: usize,
    poison: Option<Draw>,
    resume: Option<&Path>,
    save: Option<&Path>,
) -> Result<(Params<f64>, Vec<MetaStepReport>), MetaError> {
    if let Some(path) = resume {
        load_checkpoint(path, &mut t, &mut opt).unwrap();
    }
    let family = family(poison);
    while t.meta_step() < to {
        t.step(&mut opt, &family)?;
    }
    if let Some(path) = save {
        save_checkpoint(path, &t, &opt).unwrap();
    }
    Ok((opt.params().clone(), t.history().to_vec()))
}

/// `ranks` thread-ranks, each with its own trainer and optimizer (rank `r`'s initialized from
/// `seeds[r]`); every rank's outcome, errors as text.
fn on_ranks(
    kind: Kind,
    ranks: usize,
    seeds: &[u64],
    to: usize,
    poison: Option<Draw>,
    resume: Option<&Path>,
    save: Option<&Path>,
) -> Vec<Outcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = ThreadRanks::group(ranks)
            .into_iter()
            .enumerate()
            .map(|(r, comm)| {
                let seed = seeds[r.min(seeds.len() - 1)];
                s.spawn(move || {
                    let t = trainer(kind).with_communicator(Arc::new(comm));
                    run(t, optimizer(seed), to, poison, resume, save).map_err(|e| e.to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The common outcome of the ranks (they must agree).
fn agreed(outcomes: Vec<Outcome>) -> (Params<f64>, Vec<MetaStepReport>) {
    let first = outcomes[0].clone().unwrap();
    for o in &outcomes[1..] {
        assert_eq!(o.as_ref().unwrap(), &first, "the ranks disagree");
    }
    first
}

#[test]
fn one_two_and_three_ranks_give_the_single_process_bits_for_every_estimator() {
    for kind in KINDS {
        let single = run(trainer(kind), optimizer(0), 3, None, None, None).unwrap();
        for ranks in 1..=3 {
            let distributed = agreed(on_ranks(kind, ranks, &[0], 3, None, None, None));
            assert_eq!(distributed.0, single.0, "{kind:?} on {ranks} ranks");
            assert_eq!(distributed.1, single.1, "{kind:?} on {ranks} ranks");
        }
    }
}

#[test]
fn a_checkpoint_of_three_ranks_is_the_single_process_one_and_resumes_on_two() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let (single, three) = (dir.path().join("single"), dir.path().join("three"));
        run(trainer(kind), optimizer(0), 2, None, None, Some(&single)).unwrap();
        agreed(on_ranks(kind, 3, &[0], 2, None, None, Some(&three)));
        assert_eq!(
            std::fs::read(&single).unwrap(),
            std::fs::read(&three).unwrap(),
            "{kind:?}: the checkpoints differ"
        );
        let straight = run(trainer(kind), optimizer(0), 4, None, None, None).unwrap();
        let resumed = agreed(on_ranks(kind, 2, &[0], 4, None, Some(&three), None));
        assert_eq!(resumed, straight, "{kind:?} resumed on 2 ranks");
        // And back to one process, from a checkpoint of 2 ranks.
        let two = dir.path().join("two");
        agreed(on_ranks(kind, 2, &[0], 3, None, Some(&three), Some(&two)));
        let back = run(trainer(kind), optimizer(7), 4, None, Some(&two), None).unwrap();
        assert_eq!(back, straight, "{kind:?} resumed on 1 process");
    }
}

#[test]
fn a_nan_on_one_rank_ends_the_meta_step_everywhere_naming_the_rank_and_the_meta_step() {
    // Sample 4 of 5 belongs to rank 2 of 3 (shares 0..1, 1..3, 3..5); it draws a new problem
    // at meta-step 1 (truncated BPTT's particle only at 0 and 3).
    for kind in KINDS {
        let k = if matches!(kind, Kind::Truncated) {
            0
        } else {
            1
        };
        let poison = Some(Draw {
            meta_step: k,
            index: 4,
        });
        for outcome in on_ranks(kind, 3, &[0], 3, poison, None, None) {
            let err = outcome.unwrap_err();
            assert!(
                err.contains(&format!("rank 2 failed at meta-step {k}"))
                    && err.contains("non-finite"),
                "{kind:?}: {err}"
            );
        }
    }
}

#[test]
fn a_rank_with_other_meta_parameters_is_named_on_every_rank() {
    for outcome in on_ranks(Kind::Full, 3, &[0, 1, 0], 1, None, None, None) {
        let err = outcome.unwrap_err();
        assert!(
            err.contains("rank 1 failed at meta-step 0") && err.contains("differ"),
            "{err}"
        );
    }
}
