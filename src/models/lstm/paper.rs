//! The LSTM optimizer body of Martin & Furieri's baseline (`TwoLayerLSTM` in the original
//! `LSTM_Optimizer.ipynb`): two `nn.LSTMCell`s on the whole input vector, learnable initial
//! states and a linear output.

use super::{CellState, LstmCell, LstmState, StackedLstm};
use crate::models::spec::{Init, Model, ParamSource, Spec};
use crate::models::{BuildError, Linear};
use crate::tape::{Scalar, Var};

/// Names of the learnable initial states, `[h, c]` per layer, as in the original code.
const INITIAL_STATES: [[&str; 2]; 2] = [["hidden1_0", "cell1_0"], ["hidden2_0", "cell2_0"]];

/// Standard deviation of the initial states (`torch.randn(1, h) * 0.01` in the original).
const INITIAL_STATE_STD: f64 = 0.01;

/// `input -> LSTMCell(hidden) -> LSTMCell(hidden) -> Linear(output)` with learnable initial
/// states. Tensor names and shapes are those of the original module: `hidden1_0`, `cell1_0`,
/// `hidden2_0`, `cell2_0` (`1 x h`), `recurs.*`, `recurs2.*` (LSTM cells), `output.weight`
/// (`out x h`), `output.bias` (`out x 1`).
///
/// ```
/// use convergent_l2o::models::{Model, TwoLayerLstm};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// // The paper's body for the 7850-parameter MNIST classifier: 15701 -> 2 -> 2 -> 7850.
/// let body = TwoLayerLstm::paper(7850).unwrap();
/// assert_eq!(body.num_params(), 149_246);
/// let params = body.init_params::<f32>(&mut StdRng::seed_from_u64(0));
/// let tape = Tape::new();
/// let p = params.bind(&tape);
/// let state = body.initial_state(&p, 1);
/// let x = tape.constant(DMatrix::from_element(1, 15701, 0.01)); // [grad, x, f] as a row
/// let (w, state) = body.step(&p, x, &state);
/// assert_eq!((w.shape(), state.output().shape()), ((1, 7850), (1, 2)));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TwoLayerLstm {
    stack: StackedLstm,
    output: Linear,
}

impl Model for TwoLayerLstm {
    fn kind(&self) -> &'static str {
        "two-layer LSTM"
    }
    /// The initial states (normal, standard deviation 0.01, as the original), then the cells
    /// and the output layer (PyTorch's initialization).
    fn specs(&self) -> Vec<Spec> {
        let h = self.stack.output_size();
        let states = INITIAL_STATES
            .iter()
            .flatten()
            .map(|name| Spec::new(*name, (1, h), Init::Normal(INITIAL_STATE_STD)));
        states
            .chain(self.stack.specs())
            .chain(self.output.specs())
            .collect()
    }
}

impl TwoLayerLstm {
    /// The body of these sizes; errors on a zero size.
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        output_size: usize,
    ) -> Result<Self, BuildError> {
        let stack = StackedLstm::from_cells(vec![
            LstmCell::new("recurs", input_size, hidden_size)?,
            LstmCell::new("recurs2", hidden_size, hidden_size)?,
        ])?;
        let output = Linear::new("output", hidden_size, output_size)?;
        Ok(TwoLayerLstm { stack, output })
    }

    /// The paper's body for an optimizee with `n_params` parameters: input `2 n + 1`
    /// (gradient, parameters and loss), hidden size 2, output `n`.
    pub fn paper(n_params: usize) -> Result<Self, BuildError> {
        Self::new(2 * n_params + 1, 2, n_params)
    }

    /// The two cells.
    pub fn stack(&self) -> &StackedLstm {
        &self.stack
    }

    /// The output layer.
    pub fn output_layer(&self) -> &Linear {
        &self.output
    }

    /// The learned initial state, repeated over `batch` rows (1 in the paper).
    pub fn initial_state<'t, T: Scalar>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        batch: usize,
    ) -> LstmState<Var<'t, T>> {
        let h = self.stack.output_size();
        let layers = INITIAL_STATES
            .iter()
            .map(|[hn, cn]| CellState {
                h: p.param(hn).broadcast(batch, h),
                c: p.param(cn).broadcast(batch, h),
            })
            .collect();
        LstmState { layers }
    }

    /// One step on input `x` (`B x in`): the output `B x out` and the next state.
    pub fn step<'t, T: Scalar>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        x: Var<'t, T>,
        state: &LstmState<Var<'t, T>>,
    ) -> (Var<'t, T>, LstmState<Var<'t, T>>) {
        let next = self.stack.step(p, x, state);
        (self.output.forward(p, *next.output()), next)
    }
}
