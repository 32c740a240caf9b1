//! [`DatasetStatus::build_s3`]: the status of a dataset on S3 from the reads a folder's
//! takes: the coverage records, one listing of the data (keys and sizes, so the quick
//! check costs no request), and each reported object's footer by a ranged GET of its
//! tail. `--verify` adds the timestamp column's chunks; `--repair` moves damaged
//! objects into the state prefix's `quarantine/` under each ticker's write lease.

use std::path::PathBuf;

use crate::s3::ObjectInfo;
use crate::store::error::StoreError;
use crate::store::remote::{Listing, S3Dataset};
use crate::store::verify::Finding;

use super::scan::{collect_footers, footer_jobs};
use super::{
    Check, DamagedClaim, DatasetStatus, EstimateRule, Parts, StatusQuery, asked_range,
    known_tickers, year_span,
};

impl DatasetStatus {
    /// Builds the status of the dataset on S3 `ds` for `query`, estimating a resume
    /// with `rule`, as [`DatasetStatus::build`] does for a folder. `--repair`
    /// ([`Check::Repair`]) needs `ds` opened for writing.
    pub async fn build_s3(
        ds: &S3Dataset,
        query: &StatusQuery,
        rule: EstimateRule,
    ) -> Result<DatasetStatus, StoreError> {
        let mut listing = ds.list_data().await?;
        let tickers = match &query.tickers {
            Some(list) => list.clone(),
            None => known_tickers(&listing, ds.stored_tickers().await?),
        };
        let mut records = ds.records(&tickers).await?;
        let mut thorough = Vec::new();
        if query.check != Check::Quick {
            for (t, r) in tickers.iter().zip(&records) {
                thorough.extend(ds.verify(t, r, &listing).await?);
            }
        }
        if query.check == Check::Repair && !thorough.is_empty() {
            repair(ds, &mut thorough, &listing).await?;
            records = ds.records(&tickers).await?;
            listing = ds.list_data().await?; // repaired objects left the data
        }
        let mut coverages = Vec::with_capacity(tickers.len());
        let mut quick = Vec::new();
        for (t, r) in tickers.iter().zip(records) {
            let (complete, found) = ds.checked_claims(t, r, &listing).await?;
            coverages.push(complete);
            quick.extend(found);
        }
        let findings = match query.check {
            Check::Quick => quick,
            Check::Verify | Check::Repair => thorough,
        };
        let range = asked_range(query, &coverages, year_span(&listing))?;
        let jobs = footer_jobs(&listing, &tickers, range);
        let objects: Vec<&ObjectInfo> = jobs.iter().map(|j| j.2).collect();
        let stats = ds.footers(&objects).await;
        let prefix = ds.location().data_prefix();
        let rel = |key: &str| PathBuf::from(key.strip_prefix(&prefix).unwrap_or(key));
        let footers = collect_footers(&jobs, stats, tickers.len(), |o| rel(&o.key));
        let damaged_claims = findings
            .into_iter()
            .map(|f| {
                let key = ds.location().data_key(&f.ticker, f.year);
                DamagedClaim::new(f, rel(&key))
            })
            .collect();
        let parts = Parts {
            data_root: PathBuf::from(ds.location().to_string()),
            range,
            tickers,
            coverages,
            footers,
            strays: listing.strays,
            verified: query.check != Check::Quick,
            damaged_claims,
        };
        Ok(parts.assemble(rule))
    }
}

/// Quarantines each finding's object under its ticker's lease (released after, even
/// when the move failed, so a re-run need not wait for it).
async fn repair(
    ds: &S3Dataset,
    findings: &mut [Finding],
    listing: &Listing,
) -> Result<(), StoreError> {
    for f in findings {
        let etag = ds
            .object_of(listing, &f.ticker, f.year)
            .map(|o| o.etag.clone().unwrap_or_default());
        let writer = ds.lease(&f.ticker).await?;
        let moved = writer.quarantine(f, etag.as_deref()).await;
        writer.release().await?;
        moved?;
    }
    Ok(())
}
