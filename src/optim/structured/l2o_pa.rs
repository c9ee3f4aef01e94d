//! L2O-PA (Liu, Chen, Wang, Yin, Cai, ICML 2023): a generalized FISTA whose elementwise
//! preconditioner `P_k` and accelerator `A_k` come from a coordinatewise LSTM.

use super::proximal::{default_step, pa_update, Y};
use crate::models::{
    zeros_from_specs, Bound, BuildError, Linear, LstmState, Model, ParamSource, Params,
    ParamsError, Spec, StackedLstm,
};
use crate::optim::{
    load_lstm, store_lstm, Evaluation, LearnedOptimizer, OptState, OptimError, Optimizer, Oracle,
    StepInfo,
};
use crate::tape::{Scalar, Tape, Var};
use rand::Rng;

/// How a head's raw output is bounded: `scale * sigmoid(.)` or `scale * softplus(.)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Squash {
    /// `scale σ(z)`, in `(0, scale)`.
    Sigmoid {
        /// Upper bound.
        scale: f64,
    },
    /// `scale log(1 + e^z)`, positive.
    Softplus {
        /// Factor.
        scale: f64,
    },
}

impl Squash {
    fn apply<'t, T: Scalar>(self, z: Var<'t, T>) -> Var<'t, T> {
        match self {
            Squash::Sigmoid { scale } => z.sigmoid().scale(T::cast(scale)),
            Squash::Softplus { scale } => z.softplus().scale(T::cast(scale)),
        }
    }
}

/// The architecture: an LSTM of `layers x hidden` on the features `[∇f(y)_i, y_i]`, then
/// `ReLU(Linear hidden -> hidden)`, then one linear head each for `P` and `A`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaConfig {
    /// LSTM hidden size (20 in the original).
    pub hidden: usize,
    /// LSTM layers (2 in the original).
    pub layers: usize,
    /// Bound on `P` (LASSO: `2 σ`, logistic: `2 softplus`).
    pub p_out: Squash,
    /// Bound on `A` (LASSO: `2 σ`, logistic: `0.3 softplus`).
    pub a_out: Squash,
    /// Detach the LSTM's input features (the original code does; `false` gives the exact
    /// gradient of the unrolled map, which finite differences can check).
    pub detach_features: bool,
}

impl PaConfig {
    /// The original LASSO setting: LSTM 2 x 20, `P = 2 σ`, `A = 2 σ`.
    pub fn lasso() -> Self {
        PaConfig {
            hidden: 20,
            layers: 2,
            p_out: Squash::Sigmoid { scale: 2.0 },
            a_out: Squash::Sigmoid { scale: 2.0 },
            detach_features: true,
        }
    }

    /// The original logistic setting: LSTM 2 x 20, `P = 2 softplus`, `A = 0.3 softplus`.
    pub fn logistic() -> Self {
        PaConfig {
            p_out: Squash::Softplus { scale: 2.0 },
            a_out: Squash::Softplus { scale: 0.3 },
            ..Self::lasso()
        }
    }
}

/// The L2O-PA optimizer: meta-parameters `lstm.*`, `linear.*`, `linear_p.*`, `linear_a.*`
/// (PyTorch names; 5742 scalars for the 2 x 20 LSTM) and the rule
///
/// ```text
/// g_k = ∇f(y_k);  (P_k, A_k) = net([g_k, y_k] detached, LSTM state)
/// x_{k+1} = prox_{ρ s P_k |.|_1}(y_k - s P_k ⊙ g_k),  y_{k+1} = x_{k+1} + A_k ⊙ (x_{k+1} - x_k)
/// ```
///
/// with `s = 0.9999 / β` (β: the problem's [`crate::problems::Problem::smoothness`], required)
/// and `y_0 = x_0`. Its [`Optimizer`] queries `f` and `∇f` at `y_k`; the state holds the
/// iterate `x_k`, the tensor `y` and the LSTM state ([`store_lstm`]). The LSTM inputs are
/// detached (per [`PaConfig::detach_features`]), while `g_k` in the update is differentiated
/// when the run is second order, as in the original code. The LSTM state starts at zero (the
/// original draws it from `randn`), so runs are deterministic and the optimizer is
/// equivariant under permutations of the coordinates. Each update reports the next query point
/// `y` and the coefficients `p`, `a`.
///
/// ```
/// use convergent_l2o::eval::{probes, run, RunConfig};
/// use convergent_l2o::optim::{Frozen, L2oPa, LearnedOptimizer, PaConfig};
/// use convergent_l2o::problems::{Lasso, LassoConfig};
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let opt = L2oPa::<f64>::new(PaConfig::lasso(), &mut rng).unwrap();
/// assert_eq!(opt.params().num_scalars(), 5742);
/// let problem = Lasso::random(LassoConfig::toy(), &mut rng).unwrap();
/// let cfg = RunConfig::bare(50).with(probes::objective(50)); // F(x_k), unrecorded
/// let out = run(&Frozen(&opt), &problem, &DMatrix::zeros(40, 1), &cfg).unwrap();
/// let f = out.trace.values("objective");
/// assert_eq!(f.len(), 51);
/// assert!(f[50] < f[0]);
/// ```
#[derive(Clone, Debug)]
pub struct L2oPa<T: Scalar> {
    config: PaConfig,
    lstm: StackedLstm,
    linear: Linear,
    head_p: Linear,
    head_a: Linear,
    params: Params<T>,
}

