//! The progress rules, with the clock passed in: totals per pass and distinct tickers,
//! an ETA that allows for retries, the slowest attempt named, never 100% or ETA 0s
//! with work left, and no line wider than 100 columns.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::line::{self, WIDTH};
use super::state::{PassPlan, Snapshot, Tracker};
use crate::batch::result::{BatchResult, TickerFailure, TickerOutcome, TickerStatus};

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

fn outcome(ticker: &str, status: TickerStatus) -> TickerOutcome {
    let error =
        matches!(status, TickerStatus::Failed | TickerStatus::NotRun).then(|| TickerFailure {
            class: "retryable".into(),
            kind: "server".into(),
            ..TickerFailure::default()
        });
    TickerOutcome {
        ticker: ticker.into(),
        status,
        bars: 0,
        requests: 0,
        error,
        from: String::new(),
        to: String::new(),
        no_bars: None,
    }
}

/// The result of batch `id` attempt `attempt`: `ok` complete, `failed` failed (retryable).
fn result(id: u32, attempt: u32, ok: &[String], failed: &[String], secs: f64) -> BatchResult {
    let mut tickers: Vec<TickerOutcome> = ok.iter().map(|t| outcome(t, TickerStatus::Ok)).collect();
    tickers.extend(failed.iter().map(|t| outcome(t, TickerStatus::Failed)));
    BatchResult {
        id,
        attempt,
        label: None,
        tickers,
        exit_code: Some(if failed.is_empty() { 0 } else { 3 }),
        signal: None,
        timed_out: false,
        killed: false,
        cancelled: false,
        ended_by: None,
        fatal: false,
        elapsed_s: secs,
        started_at: String::new(),
        log_path: PathBuf::new(),
        bars: 0,
        requests: 0,
        retries: 0,
        duplicates_dropped: 0,
        reordered: 0,
    }
}

fn plan(pass: u32, batches: u64, tickers: &[String]) -> PassPlan {
    PassPlan {
        pass: Some(pass),
        passes: Some(3),
        batches,
        tickers: tickers.to_vec(),
        ticker_count: tickers.len() as u64,
        tries: Some(2),
        retry_delay: Some(Duration::from_secs(3)),
    }
}

fn at(t0: Instant, secs: u64) -> Instant {
    t0 + Duration::from_secs(secs)
}

/// 62 tickers in 9 batches of 7 (the last one 6); batches 1..=8 succeed in 10 s each.
/// Batch 9 fails two tickers twice (95 s per attempt), so they go to pass 2.
fn run_with_retries() -> (Tracker, Instant, Vec<String>) {
    let t0 = Instant::now();
    let all = names("T", 62);
    let mut t = Tracker::new(t0);
    t.plan(&plan(1, 9, &all));
    for (i, batch) in all.chunks(7).enumerate() {
        t.spawn(at(t0, 1), i as u32 + 1, 1, batch);
    }
    for (i, batch) in all.chunks(7).enumerate().take(8) {
        t.batch_done(at(t0, 11), &result(i as u32 + 1, 1, batch, &[], 10.0));
    }
    let last = &all[56..];
    t.batch_done(at(t0, 96), &result(9, 1, &last[..4], &last[4..], 95.0));
    (t, t0, all)
}

#[test]
fn a_retry_attempt_adds_nothing_to_the_totals() {
    let (mut t, t0, all) = run_with_retries();
    let s = t.snapshot(at(t0, 97));
    assert_eq!(
        (s.batches_done, s.batches_total),
        (8, 9),
        "batch 9 waits for its retry"
    );
    assert_eq!((s.retries_due, s.tickers_total), (1, 62));
    t.spawn(at(t0, 99), 9, 2, &all[60..]);
    let s = t.snapshot(at(t0, 100));
    assert_eq!((s.batches_done, s.batches_total, s.running), (8, 9, 1));
    assert_eq!((s.tickers_complete, s.tickers_total), (60, 62));
    let main = line::status_line(&s);
    assert!(main.ends_with("pass 1/3 | tickers 60/62"), "{main}");
    assert!(
        line::detail_line(&s).starts_with("  batches 8/9, 1 running"),
        "{}",
        line::detail_line(&s)
    );
}

