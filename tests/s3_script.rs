//! The script primitives that take a dataset, on `s3://bucket/prefix` (moto's S3
//! server on loopback, reached through the AWS variables): `ingest` writes it in
//! process, `stored_tickers`, `completed_tickers`, `missing_ranges`, `coverage` and
//! `load_bars` read it back as they read a folder.

mod common;

use std::time::Duration;

use barsmith::calendar::DateRange;
use barsmith::sandbox::synth;
use common::moto::{MotoServer, runtime};
use common::{Fixture, stderr, stdout, test_config};

const URL: &str = "s3://barsmith/bars/minute";
/// Longest the REPL session may take.
const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// The text after `label` on its own line of `text`.
fn after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no line starting {label:?} in {text}"))
}

#[test]
fn the_repl_ingests_into_s3_and_every_dataset_primitive_reads_it_back() {
    let fx = Fixture::with_config(test_config());
    let moto = MotoServer::start();
    let input = format!(
        r#"let url = "{URL}";
let r = ingest(["AAPL", "MSFT"], #{{outdir: url, from: "2024-01-02", to: "2024-01-31", quiet: true}});
print(`ingest: ${{r.AAPL.status}} ${{r.MSFT.status}}`);
print(`stored: ${{stored_tickers(url)}}`);
print(`completed: ${{completed_tickers(url, "2024-01-02", "2024-01-31")}}`);
print(`among: ${{completed_tickers(url, ["MSFT", "IBM"], "2024-01-02", "2024-01-31")}}`);
print(`missing: ${{missing_ranges(url, "AAPL", "2024-01-02", "2024-02-09")}}`);
print(`coverage: ${{coverage(url, "AAPL")}}`);
print(`bars: ${{load_bars(url, "AAPL", "2024-01-02", "2024-01-31").len()}}`);
print(`again: ${{ingest(["AAPL"], #{{outdir: url, from: "2024-01-02", to: "2024-01-31", quiet: true}}).AAPL.status}}`);
"#
    );
    let mut cmd = fx.barsmith();
    moto.env_for(&mut cmd)
        .args(["repl", "--base-url", &fx.sandbox.base_url()]);
    let out = common::run_with_input(cmd, &input, SESSION_LIMIT);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}\n{err}");
    assert_eq!(after(&text, "ingest: "), "ok ok", "{err}");
    assert_eq!(after(&text, "stored: "), r#"["AAPL", "MSFT"]"#);
    assert_eq!(after(&text, "completed: "), r#"["AAPL", "MSFT"]"#);
    assert_eq!(after(&text, "among: "), r#"["MSFT"]"#);
    let missing = after(&text, "missing: ");
    assert!(
        missing.contains("2024-02-01")
            && missing.contains("2024-02-09")
            && !missing.contains("2024-01"),
        "{missing}"
    );
    let coverage = after(&text, "coverage: ");
    assert!(
        coverage.contains("2024-01-02") && coverage.contains("2024-01-31"),
        "{coverage}"
    );
    assert_eq!(after(&text, "again: "), "skipped", "complete already");

    // What the REPL wrote is the sandbox's bars, read here straight from S3.
    let jan = DateRange::parse("2024-01-02", "2024-01-31").unwrap();
    let want = synth::bars_for("AAPL", jan, fx.sandbox.config());
    assert_eq!(after(&text, "bars: "), want.len().to_string());
    let rt = runtime();
    let ds = moto.dataset(&rt, URL);
    assert_eq!(rt.block_on(ds.read_bars("AAPL", jan)).unwrap(), want);
    assert_eq!(
        rt.block_on(ds.coverage("MSFT")).unwrap().complete,
        vec![jan]
    );
}
