//! `barsmith status DIR`: totals and per-ticker ranges from the coverage records and the
//! Parquet footers, in three formats, with a resume estimate, stray-file warnings and
//! one-line errors for a wrong DIR.

mod common;

use std::path::Path;
use std::process::Output;

use barsmith::calendar::DateRange;
use barsmith::store::status::render::CSV_HEADER;
use common::{Fixture, run, stderr};
use serde_json::Value;

/// A dataset of AAPL complete over Jan–Feb 2025 and MSFT over January only.
fn partial_dataset() -> Fixture {
    let fx = Fixture::with_faults(&[]);
    let out = run(fx.ingest(&["AAPL"], "2025-01-01", "2025-02-28"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(fx.ingest(&["MSFT"], "2025-01-01", "2025-01-31"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    fx
}

fn status(fx: &Fixture, args: &[&str]) -> Output {
    let mut cmd = fx.barsmith();
    cmd.arg("status").arg(fx.outdir()).args(args);
    run(cmd)
}

fn json_of(out: &Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("status --format json prints one JSON document")
}

fn ranges(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .expect("a list of ranges")
        .iter()
        .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
        .collect()
}

fn range(a: &str, b: &str) -> (String, String) {
    (a.into(), b.into())
}

#[test]
fn totals_and_ranges_after_a_partial_ingest_match_the_files() {
    let fx = partial_dataset();
    let j = json_of(&status(&fx, &["--format", "json"]));
    // No --from/--to: the span the coverage records know.
    assert_eq!(j["range"]["from"], "2025-01-01");
    assert_eq!(j["range"]["to"], "2025-02-28");
    let t = &j["totals"];
    assert_eq!(
        (&t["tickers"], &t["complete"], &t["incomplete"]),
        (&2.into(), &1.into(), &1.into())
    );
    assert_eq!((&t["files"], &t["missing_ranges"]), (&2.into(), &1.into()));

    // Rows are the bars in the files, bytes their sizes.
    let store = fx.store();
    let mut rows = 0;
    let mut bytes = 0;
    for (i, ticker) in ["AAPL", "MSFT"].iter().enumerate() {
        let s = &j["tickers"][i];
        assert_eq!(s["ticker"], *ticker);
        let n = store
            .read_bars(
                ticker,
                DateRange::parse("2025-01-01", "2025-12-31").unwrap(),
            )
            .unwrap()
            .len() as u64;
        let size = std::fs::metadata(store.file_path(ticker, 2025))
            .unwrap()
            .len();
        assert_eq!(s["years"][0]["year"], 2025);
        assert_eq!(s["years"][0]["rows"], n);
        assert_eq!(s["years"][0]["bytes"], size);
        rows += n;
        bytes += size;
    }
    assert!(rows > 0);
    assert_eq!((&t["rows"], &t["bytes"]), (&rows.into(), &bytes.into()));

    let (aapl, msft) = (&j["tickers"][0], &j["tickers"][1]);
    assert_eq!(aapl["complete"], true);
    assert_eq!(
        ranges(&aapl["complete_ranges"]),
        [range("2025-01-01", "2025-02-28")]
    );
    assert!(ranges(&aapl["missing"]).is_empty());
    assert_eq!(msft["complete"], false);
    assert_eq!(
        ranges(&msft["complete_ranges"]),
        [range("2025-01-01", "2025-01-31")]
    );
    assert_eq!(
        ranges(&msft["missing"]),
        [range("2025-02-01", "2025-02-28")]
    );
    assert!(j["stray_files"].as_array().unwrap().is_empty());
}

#[test]
fn a_wider_range_reports_missing_ranges_and_one_request_per_small_piece() {
    let fx = partial_dataset();
    let j = json_of(&status(
        &fx,
        &[
            "--from",
            "2024-12-01",
            "--to",
            "2025-02-28",
            "--format",
            "json",
        ],
    ));
    assert_eq!(j["totals"]["complete"], 0);
    let (aapl, msft) = (&j["tickers"][0], &j["tickers"][1]);
    assert_eq!(
        ranges(&aapl["missing"]),
        [range("2024-12-01", "2024-12-31")]
    );
    assert_eq!(
        ranges(&msft["missing"]),
        [
            range("2024-12-01", "2024-12-31"),
            range("2025-02-01", "2025-02-28")
        ]
    );
    // Three ticker-year pieces, each well under a page of 50,000 bars.
    assert_eq!(j["totals"]["missing_ranges"], 3);
    assert_eq!(j["totals"]["missing_pieces"], 3);
    assert_eq!(j["totals"]["requests"], 3);
    assert_eq!(
        (&aapl["requests"], &msft["requests"]),
        (&1.into(), &2.into())
    );
    // At 1 request per second the time is the request count.
    let j = json_of(&status(
        &fx,
        &[
            "--from",
            "2024-12-01",
            "--max-rps",
            "1/s",
            "--format",
            "json",
        ],
    ));
    assert_eq!(j["totals"]["seconds"], 3.0);
}

#[test]
fn a_ticker_without_data_is_estimated_from_rows_per_year() {
    let fx = partial_dataset();
    let universe = fx.universe(&["MSFT", "NVDA"]);
    let args = [
        "--tickers-csv",
        &universe,
        "--from",
        "2025-02-01",
        "--to",
        "2025-02-28",
    ];
    let j = json_of(&status(&fx, &[&args[..], &["--format", "json"]].concat()));
    assert_eq!(j["totals"]["tickers"], 2);
    assert_eq!(j["tickers"][1]["ticker"], "NVDA");
    assert_eq!(j["tickers"][1]["complete_ranges"], Value::Array(vec![]));
    // No neighbouring year known: 250,000 bars a year make February one page...
    assert_eq!(j["tickers"][1]["requests"], 1);
    // ...and 2,000,000 make it 2e6 * 28 / 365 = 153,425 bars: four pages of 50,000.
    let more = [
        &args[..],
        &["--rows-per-year", "2000000", "--format", "json"],
    ]
    .concat();
    let j = json_of(&status(&fx, &more));
    assert_eq!(j["tickers"][1]["requests"], 4);
}

#[test]
fn the_table_prints_totals_first_then_each_ticker() {
    let fx = partial_dataset();
    let out = status(&fx, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let at = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("no `{s}` in:\n{text}"))
    };
    assert!(at("tickers   2 (complete 1, incomplete 1)") < at("AAPL  complete"));
    assert!(at("resume    ~1 request(s)") < at("AAPL  complete"));
    assert!(at("AAPL  complete") < at("MSFT  incomplete"));
    assert!(at("MSFT  incomplete") < at("missing   2025-02-01..2025-02-28"));
    assert!(text.contains("at 50/s"), "{text}");
}

#[test]
fn csv_has_a_stable_header_a_totals_row_then_one_row_per_ticker() {
    let fx = partial_dataset();
    let out = status(&fx, &["--format", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "ticker,tickers,complete,files,rows,bytes,missing_ranges,missing_pieces,requests,\
         seconds,complete_ranges,missing,rows_per_year,bytes_per_year"
    );
    assert_eq!(lines[0], CSV_HEADER.join(","));
    assert_eq!(lines.len(), 4, "{text}");
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split(',').collect()).collect();
    assert_eq!(&cells[1][..3], ["*", "2", "1"]);
    assert_eq!(cells[1][10], "2025-01-01..2025-02-28");
    assert_eq!(&cells[2][..3], ["AAPL", "1", "1"]);
    assert_eq!(&cells[3][..3], ["MSFT", "1", "0"]);
    assert_eq!(cells[3][11], "2025-02-01..2025-02-28");
    assert!(cells[3][12].starts_with("2025:"), "{text}");
}

#[test]
fn stray_files_in_the_data_root_are_named_on_stderr() {
    let fx = partial_dataset();
    let root = fx.outdir();
    std::fs::write(root.join("notes.txt"), "hello").unwrap();
    std::fs::write(root.join("ticker=AAPL").join(".DS_Store"), "").unwrap();
    let out = status(&fx, &["--format", "json"]);
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(warnings.iter().any(|l| l.contains("notes.txt")), "{err}");
    assert!(
        warnings.iter().any(|l| l.contains("ticker=AAPL/.DS_Store")),
        "{err}"
    );
    // The report itself is unaffected and stays clean JSON on stdout.
    let j = json_of(&out);
    assert_eq!(j["totals"]["files"], 2);
    assert_eq!(j["stray_files"].as_array().unwrap().len(), 2);
}

#[test]
fn a_wrong_dir_is_one_line_and_exit_2() {
    let fx = Fixture::with_faults(&[]);
    let check = |dir: &Path, says: &str| {
        let out = run({
            let mut c = fx.barsmith();
            c.arg("status").arg(dir);
            c
        });
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(says), "{err}");
        assert!(err.contains("barsmith ingest --outdir"), "{err}");
        assert!(out.stdout.is_empty());
    };
    check(&fx.dir.path().join("nowhere"), "is not a folder");
    let plain = fx.dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    check(&plain, "is not a barsmith dataset");
    // Bad dates are bad input too.
    let fx = partial_dataset();
    let out = status(&fx, &["--from", "2025-13-01"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

#[test]
fn a_damaged_bar_file_is_named_and_left_out_not_fatal() {
    let fx = partial_dataset();
    let year = fx.outdir().join("ticker=AAPL").join("year=2024");
    std::fs::create_dir_all(&year).unwrap();
    std::fs::write(year.join("AAPL_2024.parquet"), "not parquet").unwrap();
    let out = status(&fx, &["--from", "2024-01-01", "--format", "json"]);
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("ticker=AAPL/year=2024/AAPL_2024.parquet"),
        "{err}"
    );
    let j = json_of(&out);
    assert_eq!(j["totals"]["files"], 2);
    let damaged = j["damaged_files"].as_array().unwrap();
    assert_eq!(damaged.len(), 1);
    assert_eq!(
        damaged[0]["path"],
        "ticker=AAPL/year=2024/AAPL_2024.parquet"
    );
    assert!(!damaged[0]["error"].as_str().unwrap().is_empty());
}
