//! The LSTM optimizer body of Martin & Furieri's baseline (`TwoLayerLSTM` in the original
//! `LSTM_Optimizer.ipynb`): two `nn.LSTMCell`s on the whole input vector, learnable initial
//! states and a linear output.

use super::{CellState, LstmCell, LstmState, StackedLstm};
use crate::models::mlp::{check_params, init_params, BuildError, Init, Linear, ParamSource, Spec};
use crate::models::Params;
use crate::tape::{Scalar, Var};
use rand::Rng;

/// Names of the learnable initial states, `[h, c]` per layer, as in the original code.
const INITIAL_STATES: [[&str; 2]; 2] = [["hidden1_0", "cell1_0"], ["hidden2_0", "cell2_0"]];

/// Standard deviation of the initial states (`torch.randn(1, h) * 0.01` in the original).
const INITIAL_STATE_STD: f64 = 0.01;

/// `input -> LSTMCell(hidden) -> LSTMCell(hidden) -> Linear(output)` with learnable initial
/// states, owning its parameters. Tensor names and shapes are those of the original module:
/// `hidden1_0`, `cell1_0`, `hidden2_0`, `cell2_0` (`1 x h`), `recurs.*`, `recurs2.*`
/// (LSTM cells), `output.weight` (`out x h`), `output.bias` (`out x 1`).
///
/// ```
/// use convergent_l2o::models::TwoLayerLstm;
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// // The paper's body for the 7850-parameter MNIST classifier: 15701 -> 2 -> 2 -> 7850.
/// let body = TwoLayerLstm::<f32>::paper(7850, &mut StdRng::seed_from_u64(0)).unwrap();
/// assert_eq!(body.num_params(), 149_246);
/// let tape = Tape::new();
/// let p = body.params().bind(&tape);
/// let state = body.initial_state(&p, 1);
/// let x = tape.constant(DMatrix::from_element(1, 15701, 0.01)); // [grad, x, f] as a row
/// let (w, state) = body.step(&p, x, &state);
/// assert_eq!((w.shape(), state.output().shape()), ((1, 7850), (1, 2)));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TwoLayerLstm<T: Scalar> {
    stack: StackedLstm,
    output: Linear,
    params: Params<T>,
}

impl<T: Scalar> TwoLayerLstm<T> {
    /// A fresh body: cells and output layer with PyTorch's initialization, initial states
    /// normal with standard deviation 0.01 (as the original); errors on a zero size.
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        output_size: usize,
        rng: &mut impl Rng,
    ) -> Result<Self, BuildError> {
        let (stack, output) = Self::architecture(input_size, hidden_size, output_size)?;
        let params = init_params(&Self::specs(&stack, &output), rng);
        Ok(TwoLayerLstm {
            stack,
            output,
            params,
        })
    }

    /// The paper's body for an optimizee with `n_params` parameters: input `2 n + 1`
    /// (gradient, parameters and loss), hidden size 2, output `n`.
    pub fn paper(n_params: usize, rng: &mut impl Rng) -> Result<Self, BuildError> {
        Self::new(2 * n_params + 1, 2, n_params, rng)
    }

    /// The body of these sizes with given (loaded) parameters; errors naming the first
    /// tensor that is missing, extra or of the wrong shape.
    pub fn from_params(
        input_size: usize,
        hidden_size: usize,
        output_size: usize,
        params: Params<T>,
    ) -> Result<Self, BuildError> {
        let (stack, output) = Self::architecture(input_size, hidden_size, output_size)?;
        check_params("two-layer LSTM", &Self::specs(&stack, &output), &params)?;
        Ok(TwoLayerLstm {
            stack,
            output,
            params,
        })
    }

    fn architecture(
        input_size: usize,
        hidden_size: usize,
        output_size: usize,
    ) -> Result<(StackedLstm, Linear), BuildError> {
        let stack = StackedLstm::from_cells(vec![
            LstmCell::new("recurs", input_size, hidden_size)?,
            LstmCell::new("recurs2", hidden_size, hidden_size)?,
        ])?;
        Ok((stack, Linear::new("output", hidden_size, output_size)?))
    }

    fn specs(stack: &StackedLstm, output: &Linear) -> Vec<Spec> {
        let h = stack.output_size();
        let states = INITIAL_STATES.iter().flatten().map(|name| Spec {
            name: name.to_string(),
            shape: (1, h),
            init: Init::Normal(INITIAL_STATE_STD),
        });
        states.chain(stack.specs()).chain(output.specs()).collect()
    }

    /// The two cells.
    pub fn stack(&self) -> &StackedLstm {
        &self.stack
    }

    /// The output layer.
    pub fn output_layer(&self) -> &Linear {
        &self.output
    }

    /// The parameters (bind them to a tape to run the model).
    pub fn params(&self) -> &Params<T> {
        &self.params
    }

    /// The parameters, mutably, for an outer optimizer; shapes must not change.
    pub fn params_mut(&mut self) -> &mut Params<T> {
        &mut self.params
    }

    /// The parameters, consuming the model.
    pub fn into_params(self) -> Params<T> {
        self.params
    }

    /// Total number of scalars.
    pub fn num_params(&self) -> usize {
        self.params.num_scalars()
    }

    /// The learned initial state, repeated over `batch` rows (1 in the paper).
    pub fn initial_state<'t>(
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
    pub fn step<'t>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        x: Var<'t, T>,
        state: &LstmState<Var<'t, T>>,
    ) -> (Var<'t, T>, LstmState<Var<'t, T>>) {
        let next = self.stack.step(p, x, state);
        (self.output.forward(p, *next.output()), next)
    }
}
