//! Where the flat-file ledger ([`crate::flatfiles::ledger`]) lives: with the dataset,
//! so every machine writing it sees which days are in. For a local folder, its state
//! folder's `flatfiles/ingested.json` (a lock file serializes writers); for a dataset
//! on S3, the same JSON at `prefix.barsmith/flatfiles/ingested.json`, read, merged and
//! written back with a conditional PUT on the ETag read, retried when another writer
//! came first, never overwritten blindly.

use std::collections::BTreeMap;

use bytes::Bytes;
use jiff::civil::Date;

use crate::flatfiles::ledger::{self, Entry, LEDGER_FILE};
use crate::store::Dataset;
use crate::store::remote::{S3Dataset, backoff};

/// Attempts of one conditional write before giving up: each failed one means another
/// writer recorded its days in between.
const MAX_ATTEMPTS: u32 = 16;

/// The ledger's name in a dataset's state prefix.
fn name() -> String {
    format!("flatfiles/{LEDGER_FILE}")
}

/// The days recorded for `dataset` (empty when none yet).
pub(super) async fn read(dataset: &Dataset) -> Result<BTreeMap<Date, Entry>, String> {
    match dataset {
        Dataset::Local(store) => ledger::read(&store.flatfiles_dir()).map_err(|e| e.to_string()),
        Dataset::S3(ds) => Ok(read_s3(ds).await?.0),
    }
}

/// Adds `days` to the ledger of `dataset` (replacing older entries of the same days).
pub(super) async fn record(dataset: &Dataset, days: BTreeMap<Date, Entry>) -> Result<(), String> {
    let ds = match dataset {
        Dataset::Local(store) => {
            return ledger::record(&store.flatfiles_dir(), days).map_err(|e| e.to_string());
        }
        Dataset::S3(ds) => ds,
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let (mut all, etag) = read_s3(ds).await?;
        ledger::merge(&mut all, days.clone());
        let body = Bytes::from(ledger::encode(all).map_err(|e| e.to_string())?);
        let written = ds
            .write_state(&name(), body, etag.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        if written {
            return Ok(());
        }
        tracing::debug!(
            attempt,
            "the flat-file ledger changed since read; merging again"
        );
        backoff(attempt).await;
    }
    Err(format!(
        "{}: other writers kept changing it ({MAX_ATTEMPTS} attempts); try again",
        ds.location().url(&ds.location().state_key(&name()))
    ))
}

/// The ledger on S3 and its ETag (`None`: none yet).
async fn read_s3(ds: &S3Dataset) -> Result<(BTreeMap<Date, Entry>, Option<String>), String> {
    match ds.read_state(&name()).await.map_err(|e| e.to_string())? {
        None => Ok((BTreeMap::new(), None)),
        Some((body, etag)) => {
            let url = ds.location().url(&ds.location().state_key(&name()));
            Ok((ledger::parse(&body, &url).map_err(|e| e.to_string())?, etag))
        }
    }
}
