//! L2O-PA (Liu, Chen, Wang, Yin, Cai, ICML 2023): a generalized FISTA whose elementwise
//! preconditioner `P_k` and accelerator `A_k` come from a coordinatewise LSTM.

use super::proximal::pa_update;
use crate::meta::CompositeProblem;
use crate::models::{Bound, BuildError, Linear, LstmState, Params, StackedLstm};
use crate::tape::{Scalar, Tape, Var};
use nalgebra::DMatrix;
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
/// with `s = 0.9999 / L` and `x_0 = y_0 = 0`. The LSTM inputs are detached, but `g_k` in the
/// update is differentiated (second-order meta-gradients), as in the original code. The LSTM
/// state starts at zero (the original draws it from `randn`), so runs are deterministic and
/// the optimizer is equivariant under permutations of the coordinates.
///
/// ```
/// use convergent_l2o::meta::{CompositeProblem, Lasso, LassoConfig};
/// use convergent_l2o::optim::{L2oPa, PaConfig};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let opt = L2oPa::<f64>::new(PaConfig::lasso(), &mut rng).unwrap();
/// assert_eq!(opt.params().num_scalars(), 5742);
/// let problem = Lasso::random(LassoConfig::toy(), &mut rng).unwrap();
/// let f = opt.objectives(&problem, 50); // F(x_k), unrecorded
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

/// The state of one L2O-PA trajectory on a tape.
#[derive(Clone)]
pub struct PaState<'t, T: Scalar> {
    /// The prox output `x_k`.
    pub x: Var<'t, T>,
    /// The extrapolated point `y_k`.
    pub y: Var<'t, T>,
    /// The LSTM state (one row per coordinate).
    pub lstm: LstmState<Var<'t, T>>,
    /// Iterations taken.
    pub k: usize,
}

impl<'t, T: Scalar> PaState<'t, T> {
    /// Cuts every gradient path through the carried state (truncated BPTT).
    pub fn detach(&mut self) {
        self.x = self.x.stop_gradient();
        self.y = self.y.stop_gradient();
        self.lstm = self.lstm.stop_gradient();
    }
}

/// A trajectory's state off the tape (between unrecorded steps or training segments).
#[derive(Clone, Debug)]
pub(crate) struct PaValues<T: Scalar> {
    pub x: DMatrix<T>,
    pub y: DMatrix<T>,
    pub lstm: LstmState<DMatrix<T>>,
    pub k: usize,
}

impl<T: Scalar> PaValues<T> {
    pub fn to_tape<'t>(&self, tape: &'t Tape<T>) -> PaState<'t, T> {
        PaState {
            x: tape.constant(self.x.clone()),
            y: tape.constant(self.y.clone()),
            lstm: self.lstm.to_tape(tape),
            k: self.k,
        }
    }

    pub fn of(state: &PaState<'_, T>) -> Self {
        PaValues {
            x: state.x.value(),
            y: state.y.value(),
            lstm: state.lstm.values(),
            k: state.k,
        }
    }
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

    /// The meta-parameters.
    pub fn params(&self) -> &Params<T> {
        &self.params
    }

    /// The meta-parameters, for an outer optimizer's update.
    pub fn params_mut(&mut self) -> &mut Params<T> {
        &mut self.params
    }

    /// Replaces the meta-parameters (loaded with [`Params::load`], say), checking every name
    /// and shape.
    pub fn set_params(&mut self, params: Params<T>) -> Result<(), BuildError> {
        params
            .check_matches(&self.params)
            .map_err(|error| BuildError::Params {
                model: "L2O-PA",
                error,
            })?;
        self.params = params;
        Ok(())
    }

    /// The start of a trajectory on `tape`: `x_0 = y_0 = 0`, zero LSTM state.
    pub fn start<'t, P: CompositeProblem<T> + ?Sized>(
        &self,
        problem: &P,
        tape: &'t Tape<T>,
    ) -> PaState<'t, T> {
        self.start_values(problem).to_tape(tape)
    }

    pub(crate) fn start_values<P: CompositeProblem<T> + ?Sized>(&self, problem: &P) -> PaValues<T> {
        let n = problem.dim();
        PaValues {
            x: DMatrix::zeros(n, 1),
            y: DMatrix::zeros(n, 1),
            lstm: self.lstm.zero_state(n),
            k: 0,
        }
    }

    /// `(P_k, A_k)` (each `n x 1`) and the next LSTM state from the gradient `g` at `y` (the
    /// features detached unless the configuration says otherwise).
    pub fn coefficients<'t>(
        &self,
        bound: &Bound<'t, T>,
        g: Var<'t, T>,
        y: Var<'t, T>,
        lstm: &LstmState<Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>, LstmState<Var<'t, T>>) {
        let features = if self.config.detach_features {
            Var::concat_cols(&[g.stop_gradient(), y.stop_gradient()])
        } else {
            Var::concat_cols(&[g, y])
        };
        let next = self.lstm.step(bound, features, lstm);
        let hidden = self.linear.forward(bound, *next.output()).relu();
        let p = self.config.p_out.apply(self.head_p.forward(bound, hidden));
        let a = self.config.a_out.apply(self.head_a.forward(bound, hidden));
        (p, a, next)
    }

    /// One recorded step; `∇f(y_k)` is computed with recording ops, so the meta-gradient sees
    /// its dependence on the meta-parameters.
    pub fn step<'t, P: CompositeProblem<T> + ?Sized>(
        &self,
        bound: &Bound<'t, T>,
        problem: &P,
        state: &mut PaState<'t, T>,
    ) {
        let g = problem.smooth_grad_var(state.y);
        self.step_with_grad(bound, problem, state, g);
    }

    fn step_with_grad<'t, P: CompositeProblem<T> + ?Sized>(
        &self,
        bound: &Bound<'t, T>,
        problem: &P,
        state: &mut PaState<'t, T>,
        g: Var<'t, T>,
    ) {
        let (p, a, lstm) = self.coefficients(bound, g, state.y, &state.lstm);
        let (x, y) = pa_update(
            state.x,
            state.y,
            g,
            p,
            a,
            problem.step_size(),
            problem.rho(),
        );
        *state = PaState {
            x,
            y,
            lstm,
            k: state.k + 1,
        };
    }

    /// Runs `iterations` unrecorded steps from the start (the tape is truncated after each, so
    /// memory stays flat), calling `visit(k, x_k, y_k)` for `k = 0..=iterations`.
    pub fn run<P: CompositeProblem<T> + ?Sized>(
        &self,
        problem: &P,
        iterations: usize,
        mut visit: impl FnMut(usize, &DMatrix<T>, &DMatrix<T>),
    ) {
        let tape = Tape::new();
        let bound = self.params.bind_constants(&tape);
        let mark = tape.mark();
        let mut values = self.start_values(problem);
        visit(0, &values.x, &values.y);
        for k in 1..=iterations {
            let g = tape.constant(problem.smooth_grad(&values.y));
            let mut state = values.to_tape(&tape);
            self.step_with_grad(&bound, problem, &mut state, g);
            values = PaValues::of(&state);
            tape.truncate(mark);
            visit(k, &values.x, &values.y);
        }
    }

    /// `F(x_k)` for `k = 0..=iterations`, unrecorded.
    pub fn objectives<P: CompositeProblem<T> + ?Sized>(
        &self,
        problem: &P,
        iterations: usize,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(iterations + 1);
        self.run(problem, iterations, |_, x, _| {
            out.push(problem.objective(x).as_f64())
        });
        out
    }
}
