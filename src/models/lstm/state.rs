//! The state an LSTM carries along a trajectory: `(h, c)` per layer.

use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// Hidden and cell state of one layer, each `B x hidden`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellState<H> {
    /// Hidden state (the layer's output).
    pub h: H,
    /// Cell state.
    pub c: H,
}

/// Per-layer states of a stacked LSTM, bottom layer first.
///
/// `H = Var<'t, T>` while recording (gradients flow from one step to the next);
/// `H = DMatrix<T>` to keep the state off the tape between unrecorded steps, so the tape can
/// be truncated after each one and memory stays flat over long evaluations.
///
/// ```
/// use convergent_l2o::models::{LstmState, Model, StackedLstm};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let lstm = StackedLstm::new("", 1, &[4, 4]).unwrap();
/// let params = lstm.init_params::<f64>(&mut StdRng::seed_from_u64(0));
/// let tape = Tape::new();
/// let p = params.bind_constants(&tape);
/// let mark = tape.mark();
/// let mut state = LstmState::zeros(3, &[4, 4]); // 3 sequences, values off the tape
/// for t in 0..100 {
///     let x = tape.constant(DMatrix::from_element(3, 1, t as f64 / 100.0));
///     state = lstm.step(&p, x, &state.to_tape(&tape)).values();
///     tape.truncate(mark); // drop the step, keep the parameters
/// }
/// assert_eq!(tape.len(), 8); // only the 2 x 4 parameter tensors remain
/// assert_eq!(state.output().shape(), (3, 4));
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LstmState<H> {
    /// One state per layer, bottom first.
    pub layers: Vec<CellState<H>>,
}

impl<H> LstmState<H> {
    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The top layer's hidden state: the output of the stack. Panics if there are no layers.
    pub fn output(&self) -> &H {
        &self
            .layers
            .last()
            .expect("LstmState::output: the state has no layers")
            .h
    }
}

impl<T: Scalar> LstmState<DMatrix<T>> {
    /// Zero hidden and cell states for `batch` rows and layers of the given hidden sizes
    /// (PyTorch's default initial state).
    pub fn zeros(batch: usize, hidden_sizes: &[usize]) -> Self {
        let layers = hidden_sizes
            .iter()
            .map(|&n| CellState {
                h: DMatrix::zeros(batch, n),
                c: DMatrix::zeros(batch, n),
            })
            .collect();
        LstmState { layers }
    }

    /// The state as constants on `tape` (the start of a step).
    pub fn to_tape<'t>(&self, tape: &'t Tape<T>) -> LstmState<Var<'t, T>> {
        let layers = self
            .layers
            .iter()
            .map(|s| CellState {
                h: tape.constant(s.h.clone()),
                c: tape.constant(s.c.clone()),
            })
            .collect();
        LstmState { layers }
    }
}

impl<'t, T: Scalar> LstmState<Var<'t, T>> {
    /// Copies of the values, off the tape.
    pub fn values(&self) -> LstmState<DMatrix<T>> {
        let layers = self
            .layers
            .iter()
            .map(|s| CellState {
                h: s.h.value(),
                c: s.c.value(),
            })
            .collect();
        LstmState { layers }
    }

    /// The same values with gradients cut (truncated backpropagation through time).
    pub fn stop_gradient(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|s| CellState {
                h: s.h.stop_gradient(),
                c: s.c.stop_gradient(),
            })
            .collect();
        LstmState { layers }
    }

    /// Number of rows (sequences, or coordinates for a coordinatewise LSTM).
    pub fn batch_size(&self) -> usize {
        self.layers.first().map_or(0, |s| s.h.nrows())
    }
}
