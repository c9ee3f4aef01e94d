//! The 216-parameter bias-free model of `LOA_BFGS_Model`, the generalized BFGS update, and
//! LOA as a [`LearnedOptimizer`].

use super::start::{
    curvature_condition, guarded_step, quasi_newton_start, restart_scale, Guarded, INVERSE_HESSIAN,
    PREV_ALPHA, PREV_GRAD, PREV_STEP,
};
use super::{InnerGradients, LineSearch};
use crate::models::{Bound, ParamSource, Params, ParamsError};
use crate::optim::{
    check_positive, Evaluation, LearnedOptimizer, OptState, OptimError, Optimizer, Oracle, StepInfo,
};
use crate::problems::all_finite;
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use std::path::Path;

/// Names and shapes (`out x in`, PyTorch's `nn.Linear` layout) of the original's checkpoint
/// tensors, in its `state_dict` order. `layers` and `outer_FF` are `ModuleList`s of linear
/// layers only (the ReLU is applied between them), hence `layers.1`, not `layers.2`.
pub const LOA_PARAMS: [(&str, (usize, usize)); 6] = [
    ("fullskip_layer.weight", (1, 6)),
    ("layers.0.weight", (12, 6)),
    ("layers.1.weight", (1, 12)),
    ("outer_FF.0.weight", (6, 3)),
    ("outer_FF.1.weight", (12, 6)),
    ("outer_FF.2.weight", (3, 12)),
];

/// Per-coordinate features of the original, in its order: `H_{k-1} Δg`, `d_{k-1}`,
/// `-γ_{k-1} H_{k-1} g_k`. Index 1 is the previous step, which the BFGS initialization selects.
pub const FEATURE_D_PREV: usize = 1;

/// The name of the LOA optimizer in tables and errors.
const NAME: &str = "LOA BFGS";

/// LOA learned BFGS (Castera & Ochs, `LOA_BFGS_Model` with `layers_out_dim_factors=[2]`):
/// per coordinate `i` the features `z_i = (H Δg, d_{k-1}, -γ H g)_i ∈ R³`, an outer MLP
/// 3→6→12→3 (ReLU) averaged over coordinates and appended (`z̄ ∈ R⁶` per coordinate), then
/// `u_i = W₂ relu(W₁ z̄_i) + w_skip · z̄_i`, and the [`generalized_bfgs`] update of the inverse
/// Hessian with that `u`; the step is `-H_k g_k` times the step size ([`LineSearch`]). All
/// layers are bias-free, so the model is permutation equivariant and independent of the
/// dimension.
///
/// Its optimizer is started at `x_{-1}` and takes the original's warm-up step in `init` (see
/// [`loa_warm_up`](crate::optim::loa_warm_up)). Each update reports `alpha` (the step size),
/// `skipped` (1 when the update of `H` was skipped, else 0) and `fallback` (0: the learned
/// step; 1: a restart along `-γ ∇f` because `-H_k g_k` was not a descent direction; 2: a
/// restart because the Armijo tries along it failed; 3: the step was rejected). A recorded run differentiates
/// what [`InnerGradients`] says; Armijo step sizes are constants of the meta-gradient.
///
/// **A descent method.** The learned update keeps the secant equation but not positive
/// definiteness, so `-H_k g_k` can be an ascent direction; the original's Armijo search then
/// accepts an increase (its test `f(x + αd) <= f + c1 α dᵀg` allows one when `dᵀg > 0`) and,
/// after 5 failures, takes `α = 1e-5` whatever `f` does. With [`LineSearch::Armijo`] the run
/// is safeguarded as [`Bfgs`](crate::optim::Bfgs): no update without the
/// [`curvature_condition`](crate::optim::curvature_condition) or with a non-finite result; a
/// direction that is not a [descent direction](crate::optim::is_descent_direction), or along
/// which the 5 Armijo tries fail, restarts `H` at `γ I` and searches along `-γ g`; if that
/// fails too, `x` stays. So `f` never increases, and a learned step that passes the checks is
/// differentiated as before (the fallbacks are constants of the meta-gradient).
///
/// ```
/// use convergent_l2o::optim::{LearnedOptimizer, LoaBfgs};
/// use convergent_l2o::tape::Tape;
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let loa = LoaBfgs::<f64>::bfgs_init(&mut StdRng::seed_from_u64(0));
/// assert_eq!(loa.params().num_scalars(), 216);
/// // Initialized as BFGS: u = d_{k-1}, the middle feature.
/// let tape = Tape::new();
/// let z = tape.constant(DMatrix::from_row_slice(2, 3, &[0.3, -1.0, 2.0, 0.1, 0.5, -0.7]));
/// let u = loa.direction_features(&loa.params().bind(&tape), z);
/// assert_eq!(u.value(), DMatrix::from_column_slice(2, 1, &[-1.0, 0.5]));
/// ```
#[derive(Clone, Debug)]
pub struct LoaBfgs<T: Scalar> {
    params: Params<T>,
    line_search: LineSearch,
    gradients: InnerGradients,
}

