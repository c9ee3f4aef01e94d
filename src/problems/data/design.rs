//! Design matrices for convex regression on image data: two classes of a split, pixels scaled
//! to `[0, 1]`, average-pooled, with an intercept column (the out-of-distribution problems of
//! LOA: ridge and logistic regression on real data).

use super::mnist::{Mnist, Split};
use crate::problems::ProblemError;
use nalgebra::DMatrix;

/// `(A, b)`: the first `samples` images of `split` whose class is `classes.0` (label `+1`) or
/// `classes.1` (label `-1`), skipping the first `skip` such images; each row is the image's
/// pixels scaled to `[0, 1]` and averaged over `pool x pool` blocks (`1` keeps every pixel),
/// then a constant 1 (the intercept), so `A` has `(rows/pool)(cols/pool) + 1` columns. Errors
/// if `pool` is 0 or does not divide the image sides, the classes are equal, or fewer than
/// `samples` images (or none of one class) are left.
///
/// ```no_run
/// use convergent_l2o::problems::data::{binary_design, Mnist, Split};
/// let mnist = Mnist::load("../shared/data/mnist-10k".as_ref()).unwrap();
/// let (a, b) = binary_design(&mnist, Split::MetaTrain, (3, 8), 500, 0, 4).unwrap();
/// assert_eq!(a.shape(), (500, 50)); // 7 x 7 pooled pixels and the intercept
/// ```
pub fn binary_design(
    data: &Mnist,
    split: Split,
    classes: (u8, u8),
    samples: usize,
    skip: usize,
    pool: usize,
) -> Result<(DMatrix<f64>, Vec<f64>), ProblemError> {
    let err = |detail: String| ProblemError::new("binary design", detail);
    let (rows, cols) = (data.rows(), data.cols());
    if pool == 0 || rows % pool != 0 || cols % pool != 0 {
        return Err(err(format!(
            "pool {pool} must be positive and divide the image size {rows} x {cols}"
        )));
    }
    if classes.0 == classes.1 {
        return Err(err(format!("the two classes are both {}", classes.0)));
    }
    let subset = data.split(split);
    let chosen: Vec<usize> = subset
        .labels()
        .iter()
        .enumerate()
        .filter(|(_, &l)| l == classes.0 || l == classes.1)
        .map(|(i, _)| i)
        .skip(skip)
        .take(samples)
        .collect();
    if samples == 0 || chosen.len() < samples {
        return Err(err(format!(
            "{} images of classes {} and {} after skipping {skip}; {samples} (> 0) wanted",
            chosen.len(),
            classes.0,
            classes.1
        )));
    }
    let labels: Vec<f64> = chosen
        .iter()
        .map(|&i| {
            if subset.labels()[i] == classes.0 {
                1.0
            } else {
                -1.0
            }
        })
        .collect();
    if labels.iter().all(|&l| l == labels[0]) {
        return Err(err("the chosen images are all of one class".into()));
    }
    let (pr, pc) = (rows / pool, cols / pool);
    let features = rows * cols;
    let scale = 1.0 / (255.0 * (pool * pool) as f64);
    let mut a = DMatrix::zeros(samples, pr * pc + 1);
    for (r, &i) in chosen.iter().enumerate() {
        let pixels = &subset.pixels()[i * features..(i + 1) * features];
        for (p, &v) in pixels.iter().enumerate() {
            let (y, x) = (p / cols, p % cols);
            a[(r, (y / pool) * pc + x / pool)] += v as f64 * scale;
        }
        a[(r, pr * pc)] = 1.0;
    }
    Ok((a, labels))
}
