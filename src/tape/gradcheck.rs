//! Finite-difference checks of tape gradients, first and second order, in `f64`.
//!
//! Used by every op's tests and available to users for their own models.

use super::{Tape, Var};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Tolerances of a check: entries agree when `|tape - fd| <= atol + rtol * max(|tape|, |fd|)`.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    /// Central-difference step.
    pub step: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            step: 1e-6,
            rtol: 1e-5,
            atol: 1e-7,
        }
    }
}

/// Largest disagreement found by a passing check.
#[derive(Clone, Copy, Debug)]
pub struct Report {
    /// Largest `|tape - fd|` over all entries.
    pub max_abs_error: f64,
}

/// A function of several matrix inputs recorded on a tape, as the checks take it.
pub trait TapeFn: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64> {}
impl<F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>> TapeFn for F {}

/// Returns `f` unchanged; gives a closure the higher-ranked signature the checks need
/// (`|x| x[0].tanh()` alone is not inferred as generic over the tape's lifetime).
pub fn tape_fn<F>(f: F) -> F
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    f
}

/// A matrix with entries uniform in `[lo, hi)`.
pub fn uniform(rng: &mut StdRng, rows: usize, cols: usize, lo: f64, hi: f64) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| rng.gen_range(lo..hi))
}

/// A matrix with entries of magnitude in `[lo, hi)` and random sign (away from kinks at 0).
pub fn signed_away_from_zero(
    rng: &mut StdRng,
    rows: usize,
    cols: usize,
    lo: f64,
    hi: f64,
) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| {
        let m = rng.gen_range(lo..hi);
        if rng.gen_bool(0.5) {
            m
        } else {
            -m
        }
    })
}

/// Checks the tape's first-order gradient of `<w, f(x)>` (random `w`) against central
/// differences, in both the unrecorded and the recorded backward modes.
///
/// ```
/// use convergent_l2o::tape::gradcheck::{check_first_order, tape_fn, Tolerance};
/// use nalgebra::dmatrix;
///
/// let f = tape_fn(|x| x[0].tanh().mul_elem(x[1]));
/// let inputs = [dmatrix![0.3, -0.2], dmatrix![1.5, 0.7]];
/// check_first_order(&f, &inputs, 7, Tolerance::default()).unwrap();
/// ```
pub fn check_first_order(
    f: &impl TapeFn,
    inputs: &[DMatrix<f64>],
    seed: u64,
    tol: Tolerance,
) -> Result<Report, String> {
    let w = output_weights(f, inputs, seed);
    // Trainable leaves even for plain evaluation: `f` may take gradients of its own inputs
    // (an unrolled optimizer does).
    let loss = |xs: &[DMatrix<f64>]| -> f64 {
        let tape = Tape::new();
        let vars: Vec<_> = xs.iter().map(|x| tape.param(x.clone())).collect();
        f(&vars).value().dot(&w)
    };
    let analytic = first_order_gradients(f, inputs, &w, false);
    let recorded = first_order_gradients(f, inputs, &w, true);
    let mut report = Report { max_abs_error: 0.0 };
    for (k, (a, r)) in analytic.iter().zip(&recorded).enumerate() {
        compare(
            &format!("input {k}: recorded vs unrecorded"),
            r,
            a,
            tol,
            &mut report,
        )?;
    }
    let numeric = central_differences(&loss, inputs, tol.step);
    for (k, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
        compare(&format!("input {k}: first order"), a, n, tol, &mut report)?;
    }
    Ok(report)
}

