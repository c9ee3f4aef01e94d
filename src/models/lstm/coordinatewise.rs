//! The coordinatewise LSTM optimizer of Andrychowicz et al. (2016): one small LSTM shared by
//! every coordinate of the optimizee, each coordinate one row of the batch, so its cost is
//! linear in the number of coordinates and it is equivariant to their order.

use super::{LstmState, StackedLstm};
use crate::models::spec::{config_error, Model, ParamSource, Spec};
use crate::models::{BuildError, Linear};
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// How per-coordinate input features are transformed before the LSTM.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Preprocessing {
    /// The features as they are.
    Identity,
    /// Log/sign preprocessing (Andrychowicz et al., Appendix A), as learning-to-learn's
    /// `LogAndSign`: each feature `g` becomes `max(log(|g| + eps) / p, -1)` and
    /// `clamp(g e^p, -1, 1)` (eps the machine epsilon); `k` features give `2k`, the log parts
    /// first. The paper uses `p = 10`.
    LogSign {
        /// Scale of the log; gradients below `e^-p` in magnitude enter through the sign part.
        /// In f32, `e^p` overflows beyond p = 88.
        p: f64,
    },
}

impl Preprocessing {
    /// Log/sign preprocessing with the paper's `p = 10`.
    pub const PAPER: Preprocessing = Preprocessing::LogSign { p: 10.0 };

    /// Number of features after preprocessing `input_features` features.
    pub fn output_features(&self, input_features: usize) -> usize {
        match self {
            Preprocessing::Identity => input_features,
            Preprocessing::LogSign { .. } => 2 * input_features,
        }
    }

    /// Applies the preprocessing to `n x k` features (one row per coordinate).
    ///
    /// ```
    /// use convergent_l2o::models::Preprocessing;
    /// use convergent_l2o::tape::Tape;
    /// use nalgebra::dmatrix;
    ///
    /// let tape = Tape::<f64>::new();
    /// let g = tape.constant(dmatrix![1.0; -1e-6; 0.0]);
    /// let y = Preprocessing::PAPER.apply(g).value();
    /// assert_eq!((y[(0, 0)], y[(0, 1)]), (0.0, 1.0));          // log 1 / 10, clamped sign
    /// assert_eq!(y[(1, 0)], -1.0);                              // log part clamped at -1
    /// assert!((y[(1, 1)] + 1e-6 * 10f64.exp()).abs() < 1e-12); // g e^p
    /// assert_eq!((y[(2, 0)], y[(2, 1)]), (-1.0, 0.0));
    /// ```
    pub fn apply<'t, T: Scalar>(&self, g: Var<'t, T>) -> Var<'t, T> {
        let p = match *self {
            Preprocessing::Identity => return g,
            Preprocessing::LogSign { p } => p,
        };
        let one = T::one();
        // max(y, -1) = relu(y + 1) - 1 and clamp(s, -1, 1) = relu(s + 1) - relu(s - 1) - 1:
        // compositions of existing ops, so every derivative order comes for free.
        let log = g
            .abs()
            .add_scalar(machine_epsilon())
            .log()
            .scale(T::cast(1.0 / p))
            .add_scalar(one)
            .relu()
            .add_scalar(-one);
        let s = g.scale(T::cast(p.exp()));
        let sign = (s.add_scalar(one).relu() - s.add_scalar(-one).relu()).add_scalar(-one);
        Var::concat_cols(&[log, sign])
    }

    fn validate(&self) -> Result<(), BuildError> {
        match *self {
            Preprocessing::LogSign { p } if !(p.is_finite() && p > 0.0) => config_error(
                "coordinatewise LSTM",
                format!("log/sign preprocessing needs a finite p > 0, found {p}"),
            ),
            _ => Ok(()),
        }
    }
}

/// The smallest `e` with `1 + e != 1` (learning-to-learn adds it inside the log).
fn machine_epsilon<T: Scalar>() -> T {
    let two = T::cast(2.0);
    let mut e = T::one();
    while T::one() + e / two != T::one() {
        e /= two;
    }
    e
}

/// The architecture of a [`CoordinatewiseLstm`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordinatewiseConfig {
    /// Features per coordinate before preprocessing (1: the gradient).
    pub input_features: usize,
    /// Hidden size of each LSTM layer, bottom first.
    pub hidden_sizes: Vec<usize>,
    /// Transformation of the features.
    pub preprocessing: Preprocessing,
    /// Factor on the output (learning-to-learn's `scale`: 0.01 in its MNIST setting).
    pub output_scale: f64,
}

