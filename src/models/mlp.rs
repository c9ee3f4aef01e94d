//! Dense layers and multilayer perceptrons, with PyTorch's parameter names, layouts and
//! initialization, so checkpoints of `nn.Linear` stacks map onto them tensor by tensor.
//!
//! Convention of every model in this module and in [`crate::models::lstm`]: **a batch is a
//! matrix of rows**, `B x features`, as in PyTorch. A dense layer computes `x Wᵀ + bᵀ` with
//! `W` stored `out x in` (PyTorch's layout) through a transposed product, which costs no
//! copy. Biases, 1-D tensors in PyTorch, are stored as `out x 1` columns.
//!
//! This file also holds what the MLP and the LSTMs share: [`ParamSource`] (where a forward
//! pass finds its parameters), [`BuildError`], and the initialization specs.

use super::{Activation, Bound, Params, ParamsError};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use std::fmt;

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
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init {
    /// Uniform in `[-bound, bound)` (PyTorch's default for `nn.Linear` and `nn.LSTMCell`).
    Uniform(f64),
    /// Normal with mean 0 and this standard deviation.
    Normal(f64),
}

/// One parameter tensor of a model: its name, shape and initialization.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub name: String,
    pub shape: (usize, usize),
    pub init: Init,
}

/// Draws every tensor of `specs` in order. Values are drawn in f64 and rounded, so f32 and
/// f64 models built from the same seed agree up to rounding.
pub(crate) fn init_params<T: Scalar>(specs: &[Spec], rng: &mut impl Rng) -> Params<T> {
    let mut p = Params::new();
    for s in specs {
        let (r, c) = s.shape;
        let m = match s.init {
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

/// A dense layer `y = x Wᵀ + bᵀ` on a batch of rows, with parameters `<prefix>.weight`
/// (`out x in`) and `<prefix>.bias` (`out x 1`), as PyTorch's `nn.Linear`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linear {
    weight: String,
    bias: String,
    in_features: usize,
    out_features: usize,
}

impl Linear {
    /// A layer named `prefix` (empty for bare `weight`/`bias`); errors on a zero size.
    pub fn new(prefix: &str, in_features: usize, out_features: usize) -> Result<Self, BuildError> {
        if in_features == 0 || out_features == 0 {
            return config_error(
                "linear layer",
                format!(
                    "'{prefix}' has sizes {in_features} -> {out_features}; both must be positive"
                ),
            );
        }
        Ok(Linear {
            weight: join(prefix, "weight"),
            bias: join(prefix, "bias"),
            in_features,
            out_features,
        })
    }

    /// Number of input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Number of output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The name of the weight tensor.
    pub fn weight_name(&self) -> &str {
        &self.weight
    }

    /// The name of the bias tensor.
    pub fn bias_name(&self) -> &str {
        &self.bias
    }

    /// Number of scalars, `out * in + out`.
    pub fn num_params(&self) -> usize {
        self.out_features * (self.in_features + 1)
    }

    pub(crate) fn specs(&self) -> Vec<Spec> {
        let bound = 1.0 / (self.in_features as f64).sqrt();
        vec![
            Spec {
                name: self.weight.clone(),
                shape: (self.out_features, self.in_features),
                init: Init::Uniform(bound),
            },
            Spec {
                name: self.bias.clone(),
                shape: (self.out_features, 1),
                init: Init::Uniform(bound),
            },
        ]
    }

    /// Fresh parameters with PyTorch's initialization, uniform in `±1/sqrt(in)` for both.
    pub fn init_params<T: Scalar>(&self, rng: &mut impl Rng) -> Params<T> {
        init_params(&self.specs(), rng)
    }

    /// `x Wᵀ + bᵀ` for a `B x in` batch; panics if `x` does not have `in` columns.
    ///
    /// ```
    /// use convergent_l2o::models::Linear;
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// use rand::{rngs::StdRng, SeedableRng};
    ///
    /// let layer = Linear::new("fc", 3, 2).unwrap();
    /// let mut params = layer.init_params::<f64>(&mut StdRng::seed_from_u64(0));
    /// *params.get_mut("fc.weight") = dmatrix![1.0, 0.0, 2.0; 0.0, 1.0, 0.0];
    /// *params.get_mut("fc.bias") = dmatrix![0.5; -0.5];
    /// let tape = Tape::new();
    /// let x = tape.constant(dmatrix![1.0, 2.0, 3.0]);
    /// let y = layer.forward(&params.bind(&tape), x);
    /// assert_eq!(y.value(), dmatrix![7.5, 1.5]);
    /// ```
    pub fn forward<'t, T: Scalar>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        x: Var<'t, T>,
    ) -> Var<'t, T> {
        assert!(
            x.ncols() == self.in_features,
            "linear layer '{}': input is {} x {}, expected {} columns (one row per sample)",
            self.weight,
            x.nrows(),
            x.ncols(),
            self.in_features
        );
        // The transposed product reads W (out x in) in place: no per-call transpose of a
        // 7850 x 3 or 3 x 15701 weight.
        let bias = p.param(&self.bias).reshape(1, self.out_features);
        x.matmul_t(false, p.param(&self.weight), true)
            .add_broadcast(bias)
    }

    /// `W x + b` for one input given as a column (`in x 1`): [`Linear::forward`] on a one-row
    /// batch, transposed, without reshaping the input or the bias; panics if `x` is not
    /// `in x 1`.
    ///
    /// ```
    /// use convergent_l2o::models::Linear;
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    /// use rand::{rngs::StdRng, SeedableRng};
    ///
    /// let layer = Linear::new("fc", 3, 2).unwrap();
    /// let mut params = layer.init_params::<f64>(&mut StdRng::seed_from_u64(0));
    /// *params.get_mut("fc.weight") = dmatrix![1.0, 0.0, 2.0; 0.0, 1.0, 0.0];
    /// *params.get_mut("fc.bias") = dmatrix![0.5; -0.5];
    /// let tape = Tape::new();
    /// let x = tape.constant(dmatrix![1.0; 2.0; 3.0]);
    /// assert_eq!(layer.forward_column(&params.bind(&tape), x).value(), dmatrix![7.5; 1.5]);
    /// ```
    pub fn forward_column<'t, T: Scalar>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        x: Var<'t, T>,
    ) -> Var<'t, T> {
        assert!(
            x.shape() == (self.in_features, 1),
            "linear layer '{}': input column is {} x {}, expected {} x 1",
            self.weight,
            x.nrows(),
            x.ncols(),
            self.in_features
        );
        p.param(&self.weight).matmul(x) + p.param(&self.bias)
    }
}

