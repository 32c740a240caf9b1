//! pyarrow and Polars read a dataset on S3 straight from moto. DuckDB is not among
//! them: its httpfs extension is downloaded on first use, and tests never reach the
//! internet.

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

#[test]
fn pyarrow_and_polars_read_the_dataset_straight_from_s3() {
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
    let python = common::python_with_readers();
    let out = std::process::Command::new(python)
        .args(["-c", READ_FROM_S3])
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
    for reader in ["pyarrow", "polars"] {
        let r = &seen[reader];
        assert_eq!(r["rows"], rows, "{reader}: {r}");
        assert_eq!(
            r["tickers"],
            serde_json::json!(["AAPL", "BRK.A"]),
            "{reader}: {r}"
        );
        assert_eq!(r["years"], serde_json::json!([2004, 2005]), "{reader}: {r}");
    }
}
