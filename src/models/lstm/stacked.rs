//! LSTM cells stacked: each layer's hidden state is the next layer's input.

use super::{CellState, LstmCell, LstmState};
use crate::models::spec::{config_error, Model, ParamSource, Spec};
use crate::models::BuildError;
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;

/// A stack of [`LstmCell`]s; one [`step`](StackedLstm::step) advances every layer once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackedLstm {
    cells: Vec<LstmCell>,
}

impl StackedLstm {
    /// Layers of the given hidden sizes on `input_size` features, named as PyTorch's
    /// `nn.LSTM` inside a module `prefix` (`<prefix>.weight_ih_l0`, ...).
    pub fn new(
        prefix: &str,
        input_size: usize,
        hidden_sizes: &[usize],
    ) -> Result<Self, BuildError> {
        let mut cells = Vec::with_capacity(hidden_sizes.len());
        let mut n_in = input_size;
        for (k, &h) in hidden_sizes.iter().enumerate() {
            cells.push(LstmCell::lstm_layer(prefix, k, n_in, h)?);
            n_in = h;
        }
        Self::from_cells(cells)
    }

    /// A stack of given cells (with their own names, as the paper's `recurs`, `recurs2`);
    /// errors if there are none, if sizes do not chain, or if names repeat.
    pub fn from_cells(cells: Vec<LstmCell>) -> Result<Self, BuildError> {
        if cells.is_empty() {
            return config_error("stacked LSTM", "it needs at least one layer".into());
        }
        for (k, pair) in cells.windows(2).enumerate() {
            if pair[1].input_size() != pair[0].hidden_size() {
                return config_error(
                    "stacked LSTM",
                    format!(
                        "layer {} takes {} inputs but layer {k} outputs {}",
                        k + 1,
                        pair[1].input_size(),
                        pair[0].hidden_size()
                    ),
                );
            }
        }
        let specs: Vec<Spec> = cells.iter().flat_map(LstmCell::specs).collect();
        for (i, s) in specs.iter().enumerate() {
            if specs[..i].iter().any(|o| o.name == s.name) {
                return config_error("stacked LSTM", format!("tensor '{}' appears twice", s.name));
            }
        }
        Ok(StackedLstm { cells })
    }

    /// The layers, bottom first.
    pub fn cells(&self) -> &[LstmCell] {
        &self.cells
    }

    /// Number of input features.
    pub fn input_size(&self) -> usize {
        self.cells[0].input_size()
    }

    /// Hidden size of each layer, bottom first.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        self.cells.iter().map(LstmCell::hidden_size).collect()
    }

    /// Hidden size of the top layer (the width of the output).
    pub fn output_size(&self) -> usize {
        self.cells[self.cells.len() - 1].hidden_size()
    }

    /// Zero states for `batch` rows.
    pub fn zero_state<T: Scalar>(&self, batch: usize) -> LstmState<DMatrix<T>> {
        LstmState::zeros(batch, &self.hidden_sizes())
    }

    /// Advances every layer once on input `x` (`B x in`); the output is the new state's
    /// [`output`](LstmState::output) (`B x top hidden`). Panics if shapes do not fit.
    pub fn step<'t, T: Scalar>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        x: Var<'t, T>,
        state: &LstmState<Var<'t, T>>,
    ) -> LstmState<Var<'t, T>> {
        assert!(
            state.num_layers() == self.cells.len(),
            "stacked LSTM: state has {} layers, the model {}",
            state.num_layers(),
            self.cells.len()
        );
        let mut input = x;
        let mut layers: Vec<CellState<Var<'t, T>>> = Vec::with_capacity(self.cells.len());
        for (cell, s) in self.cells.iter().zip(&state.layers) {
            let next = cell.step(p, input, *s);
            input = next.h;
            layers.push(next);
        }
        LstmState { layers }
    }
}

impl Model for StackedLstm {
    fn kind(&self) -> &'static str {
        "stacked LSTM"
    }
    /// The cells' tensors, bottom layer first (PyTorch's initialization).
    fn specs(&self) -> Vec<Spec> {
        self.cells.iter().flat_map(LstmCell::specs).collect()
    }
}