/// The architecture of an [`Mlp`]: layer sizes, activations and layer names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// `[in, hidden_1, ..., out]`: at least two positive sizes.
    pub sizes: Vec<usize>,
    /// Activation after every hidden layer.
    pub activation: Activation,
    /// Activation after the last layer (`Identity` for a linear output).
    pub output_activation: Activation,
    /// One name per layer (tensors `<name>.weight`, `<name>.bias`); `None` gives
    /// `layers.0`, `layers.1`, ...
    pub layer_names: Option<Vec<String>>,
}

impl MlpConfig {
    /// Layers `sizes[0] -> sizes[1] -> ...`, `activation` between them, linear output.
    pub fn new(sizes: &[usize], activation: Activation) -> Self {
        MlpConfig {
            sizes: sizes.to_vec(),
            activation,
            output_activation: Activation::Identity,
            layer_names: None,
        }
    }

    /// The paper's Omega for an optimizee with `n_params` parameters: `2 n + 1 -> 3 -> 3 ->
    /// n`, ReLU, linear output, named as the original `SimpleMLP` (`layer1`, `layer2`,
    /// `output_layer`). With `n_params = 7850` it has 78,518 parameters.
    pub fn paper_omega(n_params: usize) -> Self {
        MlpConfig::new(&[2 * n_params + 1, 3, 3, n_params], Activation::Relu).with_layer_names(&[
            "layer1",
            "layer2",
            "output_layer",
        ])
    }

    /// The same configuration with another output activation.
    pub fn with_output_activation(mut self, activation: Activation) -> Self {
        self.output_activation = activation;
        self
    }

    /// The same configuration with explicit layer names (one per layer).
    pub fn with_layer_names(mut self, names: &[&str]) -> Self {
        self.layer_names = Some(names.iter().map(|s| s.to_string()).collect());
        self
    }

    fn layers(&self) -> Result<Vec<Linear>, BuildError> {
        let s = &self.sizes;
        if s.len() < 2 {
            return config_error(
                "MLP",
                format!("sizes {s:?}: need at least an input and an output size"),
            );
        }
        if s.contains(&0) {
            return config_error("MLP", format!("sizes {s:?}: every size must be positive"));
        }
        let n = s.len() - 1;
        let names: Vec<String> = match &self.layer_names {
            None => (0..n).map(|i| format!("layers.{i}")).collect(),
            Some(names) => names.clone(),
        };
        if names.len() != n {
            return config_error(
                "MLP",
                format!("{} layer names for {n} layers (sizes {s:?})", names.len()),
            );
        }
        for (i, name) in names.iter().enumerate() {
            if name.is_empty() || names[..i].contains(name) {
                return config_error("MLP", format!("layer names {names:?}: empty or repeated"));
            }
        }
        (0..n)
            .map(|i| Linear::new(&names[i], s[i], s[i + 1]))
            .collect()
    }
}

/// A multilayer perceptron on a batch of rows, owning its parameters.
///
/// ```
/// use convergent_l2o::models::{Activation, Mlp, MlpConfig};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mlp = Mlp::<f64>::new(MlpConfig::new(&[4, 8, 2], Activation::Tanh),
///                           &mut StdRng::seed_from_u64(1)).unwrap();
/// assert_eq!(mlp.num_params(), 4 * 8 + 8 + 8 * 2 + 2);
/// let tape = Tape::new();
/// let p = mlp.params().bind(&tape);
/// let x = tape.constant(DMatrix::from_element(5, 4, 0.1)); // 5 samples
/// let y = mlp.forward(&p, x);
/// assert_eq!(y.shape(), (5, 2));
/// let grads = tape.grad(&[y.sum()], &p.vars(), false);
/// assert_eq!(grads[0].shape(), (8, 4)); // layers.0.weight, out x in
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp<T: Scalar> {
    config: MlpConfig,
    layers: Vec<Linear>,
    params: Params<T>,
}

