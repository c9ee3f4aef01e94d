//! A convergent learned optimizer for any model: Martin & Furieri's split
//! `x_{t+1} = x_t - η_t ∇f(x_t) + v_t`, `v_t = a_t w_t / |w_t|`, where
//!
//! - the direction `w_t` comes from one small network applied to every coordinate with shared
//!   weights (gradient, momenta at three time scales, second moment, parameter, each
//!   normalized per tensor; time and `f/f0` features), so it runs on a model of any size;
//! - the magnitude `a_t` comes from a REN of small fixed size (ℓ2-stable, decaying biases)
//!   driven by an impulse that summarizes the initial point (`|x0|/√n`, `f(x0)`, `|∇f(x0)|`,
//!   `ln n`), scaled by `√n`: `Σ_t |z_t|² < ∞` for every meta-parameter value, on every model.
//!
//! Which theorem it meets is the step-size rule's choice ([`AnyStepRule`]):
//! - **Theorem 1** (full gradients, `f` β-smooth): constant `η < 1/β` (checked against the
//!   problem's smoothness when known) and `a_t = √n e^c |z_t|`, so `Σ|v_t|² < ∞` and Lemma 1
//!   certifies each run;
//! - **Theorem 2** (minibatches, cyclic): `η_t = scale/(offset + t)^power` with
//!   `1/2 < power <= 1` and `a_t = η_t (η_t/η_0)(√n e^c |z_t| + D σ(d) |∇f_i(x_t)|)`. In the
//!   form (16) `x_{t+1} = x_t - η_t(∇f_i(x_t) + u_t)`, `u_t = -a_t ŵ_t / η_t` satisfies (15),
//!   `|u_t| <= η_t (C + D' |∇f_i(x_t)|)` with `C = √n e^c sup|z| / η_0`, `D' = D/η_0`: by
//!   construction, for every meta-parameter value (`D` is fixed by the configuration).

use super::coord_net;
use super::StepSize;
use crate::models::ren::{BiasPlacement, DenseRen, RenDims, RenModel, RenOptions};
use crate::models::{init_from_specs, read_safetensors, write_atomically, write_safetensors};
use crate::models::{Activation, Bound, Params, ParamsError};
use crate::optim::{
    Evaluation, HyperError, LearnedOptimizer, OptState, OptimError, Optimizer, Oracle, StepInfo,
};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The step-size rule and the theorem it meets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "theorem")]
pub enum AnyStepRule {
    /// Theorem 1: constant `0 < η < 1/β`, `|v_t| = √n e^c |z_t|`.
    Theorem1 {
        /// The step size η.
        eta: f64,
    },
    /// Theorem 2: `η_t = scale/(offset + t)^power`, `1/2 < power <= 1`, and `|v_t|` bounded
    /// by `η_t (η_t/η_0)(√n e^c |z_t| + grad_bound |∇f|)`.
    Theorem2 {
        /// Numerator of η_t.
        scale: f64,
        /// Offset of t.
        offset: f64,
        /// Exponent.
        power: f64,
        /// `D`: the largest factor of `|∇f|` in the magnitude (the learned one is `D σ(d)`).
        grad_bound: f64,
    },
}

impl AnyStepRule {
    /// The rule of `examples/transfer`: Theorem 2 with `η_t = 0.1 (100/(100 + t))^0.75` and
    /// `D = 10`.
    pub const TRANSFER: AnyStepRule = AnyStepRule::Theorem2 {
        scale: 3.1622776601683795,
        offset: 100.0,
        power: 0.75,
        grad_bound: 10.0,
    };

    /// The library's [`StepSize`] for `η_t` (validated: Theorem 1's `η < 1/β` when `beta` is
    /// known, Theorem 2's schedule in ℓ2 but not ℓ1, a finite `D >= 0`).
    pub fn step_size(&self, beta: Option<f64>) -> Result<StepSize, HyperError> {
        match *self {
            AnyStepRule::Theorem1 { eta } => StepSize::Constant { eta }.validated(beta),
            AnyStepRule::Theorem2 {
                scale,
                offset,
                power,
                grad_bound,
            } => {
                crate::optim::check_range(
                    "Theorem 2 (15)",
                    "grad_bound",
                    grad_bound,
                    0.0,
                    true,
                    f64::INFINITY,
                    false,
                )?;
                StepSize::Decaying {
                    scale,
                    offset,
                    power,
                }
                .validated(None)
            }
        }
    }
}

