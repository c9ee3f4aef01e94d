//! Recurrent equilibrium networks (RENs, Revay, Wang & Manchester 2023) by direct
//! parametrization: every parameter value gives a model with the guarantee (contraction,
//! incremental ℓ2 gain `γ`, or (Q, S, R) dissipativity), so they can be trained without
//! constraints. See `research/ren_parametrization.md` for the equations.
//!
//! - [`DenseRen`]: any sizes; [`TiedRen`]: the paper's tied-block ℓ2-gain REN for large
//!   `m = p` (7850) that never forms an m x m matrix.
//! - `build` maps the direct parameters to a [`RenModel`] once per parameter update, on the
//!   tape (meta-gradients reach the direct parameters); [`RenModel::step`] then runs a rollout.
//! - [`Certificate`]s check a parameter value numerically (`H ≻ 0`, dissipation on pairs).
//!
//! ```
//! use convergent_l2o::models::ren::{DenseRen, RenDims, RenOptions};
//! use convergent_l2o::tape::Tape;
//! use nalgebra::DMatrix;
//! use rand::{rngs::StdRng, SeedableRng};
//!
//! let ren = DenseRen::lipschitz(RenDims::new(3, 3, 2, 2), 0.3, RenOptions::paper())?;
//! let params = ren.init_params::<f64>(&mut StdRng::seed_from_u64(0), 0.1);
//! let tape = Tape::new();
//! let bound = params.bind(&tape);
//! let model = ren.build(&bound);
//! let delta = tape.constant(DMatrix::from_element(2, 1, 1.0));
//! // Impulse response: delta at t = 0, zero input after; biases decay with 0.95^t.
//! let mut inputs = vec![None; 20];
//! inputs[0] = Some(delta);
//! let (outputs, _) = model.simulate(model.initial_state(), &inputs);
//! let loss = outputs.iter().map(|y| y.square().sum()).reduce(|a, b| a + b).unwrap();
//! let grads = tape.grad(&[loss], &bound.vars(), false); // w.r.t. X, Y, X3, ...
//! assert_eq!(grads.len(), params.len());
//! # Ok::<(), convergent_l2o::models::ren::RenError>(())
//! ```

mod blocks;
mod certificate;
mod config;
mod dense;
mod model;
mod param_map;
mod shapes;
mod supply;
mod tied;

pub use certificate::{Certificate, Pair, Pairs};
pub use config::{BiasPlacement, RenDims, RenError, RenOptions};
pub use dense::DenseRen;
pub use model::{ImplicitMatrices, RenModel};
pub use supply::Supply;
pub use tied::{BlockLayout, TiedRen};
