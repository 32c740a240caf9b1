//! The two charts of the report, as inline SVG: the batch timeline and the rates.

use std::fmt::Write as _;

use super::html::escape;
use super::timeline::{Attempt, Outcome, Rates};
use crate::batch::{human_duration, thousands};

/// Width of the drawing (SVG user units; the page scales it to fit).
const WIDTH: f64 = 1200.0;
/// Room on the left for row labels and axis values.
const LEFT: f64 = 130.0;
/// Room on the right for markers.
const RIGHT: f64 = 90.0;
/// Height of one timeline row.
const ROW: f64 = 16.0;
/// Height of a rate chart's plot area.
const PLOT: f64 = 110.0;

/// The attempts to draw when there are more than `cap`: the troubled ones first (not
/// ok, a retry, or with retried requests), then ok ones in start order; returned in
/// start order with the number left out.
pub fn shown(attempts: &[Attempt], cap: usize) -> (Vec<&Attempt>, usize) {
    if attempts.len() <= cap {
        return (attempts.iter().collect(), 0);
    }
    let troubled =
        |a: &Attempt| a.outcome != Outcome::Ok || a.entry.attempt > 1 || a.entry.retries > 0;
    let mut picked: Vec<(usize, &Attempt)> = attempts
        .iter()
        .enumerate()
        .filter(|(_, a)| troubled(a))
        .take(cap)
        .collect();
    let room = cap - picked.len();
    picked.extend(
        attempts
            .iter()
            .enumerate()
            .filter(|(_, a)| !troubled(a))
            .take(room),
    );
    picked.sort_by_key(|(i, _)| *i);
    let hidden = attempts.len() - picked.len();
    (picked.into_iter().map(|(_, a)| a).collect(), hidden)
}

/// X of `t` seconds on a time axis spanning `span_s`.
fn x_of(t: f64, span_s: f64) -> f64 {
    LEFT + (t / span_s).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
}

/// Tick marks and labels of a time axis at `y`, from 0 to `span_s`.
fn time_axis(out: &mut String, span_s: f64, y: f64, bottom: f64) {
    for k in 0..=5 {
        let t = span_s * k as f64 / 5.0;
        let x = x_of(t, span_s);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y:.1}\" y2=\"{bottom:.1}\"/>\
             <text class=\"axis\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            y - 4.0,
            escape(&human_duration(t))
        );
    }
}

/// The timeline: one row per attempt drawn, coloured by outcome, from its start to its
/// end; retries (a later attempt, retried requests) and timeouts are marked.
pub fn timeline(attempts: &[&Attempt], span_s: f64) -> String {
    let top = 20.0;
    let height = top + ROW * attempts.len() as f64 + 4.0;
    let mut out = format!(
        "<svg id=\"timeline\" viewBox=\"0 0 {WIDTH} {height:.0}\" width=\"{WIDTH}\" \
         height=\"{height:.0}\" role=\"img\" aria-label=\"batch timeline\">"
    );
    time_axis(&mut out, span_s, top, height);
    for (i, a) in attempts.iter().enumerate() {
        let e = &a.entry;
        let y = top + ROW * i as f64;
        let x0 = x_of(a.start_s, span_s);
        let x1 = x_of(a.start_s + e.duration_s, span_s).max(x0 + 2.0);
        let mut marks = Vec::new();
        if a.outcome == Outcome::TimedOut {
            marks.push("TIMEOUT".to_string());
        }
        if e.retries > 0 {
            marks.push(format!("↻{}", e.retries));
        }
        let label = format!("batch-{:04} #{}", e.id, e.attempt);
        let pass = e
            .label
            .as_deref()
            .map_or(String::new(), |l| format!(" [{l}]"));
        let title = format!(
            "{label}{pass}: {} in {} | tickers {} ok, {} skipped, {} failed | {} requests ({} retried) | {} bars | log {}",
            a.outcome.as_str(),
            human_duration(e.duration_s),
            e.tickers_ok,
            e.tickers_skipped,
            e.tickers_failed,
            thousands(e.requests),
            thousands(e.retries),
            thousands(e.bars),
            e.log
        );
        let _ = write!(
            out,
            "<g class=\"attempt o-{o}{retry}\" data-outcome=\"{o}\" data-batch=\"{id}\" \
             data-attempt=\"{n}\" data-retries=\"{r}\"><title>{title}</title>\
             <text class=\"label\" x=\"{lx:.1}\" y=\"{ty:.1}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{x0:.1}\" y=\"{ry:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"2\"/>\
             <text class=\"mark\" x=\"{mx:.1}\" y=\"{ty:.1}\">{marks}</text></g>",
            o = a.outcome.as_str(),
            retry = if e.attempt > 1 { " retry" } else { "" },
            id = e.id,
            n = e.attempt,
            r = e.retries,
            title = escape(&title),
            lx = LEFT - 6.0,
            ty = y + 12.0,
            label = escape(&label),
            ry = y + 2.0,
            w = x1 - x0,
            h = ROW - 4.0,
            mx = x1 + 4.0,
            marks = escape(&marks.join(" ")),
        );
    }
    out.push_str("</svg>");
    out
}

