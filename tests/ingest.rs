//! `barsmith ingest` end to end against the sandbox: every fault the seed document
//! lists, resume, crash safety, the shared budget and input validation.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use barsmith::calendar::DateRange;
use barsmith::ingest::events::Event;
use barsmith::sandbox::{SandboxConfig, synth};
use common::{Fixture, events, files_below, run, stderr, test_config};
use jiff::civil::Date;

fn range(from: &str, to: &str) -> DateRange {
    DateRange::parse(from, to).unwrap()
}

/// What a full fetch of `ticker` over the range returns, straight from the sandbox's model.
fn expected(fx: &Fixture, ticker: &str, from: &str, to: &str) -> barsmith::bars::Bars {
    synth::bars_for(ticker, range(from, to), fx.sandbox.config())
}

fn stored(fx: &Fixture, ticker: &str, from: &str, to: &str) -> barsmith::bars::Bars {
    fx.store().read_bars(ticker, range(from, to)).unwrap()
}

fn retries(evs: &[Event]) -> Vec<(String, u64)> {
    evs.iter()
        .filter_map(|e| match e {
            Event::Retry { kind, delay_ms, .. } => Some((kind.clone(), *delay_ms)),
            _ => None,
        })
        .collect()
}

fn failure(evs: &[Event], ticker: &str) -> Option<barsmith::polygon::FetchError> {
    evs.iter().find_map(|e| match e {
        Event::TickerFailed { ticker: t, error } if t == ticker => Some(error.clone()),
        _ => None,
    })
}

/// Runs one ticker against a fault that clears after `times` requests and checks the
/// worker retried with the expected kind and still wrote exactly the sandbox's bars.
fn assert_recovers(fault: &str, kind: &str) {
    let fx = Fixture::with_faults(&[&format!("AAPL={fault}")]);
    let out = run(fx.ingest(&["AAPL"], "2024-03-01", "2024-03-08"));
    let evs = events(&out);
    assert_eq!(out.status.code(), Some(0), "{fault}: {}", stderr(&out));
    let kinds: Vec<String> = retries(&evs).into_iter().map(|(k, _)| k).collect();
    assert!(
        kinds.iter().any(|k| k == kind),
        "{fault}: expected a {kind} retry, got {kinds:?}"
    );
    assert_eq!(
        stored(&fx, "AAPL", "2024-03-01", "2024-03-08"),
        expected(&fx, "AAPL", "2024-03-01", "2024-03-08"),
        "{fault}: stored bars differ from the sandbox's"
    );
}

