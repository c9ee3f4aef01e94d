//! Checkpoints of meta-training: meta-parameters, Adam's state, the meta-step and the seed
//! (meta-step k's randomness derives from (seed, k), so that is the whole generator state);
//! versioned, written atomically, and refused with a clear error when corrupt or when they do
//! not fit the optimizer or the settings.

use super::{Learned, MetaTrainConfig, MetaTrainer};
use crate::models::{bincode_options, write_atomically, Params, ParamsError};
use crate::optim::AdamState;
use crate::tape::Scalar;
use bincode::Options;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

const TAG: &str = "convergent-l2o checkpoint";
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Stored<T: Scalar> {
    tag: String,
    version: u32,
    dtype: String,
    seed: u64,
    initial_points: u64,
    horizon: u64,
    meta_step: u64,
    params: Params<T>,
    adam_steps: Vec<u32>,
    first_moments: Params<T>,
    second_moments: Params<T>,
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

/// Writes the state of meta-training (atomically: a killed run leaves the previous file).
pub fn save_checkpoint<T: Scalar, L: Learned<T> + ?Sized>(
    path: &Path,
    trainer: &MetaTrainer<T>,
    opt: &L,
) -> Result<(), CheckpointError> {
    let params = opt.params().clone();
    let mut first = Params::new();
    let mut second = Params::new();
    let mut steps = Vec::new();
    for (i, (name, value)) in params.iter().enumerate() {
        let (step, moments) = trainer
            .adam_states()
            .get(i)
            .map(|s| s.parts())
            .unwrap_or((0, None));
        let zeros = || DMatrix::zeros(value.nrows(), value.ncols());
        let (m, v) = moments.cloned().unwrap_or_else(|| (zeros(), zeros()));
        first.insert(name, m);
        second.insert(name, v);
        steps.push(step);
    }
    let c = trainer.config();
    let stored = Stored {
        tag: TAG.into(),
        version: VERSION,
        dtype: T::NAME.into(),
        seed: c.seed,
        initial_points: c.initial_points as u64,
        horizon: c.unroll.horizon as u64,
        meta_step: trainer.meta_step() as u64,
        params,
        adam_steps: steps,
        first_moments: first,
        second_moments: second,
    };
    let bytes = bincode_options()
        .serialize(&stored)
        .map_err(|e| CheckpointError::Format {
            path: path.into(),
            detail: e.to_string(),
        })?;
    write_atomically(path, &bytes).map_err(|error| CheckpointError::Io {
        path: path.into(),
        error,
    })
}

/// Reads a checkpoint into `opt` and returns the trainer to resume with `config`, refusing a
/// file that is corrupt, of another version or precision, or that does not fit.
pub fn load_checkpoint<T: Scalar, L: Learned<T> + ?Sized>(
    path: &Path,
    config: MetaTrainConfig,
    opt: &mut L,
) -> Result<MetaTrainer<T>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|error| CheckpointError::Io {
        path: path.into(),
        error,
    })?;
    let format = |detail: String| CheckpointError::Format {
        path: path.into(),
        detail,
    };
    let mismatch = |detail: String| CheckpointError::Mismatch {
        path: path.into(),
        detail,
    };
    // The header first, so that another version or precision gets a precise message.
    let (tag, version, dtype): (String, u32, String) = bincode_options()
        .allow_trailing_bytes()
        .with_limit(bytes.len() as u64)
        .deserialize(&bytes)
        .map_err(|e| format(format!("unreadable header ({e})")))?;
    if tag != TAG {
        return Err(format(format!("tag '{tag}'")));
    }
    if version != VERSION {
        return Err(format(format!(
            "version {version}, this library reads {VERSION}"
        )));
    }
    if dtype != T::NAME {
        return Err(format(format!("written in {dtype}, requested {}", T::NAME)));
    }
    let stored: Stored<T> = bincode_options()
        .with_limit(bytes.len() as u64)
        .deserialize(&bytes)
        .map_err(|e| format(format!("corrupt or truncated ({e})")))?;
    let expect = |what: &str, found: u64, wanted: u64| {
        if found == wanted {
            Ok(())
        } else {
            Err(mismatch(format!(
                "{what} is {found} in the checkpoint, {wanted} in the settings"
            )))
        }
    };
    expect("seed", stored.seed, config.seed)?;
    expect(
        "initial_points",
        stored.initial_points,
        config.initial_points as u64,
    )?;
    expect("horizon", stored.horizon, config.unroll.horizon as u64)?;
    let fits = |p: &Params<T>| -> Result<(), CheckpointError> {
        p.check_matches(opt.params())
            .map_err(|e: ParamsError| mismatch(e.to_string()))
    };
    fits(&stored.params)?;
    fits(&stored.first_moments)?;
    fits(&stored.second_moments)?;
    if stored.adam_steps.len() != stored.params.len() {
        return Err(format(
            "Adam state count differs from the parameter count".into(),
        ));
    }
    for (name, m) in stored.params.iter() {
        if m.iter().any(|v| !v.is_finite()) {
            return Err(format(format!("parameter '{name}' is not finite")));
        }
    }
    let states = stored
        .adam_steps
        .iter()
        .zip(
            stored
                .first_moments
                .iter()
                .zip(stored.second_moments.iter()),
        )
        .map(|(&step, ((_, m), (_, v)))| {
            AdamState::from_parts(step, (step > 0).then(|| (m.clone(), v.clone())))
        })
        .collect();
    *opt.params_mut() = stored.params;
    MetaTrainer::restore(config, stored.meta_step as usize, states)
        .map_err(|e| mismatch(e.to_string()))
}
