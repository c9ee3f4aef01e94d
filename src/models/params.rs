//! Named parameter matrices: the off-tape state of a model, put on a tape once per meta-step.

use crate::tape::{Scalar, Tape, Var};
use bincode::Options;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether products read `m` transposed often enough, and slowly enough, to keep its transpose
/// on the tape: a weight with a few rows and many columns (the first layer of an MLP on a
/// whole gradient, `3 x 15701`), whose transposed products would otherwise stride by its
/// few rows.
fn is_wide<T: Scalar>(m: &DMatrix<T>) -> bool {
    m.nrows() < crate::kernels::DOT_MIN_INNER && m.ncols() >= 64 * m.nrows()
}

/// An ordered list of named parameter matrices (names follow PyTorch's `module.param`).
///
/// ```
/// use convergent_l2o::models::Params;
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
///
/// let mut p = Params::<f64>::new();
/// p.insert("layer.weight", DMatrix::from_element(2, 3, 0.5));
/// p.insert("layer.bias", DMatrix::zeros(2, 1));
/// assert_eq!(p.num_scalars(), 8);
/// let tape = Tape::new();
/// let bound = p.bind(&tape);
/// assert_eq!(bound.get("layer.weight").shape(), (2, 3));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "", try_from = "StoredParams<T>", into = "StoredParams<T>")]
pub struct Params<T: Scalar> {
    entries: Vec<(String, DMatrix<T>)>,
}

/// The serialized form: explicit shapes, validated on the way in (nalgebra's own
/// deserializer panics on inconsistent shapes).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct StoredParams<T: Scalar> {
    entries: Vec<(String, u64, u64, Vec<T>)>,
}

impl<T: Scalar> From<Params<T>> for StoredParams<T> {
    fn from(p: Params<T>) -> Self {
        let entries = p
            .entries
            .into_iter()
            .map(|(n, m)| {
                let (r, c) = m.shape();
                (n, r as u64, c as u64, m.as_slice().to_vec())
            })
            .collect();
        StoredParams { entries }
    }
}

impl<T: Scalar> TryFrom<StoredParams<T>> for Params<T> {
    type Error = String;
    fn try_from(s: StoredParams<T>) -> Result<Self, String> {
        let mut p = Params::new();
        for (name, rows, cols, data) in s.entries {
            let n = rows.checked_mul(cols).filter(|&n| n == data.len() as u64);
            if n.is_none() {
                return Err(format!(
                    "parameter '{name}' claims {rows} x {cols} but holds {} values",
                    data.len()
                ));
            }
            if p.try_get(&name).is_some() {
                return Err(format!("parameter '{name}' appears twice"));
            }
            p.insert(&name, DMatrix::from_vec(rows as usize, cols as usize, data));
        }
        Ok(p)
    }
}

impl<T: Scalar> Default for Params<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Scalar> Params<T> {
    /// No parameters.
    pub fn new() -> Self {
        Params {
            entries: Vec::new(),
        }
    }

    /// Appends a parameter. Panics if the name is already used (a programming error).
    pub fn insert(&mut self, name: &str, value: DMatrix<T>) {
        assert!(
            self.position(name).is_none(),
            "Params::insert: duplicate parameter name '{name}'"
        );
        self.entries.push((name.to_string(), value));
    }

    /// The value of parameter `name`. Panics if there is none (use [`Params::try_get`]).
    pub fn get(&self, name: &str) -> &DMatrix<T> {
        self.try_get(name)
            .unwrap_or_else(|| panic!("no parameter named '{name}'"))
    }

