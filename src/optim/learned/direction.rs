//! Direction networks of learned optimizers: what proposes `w_t` from `(x_t, ∇f(x_t), f(x_t))`.
//! The same networks serve the unconstrained optimizers (the update is `w_t` itself) and the
//! convergent ones (only `w_t / |w_t|` is used, the magnitude comes from an ℓ2 signal). A new
//! direction network is a type implementing [`Direction`].

use crate::models::{BuildError, CellState};
use crate::models::{
    CoordinatewiseConfig, CoordinatewiseLstm, LstmState, Mlp, MlpConfig, Model, Prefixed, Spec,
    TwoLayerLstm,
};
use crate::optim::OptState;
use crate::tape::{Scalar, Var};

/// Prefix of the names a direction network gives its carried tensors in the optimizer state.
pub const DIRECTION_STATE: &str = "direction";

/// A network proposing the direction `w_t` (a `dim x 1` column) of a learned optimizer.
///
/// Its parameters are read through `p` (the owner's [`crate::models::Params`] seen under the
/// network's prefix); its recurrent state, if any, lives in the optimizer's [`OptState`] under
/// names starting with [`DIRECTION_STATE`], so it is carried, detached, saved and restored
/// with the rest of the state.
pub trait Direction<T: Scalar>: Send + Sync {
    /// A short description ("MLP 15701-3-3-7850", ...).
    fn name(&self) -> String;

    /// The parameter tensors (names relative to the network's prefix).
    fn specs(&self) -> Vec<Spec>;

    /// Puts the carried state of a trajectory starting at `x0` into `state` (nothing for a
    /// feedforward network).
    fn start<'t>(&self, _p: &Prefixed<'_, 't, T>, _x0: Var<'t, T>, _state: &mut OptState<'t, T>) {}

    /// `w_t` at `x` with gradient `g` and loss `f` (1 x 1), advancing the carried state.
    fn propose<'t>(
        &self,
        p: &Prefixed<'_, 't, T>,
        x: Var<'t, T>,
        g: Var<'t, T>,
        f: Var<'t, T>,
        state: &mut OptState<'t, T>,
    ) -> Var<'t, T>;
}

/// The order of the features `x`, `∇f`, `f` in a network's input. The authors' ConvergentL2O
/// notebook feeds Ω with `[x, ∇f, f]`; their LSTM notebook feeds the LSTM with `[∇f, x, f]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureOrder {
    /// `[x, ∇f, f]`.
    PointGradLoss,
    /// `[∇f, x, f]`.
    GradPointLoss,
}

impl FeatureOrder {
    fn stack<'t, T: Scalar>(self, x: Var<'t, T>, g: Var<'t, T>, f: Var<'t, T>) -> Var<'t, T> {
        match self {
            FeatureOrder::PointGradLoss => Var::concat_rows(&[x, g, f]),
            FeatureOrder::GradPointLoss => Var::concat_rows(&[g, x, f]),
        }
    }
}

/// An MLP on the column `[x; ∇f; f]` (`2 dim + 1`) with output `dim` (the paper's Ω).
#[derive(Clone, Debug, PartialEq)]
pub struct MlpDirection {
    mlp: Mlp,
    dim: usize,
}

impl MlpDirection {
    /// The MLP of `config` for `dim`-dimensional problems; errors unless its sizes are
    /// `2 dim + 1 -> ... -> dim`.
    pub fn new(dim: usize, config: MlpConfig) -> Result<Self, BuildError> {
        let (first, last) = (config.sizes.first(), config.sizes.last());
        if first != Some(&(2 * dim + 1)) || last != Some(&dim) {
            return Err(BuildError::Config {
                model: "MLP direction",
                detail: format!(
                    "sizes {:?} for dimension {dim}: need {} inputs and {dim} outputs",
                    config.sizes,
                    2 * dim + 1
                ),
            });
        }
        Ok(MlpDirection {
            mlp: Mlp::new(config)?,
            dim,
        })
    }

    /// The paper's Ω for `dim` parameters: `2 dim + 1 -> 3 -> 3 -> dim`, ReLU, named as the
    /// original `SimpleMLP`.
    pub fn paper(dim: usize) -> Result<Self, BuildError> {
        Self::new(dim, MlpConfig::paper_omega(dim))
    }

    /// The MLP.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }
}

impl<T: Scalar> Direction<T> for MlpDirection {
    fn name(&self) -> String {
        let sizes: Vec<String> = self
            .mlp
            .config()
            .sizes
            .iter()
            .map(|s| s.to_string())
            .collect();
        format!("MLP {}", sizes.join("-"))
    }
    fn specs(&self) -> Vec<Spec> {
        self.mlp.specs()
    }
    fn propose<'t>(
        &self,
        p: &Prefixed<'_, 't, T>,
        x: Var<'t, T>,
        g: Var<'t, T>,
        f: Var<'t, T>,
        _state: &mut OptState<'t, T>,
    ) -> Var<'t, T> {
        debug_assert_eq!(x.nrows(), self.dim);
        self.mlp
            .forward_column(p, FeatureOrder::PointGradLoss.stack(x, g, f))
    }
}

