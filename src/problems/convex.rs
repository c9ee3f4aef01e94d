//! Convex test problems of Castera & Ochs (LOA): ridge regression, the random quadratics LOA
//! is meta-trained on, and synthetic logistic regression, each with a known `F*`.
//!
//! Every problem is a [`Problem`] with its constants (`smoothness` is the original scripts'
//! `λmax`, `strong_convexity` their `λmin`, `infimum` the exact or Newton `F*`) and a closed-form
//! `f64` value and gradient for the unrecorded baselines and line searches.

use super::{Draw, Problem, ProblemError, ProblemFamily, Sampled};
use crate::tape::{Scalar, Var};
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

fn col(v: &DVector<f64>) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v.as_slice())
}

/// A column of any precision as an `f64` vector.
fn to_f64<T: Scalar>(x: &DMatrix<T>) -> DVector<f64> {
    DVector::from_iterator(x.len(), x.iter().map(|v| v.as_f64()))
}

/// An `f64` vector as a column of precision `T`.
fn from_f64<T: Scalar>(v: &DVector<f64>) -> DMatrix<T> {
    DMatrix::from_iterator(v.len(), 1, v.iter().map(|&x| T::cast(x)))
}

fn gaussian(rows: usize, cols: usize, scale: f64, rng: &mut impl Rng) -> DMatrix<f64> {
    DMatrix::from_fn(rows, cols, |_, _| {
        scale * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    })
}

/// Ridge regression `f(x) = 1/2 |A x - b|² + λ/2 |x|²`, the scaling of the original
/// `main_ridge_*.py` (no `1/n`). `λmax = λmax(AᵀA) + λ`, `λmin = λmin(AᵀA) + λ`, and `F*` is
/// exact: `x* = (AᵀA + λ I)⁻¹ Aᵀ b` by Cholesky.
///
/// ```
/// use convergent_l2o::problems::{Problem, Ridge};
/// use nalgebra::{dmatrix, dvector};
///
/// let ridge = Ridge::new(dmatrix![1.0, 0.0; 0.0, 2.0], dvector![1.0, 2.0], 1.0).unwrap();
/// // x* = (1/2, 4/5): f* = 1/2 (1/4 + 4/25) + 1/2 (1/4 + 16/25)
/// assert!((ridge.minimum() - 0.65).abs() < 1e-12);
/// assert!(ridge.gradient(ridge.minimizer()).norm() < 1e-12);
/// assert_eq!(Problem::<f64>::smoothness(&ridge), Some(5.0));
/// ```
#[derive(Clone, Debug)]
pub struct Ridge {
    a: DMatrix<f64>,
    b: DVector<f64>,
    lambda: f64,
    lambda_max: f64,
    lambda_min: f64,
    x_star: DVector<f64>,
    f_star: f64,
}

impl Ridge {
    /// The problem for data `a` (`m x n`), targets `b` (`m`) and `λ >= 0`; errors on empty or
    /// mismatched data, a negative or non-finite `λ`, or a singular `AᵀA + λ I`.
    pub fn new(a: DMatrix<f64>, b: DVector<f64>, lambda: f64) -> Result<Self, ProblemError> {
        if a.is_empty() {
            return Err(ProblemError {
                problem: "ridge",
                detail: format!(
                    "A is {} x {}; it needs at least one row and one column",
                    a.nrows(),
                    a.ncols()
                ),
            });
        }
        if b.len() != a.nrows() {
            return Err(ProblemError {
                problem: "ridge",
                detail: format!("A has {} rows but b has {} entries", a.nrows(), b.len()),
            });
        }
        if !(lambda >= 0.0 && lambda.is_finite()) {
            return Err(ProblemError {
                problem: "ridge",
                detail: format!("lambda = {lambda} must be finite and >= 0"),
            });
        }
        if a.iter().chain(b.iter()).any(|v| !v.is_finite()) {
            return Err(ProblemError {
                problem: "ridge",
                detail: "A or b has a NaN or Inf".into(),
            });
        }
        let n = a.ncols();
        let hessian = a.transpose() * &a + DMatrix::identity(n, n) * lambda;
        let eig = hessian.clone().symmetric_eigenvalues();
        let chol = hessian.cholesky().ok_or_else(|| ProblemError {
            problem: "ridge",
            detail: "AᵀA + λI is singular (use more rows or λ > 0)".into(),
        })?;
        let x_star = chol.solve(&(a.transpose() * &b));
        let mut ridge = Ridge {
            a,
            b,
            lambda,
            lambda_max: eig.max(),
            lambda_min: eig.min().max(0.0),
            x_star,
            f_star: 0.0,
        };
        ridge.f_star = ridge.value(&ridge.x_star);
        Ok(ridge)
    }

