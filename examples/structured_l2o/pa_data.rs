//! Real-data test instances for L2O-PA, the paper's "directly transferred from synthetic"
//! settings as far as our data allow (the paper's BSD500, Ionosphere and Spambase are not
//! here; MNIST stands in):
//!
//! - LASSO on image patches (the paper: 8 x 8 BSD500 patches, a 64 x 128 dictionary,
//!   rho = 0.5): a 64 x 128 dictionary of 8 x 8 MNIST patches (pixels in [0, 1], columns
//!   normalised to unit norm), `y` another patch, `rho = 0.5`, `x_0 = 0`.
//! - ℓ1-logistic regression on a real dataset (the paper: Ionosphere 351 x 34, Spambase
//!   4601 x 57, standardised, rho = 0.1): two-digit MNIST tasks, 1000 images pooled 4 x 4
//!   (the training problems' 1000 x 50 shape: 49 pooled pixels and an intercept), pixel columns
//!   standardised, labels in {0, 1}, `rho = 0.1`, `x_0 = 0`.

use convergent_l2o::problems::data::{binary_design, Mnist, Split};
use convergent_l2o::problems::{L1Logistic, Lasso, Sampled};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::error::Error;

/// Side of a patch and atoms of the dictionary.
const PATCH: usize = 8;
const ATOMS: usize = 128;

/// A random `8 x 8` patch (pixels in [0, 1], column-major vector) with at least 8 inked
/// pixels, from a random image of `split`.
fn patch(data: &Mnist, split: Split, rng: &mut StdRng) -> Vec<f64> {
    let subset = data.split(split);
    let (rows, cols) = (data.rows(), data.cols());
    loop {
        let i = rng.gen_range(0..subset.len());
        let (r0, c0) = (
            rng.gen_range(0..=rows - PATCH),
            rng.gen_range(0..=cols - PATCH),
        );
        let pixels = &subset.pixels()[i * rows * cols..(i + 1) * rows * cols];
        let p: Vec<f64> = (0..PATCH * PATCH)
            .map(|j| pixels[(r0 + j % PATCH) * cols + c0 + j / PATCH] as f64 / 255.0)
            .collect();
        if p.iter().filter(|&&v| v > 0.1).count() >= PATCH {
            return p;
        }
    }
}

/// `count` LASSO instances on MNIST patches: one dictionary from the training split, each
/// `y` a patch of the test split.
pub fn lasso_patches(
    data: &Mnist,
    count: usize,
    seed: u64,
) -> Result<Vec<Sampled<f64>>, Box<dyn Error>> {
    if data.rows() < PATCH || data.cols() < PATCH {
        return Err(format!(
            "images of {} x {} are smaller than {PATCH} x {PATCH}",
            data.rows(),
            data.cols()
        )
        .into());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = DMatrix::zeros(PATCH * PATCH, ATOMS);
    for j in 0..ATOMS {
        let p = patch(data, Split::MetaTrain, &mut rng);
        let norm = p.iter().map(|v| v * v).sum::<f64>().sqrt();
        for (i, v) in p.iter().enumerate() {
            w[(i, j)] = v / norm;
        }
    }
    (0..count)
        .map(|_| {
            let y = DMatrix::from_vec(PATCH * PATCH, 1, patch(data, Split::Test, &mut rng));
            let problem = Lasso::new(w.clone(), y, 0.5)?;
            Ok(Sampled::new(problem, DMatrix::zeros(ATOMS, 1))?)
        })
        .collect()
}

/// The two-digit MNIST tasks that stand in for the papers' real binary datasets (L2O-PA's
/// ℓ1-logistic instances here, LOA's ridge and logistic ones in `loa_ood.rs`): instance `i`
/// uses pair `i % 10`.
pub const DIGIT_PAIRS: [(u8, u8); 10] = [
    (3, 8),
    (4, 9),
    (1, 7),
    (5, 6),
    (0, 6),
    (2, 7),
    (3, 5),
    (7, 9),
    (0, 8),
    (2, 3),
];

/// `count` (at most 10) ℓ1-logistic instances on two-digit MNIST tasks (instance `i`: the
/// first 1000 training images of digit pair `i`), pixel columns standardised (constant ones
/// set to 0). The paper has one instance per dataset.
pub fn logistic_digits(data: &Mnist, count: usize) -> Result<Vec<Sampled<f64>>, Box<dyn Error>> {
    const ROWS: usize = 1000;
    if count > DIGIT_PAIRS.len() {
        return Err(format!(
            "{count} digit-pair instances asked, {} exist",
            DIGIT_PAIRS.len()
        )
        .into());
    }
    DIGIT_PAIRS[..count]
        .iter()
        .map(|&pair| {
            let (mut a, b) = binary_design(data, Split::MetaTrain, pair, ROWS, 0, 4)?;
            let cols = a.ncols();
            for j in 0..cols - 1 {
                let col = a.column(j);
                let mean = col.mean();
                let std = (col.map(|v| (v - mean).powi(2)).sum() / ROWS as f64).sqrt();
                let mut col = a.column_mut(j);
                if std > 1e-12 {
                    col.apply(|v| *v = (*v - mean) / std);
                } else {
                    col.fill(0.0);
                }
            }
            let labels =
                DMatrix::from_iterator(ROWS, 1, b.iter().map(|&l| if l > 0.0 { 1.0 } else { 0.0 }));
            let problem = L1Logistic::new(a, labels, 0.1)?;
            Ok(Sampled::new(problem, DMatrix::zeros(cols, 1))?)
        })
        .collect()
}
