//! pyarrow, Polars and DuckDB read a dataset on S3 straight from moto. DuckDB's httpfs
//! extension comes from PyPI (tests/duckdb_s3/requirements.txt), not from
//! extensions.duckdb.org: tests never reach the internet.

use crate::common::{self, moto::MotoServer};
use crate::{leases, open, prov, range, runtime, synth, today};

/// What pyarrow and Polars see of the dataset, read straight from moto.
const READ_FROM_S3: &str = r#"
import json, os
out = {}
ep = os.environ["BARSMITH_TEST_S3_ENDPOINT"]
try:
    import pyarrow.dataset as ds, pyarrow.fs as pafs
    fs = pafs.S3FileSystem(endpoint_override=ep, scheme="http", region="us-east-1")
    t = ds.dataset("barsmith/bars/minute", filesystem=fs, format="parquet",
                   partitioning="hive").to_table()
    out["pyarrow"] = {"rows": t.num_rows,
                      "tickers": sorted(set(t.column("ticker").to_pylist())),
                      "years": sorted(set(t.column("year").to_pylist()))}
except Exception as e:
    out["pyarrow"] = {"error": repr(e)}
try:
    import polars as pl
    opts = {"aws_endpoint_url": ep, "aws_region": "us-east-1", "aws_allow_http": "true",
            "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]}
    df = pl.read_parquet("s3://barsmith/bars/minute/**/*.parquet", hive_partitioning=True,
                         storage_options=opts)
    out["polars"] = {"rows": df.height,
                     "tickers": sorted(df["ticker"].unique().to_list()),
                     "years": sorted(int(y) for y in df["year"].unique().to_list())}
except Exception as e:
    out["polars"] = {"error": repr(e)}
print(json.dumps(out))
"#;

/// What DuckDB (httpfs, installed from its PyPI wheel) sees of the dataset.
const DUCKDB_FROM_S3: &str = r#"
import json, os, pathlib
import duckdb, duckdb_extension_httpfs
con = duckdb.connect()
version = con.sql("PRAGMA version").fetchone()[0]
ext = pathlib.Path(duckdb_extension_httpfs.__file__).parent / "extensions" / version / "httpfs.duckdb_extension"
con.sql(f"INSTALL '{ext}'")
con.sql("LOAD httpfs")
ep = os.environ["BARSMITH_TEST_S3_ENDPOINT"].removeprefix("http://")
con.sql(f"""CREATE SECRET (TYPE s3, KEY_ID '{os.environ["AWS_ACCESS_KEY_ID"]}',
    SECRET '{os.environ["AWS_SECRET_ACCESS_KEY"]}', ENDPOINT '{ep}', URL_STYLE 'path',
    USE_SSL false, REGION 'us-east-1')""")
rows, tickers, years = con.sql("""SELECT count(*), list_sort(list(DISTINCT ticker)),
    list_sort(list(DISTINCT year::INT)) FROM
    read_parquet('s3://barsmith/bars/minute/**/*.parquet', hive_partitioning = true)""").fetchone()
print(json.dumps({"duckdb": {"rows": rows, "tickers": tickers, "years": years}}))
"#;

#[test]
fn pyarrow_polars_and_duckdb_read_the_dataset_straight_from_s3() {
    let moto = MotoServer::start_serialized();
    let mut rows = 0;
    runtime().block_on(async {
        let ds = open(&moto, leases(10_000, 5_000)).await;
        for (ticker, r) in [
            ("AAPL", range("2004-11-01", "2004-12-31")),
            ("AAPL", range("2005-01-01", "2005-02-28")),
            ("BRK.A", range("2005-03-01", "2005-03-31")),
        ] {
            let bars = synth(r, 10, 5.0);
            rows += bars.len();
            let w = ds.lease(ticker).await.unwrap();
            let written = w.write_piece(r, &bars, &prov(r)).await.unwrap();
            w.mark_written(&[r], today(), &written).await.unwrap();
            w.release().await.unwrap();
        }
    });
    check_readers(&moto, rows, &["AAPL", "BRK.A"], &[2004, 2005]);
}

/// Every reader (pyarrow, Polars, DuckDB) reads the dataset at `s3://barsmith/bars/minute`
/// from moto and sees `rows` rows of `tickers` in `years`.
pub(crate) fn check_readers(moto: &MotoServer, rows: usize, tickers: &[&str], years: &[i64]) {
    let duckdb = common::python_venv(
        "duckdb_s3",
        "DuckDB with its httpfs extension",
        "it is only needed for the S3 reader tests",
    );
    for (python, script) in [
        (common::python_with_readers(), READ_FROM_S3),
        (duckdb, DUCKDB_FROM_S3),
    ] {
        run_readers(moto, &python, script, rows, tickers, years);
    }
}

/// Runs `script` (prints a JSON map reader → rows, tickers, years) against moto and
/// checks every reader saw the whole dataset.
fn run_readers(
    moto: &MotoServer,
    python: &std::path::Path,
    script: &str,
    rows: usize,
    tickers: &[&str],
    years: &[i64],
) {
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .env("BARSMITH_TEST_S3_ENDPOINT", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "AKIDBARSMITHTEST")
        .env("AWS_SECRET_ACCESS_KEY", "barsmith-test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("python runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_str(text.trim()).expect(&text);
    let readers = seen.as_object().expect("a map of readers");
    assert!(!readers.is_empty(), "{text}");
    for (reader, r) in readers {
        assert_eq!(r["rows"], rows, "{reader}: {r}");
        assert_eq!(r["tickers"], serde_json::json!(tickers), "{reader}: {r}");
        assert_eq!(r["years"], serde_json::json!(years), "{reader}: {r}");
    }
}
