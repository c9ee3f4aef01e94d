//! How initial points are drawn.

use crate::tape::Scalar;
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// A distribution of initial points `x0` (entries drawn independently).
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

    /// A `dim` x 1 draw; a degenerate distribution (`hi <= lo`, `std <= 0`, not finite) gives
    /// the constant `lo` or 0 rather than a panic.
    ///
    /// ```
    /// use convergent_l2o::problems::InitialPoint;
    /// use rand::{rngs::StdRng, SeedableRng};
    /// let x0 = InitialPoint::META_TRAIN.sample::<f64>(5, &mut StdRng::seed_from_u64(0));
    /// assert!(x0.iter().all(|v| (0.0..0.01).contains(v)));
    /// ```
    pub fn sample<T: Scalar>(&self, dim: usize, rng: &mut impl Rng) -> DMatrix<T> {
        match *self {
            InitialPoint::Uniform { lo, hi } if lo < hi && (hi - lo).is_finite() => {
                let d = Uniform::new(lo, hi);
                DMatrix::from_fn(dim, 1, |_, _| T::cast(d.sample(rng)))
            }
            InitialPoint::Uniform { lo, .. } => DMatrix::from_element(dim, 1, T::cast(lo)),
            InitialPoint::Normal { std } => match Normal::new(0.0, std) {
                Ok(d) if std > 0.0 => DMatrix::from_fn(dim, 1, |_, _| T::cast(d.sample(rng))),
                _ => DMatrix::zeros(dim, 1),
            },
        }
    }
}
