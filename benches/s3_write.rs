//! Writing a dataset to S3 against writing it to local disk: the same ticker-years
//! (the sandbox's synthetic bars, full history) through `Store` into a temporary
//! folder and through `S3Dataset` into moto's S3 server on loopback (the real S3
//! implementation the tests use, started here), one ticker at a time and 4 at once.
//! Each write is what the worker does per piece: take the ticker (lock or lease),
//! write the year's Parquet, record its coverage, release.
//!
//! `cargo bench --bench s3_write` (`BENCH_S3_TICKERS=N`, default 12). moto is a Python
//! server: its figures bound barsmith's own cost from above, not S3's.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use barsmith::bars::Bars;
use barsmith::calendar::DateRange;
use barsmith::s3::{Bucket, S3Config, S3Credentials};
use barsmith::sandbox::{SandboxConfig, synth};
use barsmith::store::remote::{LeaseConfig, S3Dataset, S3Location};
use barsmith::store::{DatasetIdentity, Provenance, Store};
use common::moto::MotoServer;
use jiff::civil::date;

fn main() {
    // `cargo test --benches` runs this without `--bench`: build check only.
    if !std::env::args().any(|a| a == "--bench") {
        println!("s3_write: run with `cargo bench --bench s3_write`");
        return;
    }
    let n: usize = std::env::var("BENCH_S3_TICKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let year = DateRange::parse("2024-01-01", "2024-12-31").expect("range");
    let cfg = SandboxConfig {
        today: date(2026, 6, 30),
        ..SandboxConfig::default()
    };
    let tickers: Vec<String> = (0..n).map(|i| format!("S{i:03}")).collect();
    let pieces: Vec<(String, Bars)> = tickers
        .iter()
        .map(|t| (t.clone(), synth::bars_for(t, year, &cfg)))
        .collect();
    let bars: usize = pieces.iter().map(|(_, b)| b.len()).sum();
    let prov =
        Provenance::for_identity(&DatasetIdentity::minute(true), year, jiff::Timestamp::now());

    let tmp = tempfile::tempdir().expect("temp dir");
    let store =
        Store::open(&tmp.path().join("minute"), &DatasetIdentity::minute(true)).expect("store");
    let t0 = Instant::now();
    let mut bytes = 0u64;
    for (t, b) in &pieces {
        let written = store.write_piece(t, year, b, &prov).expect("local write");
        bytes += written.facts.bytes;
        store
            .mark_written(t, &[year], date(2026, 6, 30), &written)
            .expect("coverage");
    }
    let local = t0.elapsed();

    let moto = MotoServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = vec![("local disk (ext4), 1 at a time".to_string(), local)];
    for (i, at_once) in [1usize, 4].into_iter().enumerate() {
        let took = rt.block_on(write_s3(
            &moto,
            &format!("s3://{}/run{i}/minute", moto.bucket),
            &pieces,
            year,
            &prov,
            at_once,
        ));
        rows.push((format!("S3 (moto), {at_once} at a time"), took));
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "\n{n} ticker-years, {bars} bars, {mb:.1} MB of Parquet (load average {})",
        loadavg()
    );
    println!("| target | wall | MB/s | bars/s | per ticker-year |");
    println!("|---|---|---|---|---|");
    for (what, took) in rows {
        let s = took.as_secs_f64();
        println!(
            "| {what} | {s:.2} s | {:.1} | {:.2}M | {:.0} ms |",
            mb / s,
            bars as f64 / s / 1e6,
            s * 1e3 / n as f64
        );
    }
}

/// Writes every piece through an `S3Dataset` at `url`, `at_once` tickers at a time.
async fn write_s3(
    moto: &MotoServer,
    url: &str,
    pieces: &[(String, Bars)],
    year: DateRange,
    prov: &Provenance,
    at_once: usize,
) -> Duration {
    let creds = S3Credentials::new("AKIDBARSMITHTEST".into(), "barsmith-test-secret".into());
    let bucket = Bucket::new(S3Config::new(&moto.endpoint(), &moto.bucket, creds)).expect("bucket");
    let loc = S3Location::parse(url).expect("url");
    let ds = Arc::new(
        S3Dataset::open(
            bucket,
            loc,
            &DatasetIdentity::minute(true),
            LeaseConfig::default(),
        )
        .await
        .expect("dataset"),
    );
    let t0 = Instant::now();
    for chunk in pieces.chunks(at_once) {
        let mut tasks = Vec::new();
        for (t, b) in chunk {
            let (ds, prov, t, b) = (ds.clone(), prov.clone(), t.clone(), b.clone());
            tasks.push(tokio::spawn(async move {
                let w = ds.lease(&t).await.expect("lease");
                let written = w.write_piece(year, &b, &prov).await.expect("s3 write");
                w.mark_written(&[year], date(2026, 6, 30), &written)
                    .await
                    .expect("coverage");
                w.release().await.expect("release");
            }));
        }
        for task in tasks {
            task.await.expect("write task");
        }
    }
    t0.elapsed()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