impl<T: Scalar> L2oPa<T> {
    /// A fresh optimizer with PyTorch's initialization; errors on a zero size.
    pub fn new(config: PaConfig, rng: &mut impl Rng) -> Result<Self, BuildError> {
        let h = config.hidden;
        let lstm = StackedLstm::new("lstm", 2, &vec![h; config.layers])?;
        let linear = Linear::new("linear", h, h)?;
        let head_p = Linear::new("linear_p", h, 1)?;
        let head_a = Linear::new("linear_a", h, 1)?;
        let mut params = lstm.init_params(rng);
        for layer in [&linear, &head_p, &head_a] {
            for (name, value) in layer.init_params::<T>(rng).iter() {
                params.insert(name, value.clone());
            }
        }
        Ok(L2oPa {
            config,
            lstm,
            linear,
            head_p,
            head_a,
            params,
        })
    }

    /// The architecture.
    pub fn config(&self) -> PaConfig {
        self.config
    }

    /// Every parameter tensor (names, shapes, initialization), LSTM first.
    pub fn specs(&self) -> Vec<Spec> {
        let mut specs = self.lstm.specs();
        for layer in [&self.linear, &self.head_p, &self.head_a] {
            specs.extend(layer.specs());
        }
        specs
    }

    /// The LSTM state of a trajectory in `n` dimensions at its start (zeros, constants on
    /// `tape`).
    pub(crate) fn zero_state<'t>(&self, tape: &'t Tape<T>, n: usize) -> LstmState<Var<'t, T>> {
        self.lstm.zero_state(n).to_tape(tape)
    }

    /// Number of LSTM layers (of the state in [`store_lstm`]'s names).
    pub(crate) fn layers(&self) -> usize {
        self.config.layers
    }

    /// `(P_k, A_k)` (each `n x 1`) and the next LSTM state from the gradient `g` at `y`, with
    /// the meta-parameters read from `theta` (the features detached unless the configuration
    /// says otherwise).
    pub fn coefficients<'t>(
        &self,
        theta: &(impl ParamSource<'t, T> + ?Sized),
        g: Var<'t, T>,
        y: Var<'t, T>,
        lstm: &LstmState<Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>, LstmState<Var<'t, T>>) {
        let features = if self.config.detach_features {
            Var::concat_cols(&[g.stop_gradient(), y.stop_gradient()])
        } else {
            Var::concat_cols(&[g, y])
        };
        let next = self.lstm.step(theta, features, lstm);
        let hidden = self.linear.forward(theta, *next.output()).relu();
        let p = self.config.p_out.apply(self.head_p.forward(theta, hidden));
        let a = self.config.a_out.apply(self.head_a.forward(theta, hidden));
        (p, a, next)
    }
}

impl<T: Scalar> LearnedOptimizer<T> for L2oPa<T> {
    fn name(&self) -> String {
        "L2O-PA".into()
    }
    fn params(&self) -> &Params<T> {
        &self.params
    }
    fn set_params(&mut self, params: Params<T>) -> Result<(), ParamsError> {
        params.check_matches(&zeros_from_specs(&self.specs()))?;
        self.params = params;
        Ok(())
    }
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        Box::new(PaRun { pa: self, theta })
    }
}

/// L2O-PA with its meta-parameters bound on a tape.
struct PaRun<'a, 't, T: Scalar> {
    pa: &'a L2oPa<T>,
    theta: Bound<'t, T>,
}

impl<'t, T: Scalar> Optimizer<'t, T> for PaRun<'_, 't, T> {
    fn name(&self) -> String {
        "L2O-PA".into()
    }
    /// `y_0 = x_0` and a zero LSTM state; errors if the problem does not give its smoothness.
    fn init(
        &self,
        x0: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError> {
        default_step(oracle.problem(), "L2O-PA")?;
        let mut state = OptState::new(x0);
        state.set(Y, x0);
        store_lstm(&mut state, &self.pa.zero_state(oracle.tape(), x0.nrows()));
        Ok(state)
    }
    fn query(&self, state: &OptState<'t, T>) -> Var<'t, T> {
        state.expect(Y)
    }
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let problem = oracle.problem();
        let s = default_step(problem, "L2O-PA")?;
        let (x, y) = (state.x(), state.expect(Y));
        let lstm = load_lstm(state, self.pa.layers());
        let (p, a, next) = self.pa.coefficients(&self.theta, at.grad, y, &lstm);
        let (x_next, y_next) = pa_update(problem, x, y, at.grad, p, a, s);
        store_lstm(state, &next);
        state.set(Y, y_next);
        state.set_x(x_next);
        Ok(StepInfo {
            tensors: vec![(Y, y_next), ("p", p), ("a", a)],
            numbers: Vec::new(),
        })
    }
}
