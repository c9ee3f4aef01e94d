//! The floating-point types the tape computes in.

use nalgebra::RealField;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::{Debug, Display};

/// A real scalar the tape can hold: `f32` (the paper's experiments) or `f64` (gradient checks).
///
/// ```
/// use convergent_l2o::tape::Scalar;
/// assert_eq!(<f32 as Scalar>::cast(0.5), 0.5f32);
/// assert_eq!(2.0f64.as_f64(), 2.0);
/// ```
pub trait Scalar:
    RealField + Copy + Default + Debug + Display + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Short name of the type, as printed by benchmarks (`"f32"`, `"f64"`).
    const NAME: &'static str;
    /// Converts from `f64`, rounding to the nearest representable value.
    fn cast(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;
    /// Converts a count or index to this type.
    fn from_count(n: usize) -> Self {
        Self::cast(n as f64)
    }
}

macro_rules! impl_scalar {
    ($ty:ident) => {
        impl Scalar for $ty {
            const NAME: &'static str = stringify!($ty);
            fn cast(x: f64) -> Self {
                x as $ty
            }
            fn as_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

impl_scalar!(f32);
impl_scalar!(f64);