/// Checks second-order derivatives: the tape gradient of `<v, grad <w, f(x)>>` (random `v`,
/// `w`, backward recorded with `create_graph`) against central differences of first-order
/// tape gradients.
///
/// ```
/// use convergent_l2o::tape::gradcheck::{check_second_order, tape_fn, Tolerance};
/// use nalgebra::dmatrix;
///
/// let f = tape_fn(|x| x[0].matmul(x[1]).sigmoid());
/// let inputs = [dmatrix![0.3, -0.2; 0.1, 0.4], dmatrix![1.5; 0.7]];
/// check_second_order(&f, &inputs, 7, Tolerance::default()).unwrap();
/// ```
pub fn check_second_order(
    f: &impl TapeFn,
    inputs: &[DMatrix<f64>],
    seed: u64,
    tol: Tolerance,
) -> Result<Report, String> {
    let w = output_weights(f, inputs, seed);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let v: Vec<DMatrix<f64>> = inputs
        .iter()
        .map(|x| uniform(&mut rng, x.nrows(), x.ncols(), -1.0, 1.0))
        .collect();
    let directional = |xs: &[DMatrix<f64>]| -> f64 {
        first_order_gradients(f, xs, &w, false)
            .iter()
            .zip(&v)
            .map(|(g, v)| g.dot(v))
            .sum()
    };
    let analytic: Vec<DMatrix<f64>> = {
        let tape = Tape::new();
        let vars: Vec<_> = inputs.iter().map(|x| tape.param(x.clone())).collect();
        let y = f(&vars);
        let seed_w = tape.constant(w.clone());
        let grads = tape.grad_with_seeds(&[y], &[seed_w], &vars, true);
        let mut terms = grads
            .iter()
            .zip(&v)
            .map(|(g, v)| g.mul_elem(tape.constant(v.clone())).sum());
        let first = terms.next().expect("at least one input");
        let total = terms.fold(first, |acc, t| acc + t);
        tape.grad(&[total], &vars, false)
            .iter()
            .map(|g| g.value())
            .collect()
    };
    let numeric = central_differences(&directional, inputs, tol.step.max(1e-5));
    let mut report = Report { max_abs_error: 0.0 };
    for (k, (a, n)) in analytic.iter().zip(&numeric).enumerate() {
        compare(&format!("input {k}: second order"), a, n, tol, &mut report)?;
    }
    Ok(report)
}

/// Runs both checks; the usual call in a test.
pub fn check_gradients(
    f: &impl TapeFn,
    inputs: &[DMatrix<f64>],
    seed: u64,
) -> Result<Report, String> {
    let tol = Tolerance::default();
    let a = check_first_order(f, inputs, seed, tol)?;
    let b = check_second_order(f, inputs, seed, tol)?;
    Ok(Report {
        max_abs_error: a.max_abs_error.max(b.max_abs_error),
    })
}

fn output_weights(f: &impl TapeFn, inputs: &[DMatrix<f64>], seed: u64) -> DMatrix<f64> {
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.param(x.clone())).collect();
    let (r, c) = f(&vars).shape();
    uniform(&mut StdRng::seed_from_u64(seed), r, c, -1.0, 1.0)
}

fn first_order_gradients(
    f: &impl TapeFn,
    inputs: &[DMatrix<f64>],
    w: &DMatrix<f64>,
    create_graph: bool,
) -> Vec<DMatrix<f64>> {
    let tape = Tape::new();
    let vars: Vec<_> = inputs.iter().map(|x| tape.param(x.clone())).collect();
    let y = f(&vars);
    let seed = tape.constant(w.clone());
    tape.grad_with_seeds(&[y], &[seed], &vars, create_graph)
        .iter()
        .map(|g| g.value())
        .collect()
}

fn central_differences(
    f: &impl Fn(&[DMatrix<f64>]) -> f64,
    inputs: &[DMatrix<f64>],
    step: f64,
) -> Vec<DMatrix<f64>> {
    let mut xs = inputs.to_vec();
    let mut out = Vec::with_capacity(inputs.len());
    for k in 0..inputs.len() {
        let mut g = DMatrix::zeros(inputs[k].nrows(), inputs[k].ncols());
        for e in 0..inputs[k].len() {
            let x0 = xs[k][e];
            xs[k][e] = x0 + step;
            let up = f(&xs);
            xs[k][e] = x0 - step;
            let down = f(&xs);
            xs[k][e] = x0;
            g[e] = (up - down) / (2.0 * step);
        }
        out.push(g);
    }
    out
}

fn compare(
    what: &str,
    tape: &DMatrix<f64>,
    numeric: &DMatrix<f64>,
    tol: Tolerance,
    report: &mut Report,
) -> Result<(), String> {
    for e in 0..tape.len() {
        let (a, n) = (tape[e], numeric[e]);
        let err = (a - n).abs();
        if !err.is_finite() || err > tol.atol + tol.rtol * a.abs().max(n.abs()) {
            return Err(format!(
                "{what}: entry {e} differs: tape {a:.10e}, finite differences {n:.10e}\n\
                 tape: {tape}\nfinite differences: {numeric}"
            ));
        }
        report.max_abs_error = report.max_abs_error.max(err);
    }
    Ok(())
}
