//! Validation of hyperparameters: a clear error instead of a silently wrong run.

use std::fmt;

/// A hyperparameter outside its admissible range.
#[derive(Clone, Debug, PartialEq)]
pub struct HyperError {
    /// The optimizer or certificate that refused it.
    pub owner: &'static str,
    /// Which hyperparameter, its value and the admissible range.
    pub detail: String,
}

impl fmt::Display for HyperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.owner, self.detail)
    }
}

impl std::error::Error for HyperError {}

/// `Ok` if `lo <= value < hi` (`hi` inclusive when `hi_inclusive`), else an error naming it.
pub fn check_range(
    owner: &'static str,
    name: &str,
    value: f64,
    lo: f64,
    lo_inclusive: bool,
    hi: f64,
    hi_inclusive: bool,
) -> Result<(), HyperError> {
    let above = if lo_inclusive {
        value >= lo
    } else {
        value > lo
    };
    let below = if hi_inclusive {
        value <= hi
    } else {
        value < hi
    };
    // NaN fails both comparisons, so it is refused too.
    if above && below {
        return Ok(());
    }
    Err(HyperError {
        owner,
        detail: format!(
            "{name} = {value} is outside {}{lo}, {hi}{}",
            if lo_inclusive { "[" } else { "(" },
            if hi_inclusive { "]" } else { ")" }
        ),
    })
}

/// `Ok` if `value > lo` and finite (learning rates, counts, clipping thresholds).
pub fn check_positive(
    owner: &'static str,
    name: &str,
    value: f64,
    lo: f64,
) -> Result<(), HyperError> {
    check_range(owner, name, value, lo, false, f64::INFINITY, false)
}