    /// The value of parameter `name`, if present.
    pub fn try_get(&self, name: &str) -> Option<&DMatrix<T>> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    /// Mutable access to parameter `name`. Panics if there is none.
    pub fn get_mut(&mut self, name: &str) -> &mut DMatrix<T> {
        let i = self
            .position(name)
            .unwrap_or_else(|| panic!("no parameter named '{name}'"));
        &mut self.entries[i].1
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|(n, _)| n == name)
    }

    /// Number of parameter matrices.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total number of scalars (the "parameter count" of papers).
    pub fn num_scalars(&self) -> usize {
        self.entries.iter().map(|(_, m)| m.len()).sum()
    }

    /// Names and values, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &DMatrix<T>)> {
        self.entries.iter().map(|(n, m)| (n.as_str(), m))
    }

    /// Names and values, mutably, in insertion order (to scale a gradient in place, say);
    /// shapes must not change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut DMatrix<T>)> {
        self.entries.iter_mut().map(|(n, m)| (n.as_str(), m))
    }

    /// Every parameter as a tape leaf that gradients can be taken with respect to; wide weights
    /// (fewer than 16 rows, at least 64 columns per row) also keep their transpose on the tape
    /// ([`Tape::param_with_transpose`]) for faster transposed products.
    pub fn bind<'t>(&self, tape: &'t Tape<T>) -> Bound<'t, T> {
        self.bind_with(tape, true)
    }

    /// Every parameter as a constant: evaluation without meta-gradients.
    pub fn bind_constants<'t>(&self, tape: &'t Tape<T>) -> Bound<'t, T> {
        self.bind_with(tape, false)
    }

    fn bind_with<'t>(&self, tape: &'t Tape<T>, trainable: bool) -> Bound<'t, T> {
        let vars = self
            .entries
            .iter()
            .map(|(n, m)| {
                let v = if trainable && is_wide(m) {
                    tape.param_with_transpose(m.clone())
                } else if trainable {
                    tape.param(m.clone())
                } else {
                    tape.constant(m.clone())
                };
                (n.clone(), v)
            })
            .collect();
        Bound { vars }
    }

    /// Appends every parameter of `other` under `prefix.` (composite models).
    pub fn extend_prefixed(&mut self, prefix: &str, other: &Params<T>) {
        for (name, m) in other.iter() {
            self.insert(&format!("{prefix}.{name}"), m.clone());
        }
    }

    /// The parameters whose names start with `prefix.`, with the prefix removed.
    pub fn sub_params(&self, prefix: &str) -> Params<T> {
        let mut out = Params::new();
        let lead = format!("{prefix}.");
        for (name, m) in self.iter() {
            if let Some(rest) = name.strip_prefix(&lead) {
                out.insert(rest, m.clone());
            }
        }
        out
    }

    /// Checks that `self` has exactly the names and shapes of `expected` (same order).
    pub fn check_matches(&self, expected: &Params<T>) -> Result<(), ParamsError> {
        for (name, m) in expected.iter() {
            match self.try_get(name) {
                None => {
                    return Err(ParamsError::Missing {
                        name: name.to_string(),
                    })
                }
                Some(v) if v.shape() != m.shape() => {
                    return Err(ParamsError::Shape {
                        name: name.to_string(),
                        expected: m.shape(),
                        found: v.shape(),
                    })
                }
                Some(_) => {}
            }
        }
        if let Some((name, _)) = self.iter().find(|(n, _)| expected.try_get(n).is_none()) {
            return Err(ParamsError::Unexpected {
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// Writes the parameters with bincode, atomically (temporary file, then rename), so a
    /// killed run never leaves a half-written file.
    pub fn save(&self, path: &Path) -> Result<(), ParamsError> {
        let bytes = bincode_options()
            .serialize(&(FORMAT_TAG, T::NAME, self))
            .map_err(|e| ParamsError::Format {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        write_atomically(path, &bytes).map_err(|error| ParamsError::Io {
            path: path.to_path_buf(),
            error,
        })
    }

    /// Reads parameters written by [`Params::save`]; refuses corrupt, truncated or
    /// other-precision files with an error naming the file.
    pub fn load(path: &Path) -> Result<Self, ParamsError> {
        let bytes = std::fs::read(path).map_err(|error| ParamsError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let format = |detail: String| ParamsError::Format {
            path: path.to_path_buf(),
            detail,
        };
        let corrupt = |e: bincode::Error| format(format!("not a parameter file or corrupt ({e})"));
        let limit = bytes.len() as u64;
        // The header first, so a file of the other precision gets a precise message.
        let (tag, dtype): (String, String) = bincode_options()
            .allow_trailing_bytes()
            .with_limit(limit)
            .deserialize(&bytes)
            .map_err(corrupt)?;
        if tag != FORMAT_TAG {
            return Err(format(format!(
                "format tag '{tag}', expected '{FORMAT_TAG}'"
            )));
        }
        if dtype != T::NAME {
            return Err(format(format!(
                "parameters are {dtype}, but {} was requested",
                T::NAME
            )));
        }
        let (_, _, params): (String, String, Params<T>) = bincode_options()
            .with_limit(limit)
            .deserialize(&bytes)
            .map_err(corrupt)?;
        for (name, m) in params.iter() {
            if let Some(bad) = m.iter().find(|v| !v.is_finite()) {
                return Err(format(format!("parameter '{name}' holds {bad}")));
            }
        }
        Ok(params)
    }
}

const FORMAT_TAG: &str = "convergent-l2o params v1";

/// The bincode settings of every file this library writes: fixed-width integers, and
/// (when reading) a size limit so a corrupt length cannot request a huge allocation.
pub fn bincode_options() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .reject_trailing_bytes()
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// a reader (or a run killed mid-write) sees the old file or the new one, never a part.
/// Temporary files that killed writers of the same file left behind are removed first.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or_else(|| Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temporaries(dir, &file_name);
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let write = kill_point::count();
    kill_point::check(write, false);
    std::fs::rename(&tmp, path)?;
    // The rename itself reaches the disk with the directory (best effort: not every
    // filesystem lets a directory be opened for syncing).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    kill_point::check(write, true);
    Ok(())
}

/// Fault injection for kill tests: with `CONVERGENT_L2O_KILL_AT_WRITE=N` the process aborts
/// (as `kill -9` would: no destructor, no flush) at its N-th atomic write, after the temporary
/// file is written and before the rename; `N:after` aborts right after the rename.
mod kill_point {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    static WRITES: AtomicUsize = AtomicUsize::new(0);

    /// The number of this write (from 1).
    pub fn count() -> usize {
        WRITES.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Aborts if write `n` is the configured kill point (`after`: past the rename).
    pub fn check(n: usize, after: bool) {
        static AT: OnceLock<Option<(usize, bool)>> = OnceLock::new();
        let at = AT.get_or_init(|| {
            let v = std::env::var("CONVERGENT_L2O_KILL_AT_WRITE").ok()?;
            let (n, when) = v.split_once(':').unwrap_or((&v, "before"));
            Some((n.trim().parse().ok()?, when.trim() == "after"))
        });
        if *at == Some((n, after)) {
            std::process::abort();
        }
    }
}

/// Removes `.NAME.tmpPID` files of `dir` whose writer (process PID) no longer runs: what a
/// kill between the write and the rename leaves. Best effort: errors are ignored.
fn remove_stale_temporaries(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.tmp");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix) else {
            continue;
        };
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| p == std::process::id() || Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Parameters on a tape, looked up by name.
#[derive(Clone)]
pub struct Bound<'t, T: Scalar> {
    vars: Vec<(String, Var<'t, T>)>,
}

impl<'t, T: Scalar> Bound<'t, T> {
    /// Parameters given as named variables (gradient checks pass their own leaves this way).
    pub fn from_named(vars: Vec<(String, Var<'t, T>)>) -> Self {
        Bound { vars }
    }

    /// The variable of parameter `name`. Panics if there is none.
    pub fn get(&self, name: &str) -> Var<'t, T> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no bound parameter named '{name}'"))
    }

    /// The variable of parameter `prefix.name`: how a composite model hands each part its
    /// own parameters (`REN.X`, `omega.layer1.weight`, as in the authors' files).
    /// An empty prefix reads `name` itself.
    pub fn get_prefixed(&self, prefix: &str, name: &str) -> Var<'t, T> {
        if prefix.is_empty() {
            self.get(name)
        } else {
            self.get(&format!("{prefix}.{name}"))
        }
    }

    /// All variables, in the order of the [`Params`] they came from (pass to `Tape::grad`).
    pub fn vars(&self) -> Vec<Var<'t, T>> {
        self.vars.iter().map(|(_, v)| *v).collect()
    }

    /// Names and variables, in the order of the [`Params`] they came from.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Var<'t, T>)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), *v))
    }
}

/// Why parameters could not be read or do not fit a model.
#[derive(Debug)]
pub enum ParamsError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The file is not a parameter file of this library, is corrupt, or has another dtype.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A parameter the model needs is absent.
    Missing {
        /// Its name.
        name: String,
    },
    /// A parameter the model does not have is present.
    Unexpected {
        /// Its name.
        name: String,
    },
    /// A parameter has the wrong shape.
    Shape {
        /// Its name.
        name: String,
        /// The shape the model needs.
        expected: (usize, usize),
        /// The shape found.
        found: (usize, usize),
    },
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamsError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            ParamsError::Format { path, detail } => write!(f, "{}: {detail}", path.display()),
            ParamsError::Missing { name } => write!(f, "parameter '{name}' is missing"),
            ParamsError::Unexpected { name } => {
                write!(f, "parameter '{name}' does not belong to this model")
            }
            ParamsError::Shape {
                name,
                expected,
                found,
            } => write!(
                f,
                "parameter '{name}' is {} x {}, expected {} x {}",
                found.0, found.1, expected.0, expected.1
            ),
        }
    }
}

