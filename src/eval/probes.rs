//! What a run records: probes are named closures over a [`StepView`], called at every step or
//! at chosen steps. The common ones are here; any `Fn(&StepView) -> f64` is a probe.

use super::run::StepView;
use crate::problems::ClassifierMetrics;
use crate::tape::Scalar;
use nalgebra::DMatrix;

/// When a probe is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Steps {
    /// At every step `t < S` (the steps with an update).
    Every,
    /// At these steps, `t <= S` (`S` reads the last point `x_S`, with no loss or update).
    At(Vec<usize>),
}

/// What a probe computes from a step.
type Reader<'p, T> = Box<dyn Fn(&StepView<'_, T>) -> f64 + Sync + 'p>;

/// A named quantity a run records.
pub struct Probe<'p, T: Scalar> {
    name: String,
    steps: Steps,
    read: Reader<'p, T>,
}

impl<'p, T: Scalar> Probe<'p, T> {
    /// The probe `name` reading `read` at `steps`.
    ///
    /// ```
    /// use convergent_l2o::eval::{probes::{Probe, Steps}, run, RunConfig};
    /// use convergent_l2o::optim::HeavyBall;
    /// use convergent_l2o::problems::Quadratic;
    /// use nalgebra::{dmatrix, DMatrix};
    ///
    /// let first = Probe::new("x[0]", Steps::At(vec![0, 5]), |v| v.x[0]);
    /// let q = Quadratic::<f64>::new(DMatrix::identity(1, 1), DMatrix::zeros(1, 1)).unwrap();
    /// let out = run(&HeavyBall::gd(0.5).unwrap(), &q, &dmatrix![1.0], &RunConfig::bare(5).with(first)).unwrap();
    /// assert_eq!(out.trace.at("x[0]", 5), Some(0.5f64.powi(5)));
    /// ```
    pub fn new(
        name: &str,
        steps: Steps,
        read: impl Fn(&StepView<'_, T>) -> f64 + Sync + 'p,
    ) -> Self {
        Probe {
            name: name.to_string(),
            steps,
            read: Box::new(read),
        }
    }

    /// The name of its series.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When it is read.
    pub fn steps(&self) -> &Steps {
        &self.steps
    }

    /// Its value at `view`.
    pub fn read(&self, view: &StepView<'_, T>) -> f64 {
        (self.read)(view)
    }
}

/// `|m|`, summed in eight running sums (one sum would wait on every addition).
pub fn norm<T: Scalar>(m: &DMatrix<T>) -> f64 {
    norm_sq(m).sqrt()
}

/// `|m|²`, summed in eight running sums.
pub fn norm_sq<T: Scalar>(m: &DMatrix<T>) -> f64 {
    crate::kernels::norm_squared_f64(m.as_slice())
}

/// `loss`: `f` at the query point of every step (the minibatch loss for stochastic problems).
pub fn loss<'p, T: Scalar>() -> Probe<'p, T> {
    Probe::new("loss", Steps::Every, |v| v.loss.unwrap_or(f64::NAN))
}

/// `param_norm`: `|x_t|` at every step.
pub fn param_norm<'p, T: Scalar>() -> Probe<'p, T> {
    Probe::new("param_norm", Steps::Every, |v| norm(v.x))
}

/// `update_norm`: `|x_{t+1} - x_t|` at every step.
pub fn update_norm<'p, T: Scalar>() -> Probe<'p, T> {
    Probe::new("update_norm", Steps::Every, |v| {
        v.next.map_or(f64::NAN, |n| norm(&(n - v.x)))
    })
}

/// `grad_norm_sq`: `|∇f|²` at the query point of every step (Lemma 1's left-hand side).
pub fn grad_norm_sq<'p, T: Scalar>() -> Probe<'p, T> {
    Probe::new("grad_norm_sq", Steps::Every, |v| {
        v.grad.map_or(f64::NAN, norm_sq)
    })
}

/// `<name>_norm_sq`: `|r|²` of the tensor `name` the update reports (ConvergentL2O's `v`,
/// Lemma 1's perturbation; NaN when not reported).
pub fn reported_norm_sq<'p, T: Scalar>(name: &'static str) -> Probe<'p, T> {
    Probe::new(&format!("{name}_norm_sq"), Steps::Every, move |v| {
        v.tensor(name).map_or(f64::NAN, norm_sq)
    })
}

/// `<name>`: the number `name` the update reports (a step size `eta`, a line search's
/// `alpha`; NaN when not reported).
pub fn reported<'p, T: Scalar>(name: &'static str) -> Probe<'p, T> {
    Probe::new(name, Steps::Every, move |v| {
        v.number(name).unwrap_or(f64::NAN)
    })
}

/// `<name>_objective`: `F = f + ρ |.|_1` at the tensor `name` the update reports, at every
/// step (NaN when not reported). With L2O-PA's `y`, the next query point, its mean over a run
/// of `K` steps is the held-out value of [`crate::meta::MeanObjective`]: `(1/K) Σ_{t=1..K}
/// F(y_t)`.
pub fn reported_objective<'p, T: Scalar>(name: &'static str) -> Probe<'p, T> {
    Probe::new(&format!("{name}_objective"), Steps::Every, move |v| {
        v.tensor(name)
            .map_or(f64::NAN, |m| v.problem.objective(m, v.step + 1))
    })
}

/// `objective`: `F(x_t) = f(x_t) + ρ |x_t|_1` of the iterate (not the query point) at every
/// step and at the end (composite benchmarks plot it).
pub fn objective<'p, T: Scalar>(steps: usize) -> Probe<'p, T> {
    Probe::new("objective", Steps::At((0..=steps).collect()), |v| {
        v.problem.objective(v.x, v.step)
    })
}

/// `accuracy`: the classifier's accuracy on `metrics`' split at steps `at` (of `x_t`, or of
/// `x_{t+1}` with `after_update`, the original code's reading of "accuracy at step t"; a run of
/// `S` steps computes `x_{t+1}` for every `t < S`, so ask for `t < S` with `after_update`).
pub fn accuracy<'p, T: Scalar>(
    metrics: &'p ClassifierMetrics<T>,
    at: Vec<usize>,
    after_update: bool,
) -> Probe<'p, T> {
    Probe::new("accuracy", Steps::At(at), move |v| {
        let x = if after_update {
            v.next.unwrap_or(v.x)
        } else {
            v.x
        };
        metrics.accuracy(x)
    })
}
