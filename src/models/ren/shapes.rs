//! Parameter lists of RENs: templates, random initialization, and lookups with shape checks.

use crate::models::Params;
use crate::tape::{Scalar, Var};
use nalgebra::DMatrix;
use rand::Rng;
use rand_distr::StandardNormal;

/// Names and shapes of a model's parameters, in storage order.
pub(crate) type Shapes = Vec<(&'static str, (usize, usize))>;

/// Zeros of every shape (the reference for [`Params::check_matches`]).
pub(crate) fn template<T: Scalar>(shapes: &Shapes) -> Params<T> {
    let mut p = Params::new();
    for &(name, (r, c)) in shapes {
        p.insert(name, DMatrix::zeros(r, c));
    }
    p
}

/// Entries `N(0, std²)`, except the polar scalar, which starts at `|X|_F` (so the polar
/// `H_X` starts equal to `XᵀX + εI`).
pub(crate) fn random<T: Scalar>(shapes: &Shapes, rng: &mut impl Rng, std: f64) -> Params<T> {
    let mut p = Params::new();
    for &(name, (r, c)) in shapes {
        let m = DMatrix::from_fn(r, c, |_, _| {
            T::cast(std * rng.sample::<f64, _>(StandardNormal))
        });
        p.insert(name, m);
    }
    if let (Some(x), Some(_)) = (p.try_get("X").cloned(), p.try_get("polar")) {
        let norm = x.iter().map(|v| v.as_f64().powi(2)).sum::<f64>().sqrt();
        p.get_mut("polar")[(0, 0)] = T::cast(norm);
    }
    p
}

/// The variable `name` from `get`, with the shape `shapes` requires.
///
/// Panics naming the model, the parameter and both shapes on a mismatch.
pub(crate) fn fetch<'t, T: Scalar>(
    get: &dyn Fn(&str) -> Var<'t, T>,
    shapes: &Shapes,
    name: &str,
    model: &str,
) -> Var<'t, T> {
    let &(_, shape) = shapes
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("{model}: this configuration has no parameter '{name}'"));
    let v = get(name);
    assert!(
        v.shape() == shape,
        "{model}::build: parameter '{name}' is {} x {}, expected {} x {}",
        v.nrows(),
        v.ncols(),
        shape.0,
        shape.1
    );
    v
}
