//! Reading and writing [`Params`] as safetensors files (the format of the paper authors'
//! published optimizers): 1-D tensors become `n x 1` columns, 2-D tensors keep PyTorch's
//! row-major `rows x cols` layout; f32 and f64 files are read into either precision (f32 to
//! f64 exactly).

use super::{write_atomically, Params};
use crate::tape::Scalar;
use nalgebra::DMatrix;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a safetensors file could not be read, written, or used for a model.
#[derive(Debug)]
pub enum SafetensorsError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The file is not valid safetensors.
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// A tensor the model needs is absent.
    Missing {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A tensor has the wrong shape.
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The shape the model needs (as the file would store it).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor holds a NaN or an infinity (or a value out of range of the requested
    /// precision): the same rule as [`crate::models::Params::load`].
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
    },
    /// A tensor has a dtype other than F32 or F64.
    Dtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The dtype in the file.
        found: String,
    },
}

impl fmt::Display for SafetensorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SafetensorsError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            SafetensorsError::Format { path, detail } => {
                write!(
                    f,
                    "{}: not a valid safetensors file: {detail}",
                    path.display()
                )
            }
            SafetensorsError::Missing { path, name } => {
                write!(f, "{}: tensor '{name}' is missing", path.display())
            }
            SafetensorsError::Shape {
                path,
                name,
                expected,
                found,
            } => write!(
                f,
                "{}: tensor '{name}' has shape {found:?}, expected {expected:?}",
                path.display()
            ),
            SafetensorsError::Dtype { path, name, found } => write!(
                f,
                "{}: tensor '{name}' has dtype {found}, expected F32 or F64",
                path.display()
            ),
            SafetensorsError::NonFinite { path, name } => write!(
                f,
                "{}: tensor '{name}' holds a NaN or an infinity (or a value out of range of the \
                 requested precision)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SafetensorsError {}

/// The file shape of a parameter: a column is a 1-D tensor.
fn file_shape<T: Scalar>(m: &DMatrix<T>) -> Vec<usize> {
    if m.ncols() == 1 {
        vec![m.nrows()]
    } else {
        vec![m.nrows(), m.ncols()]
    }
}

/// Reads the tensors of `template` (names and shapes) from `path`, refusing a missing tensor,
/// a wrong shape or an unsupported dtype with a message naming it. Extra tensors in the file
/// are ignored (the authors' LSTM file carries an unused `REN.*`).
///
/// ```no_run
/// use convergent_l2o::models::read_safetensors;
/// use convergent_l2o::optim::{ConvergentL2O, LearnedOptimizer, StepSize};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mut opt = ConvergentL2O::<f32>::paper(StepSize::OriginalCode, &mut StdRng::seed_from_u64(0))?;
/// let path = std::path::Path::new("../shared/data/pretrained/convergent_l2o_tanh.safetensors");
/// let trained = read_safetensors(path, opt.params())?;
/// opt.set_params(trained)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_safetensors<T: Scalar>(
    path: &Path,
    template: &Params<T>,
) -> Result<Params<T>, SafetensorsError> {
    let bytes = std::fs::read(path).map_err(|error| SafetensorsError::Io {
        path: path.into(),
        error,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| SafetensorsError::Format {
        path: path.into(),
        detail: e.to_string(),
    })?;
    let mut out = Params::new();
    for (name, like) in template.iter() {
        let view = file.tensor(name).map_err(|_| SafetensorsError::Missing {
            path: path.into(),
            name: name.to_string(),
        })?;
        let expected = file_shape(like);
        if view.shape() != expected.as_slice() {
            return Err(SafetensorsError::Shape {
                path: path.into(),
                name: name.to_string(),
                expected,
                found: view.shape().to_vec(),
            });
        }
        let values: Vec<T> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| T::cast(f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64))
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| T::cast(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
                .collect(),
            other => {
                return Err(SafetensorsError::Dtype {
                    path: path.into(),
                    name: name.to_string(),
                    found: format!("{other:?}"),
                })
            }
        };
        if values.iter().any(|v| !v.is_finite()) {
            return Err(SafetensorsError::NonFinite {
                path: path.into(),
                name: name.to_string(),
            });
        }
        // Row-major in the file (PyTorch), column-major in nalgebra.
        out.insert(
            name,
            DMatrix::from_row_slice(like.nrows(), like.ncols(), &values),
        );
    }
    Ok(out)
}

/// Writes `params` as safetensors (F32 for `f32`, F64 for `f64`; columns as 1-D tensors),
/// atomically, with optional metadata.
pub fn write_safetensors<T: Scalar>(
    path: &Path,
    params: &Params<T>,
    metadata: Option<HashMap<String, String>>,
) -> Result<(), SafetensorsError> {
    let dtype = if T::NAME == "f32" {
        Dtype::F32
    } else {
        Dtype::F64
    };
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .iter()
        .map(|(name, m)| {
            let mut bytes = Vec::with_capacity(m.len() * 8);
            for i in 0..m.nrows() {
                for j in 0..m.ncols() {
                    let v = m[(i, j)].as_f64();
                    if dtype == Dtype::F32 {
                        bytes.extend_from_slice(&(v as f32).to_le_bytes());
                    } else {
                        bytes.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
            (name.to_string(), file_shape(m), bytes)
        })
        .collect();
    let format = |detail: String| SafetensorsError::Format {
        path: path.into(),
        detail,
    };
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| format(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, metadata).map_err(|e| format(e.to_string()))?;
    write_atomically(path, &bytes).map_err(|error| SafetensorsError::Io {
        path: path.into(),
        error,
    })
}
