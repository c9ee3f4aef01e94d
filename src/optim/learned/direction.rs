//! Direction networks of learned optimizers: what proposes `w_t` from `(x_t, ∇f(x_t), f(x_t))`.
//! The same networks serve the unconstrained optimizers (the update is `w_t` itself) and the
//! convergent ones (only `w_t / |w_t|` is used, the magnitude comes from an ℓ2 signal).

use crate::models::{
    BuildError, CoordinatewiseConfig, CoordinatewiseLstm, LstmState, Mlp, MlpConfig, Params,
    Prefixed, TwoLayerLstm,
};
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use rand::Rng;

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

/// A direction network for a `dim`-dimensional problem.
#[derive(Clone, Debug, PartialEq)]
pub enum DirectionNet {
    /// An MLP on the column `[x; ∇f; f]` (`2 dim + 1`) with output `dim` (the paper's Ω).
    Mlp(MlpConfig),
    /// The paper's dense 2-layer LSTM on the row of features in `order` with hidden size
    /// `hidden` and a linear output to `dim` (learnable initial states).
    PaperLstm {
        /// Hidden size of both layers (the paper: 2).
        hidden: usize,
        /// Feature order (the authors' LSTM: `GradPointLoss`).
        order: FeatureOrder,
    },
    /// The coordinatewise LSTM of Andrychowicz et al. on each coordinate's gradient, shared
    /// across coordinates.
    Coordinatewise(CoordinatewiseConfig),
}

/// A direction network's model, rebuilt from its parameters for a run.
#[derive(Clone, Debug)]
pub(crate) enum DirectionModel<T: Scalar> {
    Mlp(Mlp<T>),
    PaperLstm(TwoLayerLstm<T>, FeatureOrder),
    Coordinatewise(CoordinatewiseLstm<T>),
}

/// The per-trajectory state of a direction network (LSTM states; nothing for an MLP).
#[derive(Clone)]
pub enum DirectionState<'t, T: Scalar> {
    /// Stateless network.
    Stateless,
    /// Hidden and cell states of an LSTM.
    Lstm(LstmState<Var<'t, T>>),
}

impl<'t, T: Scalar> DirectionState<'t, T> {
    /// The same state with every gradient path cut (truncated BPTT).
    pub fn detach(&mut self) {
        if let DirectionState::Lstm(s) = self {
            *s = s.stop_gradient();
        }
    }

    /// The carried values, off the tape (nothing for a stateless network).
    pub fn values(&self) -> Vec<DMatrix<T>> {
        match self {
            DirectionState::Stateless => Vec::new(),
            DirectionState::Lstm(s) => s
                .layers
                .iter()
                .flat_map(|l| [l.h.value(), l.c.value()])
                .collect(),
        }
    }

    /// Replaces the carried values by constants on `tape` holding `values` (from
    /// [`DirectionState::values`]); panics if their number does not fit.
    pub fn restore(&mut self, tape: &'t Tape<T>, values: &[DMatrix<T>]) {
        match self {
            DirectionState::Stateless => assert!(
                values.is_empty(),
                "DirectionState::restore: a stateless network carries no values"
            ),
            DirectionState::Lstm(s) => {
                assert!(
                    values.len() == 2 * s.layers.len(),
                    "DirectionState::restore: {} values for {} LSTM layers",
                    values.len(),
                    s.layers.len()
                );
                for (layer, hc) in s.layers.iter_mut().zip(values.chunks(2)) {
                    layer.h = tape.constant(hc[0].clone());
                    layer.c = tape.constant(hc[1].clone());
                }
            }
        }
    }
}

impl DirectionNet {
    /// Fresh parameters for a `dim`-dimensional problem.
    pub(crate) fn init_params<T: Scalar>(
        &self,
        dim: usize,
        rng: &mut impl Rng,
    ) -> Result<Params<T>, BuildError> {
        Ok(match self {
            DirectionNet::Mlp(c) => Mlp::<T>::new(c.clone(), rng)?.into_params(),
            DirectionNet::PaperLstm { hidden, .. } => {
                TwoLayerLstm::<T>::new(2 * dim + 1, *hidden, dim, rng)?.into_params()
            }
            DirectionNet::Coordinatewise(c) => {
                CoordinatewiseLstm::<T>::new(c.clone(), rng)?.into_params()
            }
        })
    }

    /// The model with given parameters; an error names a tensor that does not fit.
    pub(crate) fn model<T: Scalar>(
        &self,
        dim: usize,
        params: Params<T>,
    ) -> Result<DirectionModel<T>, BuildError> {
        Ok(match self {
            DirectionNet::Mlp(c) => DirectionModel::Mlp(Mlp::from_params(c.clone(), params)?),
            DirectionNet::PaperLstm { hidden, order } => DirectionModel::PaperLstm(
                TwoLayerLstm::from_params(2 * dim + 1, *hidden, dim, params)?,
                *order,
            ),
            DirectionNet::Coordinatewise(c) => {
                DirectionModel::Coordinatewise(CoordinatewiseLstm::from_params(c.clone(), params)?)
            }
        })
    }
}

impl<T: Scalar> DirectionModel<T> {
    /// The state at the start of a trajectory of a `dim`-dimensional problem.
    pub(crate) fn start<'t>(
        &self,
        p: &Prefixed<'_, 't, T>,
        tape: &'t Tape<T>,
        dim: usize,
    ) -> DirectionState<'t, T> {
        match self {
            DirectionModel::Mlp(_) => DirectionState::Stateless,
            DirectionModel::PaperLstm(m, _) => DirectionState::Lstm(m.initial_state(p, 1)),
            DirectionModel::Coordinatewise(m) => DirectionState::Lstm(m.initial_state(tape, dim)),
        }
    }

    /// `w_t` (a `dim` x 1 column) from `x`, `g` (columns) and `f` (1 x 1); advances the state.
    pub(crate) fn propose<'t>(
        &self,
        p: &Prefixed<'_, 't, T>,
        state: &mut DirectionState<'t, T>,
        x: Var<'t, T>,
        g: Var<'t, T>,
        f: Var<'t, T>,
    ) -> Var<'t, T> {
        let dim = x.nrows();
        match (self, state) {
            (DirectionModel::Mlp(m), _) => m.forward_column(p, Var::concat_rows(&[x, g, f])),
            (DirectionModel::PaperLstm(m, order), DirectionState::Lstm(s)) => {
                let row = order.stack(x, g, f).reshape(1, 2 * dim + 1);
                let (out, next) = m.step(p, row, s);
                *s = next;
                out.reshape(dim, 1)
            }
            (DirectionModel::Coordinatewise(m), DirectionState::Lstm(s)) => {
                let (out, next) = m.step(p, g, s);
                *s = next;
                out
            }
            _ => panic!("direction state does not belong to this network"),
        }
    }
}
