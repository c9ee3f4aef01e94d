//! LOA out of distribution, as the paper's Section 5 tests it: the model trained on small
//! quadratics, not retrained, against BFGS, GD, Nesterov and heavy ball on larger quadratics
//! (the paper's n = 100 and 500), the original's synthetic logistic regression (P = 10, M = 50)
//! and a larger one, and ridge and logistic regression on real data. The paper's real data
//! (California housing P = 8, diabetes P = 10, mushrooms P = 112, w8a P = 300) are not here;
//! their stand-ins are two-digit MNIST tasks (`problems::data::binary_design`: 500 images of a
//! digit pair, pixels in [0, 1] pooled 4 x 4 (P = 50) or 2 x 2 (P = 197), with an intercept),
//! ridge with lambda = 0.1 (diabetes' value) and the original's logistic loss.
//!
//! Per suite: `loa_<suite>.csv` / `.svg` (see `loa::report`), and a table of the median and
//! the worst (maximum over instances) relative suboptimality at the early iterations where
//! the methods differ, printed and written to `loa_ood_table.csv`.

use super::loa::{instances, report, Suite};
use super::pa_data::DIGIT_PAIRS;
use convergent_l2o::models::write_atomically;
use convergent_l2o::optim::LoaBfgs;
use convergent_l2o::problems::data::{binary_design, Mnist, Split};
use convergent_l2o::problems::{
    standard_normal_point, LoaQuadratics, Problem, Ridge, SyntheticLogistic,
};
use nalgebra::{DMatrix, DVector};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

type Point = DMatrix<f64>;

/// Where the MNIST files are looked for (relative to the repository).
const MNIST: &str = "../shared/data/mnist-10k";

/// Images per real-data instance.
const SAMPLES: usize = 500;

/// The iterations of the table: the early ones, where the methods differ.
pub fn table_ks(steps: usize) -> Vec<usize> {
    [5, 10, 20, 50, 100, 300]
        .into_iter()
        .filter(|&k| k <= steps)
        .collect()
}

/// Prints one suite's table (median and worst at `ks`) and appends it to `csv`
/// (`suite,method,k,median,max`).
pub fn table(suite: &str, result: &Suite, ks: &[usize], csv: &mut String) {
    let mut head = format!(
        "  {suite}: median (worst) relative suboptimality\n    {:<11}",
        "k"
    );
    for k in ks {
        let _ = write!(head, " {k:>19}");
    }
    println!("{head}");
    for (name, median, max) in &result.methods {
        let mut line = format!("    {name:<11}");
        for &k in ks {
            let _ = write!(line, " {:>8.1e} ({:>8.1e})", median[k], max[k]);
            let _ = writeln!(csv, "{suite},{name},{k},{:e},{:e}", median[k], max[k]);
        }
        println!("{line}");
    }
}

/// An instance: its data matrix and its targets.
type Instance = (DMatrix<f64>, Vec<f64>);

/// `count` real-data instances: instance `i` is digit pair `i % 10`, images
/// `(i / 10) * SAMPLES..` of that pair, pooled `pool x pool`; `x_{-1} ~ N(0, I)`.
fn designs(data: &Mnist, count: usize, pool: usize) -> Result<Vec<Instance>, Box<dyn Error>> {
    (0..count)
        .map(|i| {
            let pair = DIGIT_PAIRS[i % DIGIT_PAIRS.len()];
            let skip = (i / DIGIT_PAIRS.len()) * SAMPLES;
            Ok(binary_design(
                data,
                Split::MetaTrain,
                pair,
                SAMPLES,
                skip,
                pool,
            )?)
        })
        .collect()
}

