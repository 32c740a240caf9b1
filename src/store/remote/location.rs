//! Where a dataset on S3 lives: `s3://bucket/prefix`, and the keys of its objects.
//!
//! The layout is the local store's (see [`crate::store::layout`]) with keys for paths:
//!
//! ```text
//! s3://bucket/data/minute/                     data: finished Parquet only
//!   ticker=AAPL/year=2004/AAPL_2004.parquet
//! s3://bucket/data/minute.barsmith/            state
//!   dataset.json                               dataset identity
//!   coverage/AAPL.json                         complete date ranges per ticker
//!   locks/AAPL.json                            the write lease of AAPL
//!   quarantine/ticker=AAPL/year=2004/…         objects `status --repair` moved aside
//!   flatfiles/ingested.json                    the flat files ingested, by day
//! ```
//!
//! Readers pointed at `s3://bucket/data/minute/` see only Parquet: the state prefix is a
//! sibling, not a child (and every listing of the data adds the `/`, so
//! `minute.barsmith/` never matches `minute`).

use std::fmt;
use std::path::PathBuf;

use crate::store::error::StoreError;
use crate::store::layout::STATE_SUFFIX;

/// A dataset's bucket and key prefix, parsed from `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    bucket: String,
    /// Without leading or trailing `/`; never empty.
    prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket/prefix` (a trailing `/` is ignored). The prefix is required,
    /// since the state lives next to it, and its parts must be plain names (no empty,
    /// `.` or `..` parts), as S3 keys are taken literally.
    pub fn parse(url: &str) -> Result<S3Location, StoreError> {
        let bad = |why: &str| {
            StoreError::Invalid(format!(
                "invalid S3 dataset {url:?}: {why}; give s3://bucket/prefix, e.g. \
                 s3://research/bars/minute"
            ))
        };
        let rest = url
            .trim()
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_end_matches('/');
        if bucket.is_empty() {
            return Err(bad("the bucket is missing"));
        }
        if prefix.is_empty() {
            return Err(bad(
                "a prefix is needed (the state lives in a sibling <prefix>.barsmith/)",
            ));
        }
        if prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(bad("the prefix has an empty, `.` or `..` part"));
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The data prefix, without trailing `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix of every data object, `prefix/`.
    pub fn data_prefix(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// `prefix/ticker=T/year=Y/T_Y.parquet`.
    pub fn data_key(&self, ticker: &str, year: i16) -> String {
        format!(
            "{}/ticker={ticker}/year={year}/{ticker}_{year}.parquet",
            self.prefix
        )
    }

    /// The prefix of the state objects, `prefix.barsmith/`.
    pub fn state_prefix(&self) -> String {
        format!("{}{STATE_SUFFIX}/", self.prefix)
    }

    /// `prefix.barsmith/dataset.json`.
    pub fn dataset_key(&self) -> String {
        format!("{}dataset.json", self.state_prefix())
    }

    /// `prefix.barsmith/coverage/T.json`.
    pub fn coverage_key(&self, ticker: &str) -> String {
        format!("{}coverage/{ticker}.json", self.state_prefix())
    }

    /// `prefix.barsmith/locks/T.json`, the write lease of `ticker`.
    pub fn lease_key(&self, ticker: &str) -> String {
        format!("{}locks/{ticker}.json", self.state_prefix())
    }

    /// `prefix.barsmith/quarantine/ticker=T/year=Y/T_Y.<stamp>.parquet`: where
    /// `status --repair` moves a damaged object, as locally.
    pub fn quarantine_key(&self, ticker: &str, year: i16, stamp: &str) -> String {
        format!(
            "{}quarantine/ticker={ticker}/year={year}/{ticker}_{year}.{stamp}.parquet",
            self.state_prefix()
        )
    }

    /// `prefix.barsmith/<name>`: a state object of its own (e.g. the flat-file ledger).
    pub fn state_key(&self, name: &str) -> String {
        format!("{}{name}", self.state_prefix())
    }

    /// `s3://bucket/key`, for messages.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// [`S3Location::url`] as the path [`StoreError`] variants carry.
    pub(crate) fn path(&self, key: &str) -> PathBuf {
        PathBuf::from(self.url(key))
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_local_layout() {
        let l = S3Location::parse("s3://research/bars/minute/").unwrap();
        assert_eq!(l.to_string(), "s3://research/bars/minute");
        assert_eq!(
            l.data_key("BRK.A", 2004),
            "bars/minute/ticker=BRK.A/year=2004/BRK.A_2004.parquet"
        );
        assert_eq!(l.data_prefix(), "bars/minute/");
        assert_eq!(l.dataset_key(), "bars/minute.barsmith/dataset.json");
        assert_eq!(
            l.coverage_key("AAPL"),
            "bars/minute.barsmith/coverage/AAPL.json"
        );
        assert_eq!(l.lease_key("AAPL"), "bars/minute.barsmith/locks/AAPL.json");
        assert_eq!(
            l.quarantine_key("AAPL", 2004, "20250101T000000Z"),
            "bars/minute.barsmith/quarantine/ticker=AAPL/year=2004/AAPL_2004.20250101T000000Z.parquet"
        );
        assert_eq!(
            l.url(&l.lease_key("AAPL")),
            "s3://research/bars/minute.barsmith/locks/AAPL.json"
        );
    }

    #[test]
    fn bad_urls_say_what_to_give() {
        for bad in [
            "research/bars",
            "s3://",
            "s3:///bars",
            "s3://research",
            "s3://research/",
            "s3://research/a//b",
            "s3://research/a/../b",
            "file:///tmp/x",
        ] {
            let e = S3Location::parse(bad).unwrap_err();
            assert!(
                e.to_string().contains("give s3://bucket/prefix"),
                "{bad}: {e}"
            );
        }
    }
}
