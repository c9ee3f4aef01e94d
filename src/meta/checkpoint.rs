//! Checkpoints of meta-training: the meta-parameters, the outer Adam's moments, the meta-step,
//! the estimator's persistent trajectories and the history of reports, in one file written
//! atomically (a kill at any moment leaves the previous checkpoint whole, and what belongs
//! together is never split). The payload carries a checksum; every tensor is matched by name
//! and every value is validated on load, so a damaged or mismatched file is refused with the
//! reason instead of resuming into NaNs.
//!
//! In a distributed run (a trainer with a communicator) both are collective: rank 0 alone
//! writes, with every rank's persistent trajectories gathered by their global index, and tells
//! the others the outcome; rank 0 alone reads, and sends the bytes to the others, so a run
//! resumes on any number of ranks (and needs no shared file system).

use super::estimator::EstimatorState;
use super::trainer::{MetaStepReport, MetaTrainer};
use super::workers::Communicator;
use crate::models::{bincode_options, write_atomically, BackgroundWriter, Params, WriteError};
use crate::optim::LearnedOptimizer;
use crate::problems::all_finite;
use crate::tape::Scalar;
use bincode::Options;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

const TAG: &str = "convergent-l2o checkpoint";
const VERSION: u32 = 2;

/// The header, read first so that another version or precision gets a precise message.
#[derive(Serialize, Deserialize)]
struct Header {
    tag: String,
    version: u32,
    dtype: String,
    checksum: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Payload<T: Scalar> {
    seed: u64,
    meta_step: u64,
    params: Params<T>,
    moments: Option<(Params<T>, Params<T>)>,
    estimator: EstimatorState<T>,
    history: Vec<MetaStepReport>,
}

/// FNV-1a over the payload: detects altered bytes (not an adversary).
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Why a checkpoint could not be written or used.
#[derive(Debug)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The file is not a checkpoint, is corrupt, or is of another version or precision.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The checkpoint does not fit the optimizer or the settings.
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            CheckpointError::Format { path, detail } => {
                write!(f, "{}: not a usable checkpoint: {detail}", path.display())
            }
            CheckpointError::Mismatch { path, detail } => {
                write!(f, "{}: checkpoint does not fit: {detail}", path.display())
            }
        }
    }
}

impl std::error::Error for CheckpointError {}

/// Writes the state of meta-training (atomically: a killed run leaves the previous file). In a
/// distributed run every rank calls it and rank 0 writes; every rank gets rank 0's outcome.
pub fn save_checkpoint<T: Scalar>(
    path: &Path,
    trainer: &MetaTrainer<T>,
    opt: &dyn LearnedOptimizer<T>,
) -> Result<(), CheckpointError> {
    let Some(comm) = trainer.communicator() else {
        return write(path, trainer, opt, trainer.estimator().save());
    };
    let failed = |detail: String| CheckpointError::Io {
        path: path.into(),
        error: std::io::Error::other(detail),
    };
    let comm_failed = |e: super::CommError| failed(e.to_string());
    let estimator = trainer.estimator();
    let state = match estimator.save_share(trainer.workers()) {
        None => (comm.rank() == 0).then(|| estimator.save()),
        Some(mine) if comm.rank() != 0 => {
            let bytes = bincode_options()
                .serialize(&mine)
                .map_err(|e| failed(e.to_string()))?;
            comm.send(0, &bytes).map_err(comm_failed)?;
            None
        }
        Some(mut all) => {
            for r in 1..comm.size() {
                let bytes = comm.receive(r).map_err(comm_failed)?;
                let theirs: Vec<super::ParticleState<T>> = bincode_options()
                    .with_limit(bytes.len() as u64 + 64)
                    .deserialize(&bytes)
                    .map_err(|e| failed(format!("the trajectories of rank {r}: {e}")))?;
                all.extend(theirs);
            }
            Some(super::EstimatorState {
                estimator: estimator.name(),
                particles: all,
            })
        }
    };
    let outcome = match state {
        Some(state) => write(path, trainer, opt, state),
        None => Ok(()),
    };
    let status = match &outcome {
        Err(e) if comm.rank() == 0 => e.to_string().into_bytes(),
        _ => Vec::new(),
    };
    let status = comm.broadcast(0, status).map_err(comm_failed)?;
    match outcome {
        Err(e) => Err(e),
        Ok(()) if status.is_empty() => Ok(()),
        Ok(()) => Err(failed(format!(
            "rank 0 could not write it: {}",
            String::from_utf8_lossy(&status)
        ))),
    }
}