#[test]
fn a_second_pass_counts_its_own_batches_and_the_run_s_distinct_tickers() {
    let (mut t, t0, all) = run_with_retries();
    let retried = &all[60..];
    t.spawn(at(t0, 99), 9, 2, retried);
    t.batch_done(at(t0, 194), &result(9, 2, &[], retried, 95.0));
    t.plan(&plan(2, 2, retried));
    t.spawn(at(t0, 195), 10, 1, &retried[..1]);
    t.spawn(at(t0, 195), 11, 1, &retried[1..]);
    let s = t.snapshot(at(t0, 200));
    assert_eq!((s.pass, s.batches_done, s.batches_total), (2, 0, 2));
    assert_eq!((s.tickers_complete, s.tickers_total), (60, 62));
    let main = line::status_line(&s);
    assert!(
        main.ends_with("elapsed 3m 20s | pass 2/3 (retries) | tickers 60/62"),
        "{main}"
    );
    t.batch_done(at(t0, 210), &result(10, 1, &retried[..1], &[], 10.0));
    let s = t.snapshot(at(t0, 211));
    assert_eq!(
        (s.batches_done, s.batches_total, s.tickers_complete),
        (1, 2, 61)
    );
}

#[test]
fn the_eta_allows_for_a_pending_retry_and_its_slow_attempt() {
    let (t, t0, _) = run_with_retries();
    let s = t.snapshot(at(t0, 96));
    assert!(
        line::status_line(&s).ends_with("tickers 60/62, 2 failed"),
        "{s:?}"
    );
    // 3 s of retry delay + the 95 s its last attempt took: not "ETA 0s".
    let eta = s.eta_secs.unwrap();
    assert!(eta >= 98.0, "{eta}");
    assert!(line::status_line(&s).contains("| ETA 1m 38s |"), "{s:?}");
}

#[test]
fn the_eta_allows_for_the_next_pass() {
    let (mut t, t0, all) = run_with_retries();
    let retried = &all[60..];
    t.spawn(at(t0, 99), 9, 2, retried);
    t.batch_done(at(t0, 194), &result(9, 2, &[], retried, 95.0));
    let s = t.snapshot(at(t0, 194));
    assert_eq!((s.batches_done, s.retries_due, s.running), (9, 0, 0));
    assert!(s.eta_secs.unwrap() >= 95.0, "{s:?}");
    assert_eq!(
        line::percent(&s),
        96,
        "60 of 62: the two go again in pass 2"
    );
    // Pass 2 takes one of them (the other's circuit opened): that one is settled.
    t.plan(&plan(2, 1, &all[60..61]));
    let s = t.snapshot(at(t0, 195));
    assert_eq!((s.tickers_settled, s.tickers_failed), (61, 1));
}

#[test]
fn never_100_percent_nor_eta_0s_while_work_remains() {
    let t0 = Instant::now();
    let all = names("A", 3);
    let mut t = Tracker::new(t0);
    t.plan(&plan(1, 1, &all));
    t.spawn(t0, 1, 1, &all);
    let s = t.snapshot(t0);
    assert_eq!(line::percent(&s), 0);
    assert!(
        line::status_line(&s).contains("| ETA ? |"),
        "nothing measured yet"
    );
    // Every ticker reported done, but the worker has not exited.
    for ticker in &all {
        t.event(1, 1, &done(ticker));
    }
    let s = t.snapshot(at(t0, 30));
    assert_eq!((s.tickers_settled, s.tickers_total, s.running), (3, 3, 1));
    let main = line::status_line(&s);
    assert!(main.starts_with("Progress 99% | ETA 1s |"), "{main}");
    t.batch_done(at(t0, 30), &result(1, 1, &all, &[], 30.0));
    t.finish();
    let main = line::status_line(&t.snapshot(at(t0, 31)));
    assert!(
        main.starts_with("Progress 100% | done | elapsed 31s"),
        "{main}"
    );
}

fn done(ticker: &str) -> crate::ingest::events::Event {
    crate::ingest::events::Event::TickerDone {
        ticker: ticker.into(),
        bars: 1,
        files: 1,
        requests: 1,
        duplicates_dropped: 0,
        reordered: 0,
        elapsed_ms: 1,
        pending_from: None,
    }
}