impl<T: Scalar> Mlp<T> {
    /// A fresh MLP with PyTorch's initialization (uniform `±1/sqrt(fan_in)`, weights and
    /// biases), drawn from `rng`; errors on an invalid configuration.
    pub fn new(config: MlpConfig, rng: &mut impl Rng) -> Result<Self, BuildError> {
        let layers = config.layers()?;
        let specs: Vec<Spec> = layers.iter().flat_map(Linear::specs).collect();
        let params = init_params(&specs, rng);
        Ok(Mlp {
            config,
            layers,
            params,
        })
    }

    /// The MLP of `config` with given (loaded) parameters; errors naming the first tensor
    /// that is missing, extra or of the wrong shape.
    pub fn from_params(config: MlpConfig, params: Params<T>) -> Result<Self, BuildError> {
        let layers = config.layers()?;
        let specs: Vec<Spec> = layers.iter().flat_map(Linear::specs).collect();
        check_params("MLP", &specs, &params)?;
        Ok(Mlp {
            config,
            layers,
            params,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// The parameters (bind them to a tape to run the model).
    pub fn params(&self) -> &Params<T> {
        &self.params
    }

    /// The parameters, mutably, for an outer optimizer; shapes must not change.
    pub fn params_mut(&mut self) -> &mut Params<T> {
        &mut self.params
    }

    /// The parameters, consuming the model (to save them, say).
    pub fn into_params(self) -> Params<T> {
        self.params
    }

    /// Total number of scalars.
    pub fn num_params(&self) -> usize {
        self.params.num_scalars()
    }

    /// Outputs (`B x out`) of a batch of inputs (`B x in`, one row per sample).
    pub fn forward<'t>(&self, p: &(impl ParamSource<'t, T> + ?Sized), x: Var<'t, T>) -> Var<'t, T> {
        self.through_layers(x, |layer, h| layer.forward(p, h))
    }

    /// Applies every layer (by `layer`) and its activation, input first.
    fn through_layers<'t>(
        &self,
        x: Var<'t, T>,
        layer: impl Fn(&Linear, Var<'t, T>) -> Var<'t, T>,
    ) -> Var<'t, T> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(x, |h, (i, l)| {
            let a = layer(l, h);
            if i == last {
                self.config.output_activation.apply(a)
            } else {
                self.config.activation.apply(a)
            }
        })
    }

    /// Output (`out x 1`) of one input given as a column (`in x 1`), the layout of the
    /// optimizee's flat parameters: every layer computes `W h + b` on columns, so nothing is
    /// reshaped or transposed (the same numbers as [`Mlp::forward`] on a one-row batch).
    pub fn forward_column<'t>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        x: Var<'t, T>,
    ) -> Var<'t, T> {
        let (n_in, n_out) = (self.config.sizes[0], *self.config.sizes.last().unwrap());
        assert!(
            x.shape() == (n_in, 1),
            "MLP forward_column: input is {} x {}, expected {n_in} x 1",
            x.nrows(),
            x.ncols()
        );
        let y = self.through_layers(x, |layer, h| layer.forward_column(p, h));
        debug_assert_eq!(y.shape(), (n_out, 1));
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn invalid_configurations_are_refused_with_a_message() {
        let mut rng = StdRng::seed_from_u64(0);
        let err = |c: MlpConfig| {
            Mlp::<f64>::new(c, &mut rng.clone())
                .unwrap_err()
                .to_string()
        };
        assert!(err(MlpConfig::new(&[3], Activation::Relu)).contains("at least"));
        assert!(err(MlpConfig::new(&[3, 0, 2], Activation::Relu)).contains("positive"));
        let names = MlpConfig::new(&[3, 2], Activation::Relu).with_layer_names(&["a", "b"]);
        assert!(err(names).contains("2 layer names for 1 layers"));
        let repeated = MlpConfig::new(&[3, 2, 2], Activation::Relu).with_layer_names(&["a", "a"]);
        assert!(err(repeated).contains("repeated"));
        assert!(Mlp::<f64>::new(MlpConfig::new(&[3, 2], Activation::Relu), &mut rng).is_ok());
    }

    #[test]
    fn initialization_respects_pytorch_bounds() {
        let mlp = Mlp::<f64>::new(
            MlpConfig::new(&[100, 4, 1], Activation::Tanh),
            &mut StdRng::seed_from_u64(3),
        )
        .unwrap();
        for (name, m) in mlp.params().iter() {
            let fan_in = if name.starts_with("layers.0") {
                100.0
            } else {
                4.0
            };
            let bound = 1.0 / f64::sqrt(fan_in);
            assert!(m.iter().all(|v| v.abs() <= bound), "{name}");
        }
        // Weights of the first layer fill their range (400 draws).
        let w = mlp.params().get("layers.0.weight");
        assert!(w.max() > 0.08 && w.min() < -0.08);
    }
}
