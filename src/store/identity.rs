//! What a dataset is (provider, timespan, adjusted) and where each file came from.
//!
//! The identity is recorded once per output folder in `dataset.json` and checked on
//! every open and every write, so adjusted and unadjusted bars never mix in one folder.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::calendar::DateRange;
use crate::store::atomic;
use crate::store::error::StoreError;

/// The provider barsmith fetches from.
pub const PROVIDER_POLYGON: &str = "polygon";
/// The only timespan barsmith stores today.
pub const TIMESPAN_MINUTE: &str = "minute";

/// What kind of bars an output folder holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetIdentity {
    /// Data provider, e.g. `"polygon"`.
    pub provider: String,
    /// Bar timespan, e.g. `"minute"`.
    pub timespan: String,
    /// Split-adjusted prices (the API's `adjusted=true`).
    pub adjusted: bool,
}

impl DatasetIdentity {
    /// Polygon minute bars, adjusted or not.
    pub fn minute(adjusted: bool) -> DatasetIdentity {
        DatasetIdentity {
            provider: PROVIDER_POLYGON.to_string(),
            timespan: TIMESPAN_MINUTE.to_string(),
            adjusted,
        }
    }
}

impl fmt::Display for DatasetIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let adj = if self.adjusted {
            "adjusted"
        } else {
            "unadjusted"
        };
        write!(f, "{adj} {} bars from {}", self.timespan, self.provider)
    }
}

/// Where the bars of one write came from; recorded in the Parquet key-value metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// Data provider, e.g. `"polygon"`.
    pub provider: String,
    /// Bar timespan, e.g. `"minute"`.
    pub timespan: String,
    /// Split-adjusted prices.
    pub adjusted: bool,
    /// The date range requested from the provider.
    pub requested: DateRange,
    /// When the bars were fetched.
    pub fetched_at: Timestamp,
    /// Flat files the bars came from; `None` for the REST API.
    pub origin: Option<Origin>,
}

/// The flat files a file's bars came from: the dataset prefix and each day's ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The dataset's key prefix, e.g. `us_stocks_sip/minute_aggs_v1`.
    pub prefix: String,
    /// Day → the ETag of that day's file when it was ingested (quotes removed).
    pub files: BTreeMap<Date, String>,
    /// The file also holds bars from the REST API (days the files did not give).
    pub mixed: bool,
}

impl Origin {
    /// The origin of bars taken from the day `files` under `prefix`.
    pub fn flat_files(prefix: &str, files: BTreeMap<Date, String>) -> Origin {
        let files = files
            .into_iter()
            .map(|(d, e)| (d, e.trim_matches('"').to_string()))
            .collect();
        Origin {
            prefix: prefix.to_string(),
            files,
            mixed: false,
        }
    }

    /// The metadata value: `PREFIX|YYYY-MM-DD=ETAG,...`.
    pub fn encode(&self) -> String {
        let days: Vec<String> = self.files.iter().map(|(d, e)| format!("{d}={e}")).collect();
        format!("{}|{}", self.prefix, days.join(","))
    }

    /// Reads [`Origin::encode`]'s form; `None` when it is not that.
    pub fn decode(text: &str) -> Option<Origin> {
        let (prefix, days) = text.split_once('|')?;
        let mut files = BTreeMap::new();
        for pair in days.split(',').filter(|p| !p.is_empty()) {
            let (d, e) = pair.split_once('=')?;
            files.insert(d.parse().ok()?, e.to_string());
        }
        Some(Origin {
            prefix: prefix.to_string(),
            files,
            mixed: false,
        })
    }

    /// This origin with the days of `older` it does not replace, for a write that
    /// keeps an existing file's other days.
    pub fn keeping(mut self, older: Origin) -> Origin {
        self.mixed |= older.mixed;
        if older.prefix == self.prefix {
            for (d, e) in older.files {
                self.files.entry(d).or_insert(e);
            }
        }
        self
    }
}

impl Provenance {
    /// Provenance of Polygon minute bars for `requested`, fetched now.
    pub fn now(adjusted: bool, requested: DateRange) -> Provenance {
        Provenance::for_identity(
            &DatasetIdentity::minute(adjusted),
            requested,
            Timestamp::now(),
        )
    }

