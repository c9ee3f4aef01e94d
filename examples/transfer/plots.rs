//! The loss figure of `eval`: the minibatch training loss (mean over runs, moving average over
//! 10 steps) and log10 of the update norm `|x_{t+1} - x_t|`, one curve per optimizer, as SVG.

use crate::{write_file, Res};
use convergent_l2o::eval::Evaluated;
use plotters::prelude::*;
use std::path::Path;

fn color(name: &str) -> RGBColor {
    let base = name.trim_end_matches(" (oracle)");
    let c = match base {
        "Adam" => (31, 119, 180),
        "SGD" => (44, 160, 44),
        "NAG" => (255, 127, 14),
        "RMSprop" => (127, 127, 127),
        "ConvergentL2O" => (148, 103, 189),
        _ => (214, 39, 40),
    };
    if base.len() < name.len() {
        // Oracle-tuned baselines: the same hue, lighter.
        RGBColor(
            c.0 / 2 + 110,
            (c.1 as u16 / 2 + 110) as u8,
            (c.2 as u16 / 2 + 110) as u8,
        )
    } else {
        RGBColor(c.0, c.1, c.2)
    }
}

/// Per-step means of `series`, smoothed by a trailing moving average over `window` steps.
fn curve(r: &Evaluated, series: &str, window: usize, log: bool) -> Vec<(f64, f64)> {
    let means: Vec<f64> = r.per_step(series).into_iter().map(|(m, _)| m).collect();
    (0..means.len())
        .map(|t| {
            let from = t.saturating_sub(window - 1);
            let slice = &means[from..=t];
            let m = slice.iter().sum::<f64>() / slice.len() as f64;
            (t as f64, if log { m.log10() } else { m })
        })
        .filter(|p| p.1.is_finite())
        .collect()
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    curves: &[(String, Vec<(f64, f64)>)],
) -> Res<()>
where
    DB::ErrorType: 'static,
{
    let all = curves.iter().flat_map(|(_, c)| c.iter());
    let (mut x_hi, mut lo, mut hi) = (1.0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all {
        x_hi = x_hi.max(x);
        lo = lo.min(y);
        hi = hi.max(y);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x_hi, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("step t")
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (name, pts) in curves {
        let c = color(name);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// Writes the two panels (training loss, update norm) to `path`.
pub(crate) fn plot_loss(path: &Path, title: &str, results: &[Evaluated]) -> Res<()> {
    let losses: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| (r.optimizer.clone(), curve(r, "loss", 10, false)))
        .collect();
    let updates: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .map(|r| (r.optimizer.clone(), curve(r, "update_norm", 1, true)))
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1300, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        panel(
            &panels[0],
            title,
            "training loss (10-step average)",
            &losses,
        )?;
        panel(&panels[1], "update norm", "log10 |x_{t+1} - x_t|", &updates)?;
        root.present()?;
    }
    write_file(path, &svg)
}
