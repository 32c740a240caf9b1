//! Progress lines from a [`Snapshot`]: pure functions, so the rules are unit-tested.
//!
//! The rules: no line is wider than [`WIDTH`] columns (optional parts are dropped
//! first, then the line is cut with `…`); nothing says 100% until the run has ended
//! (the percentage is capped at 99); the ETA is never 0 s while work remains (see
//! [`super::eta`]); totals are the pass's batches and the run's distinct tickers.

use super::state::{Slowest, Snapshot};
use crate::batch::records::thousands;
use crate::batch::result::BatchResult;

/// The widest a progress line may be, in columns (characters).
pub const WIDTH: usize = 100;

/// `42s`, `1m 05s`, `2h 03m`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A rate with few digits: `7.5`, `420`, `12k`.
pub fn rate(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Percent of the run's distinct tickers settled, rounded down and capped at 99
/// until the run has ended.
pub fn percent(s: &Snapshot) -> u64 {
    if s.finished {
        return 100;
    }
    if s.tickers_total == 0 {
        return 0;
    }
    (s.tickers_settled * 100 / s.tickers_total).min(99)
}

/// One part of a line: its text (with its leading separator) and how soon it is
/// dropped when the line is too wide (0: never, higher: sooner).
struct Part(String, u8);

/// Joins the parts, dropping optional ones (highest drop rank, rightmost first)
/// until the line fits `width`, then cuts it with `…` if it still does not.
fn fit(mut parts: Vec<Part>, width: usize) -> String {
    let len = |parts: &[Part]| parts.iter().map(|p| p.0.chars().count()).sum::<usize>();
    while len(&parts) > width {
        let drop = parts
            .iter()
            .enumerate()
            .filter(|(_, p)| p.1 > 0)
            .max_by_key(|(i, p)| (p.1, *i))
            .map(|(i, _)| i);
        match drop {
            Some(i) => {
                parts.remove(i);
            }
            None => break,
        }
    }
    let line: String = parts.into_iter().map(|p| p.0).collect();
    if line.chars().count() <= width {
        return line;
    }
    let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn eta_text(s: &Snapshot) -> String {
    match (s.finished, s.eta_secs) {
        (true, _) => "done".into(),
        (false, Some(secs)) => format!("ETA {}", duration(secs.max(1.0))),
        (false, None) => "ETA ?".into(),
    }
}

fn pass_parts(s: &Snapshot, sep: &str, drop: u8) -> Vec<Part> {
    if s.pass == 0 {
        return Vec::new();
    }
    let of = s.passes.map(|n| format!("/{n}")).unwrap_or_default();
    let mut parts = vec![Part(format!("{sep}pass {}{of}", s.pass), 0)];
    if s.pass > 1 {
        parts.push(Part(" (retries)".into(), drop));
    }
    parts
}

fn ticker_parts(s: &Snapshot, drop: u8) -> Vec<Part> {
    let mut parts = vec![Part(
        format!(
            "{}/{}",
            thousands(s.tickers_complete),
            thousands(s.tickers_total)
        ),
        0,
    )];
    if s.tickers_failed > 0 {
        parts.push(Part(
            format!(", {} failed", thousands(s.tickers_failed)),
            drop,
        ));
    }
    parts
}

fn batch_parts(s: &Snapshot, drop: u8) -> Vec<Part> {
    let mut parts = vec![Part(
        format!(
            "{}/{}",
            thousands(s.batches_done),
            thousands(s.batches_total)
        ),
        0,
    )];
    if s.running > 0 {
        parts.push(Part(format!(", {} running", thousands(s.running)), drop));
    }
    if s.retries_due > 0 {
        let n = s.retries_due;
        let word = if n == 1 { "retry" } else { "retries" };
        parts.push(Part(format!(", {} {word} due", thousands(n)), drop + 1));
    }
    parts
}

/// `1 HTTP retry`, `4 HTTP retries`: requests retried inside workers.
fn http_retries(n: u64) -> String {
    let word = if n == 1 { "retry" } else { "retries" };
    format!("{} HTTP {word}", thousands(n))
}

/// `slowest: batch 12 attempt 2, 95s (AAPL, MSFT +3)`.
pub fn slowest_text(w: &Slowest) -> String {
    let names = match w.left.as_slice() {
        [] => String::new(),
        [a] => format!(" ({a})"),
        [a, b] => format!(" ({a}, {b})"),
        [a, b, rest @ ..] => format!(" ({a}, {b} +{})", rest.len()),
    };
    format!(
        "slowest: batch {} attempt {}, {}{names}",
        w.id,
        w.attempt,
        duration(w.secs)
    )
}

/// The main line: `Progress 96% | ETA 1m 40s | elapsed 2m 05s | pass 2/3 (retries) |
/// tickers 60/62, 1 failed`.
pub fn status_line(s: &Snapshot) -> String {
    let mut parts = vec![
        Part(format!("Progress {}%", percent(s)), 0),
        Part(format!(" | {}", eta_text(s)), 0),
        Part(format!(" | elapsed {}", duration(s.elapsed_secs)), 0),
    ];
    parts.extend(pass_parts(s, " | ", 2));
    parts.push(Part(" | tickers ".into(), 0));
    parts.extend(ticker_parts(s, 1));
    fit(parts, WIDTH)
}

/// The second line: `  batches 3/9, 2 running, 1 retry due | 1.2k bars/s | 12 req/s |
/// 4 HTTP retries`.
pub fn detail_line(s: &Snapshot) -> String {
    let mut parts = vec![Part("  batches ".into(), 0)];
    parts.extend(batch_parts(s, 1));
    parts.push(Part(format!(" | {} bars/s", rate(s.bars_per_sec)), 3));
    parts.push(Part(format!(" | {} req/s", rate(s.requests_per_sec)), 3));
    parts.push(Part(format!(" | {}", http_retries(s.http_retries)), 4));
    fit(parts, WIDTH)
}

/// The line naming what is slow, when something runs.
pub fn slowest_line(s: &Snapshot) -> Option<String> {
    let w = s.slowest.as_ref()?;
    Some(fit(vec![Part(format!("  {}", slowest_text(w)), 0)], WIDTH))
}

/// Every line of the status, in order.
pub fn status_lines(s: &Snapshot) -> Vec<String> {
    let mut lines = vec![status_line(s), detail_line(s)];
    lines.extend(slowest_line(s));
    lines
}

/// The line printed when a batch attempt ends: `Batch 0012 attempt 2: failed(rc=3)
/// (180.5s) [2/4 tickers failed] | pass 2: 8/9 batches`.
pub fn batch_line(r: &BatchResult, s: &Snapshot) -> String {
    let attempt = if r.attempt > 1 {
        format!(" attempt {}", r.attempt)
    } else {
        String::new()
    };
    let mut parts = vec![Part(
        format!(
            "Batch {:04}{attempt}: {} ({:.1}s)",
            r.id,
            r.status_text(),
            r.elapsed_s
        ),
        0,
    )];
    let failed = r.incomplete_tickers().len();
    if failed > 0 {
        parts.push(Part(
            format!(
                " [{}/{} tickers failed]",
                thousands(failed as u64),
                thousands(r.tickers.len() as u64)
            ),
            1,
        ));
    }
    let pass = if s.pass > 0 {
        format!("pass {}: ", s.pass)
    } else {
        String::new()
    };
    parts.push(Part(
        format!(
            " | {pass}{}/{} batches",
            thousands(s.batches_done),
            thousands(s.batches_total)
        ),
        0,
    ));
    fit(parts, WIDTH)
}

/// The batches bar's message (after `batches [=====>    ] `), at most `width` wide.
pub fn batches_bar_message(s: &Snapshot, width: usize) -> String {
    let mut parts = batch_parts(s, 1);
    parts.extend(pass_parts(s, " | ", 3));
    fit(parts, width)
}

/// The tickers bar's message, at most `width` wide.
pub fn tickers_bar_message(s: &Snapshot, width: usize) -> String {
    let mut parts = ticker_parts(s, 2);
    parts.push(Part(format!(" | {}%", percent(s)), 0));
    parts.push(Part(format!(" | {}", eta_text(s)), 0));
    parts.push(Part(format!(" | elapsed {}", duration(s.elapsed_secs)), 1));
    fit(parts, width)
}

/// The row under the bars: rates, then what is slow.
pub fn rates_row(s: &Snapshot) -> String {
    let mut parts = vec![
        Part(format!("  {} bars/s", rate(s.bars_per_sec)), 0),
        Part(format!(" | {} req/s", rate(s.requests_per_sec)), 0),
        Part(format!(" | {}", http_retries(s.http_retries)), 2),
    ];
    if let Some(w) = &s.slowest {
        parts.push(Part(format!(" | {}", slowest_text(w)), 0));
    }
    fit(parts, WIDTH)
}