    /// A random instance: `A` with `samples` rows and `dim` columns, entries `N(0, 1/dim)`,
    /// `b ~ N(0, I)`.
    pub fn random(
        dim: usize,
        samples: usize,
        lambda: f64,
        rng: &mut impl Rng,
    ) -> Result<Self, ProblemError> {
        if dim == 0 || samples == 0 {
            return Err(ProblemError {
                problem: "ridge",
                detail: format!("dim = {dim} and samples = {samples} must both be positive"),
            });
        }
        let a = gaussian(samples, dim, 1.0 / (dim as f64).sqrt(), rng);
        let b = DVector::from_column_slice(gaussian(samples, 1, 1.0, rng).as_slice());
        Ridge::new(a, b, lambda)
    }

    /// `x* = argmin f`.
    pub fn minimizer(&self) -> &DVector<f64> {
        &self.x_star
    }

    /// The regularization `λ`.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The same problem with its variables permuted: `x ↦ x[perm]` (column `j` of the new `A`
    /// is column `perm[j]` of the old one).
    pub fn permuted(&self, perm: &[usize]) -> Result<Self, ProblemError> {
        let n = self.a.ncols();
        let mut seen = vec![false; n];
        if perm.len() != n
            || perm
                .iter()
                .any(|&p| p >= n || std::mem::replace(&mut seen[p], true))
        {
            return Err(ProblemError {
                problem: "ridge",
                detail: format!("{perm:?} is not a permutation of 0..{n}"),
            });
        }
        let a = DMatrix::from_fn(self.a.nrows(), n, |i, j| self.a[(i, perm[j])]);
        Ridge::new(a, self.b.clone(), self.lambda)
    }
}

impl Ridge {
    /// `f(x)` in `f64`.
    pub fn value(&self, x: &DVector<f64>) -> f64 {
        0.5 * (&self.a * x - &self.b).norm_squared() + 0.5 * self.lambda * x.norm_squared()
    }

    /// `∇f(x)` in `f64`.
    pub fn gradient(&self, x: &DVector<f64>) -> DVector<f64> {
        self.a.tr_mul(&(&self.a * x - &self.b)) + x * self.lambda
    }

    /// `F* = min f` (exact).
    pub fn minimum(&self) -> f64 {
        self.f_star
    }
}

impl<T: Scalar> Problem<T> for Ridge {
    fn name(&self) -> String {
        "ridge regression".into()
    }
    fn dim(&self) -> usize {
        self.a.ncols()
    }
    fn value_and_grad(&self, x: &DMatrix<T>, _step: usize) -> (f64, DMatrix<T>) {
        let x = to_f64(x);
        (self.value(&x), from_f64(&self.gradient(&x)))
    }
    fn strong_convexity(&self) -> Option<f64> {
        (self.lambda_min > 0.0).then_some(self.lambda_min)
    }
    fn loss<'t>(&self, x: Var<'t, T>, _step: usize) -> Var<'t, T> {
        let tape = x.tape();
        let a = tape.constant(self.a.map(T::cast));
        let b = tape.constant(col(&self.b).map(T::cast));
        let r = a.matmul(x) - b;
        r.square().sum().scale(T::cast(0.5)) + x.square().sum().scale(T::cast(0.5 * self.lambda))
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.lambda_max)
    }
    fn infimum(&self) -> Option<f64> {
        Some(self.f_star)
    }
}

/// The distribution LOA is meta-trained on: least-squares quadratics
/// `1/2 |A x - b|² + λ/2 |x|²` with a square `A` (`dim x dim`, entries `N(0, 1/dim)`),
/// `b ~ N(0, I)` and `λ = 1e-2` by default.
///
/// Why: the paper trains on quadratics but neither its repository nor the stored text gives the
/// distribution. A square Gaussian `A` has Marchenko–Pastur spectrum on `[0, 4]` with
/// eigenvalues down to about `1/dim²`, so curvature varies over the whole range and BFGS needs
/// about `dim` steps: there is something to learn in a horizon shorter than `dim`. The ridge
/// term caps the condition number near `4/λ`, keeps `F*` exact (a Cholesky solve) and matches
/// the shape of the original's `quad`/`ridge` objectives, so ridge regression is the nearest
/// shifted distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoaQuadratics {
    /// Number of variables.
    pub dim: usize,
    /// The ridge term `λ`.
    pub lambda: f64,
}