/// Zeros of the shapes of [`LOA_PARAMS`].
fn template<T: Scalar>() -> Params<T> {
    let mut expected = Params::new();
    for (name, (out, inp)) in LOA_PARAMS {
        expected.insert(name, DMatrix::zeros(out, inp));
    }
    expected
}

impl<T: Scalar> LoaBfgs<T> {
    /// PyTorch's default initialization (uniform in `±1/√in`) for every layer, then the
    /// original's `safe_init='BFGS_like'`: last layer zero and skip connection
    /// `(0, 1, 0, 0, 0, 0)`, so `u = d_{k-1}` and the algorithm is exactly BFGS. (The paper
    /// writes `(0,0,0,0,1,0)`; the code's feature order puts `d_{k-1}` at index 1.) Armijo
    /// steps, [`InnerGradients::Exact`].
    pub fn bfgs_init(rng: &mut impl Rng) -> Self {
        let mut params = Params::new();
        for (name, (out, inp)) in LOA_PARAMS {
            let bound = 1.0 / (inp as f64).sqrt();
            let w = DMatrix::from_fn(out, inp, |_, _| T::cast(rng.gen_range(-bound..bound)));
            params.insert(name, w);
        }
        let skip = params.get_mut("fullskip_layer.weight");
        skip.fill(T::cast(0.0));
        skip[(0, FEATURE_D_PREV)] = T::cast(1.0);
        params.get_mut("layers.1.weight").fill(T::cast(0.0));
        LoaBfgs {
            params,
            line_search: LineSearch::Armijo,
            gradients: InnerGradients::Exact,
        }
    }

    /// A model from named parameters (Armijo, exact inner gradients); errors unless they are
    /// exactly [`LOA_PARAMS`].
    pub fn from_params(params: Params<T>) -> Result<Self, ParamsError> {
        params.check_matches(&template())?;
        Ok(LoaBfgs {
            params,
            line_search: LineSearch::Armijo,
            gradients: InnerGradients::Exact,
        })
    }

    /// Loads parameters saved by [`LoaBfgs::save`].
    pub fn load(path: &Path) -> Result<Self, ParamsError> {
        Self::from_params(Params::load(path)?)
    }

    /// Saves the parameters atomically.
    pub fn save(&self, path: &Path) -> Result<(), ParamsError> {
        self.params.save(path)
    }

    /// The same model with step sizes from `line_search` (a fixed one is checked at `init`).
    pub fn with_line_search(self, line_search: LineSearch) -> Self {
        LoaBfgs {
            line_search,
            ..self
        }
    }

    /// The same model differentiating what `gradients` says in recorded runs.
    pub fn with_gradients(self, gradients: InnerGradients) -> Self {
        LoaBfgs { gradients, ..self }
    }

    /// How step sizes are chosen.
    pub fn line_search(&self) -> LineSearch {
        self.line_search
    }

    /// What a recorded run differentiates.
    pub fn gradients(&self) -> InnerGradients {
        self.gradients
    }

