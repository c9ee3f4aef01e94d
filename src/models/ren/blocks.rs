//! Block helpers shared by the parameter map and the explicit model (a module of its own so
//! that `model` and `param_map` do not import each other).

use crate::tape::{Scalar, Var};

/// Splits the columns of `v` into consecutive blocks of the given widths.
pub(crate) fn split_cols<'t, T: Scalar>(v: Var<'t, T>, widths: &[usize]) -> Vec<Var<'t, T>> {
    let rows = v.nrows();
    let mut offset = 0;
    widths
        .iter()
        .map(|&w| {
            let part = if offset == 0 && w == v.ncols() {
                v
            } else {
                v.slice(0, offset, rows, w)
            };
            offset += w;
            part
        })
        .collect()
}

/// `concat_rows` that returns a single part unchanged.
pub(crate) fn cat_rows<'t, T: Scalar>(parts: &[Var<'t, T>]) -> Var<'t, T> {
    if parts.len() == 1 {
        parts[0]
    } else {
        Var::concat_rows(parts)
    }
}

/// `concat_cols` that returns a single part unchanged.
pub(crate) fn cat_cols<'t, T: Scalar>(parts: &[Var<'t, T>]) -> Var<'t, T> {
    if parts.len() == 1 {
        parts[0]
    } else {
        Var::concat_cols(parts)
    }
}
