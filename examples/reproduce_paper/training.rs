//! Meta-training with a checkpoint after every meta-step: the checkpoint holds the
//! meta-parameters, the outer Adam's state and the meta-loss history together, so a kill at any
//! moment loses nothing; `meta_<file>.csv` is rewritten from it.

use crate::{bar, say, write_file, Res, Settings};
use convergent_l2o::meta::{
    load_checkpoint, save_checkpoint, MetaStepReport, MetaTrainer, WeightedLoss,
};
use convergent_l2o::optim::LearnedOptimizer;
use convergent_l2o::problems::ProblemFamily;
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
    while trainer.meta_step() < meta_steps {
        let t0 = Instant::now();
        match trainer.step(opt, family) {
            Ok(r) => {
                save_checkpoint(&ckpt, &trainer, opt)?;
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
                write_file(&history_path, &history_csv(trainer.history()))?;
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
    opt.params().save(&out.join(format!("{file}.params")))?;
    Ok(trainer.history().to_vec())
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
