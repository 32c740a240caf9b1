//! A dataset on S3 (`barsmith::store::remote`) against moto's S3 server on loopback:
//! the same bytes as the local store, one lease holder per ticker, stale leases taken
//! over once, coverage that survives racing writes, and a crash between data and
//! coverage that a re-run completes.
//!
//! moto handles one request at a time here ([`MotoServer::start_serialized`]): its
//! conditional PUTs are check-then-store, which S3 itself does atomically.

#[path = "../common/mod.rs"]
mod common;
mod crash;
mod identity;
mod readers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use barsmith::bars::Bars;
use barsmith::calendar::DateRange;
use barsmith::s3::{Bucket, S3Config, S3Credentials};
use barsmith::store::remote::{LeaseConfig, S3Dataset, S3Location};
use barsmith::store::{DatasetIdentity, Provenance, Store, StoreError};
use bytes::Bytes;
use common::moto::MotoServer;
use jiff::civil::{Date, date};

pub(crate) const URL: &str = "s3://barsmith/bars/minute";

pub(crate) fn range(a: &str, b: &str) -> DateRange {
    DateRange::parse(a, b).unwrap()
}

/// Minute bars for every weekday of `r`, `per_day` from 04:00 New York time.
pub(crate) fn synth(r: DateRange, per_day: usize, close: f64) -> Bars {
    common::synth_bars(r, per_day, close)
}

pub(crate) fn prov(r: DateRange) -> Provenance {
    Provenance::for_identity(
        &DatasetIdentity::minute(true),
        r,
        "2024-05-01T12:00:00Z".parse().unwrap(),
    )
}

pub(crate) fn today() -> Date {
    date(2025, 1, 1)
}

pub(crate) fn bucket(moto: &MotoServer) -> Bucket {
    let creds = S3Credentials::new("AKIDBARSMITHTEST".into(), "barsmith-test-secret".into());
    let mut cfg = S3Config::new(&moto.endpoint(), &moto.bucket, creds);
    cfg.timeout = Duration::from_secs(30);
    cfg.retries = 2;
    Bucket::new(cfg).unwrap()
}

/// Short leases so that expiry and takeover happen within a test.
pub(crate) fn leases(ttl_ms: u64, wait_ms: u64) -> LeaseConfig {
    LeaseConfig {
        ttl: Duration::from_millis(ttl_ms),
        wait: Duration::from_millis(wait_ms),
        poll: Duration::from_millis(50),
        clock_skew: Duration::from_secs(60),
    }
}