impl CoordinatewiseConfig {
    /// Andrychowicz et al.'s network: the gradient only, two layers of 20, log/sign
    /// preprocessing with `p = 10`, output scale 1.
    pub fn andrychowicz() -> Self {
        CoordinatewiseConfig {
            input_features: 1,
            hidden_sizes: vec![20, 20],
            preprocessing: Preprocessing::PAPER,
            output_scale: 1.0,
        }
    }

    fn architecture(&self) -> Result<(StackedLstm, Linear), BuildError> {
        if self.input_features == 0 {
            return config_error(
                "coordinatewise LSTM",
                "input_features must be positive".into(),
            );
        }
        if !self.output_scale.is_finite() {
            return config_error(
                "coordinatewise LSTM",
                format!("output_scale must be finite, found {}", self.output_scale),
            );
        }
        self.preprocessing.validate()?;
        let n_in = self.preprocessing.output_features(self.input_features);
        let stack = StackedLstm::new("lstm", n_in, &self.hidden_sizes)?;
        let output = Linear::new("output", stack.output_size(), 1)?;
        Ok((stack, output))
    }
}

/// One LSTM shared by every coordinate: `lstm.weight_ih_l0`, ... (as PyTorch's `nn.LSTM`) and
/// `output.weight`, `output.bias` (`nn.Linear(h, 1)`), read from the caller's parameters.
///
/// With n coordinates, the state is `n x h` per layer and every product is `n x k` times a
/// fixed `k x 4h`: the cost is linear in n. PyTorch's layout has two bias vectors per layer,
/// so the 2 x 20 network has 5,301 parameters (learning-to-learn's Sonnet LSTM, with one
/// bias, has 5,141).
///
/// ```
/// use convergent_l2o::models::{CoordinatewiseConfig, CoordinatewiseLstm, Model};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let net = CoordinatewiseLstm::new(CoordinatewiseConfig::andrychowicz()).unwrap();
/// assert_eq!(net.num_params(), 5301);
/// let params = net.init_params::<f64>(&mut StdRng::seed_from_u64(0));
/// let tape = Tape::new();
/// let p = params.bind(&tape);
/// let n = 7850;
/// let mut state = net.initial_state(&tape, n);
/// let grad = tape.constant(DMatrix::from_element(n, 1, 1e-3));
/// let (update, next) = net.step(&p, grad, &state);
/// state = next;
/// assert_eq!((update.shape(), state.output().shape()), ((n, 1), (n, 20)));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CoordinatewiseLstm {
    config: CoordinatewiseConfig,
    stack: StackedLstm,
    output: Linear,
}

impl Model for CoordinatewiseLstm {
    fn kind(&self) -> &'static str {
        "coordinatewise LSTM"
    }
    fn specs(&self) -> Vec<Spec> {
        self.stack
            .specs()
            .into_iter()
            .chain(self.output.specs())
            .collect()
    }
}

impl CoordinatewiseLstm {
    /// The network of `config` (PyTorch's initialization); errors on an invalid
    /// configuration.
    pub fn new(config: CoordinatewiseConfig) -> Result<Self, BuildError> {
        let (stack, output) = config.architecture()?;
        Ok(CoordinatewiseLstm {
            config,
            stack,
            output,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &CoordinatewiseConfig {
        &self.config
    }

    /// The LSTM layers.
    pub fn stack(&self) -> &StackedLstm {
        &self.stack
    }

    /// Zero states for `n` coordinates, off the tape.
    pub fn zero_state<T: Scalar>(&self, n: usize) -> LstmState<DMatrix<T>> {
        self.stack.zero_state(n)
    }

    /// Zero states for `n` coordinates, as constants on `tape` (the start of a trajectory).
    pub fn initial_state<'t, T: Scalar>(
        &self,
        tape: &'t Tape<T>,
        n: usize,
    ) -> LstmState<Var<'t, T>> {
        self.zero_state(n).to_tape(tape)
    }

    /// One step: per-coordinate outputs (`n x 1`) for features `n x input_features` (the
    /// gradient as a column, usually), and the next state.
    pub fn step<'t, T: Scalar>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        features: Var<'t, T>,
        state: &LstmState<Var<'t, T>>,
    ) -> (Var<'t, T>, LstmState<Var<'t, T>>) {
        assert!(
            features.ncols() == self.config.input_features,
            "coordinatewise LSTM: features are {} x {}, expected {} columns \
             (one row per coordinate)",
            features.nrows(),
            features.ncols(),
            self.config.input_features
        );
        let x = self.config.preprocessing.apply(features);
        let next = self.stack.step(p, x, state);
        let out = self.output.forward(p, *next.output());
        let out = if self.config.output_scale == 1.0 {
            out
        } else {
            out.scale(T::cast(self.config.output_scale))
        };
        (out, next)
    }
}