#[test]
fn the_slowest_attempt_is_named_with_its_attempt_and_what_it_still_has() {
    let t0 = Instant::now();
    let mut t = Tracker::new(t0);
    let slow: Vec<String> = ["AAPL", "MSFT", "IBM", "NVDA"].map(String::from).to_vec();
    t.plan(&plan(1, 13, &slow));
    t.spawn(at(t0, 0), 12, 1, &slow);
    t.batch_done(at(t0, 5), &result(12, 1, &[], &slow, 5.0));
    t.spawn(at(t0, 8), 12, 2, &slow);
    t.spawn(at(t0, 90), 13, 1, &names("Z", 2));
    t.event(12, 2, &done("MSFT"));
    let s = t.snapshot(at(t0, 103));
    let slowest = line::slowest_line(&s).unwrap();
    assert_eq!(
        slowest,
        "  slowest: batch 12 attempt 2, 1m 35s (AAPL, IBM +1)"
    );
}

fn huge(long_tickers: bool) -> Snapshot {
    let name = if long_tickers {
        "BRK.A-VERY-LONG-TICKER-NAME-WITH-SUFFIX".to_string()
    } else {
        "A".into()
    };
    Snapshot {
        elapsed_secs: 987_654.0,
        pass: 123,
        passes: Some(456),
        batches_done: 1_234_567,
        batches_total: 9_876_543,
        running: 123_456,
        retries_due: 654_321,
        tickers_complete: 12_345_678,
        tickers_failed: 1_234_567,
        tickers_settled: 12_345_678,
        tickers_total: 98_765_432,
        eta_secs: Some(9_876_543.0),
        bars_per_sec: 12_345_678.0,
        requests_per_sec: 98_765.0,
        http_retries: 123_456_789,
        bars: 9_999_999_999,
        slowest: Some(super::Slowest {
            id: 4_000_000,
            attempt: 99,
            secs: 999_999.0,
            left: vec![name; 40],
        }),
        ..Snapshot::default()
    }
}

#[test]
fn no_line_is_wider_than_100_columns() {
    let (t, t0, _) = run_with_retries();
    let mut snapshots = vec![huge(false), huge(true), t.snapshot(at(t0, 96))];
    snapshots.push(Snapshot::default());
    let r = result(
        4_000_000,
        99,
        &names("VERY-LONG-TICKER-", 5000),
        &names("LONG-FAILING-", 5000),
        123_456.7,
    );
    for s in &snapshots {
        let mut lines = line::status_lines(s);
        lines.push(line::batch_line(&r, s));
        lines.push(line::rates_row(s));
        lines.push(line::batches_bar_message(s, WIDTH - super::BAR_LEAD));
        lines.push(line::tickers_bar_message(s, WIDTH - super::BAR_LEAD));
        for l in lines {
            assert!(
                l.chars().count() <= WIDTH,
                "{} columns: {l}",
                l.chars().count()
            );
        }
    }
    let main = line::status_line(&huge(false));
    assert!(main.contains("tickers 12,345,678/98,765,432"), "{main}");
    assert!(main.contains("ETA "), "the ETA is never dropped: {main}");
    assert!(main.contains("elapsed "), "nor the elapsed time: {main}");
}

#[test]
fn the_batch_line_counts_the_pass_s_batches_without_a_percentage() {
    let (t, t0, all) = run_with_retries();
    let s = t.snapshot(at(t0, 96));
    let r = result(9, 1, &all[56..60], &all[60..], 95.0);
    let l = line::batch_line(&r, &s);
    assert_eq!(
        l,
        "Batch 0009: failed(rc=3) (95.0s) [2/6 tickers failed] | pass 1: 8/9 batches"
    );
}

#[test]
fn without_a_plan_totals_grow_with_the_distinct_tickers_started() {
    let t0 = Instant::now();
    let mut t = Tracker::new(t0);
    let a = names("A", 4);
    t.spawn(t0, 1, 1, &a);
    t.batch_done(at(t0, 2), &result(1, 1, &a[..2], &a[2..], 2.0));
    t.spawn(at(t0, 3), 1, 2, &a[2..]);
    let s = t.snapshot(at(t0, 4));
    assert_eq!((s.pass, s.tickers_total, s.batches_total), (1, 4, 1));
    // set_total after a batch has started: the next pass.
    t.set_total_for_test(1, 2);
    assert_eq!(t.snapshot(at(t0, 4)).pass, 2);
}

impl Tracker {
    fn set_total_for_test(&mut self, batches: u64, tickers: u64) {
        self.plan(&PassPlan {
            batches,
            ticker_count: tickers,
            ..PassPlan::default()
        });
    }
}
