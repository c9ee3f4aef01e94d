//! One LSTM cell, PyTorch's `nn.LSTMCell`:
//!
//! ```text
//! [i f g o] = x W_ihᵀ + h W_hhᵀ + b_ihᵀ + b_hhᵀ     (row blocks of W: i, f, g, o)
//! c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g)
//! h' = σ(o) ⊙ tanh(c')
//! ```

use super::CellState;
use crate::models::spec::{config_error, join, Init, Model, ParamSource, Spec};
use crate::models::BuildError;
use crate::tape::{Scalar, Var};

/// An LSTM cell on a batch of rows, with parameters `weight_ih` (`4h x in`), `weight_hh`
/// (`4h x h`), `bias_ih`, `bias_hh` (`4h x 1`), gates stacked `i, f, g, o` as in PyTorch.
///
/// ```
/// use convergent_l2o::models::{CellState, LstmCell, Model};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let cell = LstmCell::new("rnn", 3, 2).unwrap();
/// let params = cell.init_params::<f64>(&mut StdRng::seed_from_u64(0));
/// assert_eq!(params.get("rnn.weight_ih").shape(), (8, 3));
/// let tape = Tape::new();
/// let p = params.bind(&tape);
/// let x = tape.constant(DMatrix::from_element(5, 3, 0.5)); // a batch of 5
/// let zero = tape.constant(DMatrix::zeros(5, 2));
/// let next = cell.step(&p, x, CellState { h: zero, c: zero });
/// assert_eq!(next.h.shape(), (5, 2));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LstmCell {
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, with their prefix or layer suffix.
    names: [String; 4],
    input_size: usize,
    hidden_size: usize,
}

const BASE: [&str; 4] = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"];

impl LstmCell {
    /// A cell whose tensors are `<prefix>.weight_ih`, ... (`nn.LSTMCell` inside a module
    /// named `prefix`; an empty prefix gives the bare names). Errors on a zero size.
    pub fn new(prefix: &str, input_size: usize, hidden_size: usize) -> Result<Self, BuildError> {
        Self::with_names(BASE.map(|b| join(prefix, b)), input_size, hidden_size)
    }

    /// Layer `layer` of an `nn.LSTM` named `prefix`: tensors `<prefix>.weight_ih_l<layer>`, ...
    pub fn lstm_layer(
        prefix: &str,
        layer: usize,
        input_size: usize,
        hidden_size: usize,
    ) -> Result<Self, BuildError> {
        let names = BASE.map(|b| join(prefix, &format!("{b}_l{layer}")));
        Self::with_names(names, input_size, hidden_size)
    }

    fn with_names(
        names: [String; 4],
        input_size: usize,
        hidden_size: usize,
    ) -> Result<Self, BuildError> {
        if input_size == 0 || hidden_size == 0 {
            return config_error(
                "LSTM cell",
                format!(
                    "'{}' has input size {input_size} and hidden size {hidden_size}; \
                     both must be positive",
                    names[0]
                ),
            );
        }
        Ok(LstmCell {
            names,
            input_size,
            hidden_size,
        })
    }

    /// Number of input features.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Size of the hidden and cell states.
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Names of `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`, in that order.
    pub fn param_names(&self) -> [&str; 4] {
        [
            &self.names[0],
            &self.names[1],
            &self.names[2],
            &self.names[3],
        ]
    }

    fn cell_specs(&self) -> Vec<Spec> {
        let (n_in, h) = (self.input_size, self.hidden_size);
        let init = Init::Uniform(1.0 / (h as f64).sqrt());
        let shapes = [(4 * h, n_in), (4 * h, h), (4 * h, 1), (4 * h, 1)];
        self.names
            .iter()
            .zip(shapes)
            .map(|(name, shape)| Spec {
                name: name.clone(),
                shape,
                init,
            })
            .collect()
    }

    /// One step: the next state for input `x` (`B x in`) and state `(h, c)` (`B x hidden`).
    ///
    /// Panics with the shapes if they do not fit.
    pub fn step<'t, T: Scalar>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        x: Var<'t, T>,
        state: CellState<Var<'t, T>>,
    ) -> CellState<Var<'t, T>> {
        let (b, n) = x.shape();
        let h = self.hidden_size;
        assert!(
            n == self.input_size && state.h.shape() == (b, h) && state.c.shape() == (b, h),
            "LSTM cell '{}': input is {b} x {n}, state h {:?}, c {:?}; expected {b} x {}, \
             {b} x {h} and {b} x {h}",
            self.names[0],
            state.h.shape(),
            state.c.shape(),
            self.input_size
        );
        let [w_ih, w_hh, b_ih, b_hh] = self.names.each_ref().map(|name| p.param(name));
        // Transposed products read the 4h x in weights in place (no copy of a 8 x 15701).
        let bias = (b_ih + b_hh).reshape(1, 4 * h);
        let gates = (x.matmul_t(false, w_ih, true) + state.h.matmul_t(false, w_hh, true))
            .add_broadcast(bias);
        let block = |k: usize| gates.slice(0, k * h, b, h);
        let (i, f, g, o) = (
            block(0).sigmoid(),
            block(1).sigmoid(),
            block(2).tanh(),
            block(3).sigmoid(),
        );
        let c = f.mul_elem(state.c) + i.mul_elem(g);
        CellState {
            h: o.mul_elem(c.tanh()),
            c,
        }
    }
}

impl Model for LstmCell {
    fn kind(&self) -> &'static str {
        "LSTM cell"
    }
    /// PyTorch's initialization: every tensor uniform in `±1/sqrt(h)`; `4h (in + h + 2)`
    /// scalars.
    fn specs(&self) -> Vec<Spec> {
        self.cell_specs()
    }
}