impl LoaQuadratics {
    /// The distribution in `dim` variables with `λ = 1e-2`; errors if `dim == 0`.
    pub fn new(dim: usize) -> Result<Self, ProblemError> {
        if dim == 0 {
            return Err(ProblemError {
                problem: "LOA quadratics",
                detail: "dim must be positive".into(),
            });
        }
        Ok(LoaQuadratics { dim, lambda: 1e-2 })
    }

    /// One instance (the same `rng` state gives the same instance).
    pub fn sample(&self, rng: &mut impl Rng) -> Result<Ridge, ProblemError> {
        Ridge::random(self.dim, self.dim, self.lambda, rng)
    }
}

/// LOA's meta-training draws: an instance ([`LoaQuadratics::sample`]), then its starting point
/// `x_{-1} ~ N(0, I)` ([`standard_normal_point`]), both from the draw's generator. (The
/// quasi-Newton methods take the warm-up step to `x_0` themselves.)
///
/// ```
/// use convergent_l2o::problems::{Draw, LoaQuadratics, ProblemFamily};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let family = LoaQuadratics::new(5).unwrap();
/// let draw = Draw { meta_step: 0, index: 0 };
/// let s = ProblemFamily::<f64>::sample(&family, draw, &mut StdRng::seed_from_u64(0)).unwrap();
/// assert_eq!((s.problem.dim(), s.x0.shape()), (5, (5, 1)));
/// assert!(s.problem.infimum().is_some());
/// ```
impl<T: Scalar> ProblemFamily<T> for LoaQuadratics {
    fn name(&self) -> String {
        format!("LOA quadratics (dim {})", self.dim)
    }
    fn sample(&self, _draw: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError> {
        let problem = LoaQuadratics::sample(self, rng)?;
        let x = standard_normal_point(self.dim, rng);
        Sampled::new(problem, x)
    }
}

/// A `dim x 1` point with independent `N(0, 1)` entries (LOA's `x_{-1}`, as
/// `main_logistic_synthetic.py`).
pub fn standard_normal_point<T: Scalar>(dim: usize, rng: &mut impl Rng) -> DMatrix<T> {
    DMatrix::from_fn(dim, 1, |_, _| {
        T::cast(<StandardNormal as Distribution<f64>>::sample(
            &StandardNormal,
            rng,
        ))
    })
}

fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// Logistic regression as `main_logistic_synthetic.py`:
/// `f(x) = Σ_i log(1 + exp(-b_i a_iᵀ x)) + |x|²/(2M)` (a sum, not a mean), on two Gaussian
/// clusters. `λmax = ½ Σ A_ij² + 1/M` and `λmin = 1/M` as the original; `F*` from a Newton run
/// to machine precision.
#[derive(Clone, Debug)]
pub struct SyntheticLogistic {
    /// Rows `-b_i a_iᵀ`.
    signed: DMatrix<f64>,
    lambda_max: f64,
    x_star: DVector<f64>,
    f_star: f64,
}

impl SyntheticLogistic {
    /// `samples` points (first half label +1, second half -1) in `dim` dimensions:
    /// `A = N(0,1)/√dim` shifted by `μ1 ~ N(-0.1, 1)` (first class) and `μ2 ~ N(0.1, 1)`
    /// (second), first column set to 1 (the intercept). The original uses `dim = 10`,
    /// `samples = 50`. Errors if `dim < 2` or `samples < 2`.
    pub fn random(dim: usize, samples: usize, rng: &mut impl Rng) -> Result<Self, ProblemError> {
        if dim < 2 || samples < 2 {
            return Err(ProblemError {
                problem: "synthetic logistic",
                detail: format!(
                    "dim = {dim} and samples = {samples} must both be >= 2 \
                 (an intercept column plus a feature, and both classes)"
                ),
            });
        }
        let mut a = gaussian(samples, dim, 1.0 / (dim as f64).sqrt(), rng);
        let normal =
            |rng: &mut _| <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng);
        let mu1 = normal(rng) - 0.1;
        let mu2 = normal(rng) + 0.1;
        let half = samples / 2;
        let mut signed = DMatrix::zeros(samples, dim);
        for i in 0..samples {
            let (mu, label) = if i < half { (mu1, 1.0) } else { (mu2, -1.0) };
            for j in 0..dim {
                a[(i, j)] = if j == 0 { 1.0 } else { a[(i, j)] + mu };
                signed[(i, j)] = -label * a[(i, j)];
            }
        }
        let lambda_max = 0.5 * a.norm_squared() + 1.0 / samples as f64;
        let mut p = SyntheticLogistic {
            signed,
            lambda_max,
            x_star: DVector::zeros(dim),
            f_star: 0.0,
        };
        p.x_star = p.newton(100);
        p.f_star = p.value(&p.x_star);
        Ok(p)
    }