/// The configuration of a [`ConvergentAnyL2O`] (what its JSON file holds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnyConfig {
    /// Hidden width of the per-coordinate network.
    pub hidden: usize,
    /// REN states.
    pub ren_states: usize,
    /// REN neurons.
    pub ren_neurons: usize,
    /// REN outputs (`z_t` has this size).
    pub ren_outputs: usize,
    /// The REN's ℓ2 gain γ.
    pub gamma: f64,
    /// The REN's biases decay as `bias_decay^t` (< 1: an ℓ2 signal even without input).
    pub bias_decay: f64,
    /// The step-size rule.
    pub rule: AnyStepRule,
}

impl Default for AnyConfig {
    /// Hidden width 16, a REN with 8 states, 8 neurons and 4 outputs, γ = 1, biases decaying
    /// as 0.995^t, [`AnyStepRule::TRANSFER`].
    fn default() -> Self {
        AnyConfig {
            hidden: 16,
            ren_states: 8,
            ren_neurons: 8,
            ren_outputs: 4,
            gamma: 1.0,
            bias_decay: 0.995,
            rule: AnyStepRule::TRANSFER,
        }
    }
}

/// Inputs of the REN's impulse: `|x0|/√n`, `ln(1 + f(x0))`, `ln(1 + |∇f(x0)|)`, `ln(n)/10`.
const IMPULSE_SIZE: usize = 4;
const REN_STATE: &str = "ren";
const START_LOSS: &str = "any.f0";

/// Why a [`ConvergentAnyL2O`] could not be built, saved or loaded.
#[derive(Debug)]
pub struct AnyError(pub String);

impl std::fmt::Display for AnyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConvergentAnyL2O: {}", self.0)
    }
}

impl std::error::Error for AnyError {}

/// The dimension-agnostic convergent learned optimizer (module docs): meta-parameters `net.*`
/// (the per-coordinate network), `REN.*` (the magnitude REN) and `scale.c`, `scale.d`.
///
/// ```
/// use convergent_l2o::eval::{run, RunConfig};
/// use convergent_l2o::optim::{AnyConfig, AnyStepRule, ConvergentAnyL2O, Frozen};
/// use convergent_l2o::problems::Quadratic;
/// use nalgebra::{dmatrix, DMatrix};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let config = AnyConfig { rule: AnyStepRule::Theorem1 { eta: 0.5 }, ..AnyConfig::default() };
/// let opt = ConvergentAnyL2O::<f64>::new(config, &mut StdRng::seed_from_u64(0)).unwrap();
/// // Any dimension: f(x) = |x|^2 / 2 (beta = 1) in 3 and in 50 dimensions; the learned
/// // term decays with the REN's biases (0.995^t), and the iterate with it.
/// for n in [3, 50] {
///     let f = Quadratic::new(DMatrix::identity(n, n), DMatrix::zeros(n, 1)).unwrap();
///     let out = run(&Frozen(&opt), &f, &DMatrix::from_element(n, 1, 1.0), &RunConfig::new(3000)).unwrap();
///     assert!(out.last.norm() < 1e-5, "{}", out.last.norm());
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ConvergentAnyL2O<T: Scalar> {
    config: AnyConfig,
    ren: DenseRen,
    params: Params<T>,
}

impl<T: Scalar> ConvergentAnyL2O<T> {
    /// A new optimizer: the REN's parameters `N(0, 0.01²)` with the first output bias at 1 (so
    /// `|z_t| ≈ bias_decay^t`), `e^c` = 0.01, `σ(d)` ≈ 0.02, and the direction starting as
    /// Adam's; errors on an invalid configuration.
    pub fn new(config: AnyConfig, rng: &mut impl Rng) -> Result<Self, AnyError> {
        let ren = Self::check(&config)?;
        let mut params = Params::new();
        let mut ren_params: Params<T> = ren.init_params(rng, 0.01);
        ren_params.get_mut("bu")[0] = T::one();
        params.extend_prefixed("REN", &ren_params);
        let mut net: Params<T> = init_from_specs(&coord_net::specs(config.hidden), rng);
        coord_net::adam_start(net.get_mut("w_lin"));
        params.extend_prefixed("net", &net);
        params.insert(
            "scale.c",
            DMatrix::from_element(1, 1, T::cast(0.01f64.ln())),
        );
        params.insert("scale.d", DMatrix::from_element(1, 1, T::cast(-4.0)));
        Ok(ConvergentAnyL2O {
            config,
            ren,
            params,
        })
    }

