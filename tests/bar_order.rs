//! No bar is lost to its order: pages out of order are sorted, exact repeats removed
//! (both counted in the events and the joblog), and two different bars for one minute
//! fail the ticker as retryable with nothing recorded complete.

mod common;

use barsmith::calendar::DateRange;
use barsmith::ingest::events::Event;
use barsmith::sandbox::synth;
use common::{Fixture, events, run, stderr};

const FROM: &str = "2024-03-04";
const TO: &str = "2024-03-08";

fn range() -> DateRange {
    DateRange::parse(FROM, TO).unwrap()
}

/// `(duplicates_dropped, reordered)` of the ticker's `ticker_done` event.
fn fixes(evs: &[Event], ticker: &str) -> Option<(u64, u64)> {
    evs.iter().find_map(|e| match e {
        Event::TickerDone {
            ticker: t,
            duplicates_dropped,
            reordered,
            ..
        } if t == ticker => Some((*duplicates_dropped, *reordered)),
        _ => None,
    })
}

#[test]
fn a_page_in_reverse_order_with_a_repeat_is_stored_whole_and_counted() {
    let fx = Fixture::with_faults(&["AAPL=disorder"]);
    let out = run(fx.ingest(&["AAPL"], FROM, TO));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let want = synth::bars_for("AAPL", range(), fx.sandbox.config());
    let (dupes, reordered) = fixes(&events(&out), "AAPL").expect("AAPL done");
    assert_eq!(dupes, 1, "the repeated bar is removed");
    assert_eq!(
        reordered as usize,
        want.len(),
        "every bar but the first came late"
    );
    assert!(
        fx.store().read_bars("AAPL", range()).unwrap() == want,
        "the stored bars must be exactly the sandbox's, in order"
    );
    assert_eq!(fx.store().missing("AAPL", range()).unwrap(), vec![]);
}

#[test]
fn two_different_bars_for_one_minute_fail_the_ticker_retryable_and_record_nothing() {
    let fx = Fixture::with_faults(&["AAPL=conflict"]);
    let out = run(fx.ingest(&["AAPL", "MSFT"], FROM, TO));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = events(&out)
        .into_iter()
        .find_map(|e| match e {
            Event::TickerFailed { ticker, error } if ticker == "AAPL" => Some(error),
            _ => None,
        })
        .expect("AAPL failed");
    assert_eq!(
        (err.class.as_str(), err.kind.as_str()),
        ("retryable", "conflicting_bars")
    );
    assert!(
        err.message.contains("two different bars"),
        "{}",
        err.message
    );
    assert_eq!(fx.store().missing("AAPL", range()).unwrap(), vec![range()]);
    assert_eq!(fx.store().missing("MSFT", range()).unwrap(), vec![]);
}

#[test]
fn the_wrapper_retries_a_conflict_and_the_joblog_counts_the_fixes() {
    let fx = Fixture::with_faults(&["AAPL=conflict:1", "MSFT=disorder"]);
    let universe = fx.universe(&["AAPL", "MSFT"]);
    let out = run(fx.wrapper_run(
        "r",
        &["--tickers-csv", &universe, "--from", FROM, "--to", TO],
    ));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let log = std::fs::read_to_string(fx.run_dir("r").join("joblog.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sum = |field: &str| -> u64 { entries.iter().filter_map(|e| e[field].as_u64()).sum() };
    assert_eq!(sum("duplicates_dropped"), 1, "{log}");
    assert!(sum("reordered") > 100, "{log}");
    assert!(
        entries.len() >= 2,
        "the conflict costs one failed attempt: {log}"
    );
    for t in ["AAPL", "MSFT"] {
        assert_eq!(fx.store().missing(t, range()).unwrap(), vec![], "{t}");
    }
}
