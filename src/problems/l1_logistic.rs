//! ℓ1-regularized logistic regression: `F(x) = mean_i BCE(σ(w_iᵀ x), y_i) + ρ |x|_1`.

use super::lasso::{check_sizes, sparse_normal, spectral_norm};
use super::{Draw, Problem, ProblemError, ProblemFamily, Sampled};
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
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

/// A configuration is the family of its random instances, each started at `x_0 = 0` (the
/// original code's meta-training and test distribution): draw `i` of meta-step `k` is
/// [`L1Logistic::random`] from the generator the meta-trainer derives for it.
///
/// ```
/// use convergent_l2o::problems::{Draw, LogisticConfig, ProblemFamily};
/// use rand::{rngs::StdRng, SeedableRng};
///
/// let draw = Draw { meta_step: 0, index: 0 };
/// let s = ProblemFamily::<f64>::sample(&LogisticConfig::toy(), draw, &mut StdRng::seed_from_u64(0)).unwrap();
/// assert_eq!((s.problem.dim(), s.problem.l1_weight()), (20, 0.1));
/// assert!(s.x0.iter().all(|v| *v == 0.0));
/// ```
impl<T: Scalar> ProblemFamily<T> for LogisticConfig {
    fn name(&self) -> String {
        format!(
            "l1-logistic {} x {}, {}-sparse, rho {}, W std {}",
            self.rows, self.cols, self.sparsity, self.rho, self.w_std
        )
    }
    fn sample(&self, _draw: Draw, rng: &mut StdRng) -> Result<Sampled<T>, ProblemError> {
        let problem = L1Logistic::<T>::random(*self, rng)?;
        let x0 = DMatrix::zeros(self.cols, 1);
        Sampled::new(problem, x0)
    }
}

/// One logistic instance: `W` with N(0, σ²) entries, labels `y = 1[W x* >= 0]` for a sparse
/// N(0, 1) `x*`.
///
/// The original code uses `|W|_2` (**not squared**) as the Lipschitz constant of `∇f`; the true
/// constant is `|W|_2^2 / (4 m)` ([`L1Logistic::true_lipschitz`]). [`Problem::smoothness`]
/// reports the larger of the two: the code's value (and so its step size) at the paper's sizes,
/// where it is the larger, and a valid bound everywhere.
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

/// `log(1 + e^z)` without overflow.
fn softplus<T: Scalar>(z: T) -> T {
    if z > T::zero() {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl<T: Scalar> Problem<T> for L1Logistic<T> {
    fn name(&self) -> String {
        "l1-logistic regression".into()
    }
    fn dim(&self) -> usize {
        self.w.ncols()
    }
    fn l1_weight(&self) -> f64 {
        self.rho
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.norm.max(self.true_lipschitz()))
    }
    fn loss<'t>(&self, x: Var<'t, T>, _step: usize) -> Var<'t, T> {
        // BCE(σ(z), y) = softplus(z) - y z.
        let tape = x.tape();
        let z = tape.constant(self.w.clone()).matmul(x);
        (z.softplus() - z.mul_elem(tape.constant(self.labels.clone()))).mean()
    }
    /// The gradient in closed form, `Wᵀ (σ(W x) - y) / m`, written with recording ops.
    fn loss_and_grad<'t>(
        &self,
        x: Var<'t, T>,
        step: usize,
        _create_graph: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let tape = x.tape();
        let w = tape.constant(self.w.clone());
        let r = w.matmul(x).sigmoid() - tape.constant(self.labels.clone());
        (self.loss(x, step), w.tr_matmul(r).scale(self.inv_m()))
    }
    fn value_and_grad(&self, x: &DMatrix<T>, _step: usize) -> (f64, DMatrix<T>) {
        (self.smooth(x).as_f64(), self.smooth_grad(x))
    }
    fn objective(&self, x: &DMatrix<T>, _step: usize) -> f64 {
        (self.smooth(x) + T::cast(self.rho) * x.iter().fold(T::zero(), |a, v| a + v.abs())).as_f64()
    }
}
