//! ℓ1-regularized logistic regression: `F(x) = mean_i BCE(σ(w_iᵀ x), y_i) + ρ |x|_1`.

use super::{check_sizes, sparse_normal, spectral_norm, CompositeProblem, ProblemError};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// How random logistic instances are drawn (the original code's synthetic setting).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogisticConfig {
    /// Samples (rows of `W`).
    pub rows: usize,
    /// Features (the dimension of `x`).
    pub cols: usize,
    /// Non-zeros of `x*`.
    pub sparsity: usize,
    /// The ℓ1 weight `ρ`.
    pub rho: f64,
    /// Standard deviation of the entries of `W` (1 in the paper; other values shift the
    /// distribution).
    pub w_std: f64,
}

impl LogisticConfig {
    /// The paper's size: `W` 1000 x 50, `x*` 20-sparse, `ρ = 0.1`.
    pub fn paper() -> Self {
        LogisticConfig {
            rows: 1000,
            cols: 50,
            sparsity: 20,
            rho: 0.1,
            w_std: 1.0,
        }
    }

    /// A small instance for tests: 100 x 20, 5-sparse.
    pub fn toy() -> Self {
        LogisticConfig {
            rows: 100,
            cols: 20,
            sparsity: 5,
            rho: 0.1,
            w_std: 1.0,
        }
    }
}

/// One logistic instance: `W` with N(0, σ²) entries, labels `y = 1[W x* >= 0]` for a sparse
/// N(0, 1) `x*`.
///
/// [`CompositeProblem::lipschitz`] is `|W|_2`, **not squared**, as the original code computes
/// it; the true constant of `∇f` is `|W|_2^2 / (4 m)` ([`L1Logistic::true_lipschitz`]). With
/// the paper's sizes the code's value is the larger one (a more conservative step), which is
/// what the published curves used.
#[derive(Clone, Debug)]
pub struct L1Logistic<T: Scalar> {
    w: DMatrix<T>,
    labels: DMatrix<T>,
    rho: f64,
    norm: f64,
}

impl<T: Scalar> L1Logistic<T> {
    /// A random instance; the same `rng` state gives the same instance. Errors on zero sizes,
    /// `sparsity > cols`, a negative `ρ` or a non-positive `w_std`.
    pub fn random(config: LogisticConfig, rng: &mut impl Rng) -> Result<Self, ProblemError> {
        let LogisticConfig {
            rows,
            cols,
            sparsity,
            rho,
            w_std,
        } = config;
        check_sizes("L1 logistic", rows, cols, sparsity, rho)?;
        if !(w_std.is_finite() && w_std > 0.0) {
            return Err(ProblemError {
                problem: "L1 logistic",
                detail: format!("w_std = {w_std} must be finite and > 0"),
            });
        }
        let w = DMatrix::<T>::from_fn(rows, cols, |_, _| {
            let v: f64 = StandardNormal.sample(rng);
            T::cast(w_std * v)
        });
        let x_true = sparse_normal::<T>(cols, sparsity, rng);
        let labels = (&w * &x_true).map(|z| if z >= T::zero() { T::one() } else { T::zero() });
        Self::new(w, labels, rho)
    }

    /// An instance with given data (labels in {0, 1}, `rows x 1`); errors on empty or
    /// mismatched shapes.
    pub fn new(w: DMatrix<T>, labels: DMatrix<T>, rho: f64) -> Result<Self, ProblemError> {
        check_sizes("L1 logistic", w.nrows(), w.ncols(), 0, rho)?;
        if labels.shape() != (w.nrows(), 1) {
            return Err(ProblemError {
                problem: "L1 logistic",
                detail: format!(
                    "labels are {:?}, expected {} x 1",
                    labels.shape(),
                    w.nrows()
                ),
            });
        }
        let norm = spectral_norm(&w);
        Ok(L1Logistic {
            w,
            labels,
            rho,
            norm,
        })
    }

    /// The true gradient Lipschitz constant `|W|_2^2 / (4 m)`.
    pub fn true_lipschitz(&self) -> f64 {
        self.norm * self.norm / (4.0 * self.w.nrows() as f64)
    }

    /// The matrix `W`.
    pub fn w(&self) -> &DMatrix<T> {
        &self.w
    }

    /// The labels.
    pub fn labels(&self) -> &DMatrix<T> {
        &self.labels
    }

    fn inv_m(&self) -> T {
        T::cast(1.0 / self.w.nrows() as f64)
    }
}

/// `log(1 + e^z)` without overflow.
fn softplus<T: Scalar>(z: T) -> T {
    if z > T::zero() {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl<T: Scalar> CompositeProblem<T> for L1Logistic<T> {
    fn dim(&self) -> usize {
        self.w.ncols()
    }
    fn rho(&self) -> f64 {
        self.rho
    }
    fn lipschitz(&self) -> f64 {
        self.norm
    }
    fn smooth_var<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        // BCE(σ(z), y) = softplus(z) - y z.
        let tape = x.tape();
        let z = tape.constant(self.w.clone()).matmul(x);
        (z.softplus() - z.mul_elem(tape.constant(self.labels.clone()))).mean()
    }
    fn smooth_grad_var<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        let w = tape.constant(self.w.clone());
        let r = w.matmul(x).sigmoid() - tape.constant(self.labels.clone());
        w.tr_matmul(r).scale(self.inv_m())
    }
    fn smooth(&self, x: &DMatrix<T>) -> T {
        let z = &self.w * x;
        z.iter()
            .zip(self.labels.iter())
            .fold(T::zero(), |a, (&z, &y)| a + softplus(z) - y * z)
            * self.inv_m()
    }
    fn smooth_grad(&self, x: &DMatrix<T>) -> DMatrix<T> {
        let r = (&self.w * x).zip_map(&self.labels, |z, y| T::one() / (T::one() + (-z).exp()) - y);
        self.w.tr_mul(&r) * self.inv_m()
    }
}
