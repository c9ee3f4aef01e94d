//! Aggregation and reports: mean ± std over runs, CSV files, the paper's Markdown tables.

use super::run::Trace;
use std::fmt::Write as _;

/// Mean and standard deviation (population, ddof = 0, numpy's default) of `values`; NaN for
/// an empty slice or when a value is NaN.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// The runs of one optimizer in one scenario, as tables and CSV files see them.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    /// The optimizer's name.
    pub optimizer: String,
    /// The scenario (the classifier's activation, say).
    pub scenario: String,
    /// The learning rate of a hand-crafted rule.
    pub lr: Option<f64>,
    /// One trace per run.
    pub traces: Vec<Trace>,
}

impl Evaluated {
    /// Runs that stopped on a non-finite value.
    pub fn diverged(&self) -> usize {
        self.traces
            .iter()
            .filter(|t| t.non_finite_at.is_some())
            .count()
    }

    /// Mean ± std over runs of the `accuracy` series at step `t`; `None` if it was measured in
    /// no run, NaN if some run stopped before `t`.
    pub fn accuracy(&self, t: usize) -> Option<(f64, f64)> {
        self.at("accuracy", t)
    }

    /// Mean ± std over runs of series `name` at step `t`; `None` if it was recorded in no
    /// run, NaN if some run stopped before `t`.
    pub fn at(&self, name: &str, t: usize) -> Option<(f64, f64)> {
        let values: Vec<Option<f64>> = self.traces.iter().map(|tr| tr.at(name, t)).collect();
        if values.iter().all(Option::is_none) {
            return None;
        }
        let values: Vec<f64> = values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        Some(mean_std(&values))
    }

    /// Steps at which some run measured the accuracy, in increasing order.
    pub fn accuracy_steps(&self) -> Vec<usize> {
        let mut steps: Vec<usize> = self
            .traces
            .iter()
            .filter_map(|t| t.series("accuracy"))
            .flat_map(|s| s.points.iter().map(|(t, _)| *t))
            .collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    /// Per-step mean ± std over runs of the series `name`, recorded at every step (NaN at
    /// steps some run did not reach).
    pub fn per_step(&self, name: &str) -> Vec<(f64, f64)> {
        let series: Vec<Vec<f64>> = self.traces.iter().map(|t| t.values(name)).collect();
        let len = series.iter().map(Vec::len).max().unwrap_or(0);
        (0..len)
            .map(|s| {
                let values: Vec<f64> = series
                    .iter()
                    .map(|v| v.get(s).copied().unwrap_or(f64::NAN))
                    .collect();
                mean_std(&values)
            })
            .collect()
    }
}

/// `optimizer,activation,step,mean,std` rows: the accuracy (a fraction) at every measured
/// step.
pub fn accuracy_csv(results: &[Evaluated]) -> String {
    let mut out = String::from("optimizer,activation,step,mean,std\n");
    for r in results {
        for t in r.accuracy_steps() {
            if let Some((m, s)) = r.accuracy(t) {
                let _ = writeln!(out, "{},{},{t},{m:.6},{s:.6}", r.optimizer, r.scenario);
            }
        }
    }
    out
}

/// `optimizer,activation,step,{name}_mean,{name}_std` rows of the per-step series `name`.
pub fn series_csv(results: &[Evaluated], name: &str) -> String {
    let mut out = format!("optimizer,activation,step,{name}_mean,{name}_std\n");
    for r in results {
        for (t, (m, s)) in r.per_step(name).into_iter().enumerate() {
            let _ = writeln!(out, "{},{},{t},{m:.6e},{s:.6e}", r.optimizer, r.scenario);
        }
    }
    out
}

/// `optimizer,activation,step,loss_mean,loss_std`: the training curves (Fig. 1).
pub fn curves_csv(results: &[Evaluated]) -> String {
    series_csv(results, "loss")
}

/// The paper's table at step `t` in Markdown: one row per optimizer, one column per scenario
/// (in order of first appearance), cells `mean ± std%` of the test accuracy.
pub fn accuracy_table(results: &[Evaluated], t: usize) -> String {
    let mut optimizers: Vec<&str> = Vec::new();
    let mut scenarios: Vec<&str> = Vec::new();
    for r in results {
        if !optimizers.contains(&r.optimizer.as_str()) {
            optimizers.push(&r.optimizer);
        }
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    let mut out = format!("| Step t = {t} |");
    for s in &scenarios {
        let _ = write!(out, " {s} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(scenarios.len()));
    out.push('\n');
    for o in &optimizers {
        let _ = write!(out, "| {o} |");
        for s in &scenarios {
            let cell = results
                .iter()
                .find(|r| r.optimizer == *o && r.scenario == *s)
                .map_or("".to_string(), |r| match r.accuracy(t) {
                    None => "".into(),
                    Some((m, _)) if !m.is_finite() => {
                        format!("diverged ({}/{} runs)", r.diverged(), r.traces.len())
                    }
                    Some((m, sd)) => format!("{:.1} ± {:.1}%", 100.0 * m, 100.0 * sd),
                });
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}