    /// Provenance of bars of dataset `identity` for `requested`, fetched at `fetched_at`.
    pub fn for_identity(
        identity: &DatasetIdentity,
        requested: DateRange,
        fetched_at: Timestamp,
    ) -> Provenance {
        Provenance {
            provider: identity.provider.clone(),
            timespan: identity.timespan.clone(),
            adjusted: identity.adjusted,
            requested,
            fetched_at,
            origin: None,
        }
    }

    /// The dataset identity these bars belong to.
    pub fn identity(&self) -> DatasetIdentity {
        DatasetIdentity {
            provider: self.provider.clone(),
            timespan: self.timespan.clone(),
            adjusted: self.adjusted,
        }
    }
}

/// The origin of a write that keeps some bars of an existing file whose metadata is
/// `meta`: the flat files of both, and whether REST bars are among them.
pub(crate) fn kept_origin(
    new: Option<Origin>,
    meta: &std::collections::HashMap<String, String>,
) -> Option<Origin> {
    use crate::store::schema::meta::{FLAT_FILES, SOURCE};
    let old_had_rest = meta.get(SOURCE).is_none_or(|s| s.ends_with("rest"));
    let old = meta.get(FLAT_FILES).and_then(|v| Origin::decode(v));
    let new_is_rest = new.is_none();
    let mut merged = match (new, old) {
        (Some(n), Some(o)) => n.keeping(o),
        (Some(n), None) => n,
        (None, Some(o)) => o,
        (None, None) => return None,
    };
    merged.mixed |= old_had_rest || new_is_rest;
    Some(merged)
}

/// The content of `dataset.json`.
#[derive(Debug, Serialize, Deserialize)]
struct DatasetFile {
    #[serde(flatten)]
    identity: DatasetIdentity,
    created_by: String,
    created_at: String,
}

/// `Ok` when `recorded` (the identity found at `path`) is `requested`, else the
/// mismatch naming both and where the recorded one was found.
pub(crate) fn require(
    recorded: &DatasetIdentity,
    requested: &DatasetIdentity,
    path: &Path,
) -> Result<(), StoreError> {
    if recorded == requested {
        return Ok(());
    }
    Err(StoreError::IdentityMismatch {
        path: path.to_path_buf(),
        recorded: Box::new(recorded.clone()),
        requested: Box::new(requested.clone()),
    })
}

/// Reads `dataset.json`, `None` when it does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<DatasetIdentity>, StoreError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    parse(&text, path).map(Some)
}

/// Parses `dataset.json`; `path` names it in errors.
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<DatasetIdentity, StoreError> {
    let file: DatasetFile = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(file.identity)
}

/// The content of a new `dataset.json` recording `identity`, created now by this
/// version of barsmith.
pub(crate) fn encode_new(identity: &DatasetIdentity) -> Result<Vec<u8>, StoreError> {
    let file = DatasetFile {
        identity: identity.clone(),
        created_by: format!("barsmith {}", crate::VERSION),
        created_at: Timestamp::now().to_string(),
    };
    let mut json = serde_json::to_vec_pretty(&file)
        .map_err(|e| StoreError::Invalid(format!("cannot encode dataset identity: {e}")))?;
    json.push(b'\n');
    Ok(json)
}

/// Records `identity` in `path` unless a (possibly concurrent) opener recorded one
/// first; either way returns what the folder now holds, for the caller to compare.
pub(crate) fn record_or_read(
    path: &Path,
    staging: &Path,
    identity: &DatasetIdentity,
) -> Result<DatasetIdentity, StoreError> {
    if let Some(existing) = read(path)? {
        return Ok(existing);
    }
    let json = encode_new(identity)?;
    // Hard-link a finished temp file: creates `dataset.json` only if absent, atomically.
    if !atomic::publish_new(staging, path, "dataset.json", &json)? {
        return read(path)?.ok_or_else(|| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "it vanished while being read".into(),
        });
    }
    Ok(identity.clone())
}
