//! `barsmith status s3://bucket/prefix` against moto's S3 server on loopback: the report
//! a local folder of the same bars gets, in its three formats; stray objects named;
//! `--verify` reading footers and the timestamp column by ranges; `--repair` moving
//! damaged objects into the state prefix's quarantine and withdrawing their coverage,
//! after which a re-run fetches exactly those years again.

mod common;

use std::ffi::OsStr;
use std::process::Output;

use barsmith::calendar::DateRange;
use barsmith::sandbox::synth;
use barsmith::store::status::render::CSV_HEADER;
use barsmith::store::{Provenance, encode_parquet};
use bytes::Bytes;
use common::moto::{MotoServer, runtime};
use common::{Fixture, run, stderr, test_config};
use serde_json::Value;

const URL: &str = "s3://barsmith/bars/minute";
const AAPL_KEY: &str = "bars/minute/ticker=AAPL/year=2025/AAPL_2025.parquet";
const MSFT_KEY: &str = "bars/minute/ticker=MSFT/year=2025/MSFT_2025.parquet";

fn range(a: &str, b: &str) -> DateRange {
    DateRange::parse(a, b).unwrap()
}

/// `barsmith ingest` into `outdir` (a folder, or the dataset on `moto`).
fn ingest(fx: &Fixture, moto: &MotoServer, ticker: &str, to: &str, outdir: &OsStr) {
    let mut cmd = fx.ingest_into(&[ticker], "2025-01-01", to, outdir, "10");
    moto.env_for(&mut cmd);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// AAPL complete over Jan–Feb 2025 and MSFT over January, in the fixture's folder and
/// on S3 at [`URL`].
fn partial(fx: &Fixture, moto: &MotoServer) {
    for (ticker, to) in [("AAPL", "2025-02-28"), ("MSFT", "2025-01-31")] {
        ingest(fx, moto, ticker, to, fx.outdir().as_os_str());
        ingest(fx, moto, ticker, to, URL.as_ref());
    }
}

fn status(fx: &Fixture, moto: &MotoServer, dataset: &OsStr, args: &[&str]) -> Output {
    let mut cmd = fx.barsmith();
    moto.env_for(&mut cmd);
    cmd.arg("status").arg(dataset).args(args);
    run(cmd)
}

fn json_of(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// The report without what differs between two copies of the same bars: where they
/// live and the files' sizes (their provenance holds the time of the fetch).
fn without_place_and_sizes(mut v: Value) -> Value {
    v["data_root"] = Value::Null;
    v["totals"]["bytes"] = Value::Null;
    for t in v["tickers"].as_array_mut().unwrap() {
        for y in t["years"].as_array_mut().unwrap() {
            y["bytes"] = Value::Null;
        }
    }
    v
}

#[test]
fn an_s3_dataset_gets_the_report_of_the_same_local_folder_in_every_format() {
    let fx = Fixture::with_config(test_config());
    let moto = MotoServer::start();
    partial(&fx, &moto);
    for args in [
        &["--format", "json"][..],
        &[
            "--format",
            "json",
            "--from",
            "2024-12-01",
            "--to",
            "2025-03-31",
        ],
    ] {
        let on_s3 = json_of(&status(&fx, &moto, URL.as_ref(), args));
        let local = json_of(&status(&fx, &moto, fx.outdir().as_os_str(), args));
        assert_eq!(on_s3["data_root"], URL);
        assert_eq!(
            without_place_and_sizes(on_s3.clone()),
            without_place_and_sizes(local)
        );
        // Bytes are the objects' sizes, rows the bars in them.
        let rt = runtime();
        for (i, key) in [AAPL_KEY, MSFT_KEY].iter().enumerate() {
            let info = rt.block_on(moto.client().head(key)).unwrap();
            assert_eq!(on_s3["tickers"][i]["years"][0]["bytes"], info.size, "{key}");
        }
        let aapl = synth::bars_for(
            "AAPL",
            range("2025-01-01", "2025-02-28"),
            fx.sandbox.config(),
        );
        assert_eq!(on_s3["tickers"][0]["years"][0]["rows"], aapl.len());
    }
    let out = status(&fx, &moto, URL.as_ref(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = String::from_utf8(out.stdout).unwrap();
    for line in [
        URL,
        "tickers   2 (complete 1, incomplete 1)",
        "MSFT  incomplete",
    ] {
        assert!(table.contains(line), "no `{line}` in:\n{table}");
    }
    let out = status(&fx, &moto, URL.as_ref(), &["--format", "csv"]);
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        (lines[0], lines.len()),
        (CSV_HEADER.join(",").as_str(), 4),
        "{csv}"
    );
    assert!(lines[3].starts_with("MSFT,1,0,"), "{csv}");
}

/// Replaces MSFT's object with its own bars, two minutes swapped: the same rows and
/// span (the footer agrees with the record), timestamps out of order.
fn unsort_msft(moto: &MotoServer) {
    let rt = runtime();
    let jan = range("2025-01-01", "2025-01-31");
    let mut bars = rt
        .block_on(moto.dataset(&rt, URL).read_bars("MSFT", jan))
        .unwrap();
    bars.timestamp.swap(1, 2);
    let mut body = Vec::new();
    encode_parquet("MSFT", &bars, &Provenance::now(true, jan), &mut body).unwrap();
    rt.block_on(moto.client().put(MSFT_KEY, Bytes::from(body)))
        .unwrap();
}

fn claims(j: &Value) -> Vec<(String, String)> {
    j["damaged_claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["ticker"].as_str().unwrap().into(),
                c["cause"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn strays_are_named_verify_reads_the_timestamps_and_repair_quarantines_on_s3() {
    let fx = Fixture::with_config(test_config());
    let moto = MotoServer::start();
    partial(&fx, &moto);
    let rt = runtime();
    let client = moto.client();
    for key in ["bars/minute/notes.txt", "bars/minute/ticker=AAPL/_SUCCESS"] {
        rt.block_on(client.put(key, Bytes::from_static(b"hi")))
            .unwrap();
    }
    unsort_msft(&moto);
    let out = status(&fx, &moto, URL.as_ref(), &["--format", "json"]);
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings.iter().any(|l| l.contains("ticker=AAPL/_SUCCESS")),
        "{err}"
    );
    let j = json_of(&out);
    assert_eq!(
        j["stray_files"],
        serde_json::json!(["notes.txt", "ticker=AAPL/_SUCCESS"])
    );
    assert!(claims(&j).is_empty(), "the footer agrees: {j}");

    // Only the timestamp column shows MSFT's damage; a truncated AAPL shows at once.
    let whole = rt.block_on(client.get(AAPL_KEY)).unwrap().body;
    rt.block_on(client.put(AAPL_KEY, whole.slice(..whole.len() / 2)))
        .unwrap();
    let j = json_of(&status(&fx, &moto, URL.as_ref(), &["--format", "json"]));
    assert_eq!(claims(&j), [("AAPL".into(), "unreadable".into())]);
    let out = status(&fx, &moto, URL.as_ref(), &["--format", "json", "--verify"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        claims(&j),
        [
            ("AAPL".into(), "unreadable".into()),
            ("MSFT".into(), "unsorted".into())
        ]
    );

    // --repair moves both into the quarantine and withdraws their years.
    let jan = ["--from", "2025-01-01", "--to", "2025-01-31"];
    let args = [&["--format", "json", "--repair"][..], &jan].concat();
    let j = json_of(&status(&fx, &moto, URL.as_ref(), &args));
    for c in j["damaged_claims"].as_array().unwrap() {
        let moved = c["moved_to"].as_str().unwrap();
        assert!(
            moved.starts_with("s3://barsmith/bars/minute.barsmith/quarantine/"),
            "{moved}"
        );
        let key = moved.strip_prefix("s3://barsmith/").unwrap();
        rt.block_on(client.head(key))
            .expect("the quarantined object is there");
    }
    assert_eq!(j["totals"]["incomplete"], 2, "{j}");
    assert_eq!(j["totals"]["files"], 0, "{j}");
    for key in [AAPL_KEY, MSFT_KEY] {
        assert!(
            rt.block_on(client.head(key)).is_err(),
            "{key} left the data"
        );
    }

    // A re-run fetches exactly those years; then MSFT's object is deleted by hand,
    // which a plain status names and --repair withdraws.
    ingest(&fx, &moto, "AAPL", "2025-02-28", URL.as_ref());
    ingest(&fx, &moto, "MSFT", "2025-01-31", URL.as_ref());
    let out = status(&fx, &moto, URL.as_ref(), &["--format", "json", "--verify"]);
    let j = json_of(&out);
    assert!(claims(&j).is_empty(), "{j}");
    assert_eq!(j["totals"]["complete"], 1);
    rt.block_on(client.delete(MSFT_KEY)).unwrap();
    let j = json_of(&status(&fx, &moto, URL.as_ref(), &["--format", "json"]));
    assert_eq!(claims(&j), [("MSFT".into(), "missing".into())]);
    assert_eq!(
        j["tickers"][1]["complete_ranges"],
        serde_json::json!([]),
        "{j}"
    );
    let j = json_of(&status(
        &fx,
        &moto,
        URL.as_ref(),
        &["--format", "json", "--repair"],
    ));
    assert_eq!(j["damaged_claims"][0]["moved_to"], Value::Null);
    let record = rt
        .block_on(moto.dataset(&rt, URL).coverage("MSFT"))
        .unwrap();
    assert!(record.complete.is_empty(), "{record:?}");
}

#[test]
fn a_prefix_that_is_not_a_dataset_is_one_line_and_exit_2() {
    let fx = Fixture::with_config(test_config());
    let moto = MotoServer::start();
    let out = status(&fx, &moto, "s3://barsmith/nothing/here".as_ref(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("s3://barsmith/nothing/here is not a barsmith dataset"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn upgrade_refuses_a_dataset_on_s3_in_one_line_naming_the_fix() {
    let fx = Fixture::with_config(test_config());
    let mut cmd = fx.barsmith();
    cmd.args(["upgrade", URL]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("local folders only, not s3://barsmith/bars/minute"),
        "{err}"
    );
    assert!(
        err.contains("run `barsmith upgrade` on that folder"),
        "{err}"
    );
}