/// [`save_checkpoint`] through `writer`: the checkpoint is encoded now and written on the
/// writer's thread, after the writes handed to it before, while the caller goes on (a
/// distributed run, whose ranks write together, waits for those and writes at once). The
/// error of an earlier write of `writer` is returned here.
pub fn save_checkpoint_in<T: Scalar>(
    writer: &mut BackgroundWriter,
    path: &Path,
    trainer: &MetaTrainer<T>,
    opt: &dyn LearnedOptimizer<T>,
) -> Result<(), CheckpointError> {
    // A failure names the file that failed, which may be an earlier one.
    let failed = |e: WriteError| CheckpointError::Io {
        path: e.path,
        error: e.error,
    };
    if trainer.communicator().is_some() {
        std::mem::take(writer).finish().map_err(failed)?;
        return save_checkpoint(path, trainer, opt);
    }
    let bytes = encode(path, trainer, opt, trainer.estimator().save())?;
    writer.write(path, bytes).map_err(failed)
}

/// Writes a checkpoint of `trainer` and `opt` with the estimator's persistent part `state`.
fn write<T: Scalar>(
    path: &Path,
    trainer: &MetaTrainer<T>,
    opt: &dyn LearnedOptimizer<T>,
    state: super::EstimatorState<T>,
) -> Result<(), CheckpointError> {
    let bytes = encode(path, trainer, opt, state)?;
    write_atomically(path, &bytes).map_err(|error| CheckpointError::Io {
        path: path.into(),
        error,
    })
}

/// The bytes of a checkpoint of `trainer` and `opt` with the estimator's persistent part
/// `state` (a header with a checksum, then the payload).
fn encode<T: Scalar>(
    path: &Path,
    trainer: &MetaTrainer<T>,
    opt: &dyn LearnedOptimizer<T>,
    state: super::EstimatorState<T>,
) -> Result<Vec<u8>, CheckpointError> {
    let format = |e: bincode::Error| CheckpointError::Format {
        path: path.into(),
        detail: e.to_string(),
    };
    let payload = Payload {
        seed: trainer.config().seed,
        meta_step: trainer.meta_step() as u64,
        params: opt.params().clone(),
        moments: trainer.moments.clone(),
        estimator: state,
        history: trainer.history().to_vec(),
    };
    let body = bincode_options().serialize(&payload).map_err(format)?;
    let header = Header {
        tag: TAG.into(),
        version: VERSION,
        dtype: T::NAME.into(),
        checksum: checksum(&body),
    };
    let mut bytes = bincode_options().serialize(&header).map_err(format)?;
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// The checkpoint's bytes: read from `path`, or in a distributed run read by rank 0 and sent
/// to every rank (with rank 0's error, if any, on every rank).
fn read_bytes(path: &Path, comm: Option<&dyn Communicator>) -> Result<Vec<u8>, CheckpointError> {
    let io = |error: std::io::Error| CheckpointError::Io {
        path: path.into(),
        error,
    };
    let Some(comm) = comm else {
        return std::fs::read(path).map_err(io);
    };
    // A tag byte: 0 the file follows, 1 not found, 2 another error (its message follows).
    let message = if comm.rank() == 0 {
        match std::fs::read(path) {
            Ok(mut bytes) => {
                bytes.insert(0, 0);
                bytes
            }
            Err(e) => {
                let tag = if e.kind() == std::io::ErrorKind::NotFound {
                    1
                } else {
                    2
                };
                let mut m = vec![tag];
                m.extend_from_slice(e.to_string().as_bytes());
                m
            }
        }
    } else {
        Vec::new()
    };
    let mut message = comm
        .broadcast(0, message)
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let detail = |m: &[u8]| format!("on rank 0: {}", String::from_utf8_lossy(m));
    match message.first().copied() {
        Some(0) => {
            message.remove(0);
            Ok(message)
        }
        Some(1) => Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            detail(&message[1..]),
        ))),
        _ => Err(io(std::io::Error::other(detail(
            message.get(1..).unwrap_or_default(),
        )))),
    }
}