impl std::error::Error for ParamsError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Params<f64> {
        let mut p = Params::new();
        p.insert(
            "a.weight",
            DMatrix::from_fn(3, 2, |i, j| (i * 2 + j) as f64 / 7.0),
        );
        p.insert("a.bias", DMatrix::from_element(3, 1, -0.25));
        p
    }

    #[test]
    fn save_load_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.bin");
        sample().save(&path).unwrap();
        assert_eq!(Params::<f64>::load(&path).unwrap(), sample());
    }

    #[test]
    fn corrupt_truncated_and_wrong_dtype_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.bin");
        sample().save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = Params::<f64>::load(&path).unwrap_err().to_string();
        assert!(err.contains("p.bin") && err.contains("corrupt"), "{err}");
        std::fs::write(&path, b"hello").unwrap();
        assert!(Params::<f64>::load(&path).is_err());
        sample().save(&path).unwrap();
        let err = Params::<f32>::load(&path).unwrap_err().to_string();
        assert!(err.contains("f64") && err.contains("f32"), "{err}");
    }

    #[test]
    fn mismatches_name_the_parameter() {
        let mut other = sample();
        *other.get_mut("a.bias") = DMatrix::zeros(2, 1);
        let err = other.check_matches(&sample()).unwrap_err().to_string();
        assert_eq!(err, "parameter 'a.bias' is 2 x 1, expected 3 x 1");
        let mut extra = sample();
        extra.insert("b.weight", DMatrix::zeros(1, 1));
        assert!(extra
            .check_matches(&sample())
            .unwrap_err()
            .to_string()
            .contains("b.weight"));
    }
}