/// The paper's dense 2-layer LSTM on the row of features in `order`, with a linear output to
/// `dim` and learnable initial states (the LSTM baseline of Martin & Furieri).
#[derive(Clone, Debug, PartialEq)]
pub struct PaperLstmDirection {
    body: TwoLayerLstm,
    order: FeatureOrder,
    dim: usize,
}

impl PaperLstmDirection {
    /// For `dim`-dimensional problems with hidden size `hidden` (the paper: 2) and the
    /// features in `order` (the authors' LSTM: `GradPointLoss`).
    pub fn new(dim: usize, hidden: usize, order: FeatureOrder) -> Result<Self, BuildError> {
        Ok(PaperLstmDirection {
            body: TwoLayerLstm::new(2 * dim + 1, hidden, dim)?,
            order,
            dim,
        })
    }

    /// The LSTM body.
    pub fn body(&self) -> &TwoLayerLstm {
        &self.body
    }
}

impl<T: Scalar> Direction<T> for PaperLstmDirection {
    fn name(&self) -> String {
        format!("two-layer LSTM ({})", self.body.stack().output_size())
    }
    fn specs(&self) -> Vec<Spec> {
        self.body.specs()
    }
    fn start<'t>(&self, p: &Prefixed<'_, 't, T>, _x0: Var<'t, T>, state: &mut OptState<'t, T>) {
        store_lstm(state, &self.body.initial_state(p, 1));
    }
    fn propose<'t>(
        &self,
        p: &Prefixed<'_, 't, T>,
        x: Var<'t, T>,
        g: Var<'t, T>,
        f: Var<'t, T>,
        state: &mut OptState<'t, T>,
    ) -> Var<'t, T> {
        let row = self.order.stack(x, g, f).reshape(1, 2 * self.dim + 1);
        let (out, next) = self.body.step(p, row, &load_lstm(state, 2));
        store_lstm(state, &next);
        out.reshape(self.dim, 1)
    }
}

/// The coordinatewise LSTM of Andrychowicz et al. on each coordinate's gradient, shared across
/// coordinates (runs on any dimension).
#[derive(Clone, Debug, PartialEq)]
pub struct CoordinatewiseDirection {
    net: CoordinatewiseLstm,
}

impl CoordinatewiseDirection {
    /// The network of `config`; errors on an invalid configuration.
    pub fn new(config: CoordinatewiseConfig) -> Result<Self, BuildError> {
        Ok(CoordinatewiseDirection {
            net: CoordinatewiseLstm::new(config)?,
        })
    }

    /// The network.
    pub fn net(&self) -> &CoordinatewiseLstm {
        &self.net
    }
}

impl<T: Scalar> Direction<T> for CoordinatewiseDirection {
    fn name(&self) -> String {
        "coordinatewise LSTM".into()
    }
    fn specs(&self) -> Vec<Spec> {
        self.net.specs()
    }
    fn start<'t>(&self, _p: &Prefixed<'_, 't, T>, x0: Var<'t, T>, state: &mut OptState<'t, T>) {
        store_lstm(state, &self.net.initial_state(x0.tape(), x0.nrows()));
    }
    fn propose<'t>(
        &self,
        p: &Prefixed<'_, 't, T>,
        _x: Var<'t, T>,
        g: Var<'t, T>,
        _f: Var<'t, T>,
        state: &mut OptState<'t, T>,
    ) -> Var<'t, T> {
        let layers = self.net.stack().cells().len();
        let (out, next) = self.net.step(p, g, &load_lstm(state, layers));
        store_lstm(state, &next);
        out
    }
}

/// Stores an LSTM state as `direction.h{i}`, `direction.c{i}`.
pub fn store_lstm<'t, T: Scalar>(state: &mut OptState<'t, T>, lstm: &LstmState<Var<'t, T>>) {
    for (i, layer) in lstm.layers.iter().enumerate() {
        state.set(&format!("{DIRECTION_STATE}.h{i}"), layer.h);
        state.set(&format!("{DIRECTION_STATE}.c{i}"), layer.c);
    }
}

/// The LSTM state of `layers` layers stored by [`store_lstm`]; panics if absent.
pub fn load_lstm<'t, T: Scalar>(state: &OptState<'t, T>, layers: usize) -> LstmState<Var<'t, T>> {
    LstmState {
        layers: (0..layers)
            .map(|i| CellState {
                h: state.expect(&format!("{DIRECTION_STATE}.h{i}")),
                c: state.expect(&format!("{DIRECTION_STATE}.c{i}")),
            })
            .collect(),
    }
}
