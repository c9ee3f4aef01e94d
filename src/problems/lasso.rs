//! LASSO: `F(x) = 1/2 |W x - y|^2 + ρ |x|_1`, and what the composite problems share: size
//! checks, sparse ground truths, the spectral norm, the relative-error metric.

use super::{Draw, Problem, ProblemError, ProblemFamily, Sampled};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
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

/// A configuration is the family of its random instances, each started at `x_0 = 0` (the
/// original code's meta-training and test distribution): draw `i` of meta-step `k` is
/// [`Lasso::random`] from the generator the meta-trainer derives for it.
///
/// ```
/// use convergent_l2o::problems::{Draw, LassoConfig, ProblemFamily};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let draw = Draw { meta_step: 0, index: 0 };
/// let s = ProblemFamily::<f64>::sample(&LassoConfig::toy(), draw, &mut StdRng::seed_from_u64(0)).unwrap();
/// assert_eq!(s.problem.dim(), 40);
/// assert!(s.x0.iter().all(|v| *v == 0.0));
/// ```
impl<T: Scalar> ProblemFamily<T> for LassoConfig {
    fn name(&self) -> String {
        format!(
            "LASSO {} x {}, {}-sparse, rho {}",
            self.rows, self.cols, self.sparsity, self.rho
        )
    }
    fn sample(&self, _draw: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError> {
        let problem = Lasso::<T>::random(*self, rng)?;
        let x0 = DMatrix::zeros(self.cols, 1);
        Sampled::new(problem, x0)
    }
}

/// One LASSO instance: `W` with N(0, 1) entries and unit-norm columns, `y = W x*` with a sparse
/// N(0, 1) `x*`, and `L = |W|_2^2`.
///
/// ```
/// use convergent_l2o::problems::{Lasso, LassoConfig, Problem};
/// use nalgebra::DMatrix;
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let problem = Lasso::<f64>::random(LassoConfig::toy(), &mut StdRng::seed_from_u64(1)).unwrap();
/// assert_eq!(Problem::<f64>::l1_weight(&problem), 0.1);
/// let zero = DMatrix::zeros(40, 1);
/// // F(0) = |y|² / 2
/// assert!((problem.objective(&zero, 0) - 0.5 * problem.y().norm_squared()).abs() < 1e-12);
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

impl<T: Scalar> Problem<T> for Lasso<T> {
    fn name(&self) -> String {
        "LASSO".into()
    }
    fn dim(&self) -> usize {
        self.w.ncols()
    }
    fn l1_weight(&self) -> f64 {
        self.rho
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.lipschitz)
    }
    fn loss<'t>(&self, x: Var<'t, T>, _step: usize) -> Var<'t, T> {
        let tape = x.tape();
        let r = tape.constant(self.w.clone()).matmul(x) - tape.constant(self.y.clone());
        r.square().sum().scale(T::cast(0.5))
    }
    /// The gradient in closed form, `Wᵀ (W x - y)`, written with recording ops (so
    /// differentiable again whatever `create_graph` says).
    fn loss_and_grad<'t>(
        &self,
        x: Var<'t, T>,
        step: usize,
        _create_graph: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let tape = x.tape();
        let w = tape.constant(self.w.clone());
        let r = w.matmul(x) - tape.constant(self.y.clone());
        (self.loss(x, step), w.tr_matmul(r))
    }
    fn value_and_grad(&self, x: &DMatrix<T>, _step: usize) -> (f64, DMatrix<T>) {
        let r = &self.w * x - &self.y;
        let f = (r.norm_squared() * T::cast(0.5)).as_f64();
        (f, self.w.tr_mul(&r))
    }
    fn objective(&self, x: &DMatrix<T>, _step: usize) -> f64 {
        let smooth = (&self.w * x - &self.y).norm_squared() * T::cast(0.5);
        (smooth + T::cast(self.rho) * x.iter().fold(T::zero(), |a, v| a + v.abs())).as_f64()
    }
}

/// Checks the sizes shared by the composite generators: positive rows and columns,
/// `sparsity <= cols`, a finite `rho >= 0`.
pub(crate) fn check_sizes(
    problem: &'static str,
    rows: usize,
    cols: usize,
    sparsity: usize,
    rho: f64,
) -> Result<(), ProblemError> {
    let err = |detail: String| Err(ProblemError { problem, detail });
    if rows == 0 || cols == 0 {
        return err(format!("W is {rows} x {cols}; both sizes must be positive"));
    }
    if sparsity > cols {
        return err(format!(
            "sparsity {sparsity} exceeds the dimension {cols} of x*"
        ));
    }
    if !(rho.is_finite() && rho >= 0.0) {
        return err(format!("rho = {rho} must be finite and >= 0"));
    }
    Ok(())
}

/// A `cols x 1` vector with `sparsity` N(0, 1) entries at random positions.
pub(crate) fn sparse_normal<T: Scalar>(
    cols: usize,
    sparsity: usize,
    rng: &mut impl rand::Rng,
) -> DMatrix<T> {
    let support = rand::seq::index::sample(rng, cols, sparsity);
    let mut x = DMatrix::zeros(cols, 1);
    for i in support.iter() {
        let v: f64 = StandardNormal.sample(rng);
        x[i] = T::cast(v);
    }
    x
}

/// The largest singular value `|W|_2`.
pub(crate) fn spectral_norm<T: Scalar>(w: &DMatrix<T>) -> f64 {
    w.clone()
        .singular_values()
        .iter()
        .fold(0.0, |m, s| f64::max(m, s.as_f64()))
}

/// The benchmark metric of composite problems, `(F(x) - F*) / F*`.
pub fn relative_error(objective: f64, optimum: f64) -> f64 {
    (objective - optimum) / optimum
}
