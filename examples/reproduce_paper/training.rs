//! Meta-training with a checkpoint after every meta-step: the checkpoint holds the
//! meta-parameters, the outer Adam's state and the meta-loss history together, so a kill at any
//! moment loses nothing; `meta_<file>.csv` is rewritten from it.

use crate::{bar, say, write_file, Res, Settings};
use convergent_l2o::meta::{
    best_restart, load_checkpoint, save_checkpoint_in, trailing_meta_loss, MetaStepReport,
    MetaTrainer, WeightedLoss,
};
use convergent_l2o::models::BackgroundWriter;
use convergent_l2o::optim::{LearnedOptimizer, UnconstrainedL2O};
use convergent_l2o::problems::ProblemFamily;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Meta-trains `opt` for `meta_steps` meta-steps (continuing from `<file>.ckpt` with
/// `resume`), with a checkpoint after every meta-step and the meta-loss history in
/// `meta_<file>.csv`; writes the final meta-parameters to `<file>.params`. A non-finite
/// meta-step is reported and ends training with the last good meta-parameters.
pub(crate) fn meta_train(
    opt: &mut dyn LearnedOptimizer<f32>,
    file: &str,
    meta_steps: usize,
    s: &Settings,
    family: &dyn ProblemFamily<f32>,
    out: &Path,
    resume: bool,
) -> Res<Vec<MetaStepReport>> {
    let ckpt = out.join(format!("{file}.ckpt"));
    let history_path = out.join(format!("meta_{file}.csv"));
    let mut trainer = MetaTrainer::new(s.meta, s.gradient_estimator(), WeightedLoss::PAPER)?;
    if resume && ckpt.exists() {
        load_checkpoint(&ckpt, &mut trainer, opt)?;
        write_file(&history_path, &history_csv(trainer.history()))?;
        println!(
            "{}: resumed from {} at meta-step {}",
            opt.name(),
            ckpt.display(),
            trainer.meta_step()
        );
    }
    let pb = bar(meta_steps, &format!("meta-train {}", opt.name()));
    pb.set_position(trainer.meta_step().min(meta_steps) as u64);
    // Each meta-step's checkpoint and history are written while the next one computes; all
    // are on disk before this returns (the restarts' choice reads them back).
    let mut writer = BackgroundWriter::new();
    while trainer.meta_step() < meta_steps {
        let t0 = Instant::now();
        match trainer.step(opt, family) {
            Ok(r) => {
                save_checkpoint_in(&mut writer, &ckpt, &trainer, opt)?;
                pb.set_message(format!("meta-loss {:.4}", r.meta_loss));
                pb.inc(1);
                say(
                    &pb,
                    format!(
                        "  {} meta-step {:3}  meta-loss {:.5}  mean f(x_T) {:.4}  |grad| {:.3e}  {:.2} s",
                        opt.name(),
                        r.meta_step + 1,
                        r.meta_loss,
                        r.final_loss,
                        r.grad_norm,
                        t0.elapsed().as_secs_f64()
                    ),
                );
                if let Some(w) = &r.warning {
                    say(&pb, format!("  {}: warning: {w}", opt.name()));
                }
                let history = history_csv(trainer.history()).into_bytes();
                writer.write(&history_path, history)?;
            }
            Err(e) => {
                say(
                    &pb,
                    format!(
                        "  {}: {e}; meta-training stops at meta-step {} with the last finite meta-parameters",
                        opt.name(),
                        trainer.meta_step()
                    ),
                );
                break;
            }
        }
    }
    pb.finish();
    writer.finish()?;
    opt.params().save(&out.join(format!("{file}.params")))?;
    Ok(trainer.history().to_vec())
}

/// Meta-steps whose mean meta-loss ranks the LSTM's restarts (the last ones of the pilot).
pub(crate) const SELECTION_WINDOW: usize = 25;

/// The LSTM optimizer, meta-trained from `s.lstm_restarts` initializations (seeds `seed + 1`,
/// `seed + 2`, ...) on the same draws for `s.lstm_pilot_steps` meta-steps each (files
/// `lstm_init<r>.*`); the one with the lowest mean meta-loss over the pilot's last
/// [`SELECTION_WINDOW`] meta-steps goes on to `s.lstm_meta_steps`. Writes `lstm.params` and
/// `meta_lstm.csv` (the chosen one's) and `lstm_restarts.csv` (every restart's pilot score).
pub(crate) fn meta_train_lstm(
    s: &Settings,
    family: &dyn ProblemFamily<f32>,
    out: &Path,
    resume: bool,
) -> Res<(UnconstrainedL2O<f32>, Vec<MetaStepReport>)> {
    let restarts = s.lstm_restarts;
    let pilot = if restarts > 1 {
        s.lstm_pilot_steps.min(s.lstm_meta_steps)
    } else {
        s.lstm_meta_steps
    };
    let mut candidates = Vec::with_capacity(restarts);
    for r in 0..restarts {
        let init_seed = s.seed.wrapping_add(1 + r as u64);
        let mut lstm = UnconstrainedL2O::<f32>::paper(&mut StdRng::seed_from_u64(init_seed))?;
        let h = meta_train(&mut lstm, &restart_file(r), pilot, s, family, out, resume)?;
        candidates.push((init_seed, lstm, h));
    }
    let pilots: Vec<&[MetaStepReport]> = candidates
        .iter()
        .map(|(_, _, h)| &h[..pilot.min(h.len())])
        .collect();
    let scores: Vec<f64> = pilots
        .iter()
        .map(|h| trailing_meta_loss(h, SELECTION_WINDOW))
        .collect();
    // No meta-step at all (--lstm-meta-steps 0, or every pilot failed at its first): the
    // first restart, as trained.
    let best = best_restart(&pilots, SELECTION_WINDOW).unwrap_or(0);
    let mut csv = String::from("restart,init_seed,pilot_meta_steps,pilot_meta_loss,chosen\n");
    for (r, ((seed, _, _), score)) in candidates.iter().zip(&scores).enumerate() {
        let _ = writeln!(csv, "{},{seed},{pilot},{score},{}", r + 1, r == best);
    }
    write_file(&out.join("lstm_restarts.csv"), &csv)?;
    let (init_seed, mut lstm, _) = candidates.swap_remove(best);
    if restarts > 1 && pilot > 0 {
        println!(
            "LSTM restarts: mean meta-loss over meta-steps {}..{pilot}: {}; continuing restart \
             {} (init seed {init_seed}) to {} meta-steps",
            pilot.saturating_sub(SELECTION_WINDOW) + 1,
            scores
                .iter()
                .map(|m| format!("{m:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            best + 1,
            s.lstm_meta_steps
        );
    }
    // The chosen restart continues from the checkpoint its pilot left.
    let history = meta_train(
        &mut lstm,
        &restart_file(best),
        s.lstm_meta_steps,
        s,
        family,
        out,
        true,
    )?;
    lstm.params().save(&out.join("lstm.params"))?;
    write_file(&out.join("meta_lstm.csv"), &history_csv(&history))?;
    Ok((lstm, history))
}

/// Checkpoint and output name of restart `r` (from 0).
fn restart_file(r: usize) -> String {
    format!("lstm_init{}", r + 1)
}

fn history_csv(history: &[MetaStepReport]) -> String {
    let mut out = String::from("meta_step,meta_loss,final_loss,grad_norm\n");
    for r in history {
        let _ = writeln!(
            out,
            "{},{},{},{}",
            r.meta_step + 1,
            r.meta_loss,
            r.final_loss,
            r.grad_norm
        );
    }
    out
}