pub(crate) async fn open(moto: &MotoServer, cfg: LeaseConfig) -> S3Dataset {
    let loc = S3Location::parse(URL).unwrap();
    S3Dataset::open(bucket(moto), loc, &DatasetIdentity::minute(true), cfg)
        .await
        .unwrap()
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// The pieces of the round trip: whole and partial years, a partial-day write over an
/// existing year, and a piece that empties a range.
fn pieces() -> Vec<(&'static str, DateRange, Vec<DateRange>, Bars)> {
    let y2004 = range("2004-01-01", "2004-12-31");
    let march = range("2004-03-01", "2004-03-31");
    let days = vec![
        range("2004-03-02", "2004-03-03"),
        range("2004-03-10", "2004-03-10"),
    ];
    vec![
        ("AAPL", y2004, vec![y2004], synth(y2004, 30, 10.0)),
        ("AAPL", march, days, synth(march, 20, 50.0)),
        (
            "AAPL",
            range("2005-02-01", "2005-02-28"),
            vec![range("2005-02-01", "2005-02-28")],
            synth(range("2005-02-01", "2005-02-28"), 10, 20.0),
        ),
        (
            "BRK.A",
            range("2004-06-01", "2004-06-30"),
            vec![range("2004-06-01", "2004-06-30")],
            synth(range("2004-06-01", "2004-06-30"), 5, 90.0),
        ),
        // Empties July of 2004 for AAPL (the year keeps its other bars).
        (
            "AAPL",
            range("2004-07-01", "2004-07-31"),
            vec![range("2004-07-01", "2004-07-31")],
            Bars::default(),
        ),
    ]
}

#[test]
fn a_round_trip_gives_the_local_stores_bytes_coverage_and_answers() {
    let moto = MotoServer::start_serialized();
    let dir = tempfile::tempdir().unwrap();
    let local = Store::open(&dir.path().join("minute"), &DatasetIdentity::minute(true)).unwrap();
    runtime().block_on(async {
        let ds = open(&moto, leases(10_000, 5_000)).await;
        for (ticker, r, complete, bars) in pieces() {
            let w = ds.lease(ticker).await.unwrap();
            let written = w.write_days(r, &complete, &bars, &prov(r)).await.unwrap();
            w.mark_written(&complete, today(), &written).await.unwrap();
            w.release().await.unwrap();

            let lw = local
                .write_days(ticker, r, &complete, &bars, &prov(r))
                .unwrap();
            local.mark_written(ticker, &complete, today(), &lw).unwrap();
            assert_eq!(written.facts, lw.facts, "{ticker} {r}");
        }
        let b = bucket(&moto);
        let loc = ds.location().clone();
        for (ticker, year) in [("AAPL", 2004), ("AAPL", 2005), ("BRK.A", 2004)] {
            let object = b.get(&loc.data_key(ticker, year)).await.unwrap().body;
            let file = std::fs::read(local.file_path(ticker, year)).unwrap();
            assert!(object == file, "{ticker} {year}: bytes differ");
        }
        assert!(b.get(&loc.data_key("AAPL", 2006)).await.is_err());

        let all = range("2003-06-01", "2006-03-31");
        let tickers = vec!["AAPL".to_string(), "BRK.A".into(), "MSFT".into()];
        for t in &tickers {
            assert_eq!(
                ds.missing(t, all).await.unwrap(),
                local.missing(t, all).unwrap()
            );
            assert_eq!(
                ds.read_bars(t, all).await.unwrap(),
                local.read_bars(t, all).unwrap()
            );
        }
        let y2004 = range("2004-01-01", "2004-12-31");
        assert_eq!(
            ds.completed_tickers(&tickers, y2004).await.unwrap(),
            local.completed_tickers(&tickers, y2004).unwrap()
        );
        assert_eq!(
            ds.completed_tickers(&tickers, y2004).await.unwrap(),
            ["AAPL"]
        );
        let coverage = b.get(&loc.coverage_key("AAPL")).await.unwrap().body;
        let local_coverage = std::fs::read(local.state_dir().join("coverage/AAPL.json")).unwrap();
        assert!(coverage == local_coverage, "coverage JSON differs");

        // Only Parquet under the data prefix; the state is its sibling.
        for o in b.list("bars/minute/").await.unwrap() {
            assert!(o.key.ends_with(".parquet"), "{}", o.key);
        }
        let state: Vec<String> = b
            .list("bars/minute.barsmith/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert!(state.contains(&loc.dataset_key()), "{state:?}");

        // Identity: refused when different, read by a read-only open.
        let other = S3Dataset::open(
            bucket(&moto),
            loc.clone(),
            &DatasetIdentity::minute(false),
            LeaseConfig::default(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(other, StoreError::IdentityMismatch { .. }),
            "{other}"
        );
        assert!(other.to_string().contains("dataset.json"), "{other}");
        let ro = S3Dataset::open_read_only(bucket(&moto), loc.clone())
            .await
            .unwrap();
        assert_eq!(ro.identity(), Some(&DatasetIdentity::minute(true)));
        let e = ro.lease("AAPL").await.unwrap_err();
        assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
        let empty = S3Location::parse("s3://barsmith/nothing/here").unwrap();
        let ro = S3Dataset::open_read_only(bucket(&moto), empty)
            .await
            .unwrap();
        assert_eq!(ro.identity(), None);
        assert_eq!(ro.missing("AAPL", y2004).await.unwrap(), [y2004]);
    });
}

#[test]
fn writers_racing_on_one_ticker_take_turns_and_every_piece_lands() {
    let moto = MotoServer::start_serialized();
    let holders = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let months: Vec<DateRange> = (1..=8)
        .map(|m| {
            let from = date(2004, m, 1);
            DateRange::new(from, from.last_of_month()).unwrap()
        })
        .collect();
    runtime().block_on(async {
        let mut tasks = Vec::new();
        // Four writers (each its own dataset handle, as separate processes would be),
        // two months each, all on AAPL 2004.
        for w in 0..4 {
            let ds = open(&moto, leases(5_000, 60_000)).await;
            let mine = vec![months[w], months[w + 4]];
            let (holders, most) = (holders.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                for r in mine {
                    let writer = ds.lease("AAPL").await.unwrap();
                    let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let bars = synth(r, 15, 10.0 + w as f64);
                    let written = writer.write_piece(r, &bars, &prov(r)).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    writer.mark_written(&[r], today(), &written).await.unwrap();
                    holders.fetch_sub(1, Ordering::SeqCst);
                    writer.release().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "two writers held AAPL at once"
        );

        let ds = open(&moto, leases(2_000, 5_000)).await;
        let all = range("2004-01-01", "2004-08-31");
        assert!(ds.missing("AAPL", all).await.unwrap().is_empty());
        let stored = ds.read_bars("AAPL", all).await.unwrap();
        let mut expected = Bars::default();
        for (i, r) in months.iter().enumerate() {
            expected.extend(&synth(*r, 15, 10.0 + (i % 4) as f64));
        }
        assert_eq!(stored, expected, "a piece was lost");
        let record = ds.coverage("AAPL").await.unwrap();
        let facts = record.files[&2004];
        assert_eq!(facts.rows, expected.len() as u64);
    });
}

#[test]
fn a_dead_writers_lease_goes_to_exactly_one_of_two_contenders() {
    let moto = MotoServer::start_serialized();
    runtime().block_on(async {
        // The dead writer: took the lease and stopped renewing (dropped, as a crash).
        let dead = open(&moto, leases(1_000, 1_000)).await;
        drop(dead.lease("AAPL").await.unwrap());

        // Two contenders; the winner holds the lease 5 s (renewing), longer than the
        // loser waits, so the loser must give up.
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let ds = open(&moto, leases(3_000, 3_500)).await;
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                match ds.lease("AAPL").await {
                    Ok(w) => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        w.check_lease().expect("held while renewed");
                        w.release().await.unwrap();
                        Ok(t0.elapsed())
                    }
                    Err(e) => Err(e),
                }
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(took) => {
                    won += 1;
                    // Taken over after the dead lease's ttl, not before.
                    assert!(took >= Duration::from_millis(900), "{took:?}");
                }
                Err(e) => {
                    assert!(matches!(e, StoreError::LeaseHeld { .. }), "{e}");
                    assert!(e.to_string().contains("locks/AAPL.json"), "{e}");
                }
            }
        }
        assert_eq!(won, 1);

        // Released: the next writer takes it at once, not after the 3 s ttl.
        let ds = open(&moto, leases(3_000, 10_000)).await;
        let t0 = Instant::now();
        ds.lease("AAPL").await.unwrap().release().await.unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(2_500),
            "{:?}",
            t0.elapsed()
        );
    });
}

#[test]
fn a_lease_expired_by_the_clock_is_taken_at_once_and_its_old_holder_writes_nothing() {
    let moto = MotoServer::start_serialized();
    runtime().block_on(async {
        let loc = S3Location::parse(URL).unwrap();
        let b = bucket(&moto);
        // A lease from a writer whose expiry passed long ago, with a long ttl: only
        // the recorded expiry frees it.
        let stale = r#"{"ticker":"AAPL","owner":"gone/1/0","token":"t","seq":9,
            "written_at":"2024-01-01T00:00:00Z","expires_at_ms":1704067200000,
            "ttl_ms":3600000,"released":false}"#;
        b.put(&loc.lease_key("AAPL"), Bytes::from_static(stale.as_bytes()))
            .await
            .unwrap();
        let ds = open(&moto, leases(600, 10_000)).await;
        let t0 = Instant::now();
        let w = ds.lease("AAPL").await.unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());

        // Someone overwrites the lease (as a takeover would): the holder's next
        // renewal fails its If-Match, and from then on it writes nothing.
        b.put(&loc.lease_key("AAPL"), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        let r = range("2004-01-01", "2004-01-31");
        let e = w
            .write_piece(r, &synth(r, 5, 1.0), &prov(r))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseLost { .. }), "{e}");
        assert!(e.to_string().contains("run again"), "{e}");
        let e = w.mark_complete(r, today()).await.unwrap_err();
        assert!(matches!(e, StoreError::LeaseLost { .. }), "{e}");
        assert!(b.get(&loc.data_key("AAPL", 2004)).await.is_err());
        assert!(b.get(&loc.coverage_key("AAPL")).await.is_err());
        w.release()
            .await
            .expect("releasing a lost lease leaves it alone");
        assert_eq!(
            b.get(&loc.lease_key("AAPL")).await.unwrap().body,
            Bytes::from_static(b"{}")
        );
    });
}