    /// `u` (`n x 1`) from the `n x 3` features `z`, with the parameters read from `p` (bound on
    /// the same tape).
    pub fn direction_features<'t>(
        &self,
        p: &(impl ParamSource<'t, T> + ?Sized),
        z: Var<'t, T>,
    ) -> Var<'t, T> {
        let n = z.nrows();
        let outer = z
            .matmul_tr(p.param("outer_FF.0.weight"))
            .relu()
            .matmul_tr(p.param("outer_FF.1.weight"))
            .relu()
            .matmul_tr(p.param("outer_FF.2.weight"));
        let pooled = outer.col_means().broadcast(n, 3);
        let zbar = Var::concat_cols(&[z, pooled]);
        let skip = zbar.matmul_tr(p.param("fullskip_layer.weight"));
        zbar.matmul_tr(p.param("layers.0.weight"))
            .relu()
            .matmul_tr(p.param("layers.1.weight"))
            + skip
    }
}

/// The generalized BFGS update of the inverse Hessian with `s = d_{k-1} - H Δg`:
/// `H + (s uᵀ + u sᵀ)/(uᵀΔg) - (sᵀΔg) u uᵀ/(uᵀΔg)²`. With `u = d_{k-1}` it is BFGS
/// (`H + ρ(1 + ρ ΔgᵀHΔg) d dᵀ - ρ(HΔg dᵀ + d ΔgᵀH)`, `ρ = 1/dᵀΔg`) and `H_k Δg = d_{k-1}`
/// (the secant equation) for every `u`.
///
/// Fallback: when `|uᵀΔg| <= 1e-12 |u| |Δg|` (or it is not finite) the update is undefined;
/// `H` is kept and `skipped = true`, as quasi-Newton codes skip an update failing the
/// curvature condition, rather than propagating an Inf or NaN.
///
/// ```
/// use convergent_l2o::optim::generalized_bfgs;
/// use convergent_l2o::tape::Tape;
/// use nalgebra::{dmatrix, DMatrix};
///
/// let tape = Tape::<f64>::new();
/// let h = tape.constant(DMatrix::identity(2, 2));
/// let d = tape.constant(dmatrix![1.0; 0.5]);
/// let dg = tape.constant(dmatrix![2.0; -0.5]);
/// let u = tape.constant(dmatrix![0.3; 1.0]);
/// let s = d - h.matmul(dg);
/// let (h1, skipped) = generalized_bfgs(h, u, s, dg);
/// assert!(!skipped);
/// assert!((h1.matmul(dg).value() - d.value()).norm() < 1e-12); // secant equation
/// ```
pub fn generalized_bfgs<'t, T: Scalar>(
    h: Var<'t, T>,
    u: Var<'t, T>,
    s: Var<'t, T>,
    dg: Var<'t, T>,
) -> (Var<'t, T>, bool) {
    let denom = u.dot(dg);
    let dv = denom.scalar().as_f64();
    let scale = u
        .value_ref()
        .iter()
        .map(|v| v.as_f64().powi(2))
        .sum::<f64>()
        .sqrt()
        * dg.value_ref()
            .iter()
            .map(|v| v.as_f64().powi(2))
            .sum::<f64>()
            .sqrt();
    if !dv.is_finite() || dv.abs() <= 1e-12 * scale || scale == 0.0 {
        return (h, true);
    }
    let inv = denom.powi(-1);
    let sym = s.matmul_tr(u) + u.matmul_tr(s);
    let coef = s.dot(dg).mul_elem(inv.square());
    (
        h + sym.mul_scalar(inv) - u.matmul_tr(u).mul_scalar(coef),
        false,
    )
}

impl<T: Scalar> LearnedOptimizer<T> for LoaBfgs<T> {
    fn name(&self) -> String {
        NAME.into()
    }
    fn params(&self) -> &Params<T> {
        &self.params
    }
    fn set_params(&mut self, params: Params<T>) -> Result<(), ParamsError> {
        params.check_matches(&template())?;
        self.params = params;
        Ok(())
    }
    fn optimizer<'a, 't: 'a>(&'a self, theta: Bound<'t, T>) -> Box<dyn Optimizer<'t, T> + 'a> {
        Box::new(LoaRun { opt: self, theta })
    }
}

/// LOA with its meta-parameters bound on a tape.
struct LoaRun<'a, 't, T: Scalar> {
    opt: &'a LoaBfgs<T>,
    theta: Bound<'t, T>,
}

