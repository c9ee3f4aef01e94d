//! Smooth test problems with known constants: random quadratics and ridge-regularized
//! logistic regression on synthetic data.

use super::{Problem, ProblemError};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// `f(x) = 1/2 (x - c)ᵀ A (x - c)` with `A` symmetric positive definite: β = λmax(A),
/// inf f = 0.
#[derive(Clone, Debug)]
pub struct Quadratic<T: Scalar> {
    a: DMatrix<T>,
    c: DMatrix<T>,
    beta: f64,
    mu: f64,
}

impl<T: Scalar> Quadratic<T> {
    /// A random quadratic in `dim` variables with eigenvalues in `[mu, l]` (random rotation)
    /// and minimizer with entries in [-1, 1].
    pub fn random(dim: usize, mu: f64, l: f64, rng: &mut impl Rng) -> Self {
        let q = DMatrix::<f64>::from_fn(dim, dim, |_, _| rng.gen_range(-1.0..1.0))
            .qr()
            .q();
        let eig = nalgebra::DVector::from_fn(dim, |_, _| rng.gen_range(mu..=l));
        let a = &q * DMatrix::from_diagonal(&eig) * q.transpose();
        let beta = eig.max();
        let c = DMatrix::<f64>::from_fn(dim, 1, |_, _| rng.gen_range(-1.0..1.0));
        Quadratic {
            a: a.map(T::cast),
            c: c.map(T::cast),
            beta,
            mu: eig.min(),
        }
    }

    /// `1/2 (x - c)ᵀ A (x - c)` for a given symmetric positive semidefinite `A` (`n x n`) and
    /// minimizer `c` (`n x 1`); β and μ are `A`'s extreme eigenvalues. Errors on mismatched
    /// shapes, an asymmetric or indefinite `A`, or a NaN or Inf.
    ///
    /// ```
    /// use convergent_l2o::problems::{Problem, Quadratic};
    /// use nalgebra::{dmatrix, DMatrix};
    /// let q = Quadratic::<f64>::new(dmatrix![4.0, 0.0; 0.0, 0.01], DMatrix::zeros(2, 1)).unwrap();
    /// assert_eq!((q.smoothness(), q.strong_convexity()), (Some(4.0), Some(0.01)));
    /// ```
    pub fn new(a: DMatrix<f64>, c: DMatrix<f64>) -> Result<Self, ProblemError> {
        let err = |d: String| Err(ProblemError::new("quadratic", d));
        let n = a.nrows();
        if n == 0 || a.shape() != (n, n) || c.shape() != (n, 1) {
            return err(format!(
                "A is {:?} and c is {:?}; need n x n and n x 1 with n > 0",
                a.shape(),
                c.shape()
            ));
        }
        if a.iter().chain(c.iter()).any(|v| !v.is_finite()) {
            return err("A or c holds a NaN or Inf".into());
        }
        if (&a - a.transpose()).amax() > 1e-12 * a.amax().max(1.0) {
            return err("A is not symmetric".into());
        }
        let eig = a.clone().symmetric_eigenvalues();
        if eig.min() < -1e-12 * eig.amax().max(1.0) {
            return err(format!("A has a negative eigenvalue {}", eig.min()));
        }
        Ok(Quadratic {
            a: a.map(T::cast),
            c: c.map(T::cast),
            beta: eig.max(),
            mu: eig.min().max(0.0),
        })
    }

    /// The minimizer `c`.
    pub fn minimizer(&self) -> &DMatrix<T> {
        &self.c
    }
}

impl<T: Scalar> Problem<T> for Quadratic<T> {
    fn name(&self) -> String {
        "quadratic".into()
    }
    fn dim(&self) -> usize {
        self.c.nrows()
    }
    fn loss<'t>(&self, x: Var<'t, T>, _step: usize) -> Var<'t, T> {
        let tape = x.tape();
        let d = x - tape.constant(self.c.clone());
        d.dot(tape.constant(self.a.clone()).matmul(d))
            .scale(T::cast(0.5))
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.beta)
    }
    fn strong_convexity(&self) -> Option<f64> {
        (self.mu > 0.0).then_some(self.mu)
    }
    fn infimum(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// Logistic regression on synthetic data: `f(x) = mean_i softplus(-y_i a_iᵀ x) + λ/2 |x|²`,
/// labels `y_i = ±1` from a random separating direction with label noise.
/// β ≤ λmax(AᵀA)/(4n) + λ.
#[derive(Clone, Debug)]
pub struct Logistic<T: Scalar> {
    /// Rows `-y_i a_iᵀ`.
    signed: DMatrix<T>,
    lambda: f64,
    beta: f64,
}

impl<T: Scalar> Logistic<T> {
    /// `samples` points in `dim` dimensions, ridge `lambda`, 10% flipped labels.
    pub fn random(dim: usize, samples: usize, lambda: f64, rng: &mut impl Rng) -> Self {
        let normal = Normal::new(0.0, 1.0).expect("valid");
        let w = DMatrix::<f64>::from_fn(dim, 1, |_, _| normal.sample(rng));
        let a = DMatrix::<f64>::from_fn(samples, dim, |_, _| normal.sample(rng));
        let mut signed = a.clone();
        for i in 0..samples {
            let mut y = if (a.row(i) * &w)[0] >= 0.0 { 1.0 } else { -1.0 };
            if rng.gen_bool(0.1) {
                y = -y;
            }
            signed.row_mut(i).scale_mut(-y);
        }
        let gram = a.transpose() * &a;
        let beta = gram.symmetric_eigenvalues().max() / (4.0 * samples as f64) + lambda;
        Logistic {
            signed: signed.map(T::cast),
            lambda,
            beta,
        }
    }
}

impl<T: Scalar> Problem<T> for Logistic<T> {
    fn name(&self) -> String {
        "logistic regression".into()
    }
    fn dim(&self) -> usize {
        self.signed.ncols()
    }
    fn loss<'t>(&self, x: Var<'t, T>, _step: usize) -> Var<'t, T> {
        let tape = x.tape();
        let margins = tape.constant(self.signed.clone()).matmul(x);
        margins.softplus().mean() + x.square().sum().scale(T::cast(0.5 * self.lambda))
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.beta)
    }
    fn infimum(&self) -> Option<f64> {
        Some(0.0)
    }
}
