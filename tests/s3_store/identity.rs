//! The identity of a dataset on S3: recorded once by concurrent first opens, checked
//! against data left without state; and what `open` refuses.

use barsmith::store::remote::{S3Dataset, S3Location};
use barsmith::store::{DatasetIdentity, Provenance, StoreError};

use crate::common::moto::MotoServer;
use crate::{URL, bucket, leases, range, runtime, synth};

#[test]
fn concurrent_first_opens_record_one_identity_and_left_data_is_checked() {
    let moto = MotoServer::start_serialized();
    runtime().block_on(async {
        let loc = S3Location::parse(URL).unwrap();
        // Six first opens at once, half of each kind: one identity is recorded (by a
        // create-only PUT) and every opener of the other kind is refused.
        let opens = (0..6).map(|i| {
            let (b, loc) = (bucket(&moto), loc.clone());
            async move {
                let identity = DatasetIdentity::minute(i % 2 == 0);
                let cfg = leases(5_000, 5_000);
                (i % 2 == 0, S3Dataset::open(b, loc, &identity, cfg).await)
            }
        });
        let results = futures_util::future::join_all(opens).await;
        let recorded = S3Dataset::open_read_only(bucket(&moto), loc.clone())
            .await
            .unwrap()
            .identity()
            .cloned()
            .unwrap();
        for (adjusted, r) in results {
            match r {
                Ok(ds) => assert_eq!(ds.identity(), Some(&recorded)),
                Err(e) => {
                    assert_ne!(adjusted, recorded.adjusted, "{e}");
                    assert!(matches!(e, StoreError::IdentityMismatch { .. }), "{e}");
                }
            }
        }

        // Data left after its state was deleted still decides the identity.
        let ds = S3Dataset::open(bucket(&moto), loc.clone(), &recorded, leases(5_000, 5_000))
            .await
            .unwrap();
        let r = range("2004-01-01", "2004-01-31");
        let p = Provenance::for_identity(&recorded, r, "2024-05-01T12:00:00Z".parse().unwrap());
        let w = ds.lease("AAPL").await.unwrap();
        w.write_piece(r, &synth(r, 5, 1.0), &p).await.unwrap();
        w.release().await.unwrap();
        let b = bucket(&moto);
        for o in b.list(&loc.state_prefix()).await.unwrap() {
            b.delete(&o.key).await.unwrap();
        }
        let other = DatasetIdentity::minute(!recorded.adjusted);
        let e = S3Dataset::open(bucket(&moto), loc.clone(), &other, leases(5_000, 5_000))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::IdentityMismatch { .. }), "{e}");
        assert!(e.to_string().contains("AAPL_2004.parquet"), "{e}");

        // A client for another bucket, and lease timings that cannot work.
        let elsewhere = S3Location::parse("s3://elsewhere/bars").unwrap();
        let e = S3Dataset::open_read_only(bucket(&moto), elsewhere)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("bucket elsewhere"), "{e}");
        let e = S3Dataset::open(bucket(&moto), loc, &recorded, leases(0, 5_000))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("invalid lease timing"), "{e}");
    });
}
