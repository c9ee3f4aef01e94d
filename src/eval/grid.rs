//! The paper's learning-rate protocol for the hand-crafted baselines (footnote 6 of Martin &
//! Furieri): the rate that minimizes the training loss after a fixed number of steps.

use super::run::{run, EvalError, RunConfig};
use crate::optim::Tunable;
use crate::problems::Problem;
use crate::tape::Scalar;
use nalgebra::DMatrix;
use rayon::prelude::*;

/// The outcome of a learning-rate grid search.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSearch {
    /// The optimizer searched.
    pub optimizer: String,
    /// The chosen learning rate.
    pub lr: f64,
    /// Its score.
    pub score: f64,
    /// `(lr, score)` for every rate of the grid (`+inf`: some run diverged).
    pub scores: Vec<(f64, f64)>,
}

/// The learning-rate grid of the reproduction: {1, 2.5, 5, 7.5} x 10^k for k = -4..0, then
/// 10 (21 rates; the original code's tuned rates 1e-3, 5e-3, 1e-2, 7.5e-2 are on it).
pub fn default_lr_grid() -> Vec<f64> {
    let mut grid: Vec<f64> = (-4..=0)
        .flat_map(|k| [1.0, 2.5, 5.0, 7.5].map(|m| m * 10f64.powi(k)))
        .collect();
    grid.push(10.0);
    grid
}

/// For every rate of `grid`, runs `base` with that rate on `problem` from each of `x0s` for
/// `steps` steps and scores the rate by the mean of `final_loss(x_S)` over the runs (`+inf` if
/// a run diverged or the loss is not finite); returns the rate of lowest score (the smaller
/// rate on a tie). A rate the optimizer refuses is an error.
///
/// ```
/// use convergent_l2o::eval::grid_search;
/// use convergent_l2o::optim::HeavyBall;
/// use convergent_l2o::problems::{Problem, Quadratic};
/// use nalgebra::{dmatrix, DMatrix};
///
/// let q = Quadratic::<f64>::new(dmatrix![1.0, 0.0; 0.0, 0.5], DMatrix::zeros(2, 1)).unwrap();
/// let x0s = vec![dmatrix![1.0; 1.0]];
/// let loss = |x: &DMatrix<f64>| q.objective(x, 0);
/// let best = grid_search(&HeavyBall::gd(0.1).unwrap(), &[0.1, 1.0, 3.0], &q, &x0s, 20, &loss).unwrap();
/// assert_eq!(best.lr, 1.0); // 3.0 diverges, 0.1 is slow
/// ```
pub fn grid_search<T: Scalar>(
    base: &dyn Tunable<T>,
    grid: &[f64],
    problem: &dyn Problem<T>,
    x0s: &[DMatrix<T>],
    steps: usize,
    final_loss: &(dyn Fn(&DMatrix<T>) -> f64 + Sync),
) -> Result<GridSearch, EvalError> {
    if grid.is_empty() || x0s.is_empty() {
        return Err(EvalError::Config(
            "a grid search needs learning rates and initial points".into(),
        ));
    }
    let cfg = RunConfig::bare(steps);
    let candidates = grid
        .iter()
        .map(|&lr| base.with_lr(lr).map_err(|e| EvalError::Optim(e.into())))
        .collect::<Result<Vec<_>, _>>()?;
    // Every (rate, initial point) pair is one parallel task: run per rate, the few initial
    // points of a grid search (3 in the reproduction) left one of two threads idle a third
    // of the time. Each run is computed exactly as alone, and the scores are summed in the
    // order of `x0s` afterwards, so the result does not depend on the threads.
    let finals: Vec<f64> = (0..grid.len() * x0s.len())
        .into_par_iter()
        .map(|k| {
            let (rate, start) = (k / x0s.len(), k % x0s.len());
            let run = run(&*candidates[rate], problem, &x0s[start], &cfg)?;
            let f = match run.trace.non_finite_at {
                Some(_) => f64::INFINITY,
                None => final_loss(&run.last),
            };
            Ok(if f.is_finite() { f } else { f64::INFINITY })
        })
        .collect::<Result<_, EvalError>>()?;
    let scores: Vec<(f64, f64)> = grid
        .iter()
        .zip(finals.chunks_exact(x0s.len()))
        .map(|(&lr, runs)| (lr, runs.iter().sum::<f64>() / x0s.len() as f64))
        .collect();
    let optimizer = base.name();
    let (lr, score) = scores
        .iter()
        .copied()
        .filter(|(_, s)| s.is_finite())
        .fold(None, |best: Option<(f64, f64)>, (lr, s)| match best {
            Some((_, b)) if b <= s => best,
            _ => Some((lr, s)),
        })
        .ok_or_else(|| EvalError::NoFiniteScore {
            optimizer: optimizer.clone(),
        })?;
    Ok(GridSearch {
        optimizer,
        lr,
        score,
        scores,
    })
}
