//! The figures: Fig. 1 (training loss, mean ± std over runs) and the divergence figure
//! (update and parameter norms of the long runs), as SVG.

use crate::{write_file, Res};
use convergent_l2o::eval::Evaluated;
use plotters::prelude::*;
use std::path::Path;

fn color(name: &str) -> RGBColor {
    match name {
        "ConvergentL2O" => RGBColor(214, 39, 40),
        "LSTM" => RGBColor(148, 103, 189),
        "Adam" => RGBColor(31, 119, 180),
        "SGD" => RGBColor(44, 160, 44),
        "NAG" => RGBColor(255, 127, 14),
        "RMSprop" => RGBColor(127, 127, 127),
        _ => RGBColor(0, 0, 0),
    }
}

/// One curve: mean and a band (lower, upper) per step.
struct Band {
    label: String,
    points: Vec<(f64, f64, f64, f64)>,
}

/// Draws bands (shaded) and means (lines) on one panel; non-finite points are skipped.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    bands: &[Band],
    x_range: (f64, f64),
    y_range: (f64, f64),
) -> Res<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)?;
    chart
        .configure_mesh()
        .x_desc("step t")
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let clamp = |v: f64| v.clamp(y_range.0, y_range.1);
    let inside = |p: &&(f64, f64, f64, f64)| {
        p.0 >= x_range.0
            && p.0 <= x_range.1
            && p.1.is_finite()
            && p.2.is_finite()
            && p.3.is_finite()
    };
    for b in bands {
        let c = color(&b.label);
        let pts: Vec<&(f64, f64, f64, f64)> = b.points.iter().filter(inside).collect();
        if pts.is_empty() {
            continue;
        }
        let mut poly: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, clamp(p.3))).collect();
        poly.extend(pts.iter().rev().map(|p| (p.0, clamp(p.2))));
        chart.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.2).filled())))?;
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, clamp(p.1))),
                c.stroke_width(2),
            ))?
            .label(b.label.clone())
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

fn y_range_of(bands: &[Band], x_from: f64, floor_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for b in bands {
        for p in b.points.iter().filter(|p| p.0 >= x_from) {
            for v in [p.1, p.2, p.3] {
                if v.is_finite() {
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
            }
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if floor_zero {
        lo = lo.min(0.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-6);
    (lo - if floor_zero { 0.0 } else { pad }, hi + pad)
}

/// Fig. 1 for one activation: the training loss (mean ± std over runs), all steps and the
/// last 50.
pub(crate) fn plot_losses(path: &Path, title: &str, results: &[&Evaluated]) -> Res<()> {
    let bands: Vec<Band> = results
        .iter()
        .map(|r| Band {
            label: r.optimizer.clone(),
            points: r
                .per_step("loss")
                .into_iter()
                .enumerate()
                .map(|(t, (m, s))| (t as f64, m, m - s, m + s))
                .collect(),
        })
        .collect();
    let last = bands
        .iter()
        .map(|b| b.points.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1) as f64;
    // The initial loss can be far above the rest (ReLU); the full panel is capped at 1.2x the
    // largest mean at t = 0 so the curves stay readable.
    let start_max = bands
        .iter()
        .filter_map(|b| b.points.first().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let (lo, hi) = y_range_of(&bands, 0.0, true);
    let full_hi = if start_max > 0.0 {
        hi.min(1.2 * start_max)
    } else {
        hi
    };
    let zoom_from = (last - 50.0).max(0.0);
    let zoom = y_range_of(&bands, zoom_from, false);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1300, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        draw_panel(
            &panels[0],
            title,
            "training loss f(x_t)",
            &bands,
            (0.0, last),
            (lo, full_hi),
        )?;
        draw_panel(
            &panels[1],
            &format!("{title}: last {} steps", (last - zoom_from) as usize),
            "training loss f(x_t)",
            &bands,
            (zoom_from, last),
            zoom,
        )?;
        root.present()?;
    }
    write_file(path, &svg)
}

/// The divergence figure: log10 of the update and parameter norms over the long runs.
pub(crate) fn plot_divergence(path: &Path, long: &[Evaluated]) -> Res<()> {
    let log_bands = |series: &str| -> Vec<Band> {
        long.iter()
            .map(|r| Band {
                label: r.optimizer.clone(),
                points: r
                    .per_step(series)
                    .into_iter()
                    .enumerate()
                    .map(|(t, (m, s))| {
                        // A log scale cannot show mean - std <= 0: the band's floor is m / 100.
                        let lower = (m - s).max(m / 100.0);
                        (t as f64, m.log10(), lower.log10(), (m + s).log10())
                    })
                    .collect(),
            })
            .collect()
    };
    let updates = log_bands("update_norm");
    let params = log_bands("param_norm");
    let last = long
        .iter()
        .flat_map(|r| r.traces.iter().map(|t| t.values("loss").len()))
        .max()
        .unwrap_or(1)
        .saturating_sub(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1300, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, 2));
        draw_panel(
            &panels[0],
            "norm of the updates (tanh)",
            "log10 |x_{t+1} - x_t|",
            &updates,
            (0.0, last),
            y_range_of(&updates, 0.0, false),
        )?;
        draw_panel(
            &panels[1],
            "norm of the classifier parameters (tanh)",
            "log10 |x_t|",
            &params,
            (0.0, last),
            y_range_of(&params, 0.0, false),
        )?;
        root.present()?;
    }
    write_file(path, &svg)
}
