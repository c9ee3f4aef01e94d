//! Models on the tape: building blocks of optimizees and learned optimizers.

mod activation;

pub use activation::Activation;