#[test]
fn coverage_writes_racing_each_other_keep_every_range() {
    let moto = MotoServer::start_serialized();
    runtime().block_on(async {
        let ds = open(&moto, leases(5_000, 5_000)).await;
        let w = ds.lease("AAPL").await.unwrap();
        // Twelve concurrent read-modify-writes of one coverage object, a month each,
        // with gaps between them so no two merge into one range.
        let ranges: Vec<DateRange> = (1..=12)
            .map(|m| DateRange::new(date(2004, m, 1), date(2004, m, 20)).unwrap())
            .collect();
        let marks = ranges.iter().map(|r| w.mark_complete(*r, today()));
        for result in futures_util::future::join_all(marks).await {
            result.unwrap();
        }
        assert_eq!(ds.coverage("AAPL").await.unwrap().complete, ranges);
        w.release().await.unwrap();
    });
}

#[test]
fn a_crash_between_data_and_coverage_leaves_the_range_unclaimed_and_a_rerun_completes_it() {
    let moto = MotoServer::start_serialized();
    let dir = tempfile::tempdir().unwrap();
    let local = Store::open(&dir.path().join("minute"), &DatasetIdentity::minute(true)).unwrap();
    let r = range("2004-02-01", "2004-02-29");
    let bars = synth(r, 25, 30.0);
    runtime().block_on(async {
        let crashed = open(&moto, leases(3_000, 5_000)).await;
        let w = crashed.lease("AAPL").await.unwrap();
        w.write_piece(r, &bars, &prov(r)).await.unwrap();
        drop(w); // dies before its coverage write (and without releasing)
        drop(crashed);

        let ds = open(&moto, leases(3_000, 20_000)).await;
        assert_eq!(
            ds.missing("AAPL", r).await.unwrap(),
            [r],
            "claimed without coverage"
        );
        assert_eq!(
            ds.read_bars("AAPL", r).await.unwrap(),
            bars,
            "data is complete"
        );

        // The re-run waits out the dead lease, writes again and claims.
        let t0 = Instant::now();
        let w = ds.lease("AAPL").await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        let written = w.write_piece(r, &bars, &prov(r)).await.unwrap();
        w.mark_written(&[r], today(), &written).await.unwrap();
        w.release().await.unwrap();
        assert!(ds.missing("AAPL", r).await.unwrap().is_empty());

        let lw = local.write_piece("AAPL", r, &bars, &prov(r)).unwrap();
        local.mark_written("AAPL", &[r], today(), &lw).unwrap();
        let loc = ds.location();
        let object = bucket(&moto)
            .get(&loc.data_key("AAPL", 2004))
            .await
            .unwrap();
        let file = std::fs::read(local.file_path("AAPL", 2004)).unwrap();
        assert!(object.body == file, "the re-run is not exact");
        assert_eq!(ds.coverage("AAPL").await.unwrap().files[&2004], lw.facts);
    });
}

