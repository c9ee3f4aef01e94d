//! The arithmetic an update rule needs, for plain matrices (fast, off the tape) and for tape
//! variables (recorded, so hyperparameters like the learning rate can be meta-learned).
//! Each rule is written once, generic over this trait.

use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;

/// A value an optimizer's update can be computed on.
pub trait UpdateTensor: Clone {
    /// How a learnable hyperparameter (the learning rate) is held: a number off the tape, a
    /// 1 x 1 variable on it.
    type Rate: Clone;
    /// `a * self + b * other`.
    fn lin(&self, a: f64, other: &Self, b: f64) -> Self;
    /// Elementwise product.
    fn mul(&self, other: &Self) -> Self;
    /// Elementwise quotient.
    fn div(&self, other: &Self) -> Self;
    /// Elementwise square root.
    fn sqrt(&self) -> Self;
    /// `self + c` entrywise.
    fn add_const(&self, c: f64) -> Self;
    /// `rate * self`.
    fn times_rate(&self, rate: &Self::Rate) -> Self;
    /// `c * self`.
    fn scale(&self, c: f64) -> Self {
        self.lin(c, self, 0.0)
    }
    /// `self + other`.
    fn plus(&self, other: &Self) -> Self {
        self.lin(1.0, other, 1.0)
    }
    /// `self - other`.
    fn minus(&self, other: &Self) -> Self {
        self.lin(1.0, other, -1.0)
    }
    /// The gradient `self` with L2 weight decay `λ x` added (PyTorch's `weight_decay`).
    fn with_weight_decay(&self, x: &Self, lambda: f64) -> Self {
        if lambda == 0.0 {
            self.clone()
        } else {
            self.lin(1.0, x, lambda)
        }
    }
}

impl<T: Scalar> UpdateTensor for DMatrix<T> {
    type Rate = T;
    fn lin(&self, a: f64, other: &Self, b: f64) -> Self {
        let (a, b) = (T::cast(a), T::cast(b));
        self.zip_map(other, |x, y| a * x + b * y)
    }
    fn mul(&self, other: &Self) -> Self {
        self.component_mul(other)
    }
    fn div(&self, other: &Self) -> Self {
        self.component_div(other)
    }
    fn sqrt(&self) -> Self {
        self.map(|x| x.sqrt())
    }
    fn add_const(&self, c: f64) -> Self {
        let c = T::cast(c);
        self.map(|x| x + c)
    }
    fn times_rate(&self, rate: &T) -> Self {
        self * *rate
    }
    fn scale(&self, c: f64) -> Self {
        self * T::cast(c)
    }
}

impl<'t, T: Scalar> UpdateTensor for Var<'t, T> {
    type Rate = Var<'t, T>;
    fn lin(&self, a: f64, other: &Self, b: f64) -> Self {
        Var::scale(*self, T::cast(a)) + Var::scale(*other, T::cast(b))
    }
    fn mul(&self, other: &Self) -> Self {
        self.mul_elem(*other)
    }
    fn div(&self, other: &Self) -> Self {
        self.div_elem(*other)
    }
    fn sqrt(&self) -> Self {
        Var::sqrt(*self)
    }
    fn add_const(&self, c: f64) -> Self {
        self.add_scalar(T::cast(c))
    }
    fn times_rate(&self, rate: &Var<'t, T>) -> Self {
        self.mul_scalar(*rate)
    }
    fn scale(&self, c: f64) -> Self {
        Var::scale(*self, T::cast(c))
    }
}
