//! Models on the tape: building blocks of optimizees and learned optimizers.
//!
//! A model holds no parameter values: it describes its tensors ([`Model`]: names, shapes,
//! initialization) and reads them by name from the variables its caller binds on a tape
//! ([`ParamSource`]). The values live in one [`Params`] owned by the learned optimizer (or
//! whoever trains the model), put on a tape by [`Params::bind`] (trainable leaves) or
//! [`Params::bind_constants`] (evaluation).

mod activation;
mod background_write;
pub mod lstm;
pub mod mlp;
mod params;
pub mod ren;
mod safetensors;
mod spec;

pub use activation::Activation;
pub use background_write::{BackgroundWriter, WriteError};
pub use lstm::{
    CellState, CoordinatewiseConfig, CoordinatewiseLstm, LstmCell, LstmState, Preprocessing,
    StackedLstm, TwoLayerLstm,
};
pub use mlp::{Linear, Mlp, MlpConfig};
pub use params::{bincode_options, write_atomically, Bound, Params, ParamsError};
pub use safetensors::{read_safetensors, write_safetensors, SafetensorsError};
pub use spec::{
    init_from_specs, zeros_from_specs, BuildError, Init, Model, ParamSource, Prefixed, Spec,
};
