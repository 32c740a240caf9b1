//! Scenario 3: how full the request budget stays against the API's latency.
//!
//! `scripts/wrapper.rhai` with default flags except `--max-rps 100` (and
//! `--max-concurrent 1` for the one-batch rows), against a sandbox that answers each
//! request after a fixed latency and limits the key server-side to 100 req/s. Budget
//! use = requests the server accepted / (100 × the whole run's wall time), start-up and
//! tail included.

use std::path::Path;
use std::time::Duration;

use super::{
    Proc, Row, row, run_child, sandbox_with, self_cpu, self_cpu_since, tickers, universe,
    wrapper_in,
};

/// The budget, and the server-side limit equal to it.
const RPS: f64 = 100.0;
/// One request per ticker: 1,500 tickers × 1 day.
const TICKERS: usize = 1_500;
const ONE_DAY: (&str, &str) = ("2026-06-01", "2026-06-01");
/// The many-pages case: 40 tickers × 2 years (about 8 pages of 50,000 bars each).
const PAGED_TICKERS: usize = 40;
const TWO_YEARS: (&str, &str) = ("2024-01-01", "2025-12-31");

/// One run's figures.
struct Use {
    accepted: u64,
    rejected: u64,
    wall: Duration,
    /// CPU of the timed run (the wrapper and its workers) and of the in-process sandbox.
    cpu: (Duration, Duration),
}

impl Use {
    fn fraction(&self) -> f64 {
        self.accepted as f64 / (RPS * self.wall.as_secs_f64())
    }

    fn text(&self) -> String {
        format!(
            "{:.1} = {:.0}% ({} req, {:.1} s, {} × 429; CPU-s run {:.1} + sandbox {:.1})",
            self.accepted as f64 / self.wall.as_secs_f64(),
            self.fraction() * 100.0,
            self.accepted,
            self.wall.as_secs_f64(),
            self.rejected,
            self.cpu.0.as_secs_f64(),
            self.cpu.1.as_secs_f64()
        )
    }
}

/// The table: 50, 250 and 1,000 ms × 6 and 1 batches; a server limiter with no burst
/// tolerance.
pub(super) fn budget_vs_latency(tmp: &Path, rows: &mut Vec<Row>) {
    let names = tickers("L", TICKERS);
    for ms in [50, 250, 1000] {
        for batches in [6, 1] {
            let u = wrapper_run(tmp, &names, ONE_DAY, ms, RPS as u32, batches, false);
            let target = if batches == 6 {
                ">= 95%, 0 × 429"
            } else {
                "(extra)"
            };
            let ok = batches != 6 || (u.fraction() >= 0.95 && u.rejected == 0);
            row(
                rows,
                &format!("3. budget 100/s, {ms} ms, {batches} batch(es): ok req/s (%)"),
                u.text(),
                target,
                Some(ok),
            );
        }
    }
}

/// The server limiter with no burst tolerance (GCRA burst 1), 250 ms, 6 batches: the
/// budget's pacing against arrival jitter, where every refusal costs a slot.
pub(super) fn no_burst(tmp: &Path, rows: &mut Vec<Row>) {
    let names = tickers("L", TICKERS);
    let u = wrapper_run(tmp, &names, ONE_DAY, 250, 1, 6, false);
    row(
        rows,
        "3. … server limiter without burst, 250 ms, 6 batches",
        u.text(),
        ">= 90%",
        Some(u.fraction() >= 0.9),
    );
}

/// The many-pages case: 40 tickers × 2 years at 250 ms, budget and server 100 req/s;
/// and the same at no latency, where only the machine's CPU (workers and sandbox on the
/// same cores) bounds it: the ceiling the latency case is measured against.
pub(super) fn many_pages(tmp: &Path, rows: &mut Vec<Row>) {
    let paged = tickers("P", PAGED_TICKERS);
    for (ms, target) in [(250, ">= 95%"), (0, "(extra: CPU ceiling)")] {
        let u = wrapper_run(tmp, &paged, TWO_YEARS, ms, RPS as u32, 6, true);
        let ok = (ms > 0).then(|| u.fraction() >= 0.95);
        let label = format!("3. … many pages: 40 tickers × 2 y, {ms} ms, 6 batches");
        row(rows, &label, u.text(), target, ok);
    }
}

/// Pages a warmed sandbox keeps: the many-pages case's ~0.9 GB of JSON.
const PAGE_CACHE_BYTES: usize = 2 << 30;

/// Runs the wrapper over `names` × `range` against a sandbox with `ms` of latency and a
/// server-side limit of 100 req/s with GCRA burst `burst`; when `warm`, a first
/// untimed run fills the sandbox's page cache.
fn wrapper_run(
    tmp: &Path,
    names: &[String],
    range: (&str, &str),
    ms: u64,
    burst: u32,
    batches: usize,
    warm: bool,
) -> Use {
    let latency = Duration::from_millis(ms);
    let sandbox = sandbox_with(names, latency, Some(RPS), burst);
    let dir = tmp.join(format!("budget-{ms}ms-x{batches}-b{burst}-{}", names.len()));
    let universe = universe(&dir, names);
    let batches = batches.to_string();
    let extra = ["--max-rps", "100/s", "--max-concurrent", &batches];
    if warm {
        sandbox.set_page_cache_bytes(PAGE_CACHE_BYTES);
        let warm_dir = dir.join("warm");
        std::fs::create_dir_all(&warm_dir).expect("warm-up dir");
        let cmd = wrapper_in(&warm_dir, &warm_dir, &sandbox, &universe, range, &extra);
        let p: Proc = run_child(cmd, &warm_dir, Duration::from_secs(240));
        assert!(
            p.status == 0,
            "warm-up run failed: see {}",
            warm_dir.display()
        );
        std::thread::sleep(Duration::from_secs(2)); // the server's limit window empties
        sandbox.reset_stats();
    }
    let cmd = wrapper_in(&dir, &dir, &sandbox, &universe, range, &extra);
    let cpu0 = self_cpu();
    let p: Proc = run_child(cmd, &dir, Duration::from_secs(240));
    let sandbox_cpu = self_cpu_since(cpu0);
    let stats = sandbox.stats();
    assert!(
        p.status == 0 && !p.killed,
        "wrapper failed or ran past 240 s: see {}",
        dir.display()
    );
    let u = Use {
        accepted: stats.data_requests - stats.rate_limited,
        rejected: stats.rate_limited,
        wall: p.wall,
        cpu: (p.cpu, sandbox_cpu),
    };
    eprintln!(
        "budget {ms} ms x{batches} burst {burst}: {} (most in 1 s: {}, load {})",
        u.text(),
        stats.max_rps_observed,
        super::loadavg()
    );
    u
}
