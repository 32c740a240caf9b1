//! The page: one HTML file with inline CSS, inline SVG and one small inline script,
//! no external resource. Every text from the run (tickers, messages, paths) goes
//! through [`escape`]; links to the batch logs are relative to the page's folder.

use std::fmt::Write as _;
use std::path::{Component, Path};

use super::heatmap::Heatmap;
use super::svg;
use super::{GROUP_TICKERS, RunReport, TIMELINE_ROWS};
use crate::batch::thousands;

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#222;max-width:1240px}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ddd}
pre.summary{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}
svg{max-width:100%;height:auto;display:block}svg text{font-size:11px;fill:#333}
.grid{stroke:#e4e4e4}.axis{fill:#777}
.attempt rect{fill:#3a9a5b}.o-failed rect{fill:#d64545}.o-timeout rect{fill:#f0a020}
.o-killed rect{fill:#999}.o-fatal rect{fill:#7a1010}.retry rect{stroke:#222;stroke-dasharray:3 2}
.mark{fill:#b06000}.area{fill:#8fb3e0;stroke:#3a6db0}.budget{stroke:#d64545;stroke-dasharray:6 4;stroke-width:2}
.budget-label{fill:#d64545}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px}
.note,.more{color:#666;font-size:12px}
.failure-group table,.heatmap{border-collapse:collapse;font-size:12px}
.failure-group td,.failure-group th{border-bottom:1px solid #eee;padding:2px 8px;text-align:left;vertical-align:top}
.still{color:#d64545;font-weight:600}
.heatmap{column-width:var(--w);column-gap:24px;font-size:11px}
.hrow{break-inside:avoid;display:flex;align-items:center;height:16px}
.hrow .t{width:72px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.cell{width:24px;height:14px;margin-right:1px;color:#fff;font-size:9px;text-align:center;line-height:14px}
.complete,.l-complete{background:#3a9a5b}.partial,.l-partial{background:#f0c040}.missing,.l-missing{background:#d64545}
.l-ok{background:#3a9a5b}.l-failed{background:#d64545}.l-timeout{background:#f0a020}.l-killed{background:#999}.l-fatal{background:#7a1010}";

/// Records script errors on `<html data-errors>` (set before any other script).
const ON_ERROR: &str = "window.onerror=function(m){var e=document.documentElement;\
e.setAttribute('data-errors',(e.getAttribute('data-errors')||'')+String(m)+';');};";

/// Marks the page loaded: counts what it drew and the resources it fetched (none).
const READY: &str = "(function(){var b=document.body;\
b.dataset.attempts=String(document.querySelectorAll('#timeline .attempt').length);\
b.dataset.failureGroups=String(document.querySelectorAll('.failure-group').length);\
b.dataset.cells=String(document.querySelectorAll('.heatmap .cell').length);\
b.dataset.resources=String(performance.getEntriesByType('resource').length);\
b.dataset.ready='1';})();";

/// `text` safe inside HTML text and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page of `report`, to be written into the folder `out_dir` (links to the batch
/// logs are relative to it).
pub fn render(report: &RunReport, out_dir: &Path) -> String {
    let name = report
        .run_dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>barsmith run {}</title><script>{ON_ERROR}</script><style>{STYLE}</style>\
         </head><body>\n<h1>barsmith run {}</h1>\n",
        escape(&name),
        escape(&name)
    );
    header(&mut page, report);
    timeline(&mut page, report);
    rates(&mut page, report);
    // Coverage before failures: it is bounded, the failure list may be long.
    match &report.heatmap {
        Ok(h) => heatmap(&mut page, h),
        Err(why) => {
            let _ = writeln!(
                page,
                "<h2>Coverage</h2><p class=\"note\" id=\"no-heatmap\">{}</p>",
                escape(why)
            );
        }
    }
    failures(&mut page, report, out_dir);
    let _ = write!(page, "<script>{READY}</script>\n</body></html>\n");
    page
}

fn header(page: &mut String, r: &RunReport) {
    let _ = write!(
        page,
        "<p class=\"note\">run folder {}",
        escape(&r.run_dir.display().to_string())
    );
    if let Some(info) = &r.info {
        let _ = write!(
            page,
            " | script {} | barsmith {} | started {}",
            escape(&info.script),
            escape(&info.barsmith_version),
            escape(info.start.as_deref().unwrap_or("?"))
        );
    }
    page.push_str("</p>\n");
    match r.info.as_ref().and_then(|i| i.summary.as_ref()) {
        Some(s) => {
            let _ = writeln!(
                page,
                "<pre class=\"summary\">{}</pre>",
                escape(&s.to_string())
            );
        }
        None => page.push_str("<p class=\"note\">No run.json: the run did not end normally.</p>\n"),
    }
}

fn legend(page: &mut String, items: &[(&str, &str)]) {
    page.push_str("<p class=\"legend\">");
    for (class, text) in items {
        let _ = write!(page, "<span><i class=\"l-{class}\"></i>{text}</span>");
    }
    page.push_str("</p>\n");
}

fn timeline(page: &mut String, r: &RunReport) {
    let (drawn, hidden) = svg::shown(&r.attempts, TIMELINE_ROWS);
    let _ = write!(
        page,
        "<h2>Batch timeline</h2>\n<p class=\"note\">{} attempts; one row each from start to \
         end. A dashed outline is a retry of the batch; ↻N: requests retried inside it; \
         TIMEOUT: stopped by the batch timeout. Hover a row for its numbers.</p>\n",
        r.attempts.len()
    );
    legend(
        page,
        &[
            ("ok", "ok"),
            ("failed", "failed"),
            ("timeout", "timed out"),
            ("killed", "stopped"),
            ("fatal", "fatal"),
        ],
    );
    page.push_str(&svg::timeline(&drawn, r.span_s));
    if hidden > 0 {
        let _ = writeln!(
            page,
            "<p class=\"more\" id=\"timeline-more\">+{} more ok attempts not drawn (every \
             attempt is a line of joblog.jsonl)</p>",
            thousands(hidden as u64)
        );
    }
}

fn rates(page: &mut String, r: &RunReport) {
    let rates = &r.rates;
    let budget = match (rates.budget, &rates.budget_text) {
        (Some(_), Some(text)) => format!("budget (--max-rps): {}", escape(text)),
        (None, Some(text)) => format!("budget (--max-rps {}): unknown, not a rate", escape(text)),
        _ => "budget: unknown (the run recorded no --max-rps)".to_string(),
    };
    let source = if rates.from_events {
        "from the workers' timestamped events"
    } else {
        "each attempt's totals spread over its wall time (no timestamped events)"
    };
    let _ = write!(
        page,
        "<h2>Requests and bars per second</h2>\n<p class=\"note\" id=\"budget\">{budget}; \
         {} s buckets, {source}.</p>\n",
        rates.bucket_s
    );
    page.push_str(&svg::rate_chart(
        "requests-rate",
        "requests/s",
        &rates.requests,
        rates,
        rates.budget.zip(rates.budget_text.as_deref()),
    ));
    page.push_str(&svg::rate_chart(
        "bars-rate",
        "bars/s",
        &rates.bars,
        rates,
        None,
    ));
}

fn failures(page: &mut String, r: &RunReport, out_dir: &Path) {
    page.push_str("<h2>Failures by class and kind</h2>\n");
    if r.failures.is_empty() {
        page.push_str(
            "<p class=\"note\" id=\"no-failures\">No ticker failed in any attempt.</p>\n",
        );
        return;
    }
    page.push_str(
        "<p class=\"note\">Every failure of every attempt, so failures a retry fixed show \
         too; <span class=\"still\">still failing</span> tickers are in failed_tickers.csv.</p>\n",
    );
    for g in &r.failures {
        let tickers = g.tickers();
        let _ = write!(
            page,
            "<section class=\"failure-group\" data-class=\"{c}\" data-kind=\"{k}\">\
             <h3>{c} / {k}: {}, {}, {} still failing</h3><table>\
             <tr><th>ticker</th><th>attempts (logs)</th><th>last message</th></tr>",
            plural(tickers.len(), "ticker"),
            plural(g.occurrences.len(), "failure"),
            g.still_failing.len(),
            c = escape(&g.class),
            k = escape(&g.kind),
        );
        for (ticker, seen) in tickers.iter().take(GROUP_TICKERS) {
            let class = if g.still_failing.contains(*ticker) {
                " class=\"still\""
            } else {
                ""
            };
            let shown = if ticker.is_empty() { "(setup)" } else { ticker };
            let _ = write!(page, "<tr><td{class}>{}</td><td>", escape(shown));
            for f in seen.iter().filter(|f| !f.log.is_empty()) {
                let href = relative_href(out_dir, &r.run_dir.join(&f.log));
                let _ = write!(
                    page,
                    "<a class=\"log\" href=\"{}\">{:04}#{}</a> ",
                    escape(&href),
                    f.id,
                    f.attempt
                );
            }
            let last = seen.last().map_or("", |f| f.error.message.as_str());
            let _ = write!(page, "</td><td>{}</td></tr>", escape(last));
        }
        page.push_str("</table>");
        if tickers.len() > GROUP_TICKERS {
            let _ = write!(
                page,
                "<p class=\"more\">+{} more tickers (failed_tickers.csv lists the still-failing)</p>",
                thousands((tickers.len() - GROUP_TICKERS) as u64)
            );
        }
        page.push_str("</section>\n");
    }
}

fn heatmap(page: &mut String, h: &Heatmap) {
    let range = h
        .range
        .map_or_else(|| "no day known".into(), |r| r.to_string());
    let _ = write!(
        page,
        "<h2>Coverage: ticker × year</h2>\n<p class=\"note\">{} of {} tickers complete over \
         {} in {}; incomplete tickers first. From the coverage records and file footers.</p>\n",
        thousands(h.complete as u64),
        thousands(h.tickers as u64),
        escape(&range),
        escape(&h.data_root)
    );
    legend(
        page,
        &[
            ("complete", "complete"),
            ("partial", "partly missing"),
            ("missing", "missing"),
        ],
    );
    // Rows flow into as many columns as fit; each cell names its year.
    let width = 80 + 25 * h.years.len();
    let _ = write!(page, "<div class=\"heatmap\" style=\"--w:{width}px\">");
    for row in &h.rows {
        let _ = write!(
            page,
            "<div class=\"hrow\"><span class=\"t\" title=\"{t}\">{t}</span>",
            t = escape(&row.ticker)
        );
        for c in &row.cells {
            let title = format!(
                "{} {}: {}, {} bars, {} days missing",
                row.ticker,
                c.year,
                c.state.as_str(),
                thousands(c.rows),
                c.missing_days
            );
            let _ = write!(
                page,
                "<span class=\"cell {}\" title=\"{}\">{:02}</span>",
                c.state.as_str(),
                escape(&title),
                c.year.rem_euclid(100)
            );
        }
        page.push_str("</div>");
    }
    page.push_str("</div>\n");
    for (n, what) in [
        (h.more_incomplete, "incomplete"),
        (h.more_complete, "complete"),
    ] {
        if n > 0 {
            let _ = writeln!(
                page,
                "<p class=\"more\">+{} more {what} tickers (`barsmith status` lists them all)</p>",
                thousands(n as u64)
            );
        }
    }
}

/// `1 ticker`, `3 tickers`.
fn plural(n: usize, what: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {what}{s}", thousands(n as u64))
}

/// The URL of `target` relative to the folder `from` (both made absolute), each
/// segment percent-encoded.
pub fn relative_href(from: &Path, target: &Path) -> String {
    let norm = |p: &Path| -> Vec<String> {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut parts: Vec<String> = Vec::new();
        for c in abs.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::ParentDir => {
                    parts.pop();
                }
                _ => {}
            }
        }
        parts
    };
    let (a, b) = (norm(from), norm(target));
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut segs: Vec<String> = vec!["..".into(); a.len() - common];
    segs.extend(b[common..].iter().map(|s| percent_encode(s)));
    segs.join("/")
}

/// `s` with every byte outside `A-Za-z0-9-._~` percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{JoblogEntry, TickerFailure};
    use crate::report::{Attempt, Failure, FailureGroup, Outcome, Rates};

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'T&T'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;T&amp;T&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("BRK.A"), "BRK.A");
    }

    #[test]
    fn links_are_relative_to_the_page_folder() {
        assert_eq!(
            relative_href(
                Path::new("/r/run 1"),
                Path::new("/r/run 1/batch-0001.attempt-1.log")
            ),
            "batch-0001.attempt-1.log"
        );
        assert_eq!(
            relative_href(Path::new("/tmp/out"), Path::new("/r/run 1/b.log")),
            "../../r/run%201/b.log"
        );
    }

    fn sample() -> RunReport {
        let entry: JoblogEntry = serde_json::from_str(
            r#"{"id":1,"attempt":1,"label":null,"start":"2025-01-01T00:00:00Z",
            "duration_s":2.0,"exit":3,"signal":null,"timed_out":false,"killed":false,
            "fatal":false,"tickers_ok":0,"tickers_skipped":0,"tickers_failed":1,
            "tickers_not_run":0,"bars":0,"requests":3,"retries":2,
            "log":"batch-0001.attempt-1.log"}"#,
        )
        .unwrap();
        let failure = Failure {
            ticker: "<b>X".into(),
            error: TickerFailure {
                class: "retryable".into(),
                kind: "rate_limited".into(),
                message: "HTTP 429: see https://polygon.io/pricing <now>".into(),
                ..TickerFailure::default()
            },
            id: 1,
            attempt: 1,
            log: entry.log.clone(),
        };
        RunReport {
            run_dir: "/runs/r1".into(),
            info: None,
            attempts: vec![Attempt {
                entry,
                start_s: 0.0,
                outcome: Outcome::Failed,
            }],
            span_s: 2.0,
            rates: Rates {
                bucket_s: 1.0,
                requests: vec![1.0, 2.0],
                bars: vec![0.0, 0.0],
                ..Rates::default()
            },
            failures: vec![FailureGroup {
                class: "retryable".into(),
                kind: "rate_limited".into(),
                occurrences: vec![failure],
                still_failing: ["<b>X".to_string()].into(),
            }],
            heatmap: Err("no dataset".into()),
        }
    }

    #[test]
    fn the_page_fetches_nothing_and_escapes_what_the_run_wrote() {
        let page = render(&sample(), Path::new("/runs/r1"));
        // No resource is loaded: no src, no CSS url() or @import, and every link is a
        // relative path (the API's URL in an error message is text, not a link).
        assert!(!page.contains("src="), "{page}");
        assert!(!page.contains("url(") && !page.contains("@import"));
        let hrefs: Vec<&str> = page
            .split("href=\"")
            .skip(1)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        assert_eq!(hrefs, ["batch-0001.attempt-1.log"]);
        assert_eq!(
            page.matches("<script>").count(),
            2,
            "only the page's own scripts"
        );
        assert!(page.contains("&lt;b&gt;X") && !page.contains("<b>X"));
        assert!(page.contains("&lt;now&gt;"));
        assert!(page.contains("budget: unknown"), "no --max-rps recorded");
        assert!(page.contains("data-budget=\"unknown\""));
        assert_eq!(page.matches("class=\"attempt ").count(), 1);
    }
}
