//! Data in the REPL: bars loaded from a dataset `barsmith ingest` wrote, filtered,
//! mapped, resampled and written back out; the date range of failed tickers and a
//! retry fed from `failures()`; `write_csv` column order; `runs()` newest first.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use barsmith::bars::resample::{Every, resample, vwap};
use barsmith::calendar::DateRange;
use barsmith::sandbox::FaultPlan;
use common::{Fixture, stderr, stdout};

const FROM: &str = "2024-03-04";
const TO: &str = "2024-03-08";
/// Longest any one REPL session of these tests may take.
const SESSION_LIMIT: Duration = Duration::from_secs(90);

/// `barsmith repl` against the fixture's sandbox, with extra arguments.
fn repl(fx: &Fixture, args: &[&str]) -> Command {
    let mut cmd = fx.barsmith();
    cmd.args(["repl", "--base-url", &fx.sandbox.base_url()])
        .args(args);
    cmd
}

fn session(fx: &Fixture, args: &[&str], input: &str) -> Output {
    common::run_with_input(repl(fx, args), input, SESSION_LIMIT)
}

/// The number after `label` on its own line of `text`.
fn number_after(text: &str, label: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no line starting {label:?} in {text}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{label}: {e} in {text}"))
}

#[test]
fn bars_load_from_a_dataset_then_filter_map_resample_and_write() {
    let fx = Fixture::with_faults(&[]);
    let out = common::run(fx.ingest(&["AAPL"], FROM, TO));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let range = DateRange::parse(FROM, TO).unwrap();
    let stored = fx.store().read_bars("AAPL", range).unwrap();
    assert!(stored.len() > 100, "the sandbox has bars for the week");

    let input = format!(
        r#"let bars = load_bars("data/minute", "AAPL", "{FROM}", "{TO}");
print(`loaded: ${{bars.len()}}`);
print(`vwap: ${{bars.vwap()}}`);
let opens = bars.filter(|b| b.time.ends_with("09:30"));
print(`opens: ${{opens.len()}}`);
let ranges = bars.map(|b| b.high - b.low);
print(`ranges: ${{ranges.len()}} ${{type_of(ranges)}}`);
let daily = bars.resample("1d");
print(`days: ${{daily.len()}}`);
bars.to_csv("out/aapl.csv");
daily.to_parquet("out/aapl_1d.parquet");
print(bars.table(2));
daily
load_bars("no/such/dataset", "AAPL", "{FROM}", "{TO}")
load_bars("data/minute", "AAPL", "{TO}", "{FROM}")
load_bars("data/minute", "AAPL", "2024-3-4", "{TO}")
bars.resample("7m")
bars.filter(|b| b.close)
"#
    );
    let out = session(&fx, &[], &input);
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors at the end: {text}\n{err}"
    );
    let n = stored.len();
    assert!(text.contains(&format!("loaded: {n}\n")), "{text}\n{err}");
    let want = vwap(&stored).expect("sandbox bars have a vwap");
    let got = number_after(&text, "vwap: ");
    assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
    let open_count = stored
        .iter()
        .filter(|b| {
            let t = jiff::Timestamp::from_millisecond(b.timestamp).unwrap();
            t.to_zoned_datetime(barsmith::calendar::exchange_tz())
                .strftime("%H:%M")
                .to_string()
                == "09:30"
        })
        .count();
    assert!(open_count > 0, "the sandbox has bars at the open");
    assert!(text.contains(&format!("opens: {open_count}\n")), "{text}");
    assert!(text.contains(&format!("ranges: {n} array\n")), "{text}");
    let days = resample(&stored, Every::NyDay);
    assert_eq!(days.len(), 5, "five New York days");
    assert!(text.contains("days: 5\n"), "{text}");

    // The table: count, aligned columns, two rows at each end.
    assert!(
        text.contains(&format!("Bars AAPL: {n} bars from 2024-03-04 ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("  ... {} more ...\n", n - 4)),
        "{text}"
    );
    // A daily Bars value prints as its table, all five rows.
    assert!(
        text.contains("Bars AAPL: 5 bars from 2024-03-04 00:00 to 2024-03-08 00:00"),
        "{text}"
    );

    let csv = std::fs::read_to_string(fx.dir.path().join("out/aapl.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "timestamp,time,open,high,low,close,volume,vwap,transactions,otc"
    );
    assert_eq!(lines.len(), n + 1);
    let first = stored.get(0).unwrap();
    assert!(
        lines[1].starts_with(&format!("{},", first.timestamp)),
        "{}",
        lines[1]
    );

    let file = barsmith::store::read_file(&fx.dir.path().join("out/aapl_1d.parquet")).unwrap();
    assert_eq!(file.bars, days, "the Parquet file holds the daily bars");
    assert_eq!(
        file.metadata.get("barsmith.timespan").map(String::as_str),
        Some("1d"),
        "the footer names the bar length: {:?}",
        file.metadata
    );

    for message in [
        "load_bars: no dataset at no/such/dataset",
        "load_bars: --from 2024-03-08 is after --to 2024-03-04",
        "load_bars: from: '2024-3-4' is not a date",
        "resample: '7m' is not a bar length",
        "filter: the function must return true or false",
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no {message:?} in {err}"));
        assert!(!line.contains("panicked"), "{line}");
    }
}

#[test]
fn failures_carry_the_asked_range_and_feed_a_retry_run() {
    let fx = Fixture::with_faults(&["AAPL=500:4"]);
    let universe = fx.universe(&["AAPL", "MSFT"]);
    let args = [
        "--tickers-csv",
        &universe,
        "--from",
        FROM,
        "--to",
        TO,
        "--max-rps",
        "1000",
        "--request-timeout",
        "10",
        "--tries",
        "1",
        "--passes",
        "1",
    ];
    let out = common::run(fx.wrapper_run("first", &args));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let run_dir = fx.run_dir("first");
    let failed = std::fs::read_to_string(run_dir.join("failed_tickers.csv")).unwrap();
    let rows: Vec<&str> = failed.lines().collect();
    assert_eq!(rows[0], "ticker,class,kind,message,from,to");
    assert!(rows[1].starts_with("AAPL,retryable,server,"), "{failed}");
    assert!(rows[1].ends_with(&format!(",{FROM},{TO}")), "{failed}");

    let input = r#"let f = failures(run_dir);
print(`range: ${f[0].ticker} ${f[0].from} ${f[0].to}`);
write_csv("retry.csv", f);
"#;
    let out = session(&fx, &["--run", run_dir.to_str().unwrap()], input);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(text.contains(&format!("range: AAPL {FROM} {TO}")), "{text}");
    let retry = std::fs::read_to_string(fx.dir.path().join("retry.csv")).unwrap();
    assert!(retry.starts_with("ticker,from,to,"), "{retry}");
    assert!(retry.contains(&format!("\nAAPL,{FROM},{TO},")), "{retry}");

    // The rows feed straight back into a run as its universe.
    fx.sandbox.set_faults(FaultPlan::default());
    let mut again = args;
    again[1] = "retry.csv";
    let out = common::run(fx.wrapper_run("second", &again));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let range = DateRange::parse(FROM, TO).unwrap();
    assert!(!fx.store().read_bars("AAPL", range).unwrap().is_empty());
}

#[test]
fn runs_are_newest_first_by_start_and_csv_columns_lead_with_ticker_and_range() {
    let fx = Fixture::with_faults(&[]);
    let root = fx.dir.path().join("history");
    for (name, start) in [
        ("2026-a", "2026-01-02T00:00:00Z"),
        ("2026-b", "2026-01-01T00:00:00Z"),
        ("0-renamed", "2026-01-03T10:00:00.5Z"),
    ] {
        std::fs::create_dir_all(root.join(name)).unwrap();
        std::fs::write(
            root.join(name).join("run.json"),
            format!(r#"{{"script": "w.rhai", "start": "{start}"}}"#),
        )
        .unwrap();
    }
    let input = r#"for r in runs("history") { print(r.dir); }
write_csv("rows.csv", [#{zeta: 1, ticker: "A", to: "2024-01-05", from: "2024-01-02", alpha: 2}]);
"#;
    let out = session(&fx, &[], input);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    let order: Vec<&str> = text.lines().filter_map(|l| l.rsplit('/').next()).collect();
    assert_eq!(order, ["0-renamed", "2026-a", "2026-b"], "{text}");
    let csv = std::fs::read_to_string(fx.dir.path().join("rows.csv")).unwrap();
    assert_eq!(
        csv,
        "ticker,from,to,alpha,zeta\nA,2024-01-02,2024-01-05,2,1\n"
    );
}
