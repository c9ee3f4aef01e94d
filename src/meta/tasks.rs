//! Optimizees: objectives with an initial-point distribution, behind one trait.

use crate::meta::classifier::ClassifierShape;
use crate::meta::data::{Batches, Subset};
use crate::models::Activation;
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};
use std::sync::Arc;

/// An objective `f` (possibly stochastic: step `t` may see minibatch `t`).
///
/// `Sync` so that independent runs on one task can go in parallel.
pub trait Task<T: Scalar>: Sync {
    /// Number of variables.
    fn dim(&self) -> usize;
    /// `f(x)` at step `t`, recorded on `x`'s tape (1 x 1).
    fn loss<'t>(&self, x: Var<'t, T>, t: usize) -> Var<'t, T>;
    /// The smoothness constant β of `∇f`, if known.
    fn smoothness(&self) -> Option<f64> {
        None
    }
    /// `inf f`, if known.
    fn infimum(&self) -> Option<f64> {
        None
    }
}

/// How initial points are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitialPoint {
    /// Entries uniform in `[lo, hi)` (the paper's meta-training: U[0, 0.01]).
    Uniform {
        /// Lower end.
        lo: f64,
        /// Upper end.
        hi: f64,
    },
    /// Entries normal with mean 0 and standard deviation `std` (the paper's test: 0.1).
    Normal {
        /// Standard deviation.
        std: f64,
    },
}

impl InitialPoint {
    /// The paper's meta-training distribution U[0, 0.01].
    pub const META_TRAIN: InitialPoint = InitialPoint::Uniform { lo: 0.0, hi: 0.01 };
    /// The paper's evaluation distribution N(0, 0.1).
    pub const PAPER_TEST: InitialPoint = InitialPoint::Normal { std: 0.1 };

    /// A `dim` x 1 draw.
    pub fn sample<T: Scalar>(&self, dim: usize, rng: &mut impl Rng) -> DMatrix<T> {
        match *self {
            InitialPoint::Uniform { lo, hi } => {
                let d = Uniform::new(lo, hi);
                DMatrix::from_fn(dim, 1, |_, _| T::cast(d.sample(rng)))
            }
            InitialPoint::Normal { std } => {
                let d = Normal::new(0.0, std).expect("finite std");
                DMatrix::from_fn(dim, 1, |_, _| T::cast(d.sample(rng)))
            }
        }
    }
}

/// `f(x) = 1/2 (x - c)ᵀ A (x - c)` with `A` symmetric positive definite: β = λmax(A),
/// inf f = 0.
#[derive(Clone, Debug)]
pub struct Quadratic<T: Scalar> {
    a: DMatrix<T>,
    c: DMatrix<T>,
    beta: f64,
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
        }
    }
}

impl<T: Scalar> Task<T> for Quadratic<T> {
    fn dim(&self) -> usize {
        self.c.nrows()
    }
    fn loss<'t>(&self, x: Var<'t, T>, _t: usize) -> Var<'t, T> {
        let tape = x.tape();
        let d = x - tape.constant(self.c.clone());
        d.dot(tape.constant(self.a.clone()).matmul(d))
            .scale(T::cast(0.5))
    }
    fn smoothness(&self) -> Option<f64> {
        Some(self.beta)
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

impl<T: Scalar> Task<T> for Logistic<T> {
    fn dim(&self) -> usize {
        self.signed.ncols()
    }
    fn loss<'t>(&self, x: Var<'t, T>, _t: usize) -> Var<'t, T> {
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

/// The paper's optimizee: the 784 -> 10 classifier with cross-entropy, step `t` seeing the
/// `(start + t)`-th minibatch of a data split, taken sequentially (wrapping around).
#[derive(Clone)]
pub struct Classifier<T: Scalar> {
    batches: Arc<Batches<T>>,
    activation: Activation,
    start: usize,
}

impl<T: Scalar> Classifier<T> {
    /// The classifier on `data` in minibatches of `batch_size` with `activation`, starting at
    /// minibatch `start`. Converts the whole split; to share one conversion between many
    /// tasks use [`Classifier::with_batches`].
    pub fn new(data: Subset<'_>, activation: Activation, batch_size: usize, start: usize) -> Self {
        Self::with_batches(Arc::new(Batches::new(data, batch_size)), activation, start)
    }

    /// The classifier on already converted minibatches.
    pub fn with_batches(batches: Arc<Batches<T>>, activation: Activation, start: usize) -> Self {
        Classifier {
            batches,
            activation,
            start,
        }
    }
}

impl<T: Scalar> Task<T> for Classifier<T> {
    fn dim(&self) -> usize {
        ClassifierShape::MNIST.num_params()
    }
    fn loss<'t>(&self, x: Var<'t, T>, t: usize) -> Var<'t, T> {
        let tape = x.tape();
        let index = self.start + t;
        ClassifierShape::MNIST.loss(
            x,
            tape.constant_shared_with_transpose(
                self.batches.images(index).clone(),
                self.batches.images_transposed(index).clone(),
            ),
            tape.constant_shared(self.batches.one_hot(index).clone()),
            self.activation,
        )
    }
}
