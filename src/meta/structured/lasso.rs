//! LASSO: `F(x) = 1/2 |W x - y|^2 + ρ |x|_1`.

use super::{check_sizes, sparse_normal, spectral_norm, CompositeProblem, ProblemError};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// How random LASSO instances are drawn (the original code's synthetic setting).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LassoConfig {
    /// Rows of `W` (measurements).
    pub rows: usize,
    /// Columns of `W` (the dimension of `x`).
    pub cols: usize,
    /// Non-zeros of `x*`.
    pub sparsity: usize,
    /// The ℓ1 weight `ρ`.
    pub rho: f64,
}

impl LassoConfig {
    /// The paper's size: `W` 250 x 500, `x*` 50-sparse, `ρ = 0.1`.
    pub fn paper() -> Self {
        LassoConfig {
            rows: 250,
            cols: 500,
            sparsity: 50,
            rho: 0.1,
        }
    }

    /// The original code's toy configuration: 20 x 40, 5-sparse, `ρ = 0.1`.
    pub fn toy() -> Self {
        LassoConfig {
            rows: 20,
            cols: 40,
            sparsity: 5,
            rho: 0.1,
        }
    }
}

/// One LASSO instance: `W` with N(0, 1) entries and unit-norm columns, `y = W x*` with a sparse
/// N(0, 1) `x*`, and `L = |W|_2^2`.
///
/// ```
/// use convergent_l2o::meta::{reference_optimum, relative_error, CompositeProblem, Lasso, LassoConfig};
/// use convergent_l2o::optim::ProxGradient;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let problem = Lasso::<f64>::random(LassoConfig::toy(), &mut StdRng::seed_from_u64(1)).unwrap();
/// let f_star = reference_optimum(&problem, 5000);
/// let mut ista = ProxGradient::ista(&problem);
/// for _ in 0..500 {
///     ista.step(&problem);
/// }
/// let err = relative_error(problem.objective(ista.x()), f_star);
/// assert!(err >= 0.0 && err < 1e-3);
/// ```
#[derive(Clone, Debug)]
pub struct Lasso<T: Scalar> {
    w: DMatrix<T>,
    y: DMatrix<T>,
    x_true: DMatrix<T>,
    rho: f64,
    lipschitz: f64,
}

impl<T: Scalar> Lasso<T> {
    /// A random instance; the same `rng` state gives the same instance. Errors on zero sizes,
    /// `sparsity > cols` or a negative `ρ`.
    pub fn random(config: LassoConfig, rng: &mut impl Rng) -> Result<Self, ProblemError> {
        let LassoConfig {
            rows,
            cols,
            sparsity,
            rho,
        } = config;
        check_sizes("LASSO", rows, cols, sparsity, rho)?;
        let mut w = DMatrix::<T>::from_fn(rows, cols, |_, _| {
            let v: f64 = StandardNormal.sample(rng);
            T::cast(v)
        });
        for mut c in w.column_iter_mut() {
            let n = c.norm();
            if n > T::zero() {
                c /= n;
            }
        }
        let x_true = sparse_normal(cols, sparsity, rng);
        let y = &w * &x_true;
        Self::new(w, y, rho).map(|p| Lasso { x_true, ..p })
    }

    /// An instance with given data (`y` is `rows x 1`); errors on empty or mismatched shapes.
    pub fn new(w: DMatrix<T>, y: DMatrix<T>, rho: f64) -> Result<Self, ProblemError> {
        check_sizes("LASSO", w.nrows(), w.ncols(), 0, rho)?;
        if y.shape() != (w.nrows(), 1) {
            return Err(ProblemError {
                problem: "LASSO",
                detail: format!("y is {:?}, expected {} x 1", y.shape(), w.nrows()),
            });
        }
        let lipschitz = spectral_norm(&w).powi(2);
        let x_true = DMatrix::zeros(w.ncols(), 1);
        Ok(Lasso {
            w,
            y,
            x_true,
            rho,
            lipschitz,
        })
    }

    /// The matrix `W`.
    pub fn w(&self) -> &DMatrix<T> {
        &self.w
    }

    /// The observations `y`.
    pub fn y(&self) -> &DMatrix<T> {
        &self.y
    }

    /// The sparse vector that generated `y` (zero for [`Lasso::new`]).
    pub fn x_true(&self) -> &DMatrix<T> {
        &self.x_true
    }
}

impl<T: Scalar> CompositeProblem<T> for Lasso<T> {
    fn dim(&self) -> usize {
        self.w.ncols()
    }
    fn rho(&self) -> f64 {
        self.rho
    }
    fn lipschitz(&self) -> f64 {
        self.lipschitz
    }
    fn smooth_var<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        let r = tape.constant(self.w.clone()).matmul(x) - tape.constant(self.y.clone());
        r.square().sum().scale(T::cast(0.5))
    }
    fn smooth_grad_var<'t>(&self, x: Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        let w = tape.constant(self.w.clone());
        let r = w.matmul(x) - tape.constant(self.y.clone());
        w.tr_matmul(r)
    }
    fn smooth(&self, x: &DMatrix<T>) -> T {
        (&self.w * x - &self.y).norm_squared() * T::cast(0.5)
    }
    fn smooth_grad(&self, x: &DMatrix<T>) -> DMatrix<T> {
        self.w.tr_mul(&(&self.w * x - &self.y))
    }
}
