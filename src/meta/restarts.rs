//! Choosing among restarts: meta-training a few copies of a learned optimizer from different
//! initializations on the same problems and keeping the one whose meta-loss ended lowest.
//!
//! Some meta-training problems have minima that a run cannot leave once it is in one: the
//! paper's LSTM optimizer saturates after its first step (its update becomes a fixed direction
//! `W_out h* + b_out`, and `tanh`'s vanishing derivative starves the sign pattern of that
//! direction of gradient), so where a run ends depends on its initialization. Comparing the
//! restarts' meta-losses on the same meta-steps (the same draws) is a paired comparison on
//! training data only.

use super::MetaStepReport;

/// Mean meta-loss of the last `window` meta-steps of `history` (all of it when shorter);
/// NaN when the history is empty, `window` is 0 or a meta-loss in the window is not finite.
///
/// ```
/// use convergent_l2o::meta::{trailing_meta_loss, MetaStepReport};
/// let h: Vec<MetaStepReport> = [30.0, 22.0, 20.0]
///     .iter()
///     .enumerate()
///     .map(|(k, &m)| MetaStepReport { meta_step: k, meta_loss: m, grad_norm: 1.0, final_loss: 1.0, warning: None })
///     .collect();
/// assert_eq!(trailing_meta_loss(&h, 2), 21.0);
/// assert_eq!(trailing_meta_loss(&h, 10), 24.0);
/// assert!(trailing_meta_loss(&h[..0], 2).is_nan());
/// ```
pub fn trailing_meta_loss(history: &[MetaStepReport], window: usize) -> f64 {
    let n = window.min(history.len());
    if n == 0 {
        return f64::NAN;
    }
    let tail = &history[history.len() - n..];
    let sum: f64 = tail.iter().map(|r| r.meta_loss).sum();
    if sum.is_finite() {
        sum / n as f64
    } else {
        f64::NAN
    }
}

/// The restart whose [`trailing_meta_loss`] over `window` meta-steps is lowest (the first on
/// a tie); `None` when no restart has a finite one.
///
/// ```
/// use convergent_l2o::meta::{best_restart, MetaStepReport};
/// let h = |losses: &[f64]| -> Vec<MetaStepReport> {
///     losses.iter().enumerate()
///         .map(|(k, &m)| MetaStepReport { meta_step: k, meta_loss: m, grad_norm: 1.0, final_loss: 1.0, warning: None })
///         .collect()
/// };
/// let (a, b, c) = (h(&[40.0, 23.0, 22.9]), h(&[45.0, 21.0, 20.5]), h(&[f64::NAN]));
/// assert_eq!(best_restart(&[&a, &b, &c], 2), Some(1));
/// assert_eq!(best_restart(&[&c], 2), None);
/// ```
pub fn best_restart(histories: &[&[MetaStepReport]], window: usize) -> Option<usize> {
    histories
        .iter()
        .map(|h| trailing_meta_loss(h, window))
        .enumerate()
        .filter(|(_, m)| m.is_finite())
        .fold(None, |best: Option<(usize, f64)>, (i, m)| match best {
            Some((_, b)) if b <= m => best,
            _ => Some((i, m)),
        })
        .map(|(i, _)| i)
}