#[test]
fn writes_exactly_the_sandbox_bars_across_a_year_boundary() {
    let fx = Fixture::with_faults(&[]);
    let out = run(fx.ingest(&["AAPL", "BRK.A"], "2023-09-01", "2024-03-31"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for t in ["AAPL", "BRK.A"] {
        let want = expected(&fx, t, "2023-09-01", "2024-03-31");
        assert!(want.len() > 50_000, "the range must need several pages");
        assert_eq!(stored(&fx, t, "2023-09-01", "2024-03-31"), want);
        assert!(
            fx.outdir()
                .join(format!("ticker={t}/year=2023/{t}_2023.parquet"))
                .is_file()
        );
        assert!(
            fx.outdir()
                .join(format!("ticker={t}/year=2024/{t}_2024.parquet"))
                .is_file()
        );
    }
    let evs = events(&out);
    assert!(matches!(
        evs.last(),
        Some(Event::Finished {
            ok: 2,
            failed: 0,
            exit_code: 0,
            ..
        })
    ));
    // The worker reports its own peak memory: a few MB, not the test's pages.
    let Some(Event::Finished {
        peak_rss_kb: Some(kb),
        ..
    }) = evs.last()
    else {
        panic!("no peak_rss_kb in {:?}", evs.last());
    };
    assert!((1_000..1_000_000).contains(kb), "{kb} KiB");
}

#[test]
fn retries_429_without_retry_after() {
    assert_recovers("429:2", "rate_limited");
}

#[test]
fn honours_retry_after_on_429() {
    let fx = Fixture::with_faults(&["AAPL=429-retry-after=1:1"]);
    let out = run(fx.ingest(&["AAPL"], "2024-03-01", "2024-03-04"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = retries(&events(&out));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, "rate_limited");
    assert!(
        r[0].1 >= 1000,
        "Retry-After: 1 must be honoured over the 50 ms backoff cap: {r:?}"
    );
}

#[test]
fn retries_500() {
    assert_recovers("500:2", "server");
}

#[test]
fn retries_502_with_an_html_body() {
    assert_recovers("502-html:1", "server");
}

#[test]
fn retries_503_and_504() {
    assert_recovers("503:1", "server");
    assert_recovers("504:1", "server");
}

#[test]
fn retries_a_request_that_hangs_after_the_timeout() {
    let fx = Fixture::with_faults(&["AAPL=hang:1"]);
    let cmd = fx.ingest_with_timeout(&["AAPL"], "2024-03-01", "2024-03-04", "1");
    let started = Instant::now();
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(retries(&events(&out))[0].0, "timeout");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(
        stored(&fx, "AAPL", "2024-03-01", "2024-03-04"),
        expected(&fx, "AAPL", "2024-03-01", "2024-03-04")
    );
}

#[test]
fn retries_a_connection_dropped_mid_body() {
    assert_recovers("drop:1", "body");
}

#[test]
fn retries_a_truncated_200_body() {
    assert_recovers("truncated:1", "body");
}

#[test]
fn retries_status_error_with_200() {
    assert_recovers("status-error:1", "api_error");
}

#[test]
fn drops_bars_a_page_repeats_and_reports_them() {
    let fx = Fixture::with_faults(&["AAPL=repeat-page"]);
    let out = run(fx.ingest(&["AAPL"], "2024-01-01", "2024-06-30"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let dropped = events(&out).iter().find_map(|e| match e {
        Event::TickerDone {
            duplicates_dropped, ..
        } => Some(*duplicates_dropped),
        _ => None,
    });
    assert!(dropped.unwrap() > 0, "repeated bars must be counted");
    assert_eq!(
        stored(&fx, "AAPL", "2024-01-01", "2024-06-30"),
        expected(&fx, "AAPL", "2024-01-01", "2024-06-30")
    );
}

#[test]
fn a_cursor_loop_fails_the_ticker_as_retryable_without_looping() {
    let fx = Fixture::with_faults(&["AAPL=cursor-loop"]);
    let out = run(fx.ingest(&["AAPL", "MSFT"], "2024-01-01", "2024-06-30"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = failure(&events(&out), "AAPL").expect("AAPL failed");
    assert_eq!(
        (err.class.as_str(), err.kind.as_str()),
        ("retryable", "cursor_loop")
    );
    assert!(
        fx.sandbox.stats().by_ticker["AAPL"] < 10,
        "the loop must be cut short"
    );
    assert_eq!(
        fx.store()
            .missing("MSFT", range("2024-01-01", "2024-06-30"))
            .unwrap(),
        vec![]
    );
}

#[test]
fn not_entitled_fails_only_that_ticker_without_retrying() {
    let fx = Fixture::with_faults(&["AAPL=403"]);
    let out = run(fx.ingest(&["AAPL", "MSFT"], "2024-03-01", "2024-03-08"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let evs = events(&out);
    let err = failure(&evs, "AAPL").expect("AAPL failed");
    assert_eq!(
        (err.class.as_str(), err.kind.as_str(), err.status),
        ("ticker", "not_entitled", Some(403))
    );
    assert!(retries(&evs).is_empty(), "403 is not retried");
    assert_eq!(fx.sandbox.stats().by_ticker["AAPL"], 1);
    assert!(
        fx.store()
            .missing("MSFT", range("2024-03-01", "2024-03-08"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_rejected_key_stops_the_whole_worker() {
    // One ticker at a time: nothing after the rejection. Two at a time: the ticker
    // already in flight may be asked once, the third never.
    for (in_flight, most_requests) in [("1", 1), ("2", 2)] {
        let fx = Fixture::with_faults(&[]);
        let mut cmd = fx.ingest(&["AAPL", "MSFT", "IBM"], "2024-03-01", "2024-03-08");
        cmd.env("POLYGON_API_KEY", "wrong-key")
            .args(["--in-flight", in_flight]);
        let out = run(cmd);
        assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
        let err = events(&out)
            .into_iter()
            .find_map(|e| match e {
                Event::TickerFailed { error, .. } => Some(error),
                _ => None,
            })
            .expect("a ticker failed");
        assert_eq!(
            (err.class.as_str(), err.kind.as_str()),
            ("run", "unauthorized")
        );
        let stats = fx.sandbox.stats();
        assert!(
            stats.data_requests <= most_requests,
            "{} requests after the key was rejected (in flight {in_flight})",
            stats.data_requests
        );
        assert!(!stats.by_ticker.contains_key("IBM"));
    }
}

#[test]
fn retries_run_out_into_a_retryable_failure_and_the_rest_go_on() {
    let fx = Fixture::with_faults(&["AAPL=500"]);
    let out = run(fx.ingest(&["AAPL", "MSFT"], "2024-03-01", "2024-03-08"));
    assert_eq!(out.status.code(), Some(3));
    let err = failure(&events(&out), "AAPL").expect("AAPL failed");
    assert_eq!(
        (err.class.as_str(), err.kind.as_str(), err.attempts),
        ("retryable", "server", 4)
    );
    assert_eq!(fx.sandbox.stats().by_ticker["AAPL"], 4);
    assert!(
        fx.store()
            .missing("MSFT", range("2024-03-01", "2024-03-08"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_wider_second_run_fetches_only_the_difference() {
    let fx = Fixture::with_faults(&[]);
    let first = run(fx.ingest(&["AAPL"], "2020-01-01", "2020-06-30"));
    assert_eq!(first.status.code(), Some(0));
    fx.sandbox.reset_stats();
    let second = run(fx.ingest(&["AAPL"], "2020-01-01", "2021-06-30"));
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let missing = events(&second).into_iter().find_map(|e| match e {
        Event::TickerStarted { missing, .. } => Some(missing),
        _ => None,
    });
    assert_eq!(
        missing.unwrap(),
        vec![["2020-07-01".to_string(), "2021-06-30".to_string()]]
    );
    // One page per 50,000 bars of each year piece that was missing, nothing more.
    let pages = |f, t| expected(&fx, "AAPL", f, t).len().div_ceil(50_000) as u64;
    let want = pages("2020-07-01", "2020-12-31") + pages("2021-01-01", "2021-06-30");
    assert_eq!(fx.sandbox.stats().data_requests, want);
    assert_eq!(
        stored(&fx, "AAPL", "2020-01-01", "2021-06-30"),
        expected(&fx, "AAPL", "2020-01-01", "2021-06-30")
    );
    fx.sandbox.reset_stats();
    let third = run(fx.ingest(&["AAPL"], "2020-03-01", "2021-03-01"));
    assert_eq!(third.status.code(), Some(0));
    assert_eq!(
        fx.sandbox.stats().data_requests,
        0,
        "a covered range needs no request"
    );
}

#[test]
fn a_ticker_listed_inside_the_range_is_complete_with_bars_only_while_listed() {
    let listed = Date::constant(2020, 3, 16);
    let delisted = Date::constant(2020, 9, 30);
    let mut cfg = test_config();
    cfg.listings
        .insert("NEWCO".into(), (Some(listed), Some(delisted)));
    let fx = Fixture::with_config(cfg);
    let out = run(fx.ingest(&["NEWCO"], "2019-01-01", "2021-12-31"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bars = stored(&fx, "NEWCO", "2019-01-01", "2021-12-31");
    assert!(!bars.is_empty());
    let first = barsmith::calendar::ny_date_of_ms(bars.timestamp[0]);
    let last = barsmith::calendar::ny_date_of_ms(*bars.timestamp.last().unwrap());
    assert!(first >= listed && last <= delisted, "{first}..{last}");
    let years: Vec<_> = files_below(&fx.outdir())
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert!(years.iter().all(|p| p.contains("year=2020")), "{years:?}");
    assert!(
        fx.store()
            .missing("NEWCO", range("2019-01-01", "2021-12-31"))
            .unwrap()
            .is_empty()
    );
    fx.sandbox.reset_stats();
    assert_eq!(
        run(fx.ingest(&["NEWCO"], "2019-01-01", "2021-12-31"))
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        fx.sandbox.stats().data_requests,
        0,
        "years without bars are known complete"
    );
}

#[test]
fn kill_9_at_any_instant_leaves_no_partial_file_and_resume_fetches_only_the_rest() {
    let cfg = SandboxConfig {
        latency: Duration::from_millis(30),
        ..test_config()
    };
    let fx = Fixture::with_config(cfg);
    let (from, to) = ("2019-01-01", "2021-12-31");
    // Kill after a growing number of pages, so deaths land in fetches, writes and
    // coverage updates alike; after each, every visible file must be complete.
    for kill_after_pages in [1, 3, 4, 6, 8] {
        let mut child = fx
            .ingest(&["AAPL"], from, to)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut pages = 0;
        for line in stdout.lines().map_while(Result::ok) {
            if line.contains("\"event\":\"page\"") {
                pages += 1;
                if pages == kill_after_pages {
                    break;
                }
            }
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        for f in files_below(&fx.outdir()) {
            assert_eq!(f.extension().unwrap(), "parquet", "foreign file {f:?}");
            let file = std::fs::File::open(&f).unwrap();
            parquet::file::reader::SerializedFileReader::new(file)
                .unwrap_or_else(|e| panic!("{f:?} is not a complete Parquet file: {e}"));
        }
    }
    let covered_before = fx.store().coverage("AAPL").unwrap();
    fx.sandbox.reset_stats();
    let out = run(fx.ingest(&["AAPL"], from, to));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The re-run fetched only what coverage did not have.
    let mut want_requests = 0;
    for piece in range(from, to).split_by_year() {
        if !covered_before
            .iter()
            .any(|c| c.from <= piece.from && piece.to <= c.to)
        {
            let n = synth::bars_for("AAPL", piece, fx.sandbox.config()).len();
            want_requests += n.div_ceil(50_000) as u64;
        }
    }
    assert!(
        !covered_before.is_empty(),
        "some year must have completed before a kill"
    );
    assert_eq!(fx.sandbox.stats().data_requests, want_requests);
    assert_eq!(
        stored(&fx, "AAPL", from, to),
        expected(&fx, "AAPL", from, to)
    );
}

#[test]
fn kill_9_during_a_burst_of_small_tickers_keeps_every_record_true() {
    // Many one-page tickers with 32 in flight: writes run on the blocking pool while
    // other tickers' requests and writes are under way, so kills land between a file
    // and its record, in the middle of several writes at once, and so on.
    let cfg = SandboxConfig {
        latency: Duration::from_millis(5),
        ..test_config()
    };
    let fx = Fixture::with_config(cfg);
    let names: Vec<String> = (0..80).map(|i| format!("K{i:02}")).collect();
    let tickers: Vec<&str> = names.iter().map(String::as_str).collect();
    let (from, to) = ("2024-03-04", "2024-03-08");
    for kill_after_done in [1, 7, 20, 45] {
        let mut child = fx
            .ingest(&tickers, from, to)
            .args(["--in-flight", "32"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let done = stdout
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("\"event\":\"ticker_done\""))
            .take(kill_after_done)
            .count();
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert!(done > 0, "the worker finished nothing before the kill");
        // Whatever is recorded complete is on disk, exactly.
        for t in &tickers {
            if fx.store().missing(t, range(from, to)).unwrap().is_empty() {
                assert!(
                    stored(&fx, t, from, to) == expected(&fx, t, from, to),
                    "{t} is recorded complete but its bars differ (kill after {kill_after_done})"
                );
            }
        }
        for f in files_below(&fx.outdir()) {
            let file = std::fs::File::open(&f).unwrap();
            parquet::file::reader::SerializedFileReader::new(file)
                .unwrap_or_else(|e| panic!("{f:?} is not a complete Parquet file: {e}"));
        }
    }
    let incomplete = tickers
        .iter()
        .filter(|t| !fx.store().missing(t, range(from, to)).unwrap().is_empty())
        .count() as u64;
    fx.sandbox.reset_stats();
    let out = run(fx.ingest(&tickers, from, to));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        fx.sandbox.stats().data_requests,
        incomplete,
        "only the rest"
    );
    for t in &tickers {
        assert!(
            stored(&fx, t, from, to) == expected(&fx, t, from, to),
            "{t}"
        );
    }
}

#[test]
fn the_api_key_appears_in_no_output_and_no_file() {
    const KEY: &str = "k3y-VERY-SECRET-0123456789";
    let cfg = SandboxConfig {
        api_key: KEY.into(),
        faults: barsmith::sandbox::FaultPlan::parse(&[
            "AAPL=502-html:1",
            "MSFT=403",
            "IBM=truncated:1",
        ])
        .unwrap(),
        ..test_config()
    };
    let fx = Fixture::with_config(cfg);
    let ok = run(fx.ingest(&["AAPL", "MSFT", "IBM"], "2024-03-01", "2024-03-08"));
    assert_eq!(ok.status.code(), Some(3), "{}", stderr(&ok));
    let mut bad = fx.ingest(&["ZZZ"], "2024-03-01", "2024-03-08");
    bad.env("POLYGON_API_KEY", format!("{KEY}-wrong"));
    let rejected = run(bad);
    assert_eq!(rejected.status.code(), Some(4));
    for out in [&ok, &rejected] {
        assert!(!String::from_utf8_lossy(&out.stdout).contains(KEY));
        assert!(!stderr(out).contains(KEY));
    }
    let files = files_below(fx.dir.path());
    assert!(
        files.len() > 5,
        "outdir, state and budget files were written"
    );
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let hit = bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes());
        assert!(!hit, "the key leaked into {f:?}");
    }
}

#[test]
fn two_concurrent_workers_share_one_budget() {
    let fx = Fixture::with_faults(&[]);
    let tickers: Vec<String> = (0..24).map(|i| format!("T{i:02}")).collect();
    let (a, b) = tickers.split_at(12);
    let spawn = |ts: &[String]| {
        let refs: Vec<&str> = ts.iter().map(String::as_str).collect();
        let cmd = fx.ingest(&refs, "2024-03-04", "2024-03-05");
        let rate = cmd.get_args().position(|a| a == "--max-rps").unwrap();
        let mut args: Vec<_> = cmd.get_args().map(|a| a.to_os_string()).collect();
        args[rate + 1] = "8/s".into();
        let mut c = fx.barsmith();
        c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        c.spawn().unwrap()
    };
    let started = Instant::now();
    let (mut w1, mut w2) = (spawn(a), spawn(b));
    assert!(w1.wait().unwrap().success() && w2.wait().unwrap().success());
    let elapsed = started.elapsed();
    let stats = fx.sandbox.stats();
    assert_eq!(stats.data_requests, 24);
    // 24 requests at 8/s together, after a burst of 6 (0.8 s worth): the schedule needs
    // at least 18/8 s (two budgets would need 6/8 s), and no one-second window may hold
    // more than the burst and the rate (plus the request at its closing edge).
    let burst = u64::from(barsmith::budget::Rate(8.0).default_burst());
    assert_eq!(burst, 6);
    assert!(
        elapsed >= Duration::from_millis(2_200),
        "{elapsed:?}: workers did not share the budget"
    );
    assert!(
        stats.max_rps_observed <= 8 + burst + 1,
        "{} requests in one second",
        stats.max_rps_observed
    );
}

/// The free plan's path (`5/min`, like any rate under 1.25 req/s, allows no burst), at
/// a rate a test can wait for: two workers sharing 2 req/s against a server that
/// limits the key to 2 req/s with no tolerance at all get no 429, requests evenly
/// spaced.
#[test]
fn a_rate_without_burst_is_evenly_spaced_and_a_strict_server_refuses_nothing() {
    let fx = Fixture::with_config(SandboxConfig {
        rate_limit: Some(2.0),
        rate_burst: 1,
        ..test_config()
    });
    assert_eq!(barsmith::budget::Rate(2.0).default_burst(), 1);
    let spawn = |ts: &[&str]| {
        let cmd = fx.ingest(ts, "2024-03-04", "2024-03-04");
        let rate = cmd.get_args().position(|a| a == "--max-rps").unwrap();
        let mut args: Vec<_> = cmd.get_args().map(|a| a.to_os_string()).collect();
        args[rate + 1] = "2/s".into();
        let mut c = fx.barsmith();
        c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        c.spawn().unwrap()
    };
    let started = Instant::now();
    let (mut w1, mut w2) = (spawn(&["A0", "A1", "A2"]), spawn(&["B0", "B1", "B2"]));
    assert!(w1.wait().unwrap().success() && w2.wait().unwrap().success());
    let stats = fx.sandbox.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert_eq!(stats.data_requests, 6);
    assert!(stats.max_rps_observed <= 2, "{}", stats.max_rps_observed);
    assert!(
        started.elapsed() >= Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
}

fn assert_refused(fx: &Fixture, args: &[&str], needle: &str) {
    let mut cmd = fx.barsmith();
    cmd.arg("ingest").args(args);
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: expected '{needle}' in: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line, not a dump: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
}

#[test]
fn bad_input_is_refused_before_any_request_with_one_line() {
    let fx = Fixture::with_faults(&[]);
    let out = fx.outdir().display().to_string();
    let url = fx.sandbox.base_url();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--outdir", &out, "--base-url", &url]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            base(&[
                "--tickers",
                "AAPL",
                "--from",
                "2024-1-1",
                "--to",
                "2024-02-01",
            ]),
            "YYYY-MM-DD",
        ),
        (
            base(&[
                "--tickers",
                "AAPL",
                "--from",
                "2024-02-30",
                "--to",
                "2024-03-01",
            ]),
            "not a valid",
        ),
        (
            base(&[
                "--tickers",
                "AAPL",
                "--from",
                "2024-03-01",
                "--to",
                "2024-02-01",
            ]),
            "after --to",
        ),
        (
            base(&[
                "--tickers",
                "AAPL,../x",
                "--from",
                "2024-01-01",
                "--to",
                "2024-02-01",
            ]),
            "invalid ticker '../x'",
        ),
        (
            base(&[
                "--tickers",
                "A/B",
                "--from",
                "2024-01-01",
                "--to",
                "2024-02-01",
            ]),
            "invalid ticker 'A/B'",
        ),
        (
            base(&[
                "--tickers",
                "AAPL",
                "--from",
                "2024-01-01",
                "--to",
                "2024-02-01",
                "--bogus",
            ]),
            "--bogus",
        ),
    ];
    for (args, needle) in &cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&fx, &refs, needle);
    }
    // A missing key and an unusable outdir are setup errors, fatal for the run (exit
    // 4): tests/setup_errors.rs.
    assert_eq!(
        fx.sandbox.stats().requests,
        0,
        "bad input must not reach the API"
    );
}

#[test]
fn a_ticker_without_bars_says_why_from_the_ticker_overview() {
    let mut cfg = test_config();
    let d = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
    cfg.listings
        .insert("NEWCO".into(), (Some(d("2025-06-02")), None));
    cfg.listings
        .insert("GONE".into(), (None, Some(d("2019-03-01"))));
    let fx = Fixture::with_config(cfg);
    let out = run(fx.ingest(&["NEWCO", "GONE", "LIVE"], "2025-01-02", "2025-01-31"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut reasons: Vec<(String, String)> = events(&out)
        .into_iter()
        .filter_map(|e| match e {
            Event::NoBars { ticker, reason } => Some((ticker, reason)),
            _ => None,
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (
                "GONE".into(),
                "delisted on 2019-03-01, before the range".into()
            ),
            (
                "NEWCO".into(),
                "listed on 2025-06-02, after the range".into()
            ),
        ]
    );
    // LIVE has bars, so nothing is said about it.
    assert!(fx.store().file_path("LIVE", 2025).exists());
}