    fn check(config: &AnyConfig) -> Result<DenseRen, AnyError> {
        if config.hidden == 0 || config.ren_states == 0 || config.ren_neurons == 0 {
            return Err(AnyError(format!(
                "hidden width, REN states and neurons must be positive: {config:?}"
            )));
        }
        if config.ren_outputs == 0 {
            return Err(AnyError("the REN needs at least one output".into()));
        }
        if !(config.bias_decay > 0.0 && config.bias_decay < 1.0) {
            return Err(AnyError(format!(
                "bias_decay = {} must lie in (0, 1): constant biases would make |z_t| a \
                 non-vanishing signal",
                config.bias_decay
            )));
        }
        config
            .rule
            .step_size(None)
            .map_err(|e| AnyError(e.to_string()))?;
        let options = RenOptions {
            activation: Activation::Tanh,
            alpha_bar: 1.0,
            eps: 1e-3,
            polar: false,
            biases: true,
            bias_placement: BiasPlacement::Explicit,
            bias_decay: config.bias_decay,
            learn_x0: false,
        };
        let dims = RenDims::new(
            config.ren_states,
            config.ren_neurons,
            IMPULSE_SIZE,
            config.ren_outputs,
        );
        DenseRen::lipschitz(dims, config.gamma, options).map_err(|e| AnyError(e.to_string()))
    }

    /// The configuration.
    pub fn config(&self) -> &AnyConfig {
        &self.config
    }

    /// The magnitude REN.
    pub fn ren(&self) -> &DenseRen {
        &self.ren
    }

    /// The same meta-parameters under another step-size rule (Theorem 1 on a problem with
    /// known β, say); errors on an invalid rule.
    pub fn with_rule(&self, rule: AnyStepRule) -> Result<Self, AnyError> {
        let config = AnyConfig {
            rule,
            ..self.config.clone()
        };
        Self::check(&config)?;
        Ok(ConvergentAnyL2O {
            config,
            ren: self.ren.clone(),
            params: self.params.clone(),
        })
    }

    /// Theorem 2's constants of (15) for a run on `dim` parameters whose REN output stayed
    /// below `sup_z`: `(C, D')` with `|u_t| <= η_t (C + D' |∇f_i(x_t)|)` in the form (16),
    /// i.e. `|v_t| <= η_t² (C + D' |∇f_i|)`; `None` under Theorem 1.
    pub fn theorem2_constants(&self, dim: usize, sup_z: f64) -> Option<(f64, f64)> {
        let AnyStepRule::Theorem2 { grad_bound, .. } = self.config.rule else {
            return None;
        };
        let eta0 = self.config.rule.step_size(None).ok()?.eta(0);
        let c = self.params.get("scale.c")[0].as_f64().exp();
        let d = 1.0 / (1.0 + (-self.params.get("scale.d")[0].as_f64()).exp());
        Some((
            (dim as f64).sqrt() * c * sup_z / eta0,
            grad_bound * d / eta0,
        ))
    }

    /// Writes `dir/optimizer.safetensors` and `dir/config.json` (each atomically), creating
    /// `dir` if needed.
    pub fn save(&self, dir: &Path) -> Result<(), AnyError> {
        let io = |e: &dyn std::fmt::Display| AnyError(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
        let json = serde_json::to_string_pretty(&self.config).map_err(|e| io(&e))?;
        write_atomically(&dir.join("config.json"), json.as_bytes()).map_err(|e| io(&e))?;
        let tmp = dir.join(".optimizer.safetensors.partial");
        write_safetensors(&tmp, &self.params, None).map_err(|e| io(&e))?;
        std::fs::rename(&tmp, dir.join("optimizer.safetensors")).map_err(|e| io(&e))
    }

    /// Reads what [`ConvergentAnyL2O::save`] wrote; errors name the file and what is wrong
    /// (a missing or malformed file, a tensor of the wrong name or shape, NaN or Inf).
    pub fn load(dir: &Path) -> Result<Self, AnyError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| AnyError(format!("{}: {e}", config_path.display())))?;
        let config: AnyConfig = serde_json::from_str(&text)
            .map_err(|e| AnyError(format!("{}: {e}", config_path.display())))?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut opt = Self::new(config, &mut rng)?;
        let path = dir.join("optimizer.safetensors");
        let params = read_safetensors(&path, &opt.params)
            .map_err(|e| AnyError(format!("{}: {e}", path.display())))?;
        opt.set_params(params)
            .map_err(|e| AnyError(format!("{}: {e}", path.display())))?;
        Ok(opt)
    }
}

use rand::SeedableRng;

