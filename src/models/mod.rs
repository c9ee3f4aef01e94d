//! Models on the tape: building blocks of optimizees and learned optimizers.
//!
//! A model keeps its parameters off the tape in a [`Params`] (serializable, updated by an
//! outer optimizer) and runs on a tape through [`Params::bind`] (trainable leaves) or
//! [`Params::bind_constants`] (evaluation).

mod activation;
pub mod lstm;
pub mod mlp;
mod params;
pub mod ren;
mod safetensors;

pub use activation::Activation;
pub use lstm::{
    CellState, CoordinatewiseConfig, CoordinatewiseLstm, LstmCell, LstmState, Preprocessing,
    StackedLstm, TwoLayerLstm,
};
pub use mlp::{BuildError, Linear, Mlp, MlpConfig, ParamSource, Prefixed};
pub use params::{bincode_options, write_atomically, Bound, Params, ParamsError};
pub use safetensors::{read_safetensors, write_safetensors, SafetensorsError};