/// Runs one suite and adds its table.
#[allow(clippy::too_many_arguments)]
fn suite<P: Problem<f64>>(
    out_dir: &Path,
    name: &str,
    title: &str,
    model: &LoaBfgs<f64>,
    problems: &[(P, Point)],
    steps: usize,
    csv: &mut String,
) -> Result<(), Box<dyn Error>> {
    let result = report(out_dir, name, title, model, problems, steps)?;
    table(name, &result, &table_ks(steps), csv);
    Ok(())
}

/// Evaluates the trained `model` out of distribution (see the module documentation);
/// `quick` uses 4 instances, 30 steps and only the small problems.
pub fn run(
    out_dir: &Path,
    quick: bool,
    seed: u64,
    model: &LoaBfgs<f64>,
) -> Result<(), Box<dyn Error>> {
    let t0 = Instant::now();
    let (count, big_count, steps) = if quick { (4, 4, 30) } else { (20, 10, 100) };
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00d);
    let mut csv = String::from("suite,method,k,median,max\n");
    println!("LOA out of distribution ({steps} steps; the model is not retrained)");

    let dims: &[(usize, usize)] = if quick {
        &[(50, count)]
    } else {
        &[(100, count), (500, big_count)]
    };
    for &(n, c) in dims {
        let family = LoaQuadratics::new(n)?;
        let problems: Vec<(Ridge, Point)> =
            instances(c, n, &mut rng, |rng| Ok(family.sample(rng)?))?;
        let title = format!("Quadratics, dim {n} (the training family, larger)");
        suite(
            out_dir,
            &format!("ood_quadratics_n{n}"),
            &title,
            model,
            &problems,
            steps,
            &mut csv,
        )?;
    }

    let synthetic: &[(usize, usize)] = if quick {
        &[(10, 50)]
    } else {
        &[(10, 50), (100, 500)]
    };
    for &(p, m) in synthetic {
        let problems: Vec<(SyntheticLogistic, Point)> = instances(count, p, &mut rng, |rng| {
            Ok(SyntheticLogistic::random(p, m, rng)?)
        })?;
        let title = format!("Synthetic logistic regression, P = {p}, M = {m}");
        suite(
            out_dir,
            &format!("ood_logistic_synthetic_p{p}"),
            &title,
            model,
            &problems,
            steps,
            &mut csv,
        )?;
    }

    match Mnist::load(Path::new(MNIST)) {
        Err(e) => println!("  real-data suites skipped: {MNIST}: {e}"),
        Ok(data) => {
            let pools: &[(usize, usize)] = if quick {
                &[(4, count)]
            } else {
                &[(4, count), (2, big_count)]
            };
            for &(pool, c) in pools {
                let sets = designs(&data, c, pool)?;
                let p = sets[0].0.ncols();
                let ridge = sets
                    .iter()
                    .map(|(a, b)| {
                        let r = Ridge::new(a.clone(), DVector::from_column_slice(b), 0.1)?;
                        Ok((r, standard_normal_point(p, &mut rng)))
                    })
                    .collect::<Result<Vec<_>, Box<dyn Error>>>()?;
                let title = format!("Ridge regression on MNIST digit pairs, P = {p}, lambda 0.1");
                suite(
                    out_dir,
                    &format!("ood_ridge_mnist_p{p}"),
                    &title,
                    model,
                    &ridge,
                    steps,
                    &mut csv,
                )?;
                let logistic = sets
                    .iter()
                    .map(|(a, b)| {
                        let l = SyntheticLogistic::from_data(a, b)?;
                        Ok((l, standard_normal_point(p, &mut rng)))
                    })
                    .collect::<Result<Vec<_>, Box<dyn Error>>>()?;
                let title = format!("Logistic regression on MNIST digit pairs, P = {p}");
                suite(
                    out_dir,
                    &format!("ood_logistic_mnist_p{p}"),
                    &title,
                    model,
                    &logistic,
                    steps,
                    &mut csv,
                )?;
            }
        }
    }
    let path = out_dir.join("loa_ood_table.csv");
    write_atomically(&path, csv.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "LOA out of distribution: done in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