impl<T: Scalar> LearnedOptimizer<T> for ConvergentAnyL2O<T> {
    fn name(&self) -> String {
        "ConvergentAnyL2O".into()
    }
    fn params(&self) -> &Params<T> {
        &self.params
    }
    fn set_params(&mut self, params: Params<T>) -> Result<(), ParamsError> {
        params.check_matches(&self.params)?;
        if let Some((name, _)) = params
            .iter()
            .find(|(_, m)| m.iter().any(|v| !v.is_finite()))
        {
            return Err(ParamsError::Format {
                path: Default::default(),
                detail: format!("{name} holds NaN or Inf"),
            });
        }
        self.params = params;
        Ok(())
    }
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        let ren = self.ren.build_from(&|name| theta.get_prefixed("REN", name));
        Box::new(AnyRun {
            opt: self,
            theta,
            ren,
        })
    }
}

/// A ConvergentAnyL2O whose REN is built on a tape.
struct AnyRun<'a, 't, T: Scalar> {
    opt: &'a ConvergentAnyL2O<T>,
    theta: Bound<'t, T>,
    ren: RenModel<'t, T>,
}

impl<'t, T: Scalar> AnyRun<'_, 't, T> {
    /// The REN's impulse from the first point, gradient and loss (1 x 4 features as a column).
    fn impulse(&self, x: Var<'t, T>, g: Var<'t, T>, f: Var<'t, T>) -> Var<'t, T> {
        let n = x.nrows() as f64;
        let tape = x.tape();
        let one = |v: Var<'t, T>| v.add_scalar(T::one()).log();
        Var::concat_rows(&[
            x.norm().scale(T::cast(1.0 / n.sqrt())),
            one(f.relu()),
            one(g.norm()),
            tape.scalar(T::cast(n.ln() / 10.0)),
        ])
    }
}

impl<'t, T: Scalar> Optimizer<'t, T> for AnyRun<'_, 't, T> {
    fn name(&self) -> String {
        "ConvergentAnyL2O".into()
    }

    /// Starts a trajectory at `x0`: zero running averages; refuses Theorem 1's `η >= 1/β`
    /// when the problem reports β, and a tensor layout that does not add up to the dimension.
    fn init(
        &self,
        x0: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError> {
        let problem = oracle.problem();
        self.opt.config.rule.step_size(problem.smoothness())?;
        let sizes = problem.tensor_sizes();
        if x0.ncols() != 1 || sizes.iter().sum::<usize>() != x0.nrows() || sizes.contains(&0) {
            return Err(OptimError::Step {
                optimizer: "ConvergentAnyL2O".into(),
                detail: format!(
                    "x0 is {:?} but the problem's tensors have sizes {sizes:?}",
                    x0.shape()
                ),
            });
        }
        let mut state = OptState::new(x0);
        coord_net::start(x0, &mut state);
        Ok(state)
    }

    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let t = state.step();
        let (x, g, f) = (state.x(), at.grad, at.loss);
        let n = x.nrows() as f64;
        let (ren_state, impulse) = match state.tensor(REN_STATE) {
            Some(s) => (s, None),
            None => {
                state.set(START_LOSS, f);
                (self.ren.initial_state(), Some(self.impulse(x, g, f)))
            }
        };
        let (z, next) = self.ren.step(ren_state, impulse, t);
        state.set(REN_STATE, next);
        let f0 = state.expect(START_LOSS);
        let ratio = f.mul_elem(f0.abs().add_scalar(T::cast(1e-12)).recip_or_zero());
        let get = |name: &str| self.theta.get_prefixed("net", name);
        let sizes = oracle.problem().tensor_sizes();
        let w = coord_net::propose(&get, x, g, ratio, t, &sizes, state);
        let c = self.theta.get("scale.c").exp();
        let mut magnitude = z.norm().mul_elem(c).scale(T::cast(n.sqrt()));
        let step_size = self.opt.config.rule.step_size(None)?;
        let eta = step_size.eta(t);
        if let AnyStepRule::Theorem2 { grad_bound, .. } = self.opt.config.rule {
            let d = self
                .theta
                .get("scale.d")
                .sigmoid()
                .scale(T::cast(grad_bound));
            let eta0 = step_size.eta(0);
            magnitude = (magnitude + d.mul_elem(g.norm())).scale(T::cast(eta * eta / eta0));
        }
        // |w| = 0 gives v = 0 (no direction, no learned step) rather than NaN.
        let v = w.mul_scalar(magnitude.mul_elem(w.norm().recip_or_zero()));
        // (x + v) - eta g, in one pass.
        state.set_x(Var::weighted_sum(&[
            (T::one(), x),
            (T::one(), v),
            (-T::cast(eta), g),
        ]));
        Ok(StepInfo {
            tensors: vec![("v", v), ("z", z)],
            numbers: vec![("eta", eta), ("n", n)],
        })
    }
}
