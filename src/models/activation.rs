//! Elementwise activations selectable at run time.

use crate::tape::{Scalar, Var};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An elementwise nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Activation {
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `max(x, 0)`.
    Relu,
    /// The identity.
    Identity,
}

impl Activation {
    /// Applies the activation to every entry of `x`.
    pub fn apply<'t, T: Scalar>(self, x: Var<'t, T>) -> Var<'t, T> {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Relu => x.relu(),
            Activation::Identity => x,
        }
    }

    /// The three activations of the paper's experiment.
    pub const PAPER: [Activation; 3] = [Activation::Tanh, Activation::Sigmoid, Activation::Relu];
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Identity => "identity",
        })
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" => Ok(Activation::Sigmoid),
            "relu" => Ok(Activation::Relu),
            "identity" => Ok(Activation::Identity),
            other => Err(format!(
                "unknown activation '{other}' (expected tanh, sigmoid, relu or identity)"
            )),
        }
    }
}