impl<'t, T: Scalar> Optimizer<'t, T> for LoaRun<'_, 't, T> {
    fn name(&self) -> String {
        NAME.into()
    }

    /// Takes the warm-up step from `x_{-1}` (`x0` here) to `x_0`; refuses a fixed step size
    /// that is not positive and finite.
    fn init(
        &self,
        x_minus1: Var<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<OptState<'t, T>, OptimError> {
        if let LineSearch::Fixed(a) = self.opt.line_search {
            check_positive("LOA BFGS", "fixed step size", a, 0.0)?;
        }
        quasi_newton_start(NAME, x_minus1, oracle)
    }

    /// Features from `H_{k-1}`, `g_k`, `g_{k-1}`, `d_{k-1}` and `γ_{k-1}`, then `u`,
    /// [`generalized_bfgs`] to `H_k`, and the step `γ_k d_k` with `d_k = -H_k g_k`.
    fn update(
        &self,
        state: &mut OptState<'t, T>,
        at: &Evaluation<'t, T>,
        oracle: &Oracle<'_, 't, T>,
    ) -> Result<StepInfo<'t, T>, OptimError> {
        let detach = self.opt.gradients == InnerGradients::Detached;
        let maybe = |v: Var<'t, T>| if detach { v.stop_gradient() } else { v };
        let x = state.x();
        let g = maybe(at.grad);
        let h = state.expect(INVERSE_HESSIAN);
        let alpha_prev = state.number(PREV_ALPHA).unwrap_or(1.0);
        let dg = maybe(g - state.expect(PREV_GRAD));
        let h_dg = maybe(h.matmul(dg));
        let d_prev = maybe(state.expect(PREV_STEP));
        let h_g = maybe(h.matmul(g).scale(T::cast(-alpha_prev)));
        let z = Var::concat_cols(&[h_dg, d_prev, h_g]);
        let u = self.opt.direction_features(&self.theta, z);
        let (d_prev_val, dg_val) = (d_prev.value(), dg.value());
        // Safeguard 1: no update without positive curvature (it cannot keep H positive
        // definite), and none that gives a non-finite H.
        let (mut h_new, mut skipped) = if curvature_condition(&d_prev_val, &dg_val) {
            generalized_bfgs(h, u, d_prev - h_dg, dg)
        } else {
            (h, true)
        };
        if !skipped && !all_finite(&h_new.value()) {
            (h_new, skipped) = (h, true);
        }
        let d = -h_new.matmul(g);
        let x_val = x.value();
        let n = x_val.nrows();
        let (alpha, step, fallback) = match self.opt.line_search {
            // Safeguards 2-4: a direction that is not a descent direction, or along which
            // Armijo fails, restarts H at γ I along -γ g; if that fails too, x stays.
            LineSearch::Armijo => {
                let f0 = at.loss.scalar().as_f64();
                let gamma = restart_scale(oracle.problem(), &d_prev_val, &dg_val);
                let guarded = guarded_step(oracle, &x_val, &d.value(), &g.value(), f0, gamma);
                let restart = || {
                    oracle
                        .tape()
                        .constant(DMatrix::identity(n, n) * T::cast(gamma))
                };
                match guarded {
                    Guarded::Direction(a) => (a, d.scale(T::cast(a)), guarded.code()),
                    Guarded::Restart { alpha: a, .. } => {
                        h_new = restart();
                        (a, g.scale(T::cast(-a * gamma)), guarded.code())
                    }
                    Guarded::Rejected => {
                        h_new = restart();
                        (
                            0.0,
                            oracle.tape().constant(DMatrix::zeros(n, 1)),
                            guarded.code(),
                        )
                    }
                }
            }
            LineSearch::Fixed(a) => (a, d.scale(T::cast(a)), 0.0),
        };
        state.set(INVERSE_HESSIAN, h_new);
        state.set(PREV_GRAD, g);
        state.set(PREV_STEP, step);
        state.set_number(PREV_ALPHA, alpha);
        state.set_x(x + step);
        Ok(StepInfo {
            tensors: vec![("u", u)],
            numbers: vec![
                ("alpha", alpha),
                ("skipped", f64::from(u8::from(skipped))),
                ("fallback", fallback),
            ],
        })
    }
}