/// Reads a checkpoint into `opt` and `trainer` (built with this run's settings, at meta-step
/// 0), refusing a file that is corrupt, of another version or precision, or that does not fit
/// (another seed, another estimator, tensors missing, extra or misshapen by name, NaN/Inf
/// values, negative second moments, counters that disagree). In a distributed run every rank
/// calls it and rank 0 reads the file (a missing file is `CheckpointError::Io` of kind
/// `NotFound` on every rank).
pub fn load_checkpoint<T: Scalar>(
    path: &Path,
    trainer: &mut MetaTrainer<T>,
    opt: &mut dyn LearnedOptimizer<T>,
) -> Result<(), CheckpointError> {
    let bytes = read_bytes(path, trainer.communicator())?;
    let format = |detail: String| CheckpointError::Format {
        path: path.into(),
        detail,
    };
    let mismatch = |detail: String| CheckpointError::Mismatch {
        path: path.into(),
        detail,
    };
    let limit = bytes.len() as u64;
    let header: Header = bincode_options()
        .allow_trailing_bytes()
        .with_limit(limit)
        .deserialize(&bytes)
        .map_err(|e| format(format!("unreadable header ({e})")))?;
    if header.tag != TAG {
        return Err(format(format!("tag '{}'", header.tag)));
    }
    if header.version != VERSION {
        return Err(format(format!(
            "version {}, this library reads {VERSION}",
            header.version
        )));
    }
    if header.dtype != T::NAME {
        return Err(format(format!(
            "written in {}, requested {}",
            header.dtype,
            T::NAME
        )));
    }
    let header_len = bincode_options()
        .serialized_size(&header)
        .map_err(|e| format(e.to_string()))? as usize;
    let body = &bytes[header_len.min(bytes.len())..];
    if checksum(body) != header.checksum {
        return Err(format(
            "corrupt or truncated: the checksum of the payload does not match".into(),
        ));
    }
    let payload: Payload<T> = bincode_options()
        .with_limit(limit)
        .deserialize(body)
        .map_err(|e| format(format!("corrupt payload ({e})")))?;
    validate(&payload, trainer, opt).map_err(mismatch)?;
    trainer
        .estimator_mut()
        .restore(payload.estimator)
        .map_err(mismatch)?;
    opt.set_params(payload.params)
        .map_err(|e| mismatch(e.to_string()))?;
    trainer.moments = payload.moments;
    trainer.meta_step = payload.meta_step as usize;
    trainer.history = payload.history;
    Ok(())
}

