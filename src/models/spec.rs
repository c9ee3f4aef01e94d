//! What every model shares: how it describes its parameters ([`Model`], [`Spec`]), where a
//! forward pass finds them ([`ParamSource`], [`Prefixed`]), and [`BuildError`].
//!
//! A model holds no parameter values. Its owner (a learned optimizer, say) keeps them in one
//! [`Params`], binds them on a tape, and hands the model the bound variables; so a value lives
//! in one place and is found by name.

use super::{Bound, Params, ParamsError};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use std::fmt;

/// A model that describes its parameter tensors (names, shapes, initialization).
///
/// ```
/// use convergent_l2o::models::{Activation, Mlp, MlpConfig, Model};
/// use rand::{rngs::StdRng, SeedableRng};
/// let mlp = Mlp::new(MlpConfig::new(&[3, 4, 1], Activation::Tanh)).unwrap();
/// let params = mlp.init_params::<f64>(&mut StdRng::seed_from_u64(0));
/// assert_eq!(params.num_scalars(), mlp.num_params());
/// assert!(mlp.check_params(&params).is_ok());
/// ```
pub trait Model {
    /// The model's kind, for error messages ("MLP", "LSTM cell", ...).
    fn kind(&self) -> &'static str;

    /// Every parameter tensor, in a fixed order.
    fn specs(&self) -> Vec<Spec>;

    /// Fresh parameters drawn from `rng` as the specs say (in f64, rounded to `T`, so f32
    /// and f64 models of one seed agree up to rounding).
    fn init_params<T: Scalar>(&self, rng: &mut impl Rng) -> Params<T>
    where
        Self: Sized,
    {
        init_from_specs(&self.specs(), rng)
    }

    /// Checks that `params` holds exactly this model's tensors with their shapes; the error
    /// names the first tensor missing, extra or of the wrong shape.
    fn check_params<T: Scalar>(&self, params: &Params<T>) -> Result<(), BuildError>
    where
        Self: Sized,
    {
        check_params(self.kind(), &self.specs(), params)
    }

    /// Number of scalars.
    fn num_params(&self) -> usize {
        self.specs().iter().map(|s| s.shape.0 * s.shape.1).sum()
    }
}

/// Named parameter variables a forward pass reads: a [`Bound`], or a list of
/// `(name, Var)` pairs (how gradient checks hand in their own leaves).
pub trait ParamSource<'t, T: Scalar> {
    /// The variable of parameter `name`; panics with the name if there is none.
    fn param(&self, name: &str) -> Var<'t, T>;
}

impl<'t, T: Scalar> ParamSource<'t, T> for Bound<'t, T> {
    fn param(&self, name: &str) -> Var<'t, T> {
        self.get(name)
    }
}

/// A [`Bound`] seen through a name prefix: `param("w")` reads `prefix.w`.
pub struct Prefixed<'b, 't, T: Scalar> {
    /// The parameters of the whole composite model.
    pub bound: &'b Bound<'t, T>,
    /// The part's prefix, without the dot.
    pub prefix: &'b str,
}

impl<'t, T: Scalar> ParamSource<'t, T> for Prefixed<'_, 't, T> {
    fn param(&self, name: &str) -> Var<'t, T> {
        self.bound.get_prefixed(self.prefix, name)
    }
}

impl<'t, T: Scalar, S: AsRef<str>> ParamSource<'t, T> for [(S, Var<'t, T>)] {
    fn param(&self, name: &str) -> Var<'t, T> {
        self.iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no parameter variable named '{name}'"))
    }
}

impl<'t, T: Scalar, S: AsRef<str>> ParamSource<'t, T> for Vec<(S, Var<'t, T>)> {
    fn param(&self, name: &str) -> Var<'t, T> {
        self.as_slice().param(name)
    }
}

/// Why a model could not be built: an invalid configuration, or parameters that do not fit.
#[derive(Debug)]
pub enum BuildError {
    /// The configuration is invalid (a zero size, say).
    Config {
        /// The model ("MLP", "LSTM cell", ...).
        model: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Given parameters miss a tensor, have an extra one, or one of the wrong shape.
    Params {
        /// The model.
        model: &'static str,
        /// The mismatch, naming the tensor.
        error: ParamsError,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config { model, detail } => {
                write!(f, "invalid {model} configuration: {detail}")
            }
            BuildError::Params { model, error } => {
                write!(f, "parameters do not fit the {model}: {error}")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Params { error, .. } => Some(error),
            BuildError::Config { .. } => None,
        }
    }
}

pub(crate) fn config_error<R>(model: &'static str, detail: String) -> Result<R, BuildError> {
    Err(BuildError::Config { model, detail })
}

/// How a parameter tensor is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Uniform in `[-bound, bound)` (PyTorch's default for `nn.Linear` and `nn.LSTMCell`).
    Uniform(f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
    /// All zeros.
    Zeros,
}

/// One parameter tensor of a model: its name, shape and initialization.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The name (`layer.weight`, ...).
    pub name: String,
    /// `(rows, cols)`.
    pub shape: (usize, usize),
    /// How it is drawn.
    pub init: Init,
}

impl Spec {
    /// A tensor `name` of `shape` drawn by `init`.
    pub fn new(name: impl Into<String>, shape: (usize, usize), init: Init) -> Self {
        Spec {
            name: name.into(),
            shape,
            init,
        }
    }
}

/// Draws every tensor of `specs` in order. Values are drawn in f64 and rounded, so f32 and
/// f64 models built from the same seed agree up to rounding.
pub fn init_from_specs<T: Scalar>(specs: &[Spec], rng: &mut impl Rng) -> Params<T> {
    let mut p = Params::new();
    for s in specs {
        let (r, c) = s.shape;
        let m = match s.init {
            Init::Zeros => DMatrix::zeros(r, c),
            Init::Uniform(b) => DMatrix::from_fn(r, c, |_, _| T::cast(rng.gen_range(-b..b))),
            Init::Normal(std) => {
                let normal = Normal::new(0.0, std).expect("a finite, positive standard deviation");
                DMatrix::from_fn(r, c, |_, _| T::cast(normal.sample(rng)))
            }
        };
        p.insert(&s.name, m);
    }
    p
}

/// Zero tensors with the names and shapes of `specs` (a template to check loaded parameters
/// against).
pub fn zeros_from_specs<T: Scalar>(specs: &[Spec]) -> Params<T> {
    let mut p = Params::new();
    for s in specs {
        p.insert(&s.name, DMatrix::zeros(s.shape.0, s.shape.1));
    }
    p
}

/// Checks that `params` holds exactly the tensors of `specs`, with their shapes.
pub(crate) fn check_params<T: Scalar>(
    model: &'static str,
    specs: &[Spec],
    params: &Params<T>,
) -> Result<(), BuildError> {
    let mut expected = Params::new();
    for s in specs {
        expected.insert(&s.name, DMatrix::zeros(s.shape.0, s.shape.1));
    }
    params
        .check_matches(&expected)
        .map_err(|error| BuildError::Params { model, error })
}

/// `prefix.name`, or `name` alone for an empty prefix (a bare PyTorch module).
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