    /// The same objective on given data: rows of `a` (`samples x dim`, an intercept column
    /// included if wanted) with labels `±1`. Errors on empty or mismatched data, a label other
    /// than `±1`, or a non-finite entry.
    pub fn from_data(a: &DMatrix<f64>, labels: &[f64]) -> Result<Self, ProblemError> {
        let err = |detail: String| ProblemError {
            problem: "logistic regression",
            detail,
        };
        if a.is_empty() || labels.len() != a.nrows() {
            return Err(err(format!(
                "data is {} x {} with {} labels; it needs at least one sample, one feature \
                 and a label per sample",
                a.nrows(),
                a.ncols(),
                labels.len()
            )));
        }
        if let Some(l) = labels.iter().find(|&&l| l != 1.0 && l != -1.0) {
            return Err(err(format!("label {l} is not +1 or -1")));
        }
        if a.iter().any(|v| !v.is_finite()) {
            return Err(err("the data has a NaN or Inf".into()));
        }
        let mut signed = a.clone();
        for (i, mut row) in signed.row_iter_mut().enumerate() {
            row *= -labels[i];
        }
        let mut p = SyntheticLogistic {
            signed,
            lambda_max: 0.5 * a.norm_squared() + 1.0 / a.nrows() as f64,
            x_star: DVector::zeros(a.ncols()),
            f_star: 0.0,
        };
        p.x_star = p.newton(100);
        p.f_star = p.value(&p.x_star);
        Ok(p)
    }

    fn reg(&self) -> f64 {
        1.0 / self.signed.nrows() as f64
    }

    /// Damped Newton from 0 (Armijo halving) until the gradient vanishes or `f` stops
    /// decreasing.
    fn newton(&self, iters: usize) -> DVector<f64> {
        let n = self.signed.ncols();
        let mut x = DVector::zeros(n);
        for _ in 0..iters {
            let g = self.gradient(&x);
            if g.norm() < 1e-14 {
                break;
            }
            let z = &self.signed * &x;
            let w = z.map(|v| sigmoid(v) * (1.0 - sigmoid(v)));
            let mut weighted = self.signed.clone();
            for (i, mut row) in weighted.row_iter_mut().enumerate() {
                row *= w[i];
            }
            let h = self.signed.tr_mul(&weighted) + DMatrix::identity(n, n) * self.reg();
            let d = match h.cholesky() {
                Some(c) => -c.solve(&g),
                None => -g.clone(),
            };
            let f0 = self.value(&x);
            let mut t = 1.0;
            while self.value(&(&x + &d * t)) > f0 + 1e-4 * t * g.dot(&d) && t > 1e-10 {
                t *= 0.5;
            }
            let next = &x + d * t;
            if self.value(&next) >= f0 {
                break; // no more progress in floating point
            }
            x = next;
        }
        x
    }

    /// The reference minimizer.
    pub fn minimizer(&self) -> &DVector<f64> {
        &self.x_star
    }
}

impl SyntheticLogistic {
    /// `f(x)` in `f64`.
    pub fn value(&self, x: &DVector<f64>) -> f64 {
        (&self.signed * x).iter().map(|&z| softplus(z)).sum::<f64>()
            + 0.5 * self.reg() * x.norm_squared()
    }

    /// `∇f(x)` in `f64`.
    pub fn gradient(&self, x: &DVector<f64>) -> DVector<f64> {
        let s = (&self.signed * x).map(sigmoid);
        self.signed.tr_mul(&s) + x * self.reg()
    }

    /// `F* = min f` (from the Newton run).
    pub fn minimum(&self) -> f64 {
        self.f_star
    }
}

impl<T: Scalar> Problem<T> for SyntheticLogistic {
    fn name(&self) -> String {
        "synthetic logistic regression".into()
    }
    fn dim(&self) -> usize {
        self.signed.ncols()
    }
    fn value_and_grad(&self, x: &DMatrix<T>, _step: usize) -> (f64, DMatrix<T>) {
        let x = to_f64(x);
        (self.value(&x), from_f64(&self.gradient(&x)))
    }
    fn strong_convexity(&self) -> Option<f64> {
        Some(self.reg())
    }
    fn loss<'t>(&self, x: Var<'t, T>, _step: usize) -> Var<'t, T> {
        let tape = x.tape();
        let margins = tape.constant(self.signed.map(T::cast)).matmul(x);
        margins.softplus().sum() + x.square().sum().scale(T::cast(0.5 * self.reg()))
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.lambda_max)
    }
    fn infimum(&self) -> Option<f64> {
        Some(self.f_star)
    }
}