/// Every check a payload must pass before anything is changed.
fn validate<T: Scalar>(
    p: &Payload<T>,
    trainer: &MetaTrainer<T>,
    opt: &dyn LearnedOptimizer<T>,
) -> Result<(), String> {
    if p.seed != trainer.config().seed {
        return Err(format!(
            "seed is {} in the checkpoint, {} in the settings",
            p.seed,
            trainer.config().seed
        ));
    }
    p.params
        .check_matches(opt.params())
        .map_err(|e| e.to_string())?;
    if let Some((name, _)) = p.params.iter().find(|(_, m)| !all_finite(m)) {
        return Err(format!("meta-parameter '{name}' holds a NaN or Inf"));
    }
    // Counters: one report and one outer Adam step per meta-step.
    if p.meta_step > (1u64 << 53) || p.history.len() as u64 != p.meta_step {
        return Err(format!(
            "meta-step {} with {} reports in the history",
            p.meta_step,
            p.history.len()
        ));
    }
    if let Some(r) = p
        .history
        .iter()
        .enumerate()
        .find(|(i, r)| r.meta_step != *i)
    {
        return Err(format!(
            "report {} is labelled meta-step {}",
            r.0, r.1.meta_step
        ));
    }
    match (&p.moments, p.meta_step) {
        (None, 0) => {}
        (None, k) => return Err(format!("meta-step {k} without the outer Adam's moments")),
        (Some(_), 0) => return Err("moments at meta-step 0".into()),
        (Some((m, v)), _) => {
            for (which, moments) in [("first", m), ("second", v)] {
                moments
                    .check_matches(opt.params())
                    .map_err(|e| format!("{which} moments: {e}"))?;
                if let Some((name, _)) = moments.iter().find(|(_, x)| !all_finite(x)) {
                    return Err(format!("{which} moment of '{name}' holds a NaN or Inf"));
                }
            }
            if let Some((name, _)) = v.iter().find(|(_, x)| x.iter().any(|v| *v < T::zero())) {
                return Err(format!("second moment of '{name}' is negative"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Checkpoints whose bytes were altered but still parse, and payloads with a valid
    //! checksum but inconsistent or non-finite contents: all refused, nothing changed.
    use super::*;
    use crate::meta::{FullBptt, MetaTrainConfig, WeightedLoss};
    use crate::optim::{ConvergentL2O, MagnitudeRen, StepSize};
    use crate::problems::{FamilyFn, InitialPoint, Quadratic, Sampled};
    use nalgebra::DMatrix;
    use rand::{rngs::StdRng, SeedableRng};

    fn setup() -> (MetaTrainer<f64>, ConvergentL2O<f64>) {
        let ren = MagnitudeRen::dense(2, 2, 2, 1.0).unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        let opt = ConvergentL2O::new(2, ren, 4, StepSize::Constant { eta: 0.2 }, &mut rng).unwrap();
        let estimator = FullBptt {
            trajectories: 2,
            horizon: 3,
            second_order: true,
        };
        let config = MetaTrainConfig {
            lr: 1e-2,
            clip: None,
            seed: 1,
        };
        let trainer = MetaTrainer::new(config, estimator, WeightedLoss::PAPER).unwrap();
        (trainer, opt)
    }

    /// A checkpoint after two meta-steps.
    fn trained() -> (MetaTrainer<f64>, ConvergentL2O<f64>) {
        let (mut trainer, mut opt) = setup();
        let family = FamilyFn::new("q", |_, rng: &mut StdRng| {
            let q = Quadratic::<f64>::random(2, 0.5, 1.0, rng);
            Sampled::new(q, InitialPoint::Normal { std: 1.0 }.sample(2, rng))
        });
        for _ in 0..2 {
            trainer.step(&mut opt, &family).unwrap();
        }
        (trainer, opt)
    }

    /// Writes `payload` with a correct header and checksum.
    fn write(path: &Path, payload: &Payload<f64>) {
        let body = bincode_options().serialize(payload).unwrap();
        let header = Header {
            tag: TAG.into(),
            version: VERSION,
            dtype: "f64".into(),
            checksum: checksum(&body),
        };
        let mut bytes = bincode_options().serialize(&header).unwrap();
        bytes.extend_from_slice(&body);
        std::fs::write(path, bytes).unwrap();
    }

    fn payload_of(trainer: &MetaTrainer<f64>, opt: &ConvergentL2O<f64>) -> Payload<f64> {
        Payload {
            seed: trainer.config().seed,
            meta_step: trainer.meta_step() as u64,
            params: opt.params().clone(),
            moments: trainer.moments.clone(),
            estimator: trainer.estimator().save(),
            history: trainer.history().to_vec(),
        }
    }

    fn refused(path: &Path, payload: &Payload<f64>) -> String {
        write(path, payload);
        let (mut trainer, mut opt) = setup();
        let before = opt.params().clone();
        let err = load_checkpoint(path, &mut trainer, &mut opt)
            .unwrap_err()
            .to_string();
        assert_eq!(
            opt.params(),
            &before,
            "a refused checkpoint changes nothing"
        );
        assert_eq!(trainer.meta_step(), 0);
        err
    }

    #[test]
    fn every_altered_byte_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ckpt");
        let (trainer, opt) = trained();
        save_checkpoint(&path, &trainer, &opt).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for i in (0..bytes.len()).step_by(97) {
            let mut altered = bytes.clone();
            altered[i] ^= 0x20;
            std::fs::write(&path, &altered).unwrap();
            let (mut t, mut o) = setup();
            assert!(load_checkpoint(&path, &mut t, &mut o).is_err(), "byte {i}");
        }
    }

    #[test]
    fn inconsistent_payloads_with_a_valid_checksum_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ckpt");
        let (trainer, opt) = trained();
        let good = payload_of(&trainer, &opt);
        write(&path, &good);
        let (mut t, mut o) = setup();
        load_checkpoint(&path, &mut t, &mut o).unwrap();
        assert_eq!(t.meta_step(), 2);

        let mut p = payload_of(&trainer, &opt);
        let (_, v) = p.moments.as_mut().unwrap();
        *v.get_mut("REN.X") = -v.get("REN.X").clone();
        v.get_mut("REN.X")[0] = -1.0;
        assert!(refused(&path, &p).contains("negative"));

        let mut p = payload_of(&trainer, &opt);
        p.moments.as_mut().unwrap().0.get_mut("omega.layers.0.bias")[0] = f64::NAN;
        assert!(refused(&path, &p).contains("NaN or Inf"));

        let mut p = payload_of(&trainer, &opt);
        p.params.get_mut("REN.X")[1] = f64::INFINITY;
        assert!(refused(&path, &p).contains("REN.X"));

        let mut p = payload_of(&trainer, &opt);
        p.meta_step = u64::MAX;
        assert!(refused(&path, &p).contains("meta-step"));

        let mut p = payload_of(&trainer, &opt);
        p.meta_step = 3;
        assert!(refused(&path, &p).contains("reports"));

        let mut p = payload_of(&trainer, &opt);
        p.moments = None;
        assert!(refused(&path, &p).contains("moments"));

        // Parameters in another order load fine: they are matched by name.
        let mut p = payload_of(&trainer, &opt);
        let mut reordered = Params::new();
        let names: Vec<String> = p.params.iter().map(|(n, _)| n.to_string()).collect();
        for n in names.iter().rev() {
            reordered.insert(n, p.params.get(n).clone());
        }
        p.params = reordered;
        write(&path, &p);
        let (mut t, mut o) = setup();
        load_checkpoint(&path, &mut t, &mut o).unwrap();
        assert_eq!(o.params().get("REN.X"), opt.params().get("REN.X"));

        // A tensor of the wrong shape is named.
        let mut p = payload_of(&trainer, &opt);
        *p.params.get_mut("REN.X") = DMatrix::zeros(1, 1);
        assert!(refused(&path, &p).contains("REN.X"));
    }
}