#[test]
fn coverage_records_a_files_facts_only_while_the_object_is_the_one_written() {
    let moto = MotoServer::start_serialized();
    runtime().block_on(async {
        let ds = open(&moto, leases(5_000, 5_000)).await;
        let w = ds.lease("AAPL").await.unwrap();
        let (jan, feb) = (
            range("2004-01-01", "2004-01-31"),
            range("2004-02-01", "2004-02-29"),
        );
        let first = w
            .write_piece(jan, &synth(jan, 5, 1.0), &prov(jan))
            .await
            .unwrap();
        let second = w
            .write_piece(feb, &synth(feb, 5, 2.0), &prov(feb))
            .await
            .unwrap();
        assert_ne!(first.etag, second.etag);
        // The first object was replaced: its range is claimed (its bars are in the
        // second), its facts are not.
        w.mark_written(&[jan], today(), &first).await.unwrap();
        let record = ds.coverage("AAPL").await.unwrap();
        assert_eq!(record.complete, [jan]);
        assert!(record.files.is_empty(), "{record:?}");
        w.mark_written(&[feb], today(), &second).await.unwrap();
        let record = ds.coverage("AAPL").await.unwrap();
        assert_eq!(record.complete, [range("2004-01-01", "2004-02-29")]);
        assert_eq!(record.files[&2004], second.facts);
        w.release().await.unwrap();
    });
}
