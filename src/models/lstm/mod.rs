//! LSTMs with PyTorch's gate layout (`i, f, g, o`), parameter names and initialization, on a
//! batch of rows (`B x features`, state `B x hidden`):
//!
//! - [`LstmCell`]: one `nn.LSTMCell`;
//! - [`StackedLstm`]: cells on top of each other (`nn.LSTM`'s `weight_ih_l0`, ... names);
//! - [`TwoLayerLstm`]: the body of the LSTM optimizer of Martin & Furieri's baseline, on
//!   the whole parameter vector, with learnable initial states;
//! - [`CoordinatewiseLstm`]: Andrychowicz et al.'s optimizer, one LSTM shared by every
//!   coordinate (one row each), with the optional log/sign gradient preprocessing;
//! - [`LstmState`]: the per-trajectory state, as tape variables (recorded) or plain
//!   matrices (kept between unrecorded steps while the tape is truncated).

mod cell;
mod coordinatewise;
mod paper;
mod stacked;
mod state;

pub use cell::LstmCell;
pub use coordinatewise::{CoordinatewiseConfig, CoordinatewiseLstm, Preprocessing};
pub use paper::TwoLayerLstm;
pub use stacked::StackedLstm;
pub use state::{CellState, LstmState};
