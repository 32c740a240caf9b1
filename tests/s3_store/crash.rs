//! A writer process killed with SIGKILL at any instant leaves a dataset that reads
//! (pyarrow, Polars and DuckDB straight from S3) and a coverage record that claims
//! nothing its data lacks.

use std::time::{Duration, Instant};

use barsmith::s3::{Bucket, S3Config, S3Credentials};
use barsmith::store::DatasetIdentity;
use barsmith::store::remote::{S3Dataset, S3Location};

use crate::common::moto::MotoServer;
use crate::{URL, bucket, leases, open, prov, range, runtime, synth, today};

const CHILD_ENV: &str = "BARSMITH_TEST_S3_CHILD_ENDPOINT";

/// Not a test on its own: the crash test runs this binary with only this test selected
/// and [`CHILD_ENV`] set to moto's endpoint, and kills it with SIGKILL while it writes.
#[test]
#[ignore = "child process of a_writer_killed_at_any_instant_leaves_a_readable_dataset"]
fn child_s3_writer_loop() {
    let Ok(endpoint) = std::env::var(CHILD_ENV) else {
        return;
    };
    let creds = S3Credentials::new("AKIDBARSMITHTEST".into(), "barsmith-test-secret".into());
    let b = Bucket::new(S3Config::new(&endpoint, "barsmith", creds)).unwrap();
    let year = range("2004-01-01", "2004-12-31");
    let part = range("2004-03-01", "2004-05-31");
    let bars = synth(year, 200, 10.0);
    runtime().block_on(async {
        let loc = S3Location::parse(URL).unwrap();
        let ds = S3Dataset::open(
            b,
            loc,
            &DatasetIdentity::minute(true),
            leases(2_000, 30_000),
        )
        .await
        .unwrap();
        let w = ds.lease("CRASH").await.unwrap();
        for i in 0u64.. {
            // Alternate whole-year rewrites and partial merges; contents stay the same.
            let r = if i % 2 == 0 { year } else { part };
            let written = w.write_piece(r, &bars.within(r), &prov(r)).await.unwrap();
            w.mark_written(&[r], today(), &written).await.unwrap();
        }
    });
}

#[test]
fn a_writer_killed_at_any_instant_leaves_a_readable_dataset() {
    let moto = MotoServer::start_serialized();
    let year = range("2004-01-01", "2004-12-31");
    let part = range("2004-03-01", "2004-05-31");
    let expected = synth(year, 200, 10.0);
    let exe = std::env::current_exe().unwrap();
    let rt = runtime();
    let ds = rt.block_on(open(&moto, leases(2_000, 5_000)));
    let key = ds.location().data_key("CRASH", 2004);
    let b = bucket(&moto);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut objects_seen = 0;
    for round in 0..6u64 {
        assert!(
            Instant::now() < deadline,
            "crash test exceeded its time bound"
        );
        let mut child = std::process::Command::new(&exe)
            .args([
                "crash::child_s3_writer_loop",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, moto.endpoint())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The child first waits out the lease of the one killed before it (2 s).
        let kill_at = Instant::now() + Duration::from_millis(2_300 + (round * 397) % 1_500);
        rt.block_on(async {
            while Instant::now() < kill_at {
                // The object is absent or complete, never partial.
                if let Ok(obj) = b.get(&key).await {
                    let name = std::path::Path::new("crash");
                    let got = barsmith::store::decode::read_bytes(obj.body, name).unwrap();
                    assert_eq!(got.bars, expected);
                    objects_seen += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Coverage is parseable and claims nothing its data lacks.
        rt.block_on(async {
            let claims = ds.coverage("CRASH").await.unwrap().complete;
            assert!(
                claims.is_empty() || claims == [year] || claims == [part],
                "round {round}: {claims:?}"
            );
            for c in claims {
                assert_eq!(ds.read_bars("CRASH", c).await.unwrap(), expected.within(c));
            }
        });
    }
    assert!(
        objects_seen > 0,
        "the children never wrote; the test proved nothing"
    );
    // What the last kill left, read straight from S3 by pyarrow, Polars and DuckDB.
    crate::readers::check_readers(&moto, expected.len(), &["CRASH"], &[2004]);
    // A re-run after the last kill completes the year exactly.
    rt.block_on(async {
        let w = ds.lease("CRASH").await.unwrap();
        let written = w.write_piece(year, &expected, &prov(year)).await.unwrap();
        w.mark_written(&[year], today(), &written).await.unwrap();
        w.release().await.unwrap();
        assert!(ds.missing("CRASH", year).await.unwrap().is_empty());
        assert_eq!(ds.read_bars("CRASH", year).await.unwrap(), expected);
    });
}
