//! Log-scale plots of per-iteration curves (relative errors), as SVG.

use convergent_l2o::models::write_atomically;
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;

/// Values below this are drawn at it (a relative error of exactly 0 has no logarithm).
const FLOOR: f64 = 1e-16;
/// Values above this are drawn at it (a diverged run; a log axis over hundreds of decades
/// makes the plotting library spin).
const CEIL: f64 = 1e8;

const PALETTE: [RGBColor; 6] = [
    RGBColor(127, 127, 127),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

/// Writes `path` (atomically): one line per curve against the iteration `k = 0, 1, ...`, log
/// y axis labelled `y_desc`, a legend; non-finite points are skipped, tiny ones floored, huge
/// ones capped at 1e8.
pub fn log_curves_svg(
    path: &Path,
    title: &str,
    y_desc: &str,
    curves: &[(&str, &[f64])],
) -> Result<(), Box<dyn Error>> {
    let finite = || {
        curves
            .iter()
            .flat_map(|(_, c)| c.iter())
            .filter(|v| v.is_finite())
            .map(|v| v.clamp(FLOOR, CEIL))
    };
    let lo = finite().fold(f64::INFINITY, f64::min);
    let hi = finite().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo / 2.0, hi * 2.0)
    } else {
        (FLOOR, 1.0)
    };
    let len = curves
        .iter()
        .map(|(_, c)| c.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..(len - 1) as f64, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("iteration k")
            .y_desc(y_desc)
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (i, (label, values)) in curves.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let points = values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, v)| (k as f64, v.clamp(FLOOR, CEIL)));
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(label.to_string())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
    }
    write_atomically(path, svg.as_bytes())?;
    Ok(())
}