/// One rate chart: `values` per bucket as an area, with a dashed budget line when one
/// is given (per second, and as the run wrote it: `5/min`).
pub fn rate_chart(
    id: &str,
    what: &str,
    values: &[f64],
    rates: &Rates,
    budget: Option<(f64, &str)>,
) -> String {
    let (budget, budget_text) = (budget.map(|b| b.0), budget.map_or("", |b| b.1));
    let top = 18.0;
    let height = top + PLOT + 4.0;
    let peak = values.iter().copied().fold(0.0, f64::max);
    let y_max = (peak.max(budget.unwrap_or(0.0)) * 1.1).max(1.0);
    let span = rates.bucket_s * values.len() as f64;
    let y_of = |v: f64| top + PLOT - v / y_max * PLOT;
    let budget_attr = budget.map_or_else(|| "unknown".to_string(), |b| format!("{b}"));
    let mut out = format!(
        "<svg id=\"{id}\" class=\"rates\" data-budget=\"{budget_attr}\" viewBox=\"0 0 {WIDTH} \
         {height:.0}\" width=\"{WIDTH}\" height=\"{height:.0}\" role=\"img\" aria-label=\"{}\">",
        escape(what)
    );
    time_axis(&mut out, span, top, top + PLOT);
    let _ = write!(
        out,
        "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>",
        LEFT - 6.0,
        top + 10.0,
        escape(&format!("{} {what}", thousands(y_max.round() as u64))),
        LEFT - 6.0,
        top + PLOT
    );
    let mut points = format!("{:.1},{:.1}", x_of(0.0, span), y_of(0.0));
    for (i, v) in values.iter().enumerate() {
        let (a, b) = (i as f64 * rates.bucket_s, (i + 1) as f64 * rates.bucket_s);
        let y = y_of(*v);
        let _ = write!(
            points,
            " {:.1},{y:.1} {:.1},{y:.1}",
            x_of(a, span),
            x_of(b, span)
        );
    }
    let _ = write!(points, " {:.1},{:.1}", x_of(span, span), y_of(0.0));
    let _ = write!(out, "<polygon class=\"area\" points=\"{points}\"/>");
    if let Some(b) = budget {
        let y = y_of(b);
        let _ = write!(
            out,
            "<line class=\"budget\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"budget-label\" x=\"{:.1}\" y=\"{:.1}\">budget {}</text>",
            WIDTH - RIGHT,
            WIDTH - RIGHT + 4.0,
            y + 4.0,
            escape(budget_text)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::JoblogEntry;

    fn attempt(id: u32, n: u32, outcome: Outcome) -> Attempt {
        let line = format!(
            r#"{{"id":{id},"attempt":{n},"label":null,"start":"","duration_s":1.0,"exit":0,
            "signal":null,"timed_out":false,"killed":false,"fatal":false,"tickers_ok":1,
            "tickers_skipped":0,"tickers_failed":0,"tickers_not_run":0,"bars":1,
            "requests":1,"retries":0,"log":"x.log"}}"#
        );
        let entry: JoblogEntry = serde_json::from_str(&line).unwrap();
        Attempt {
            entry,
            start_s: id as f64,
            outcome,
        }
    }

    #[test]
    fn a_long_run_draws_the_troubled_attempts_first_and_counts_the_rest() {
        let mut all: Vec<Attempt> = (1..=1500).map(|i| attempt(i, 1, Outcome::Ok)).collect();
        all[700].outcome = Outcome::TimedOut;
        all.push(attempt(701, 2, Outcome::Ok));
        let (drawn, hidden) = shown(&all, 200);
        assert_eq!((drawn.len(), hidden), (200, 1301));
        assert!(drawn.iter().any(|a| a.outcome == Outcome::TimedOut));
        assert!(drawn.iter().any(|a| a.entry.attempt == 2));
        let svg = timeline(&drawn, 1600.0);
        assert_eq!(svg.matches("class=\"attempt ").count(), 200);
        assert!(svg.contains("TIMEOUT"));
        let (drawn, hidden) = shown(&all[..10], 200);
        assert_eq!((drawn.len(), hidden), (10, 0));
    }
}
