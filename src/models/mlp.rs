//! Dense layers and multilayer perceptrons, with PyTorch's parameter names, layouts and
//! initialization, so checkpoints of `nn.Linear` stacks map onto them tensor by tensor.
//!
//! Convention of every model in this module and in [`crate::models::lstm`]: **a batch is a
//! matrix of rows**, `B x features`, as in PyTorch. A dense layer computes `x Wᵀ + bᵀ` with
//! `W` stored `out x in` (PyTorch's layout) through a transposed product, which costs no
//! copy. Biases, 1-D tensors in PyTorch, are stored as `out x 1` columns.
//!
//! Models hold no parameter values ([`Model`]): a layer or an MLP describes its tensors and
//! reads them, by name, from whatever [`ParamSource`] a forward pass is given.

use super::spec::{config_error, join, Init, Model, ParamSource, Spec};
use super::{Activation, BuildError};
use crate::tape::{Scalar, Var};
use serde::{Deserialize, Serialize};

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

    /// `x Wᵀ + bᵀ` for a `B x in` batch; panics if `x` does not have `in` columns.
    ///
    /// ```
    /// use convergent_l2o::models::{Linear, Model};
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
    /// use convergent_l2o::models::{Linear, Model};
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

impl Model for Linear {
    fn kind(&self) -> &'static str {
        "linear layer"
    }
    /// PyTorch's initialization: weight and bias uniform in `±1/sqrt(in)`.
    fn specs(&self) -> Vec<Spec> {
        let bound = 1.0 / (self.in_features as f64).sqrt();
        vec![
            Spec::new(
                &self.weight,
                (self.out_features, self.in_features),
                Init::Uniform(bound),
            ),
            Spec::new(&self.bias, (self.out_features, 1), Init::Uniform(bound)),
        ]
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

/// A multilayer perceptron on a batch of rows; its parameters live in a [`crate::models::Params`]
/// the caller owns.
///
/// ```
/// use convergent_l2o::models::{Activation, Mlp, MlpConfig, Model};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mlp = Mlp::new(MlpConfig::new(&[4, 8, 2], Activation::Tanh)).unwrap();
/// let params = mlp.init_params::<f64>(&mut StdRng::seed_from_u64(1));
/// assert_eq!(mlp.num_params(), 4 * 8 + 8 + 8 * 2 + 2);
/// let tape = Tape::new();
/// let p = params.bind(&tape);
/// let x = tape.constant(DMatrix::from_element(5, 4, 0.1)); // 5 samples
/// let y = mlp.forward(&p, x);
/// assert_eq!(y.shape(), (5, 2));
/// let grads = tape.grad(&[y.sum()], &p.vars(), false);
/// assert_eq!(grads[0].shape(), (8, 4)); // layers.0.weight, out x in
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    config: MlpConfig,
    layers: Vec<Linear>,
}

impl Model for Mlp {
    fn kind(&self) -> &'static str {
        "MLP"
    }
    fn specs(&self) -> Vec<Spec> {
        self.layers.iter().flat_map(Linear::specs).collect()
    }
}

impl Mlp {
    /// The MLP of `config` (PyTorch's initialization: uniform `±1/sqrt(fan_in)`, weights and
    /// biases); errors on an invalid configuration.
    pub fn new(config: MlpConfig) -> Result<Self, BuildError> {
        let layers = config.layers()?;
        Ok(Mlp { config, layers })
    }

    /// The architecture.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// Outputs (`B x out`) of a batch of inputs (`B x in`, one row per sample).
    pub fn forward<'t, T: Scalar>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        x: Var<'t, T>,
    ) -> Var<'t, T> {
        self.through_layers(x, |layer, h| layer.forward(p, h))
    }

    /// Applies every layer (by `layer`) and its activation, input first.
    fn through_layers<'t, T: Scalar>(
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
    pub fn forward_column<'t, T: Scalar>(
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
        let err = |c: MlpConfig| Mlp::new(c).unwrap_err().to_string();
        assert!(err(MlpConfig::new(&[3], Activation::Relu)).contains("at least"));
        assert!(err(MlpConfig::new(&[3, 0, 2], Activation::Relu)).contains("positive"));
        let names = MlpConfig::new(&[3, 2], Activation::Relu).with_layer_names(&["a", "b"]);
        assert!(err(names).contains("2 layer names for 1 layers"));
        let repeated = MlpConfig::new(&[3, 2, 2], Activation::Relu).with_layer_names(&["a", "a"]);
        assert!(err(repeated).contains("repeated"));
        assert!(Mlp::new(MlpConfig::new(&[3, 2], Activation::Relu)).is_ok());
    }

    #[test]
    fn initialization_respects_pytorch_bounds() {
        let mlp = Mlp::new(MlpConfig::new(&[100, 4, 1], Activation::Tanh)).unwrap();
        let params = mlp.init_params::<f64>(&mut StdRng::seed_from_u64(3));
        for (name, m) in params.iter() {
            let fan_in = if name.starts_with("layers.0") {
                100.0
            } else {
                4.0
            };
            let bound = 1.0 / f64::sqrt(fan_in);
            assert!(m.iter().all(|v| v.abs() <= bound), "{name}");
        }
        // Weights of the first layer fill their range (400 draws).
        let w = params.get("layers.0.weight");
        assert!(w.max() > 0.08 && w.min() < -0.08);
    }
}
