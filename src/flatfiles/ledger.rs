//! The ledger of ingested flat files: `<state>/flatfiles/ingested.json`, day → key and
//! ETag of the file whose bars are in the dataset (for a dataset on S3, the same JSON in
//! its state prefix, written by the worker with conditional PUTs). A run with `--refresh` compares it
//! with the bucket's listing to find days republished since (a new ETag).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// One ingested day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The object's key.
    pub key: String,
    /// Its ETag when ingested.
    pub etag: String,
    /// Ingested for every ticker of the file (`--all-tickers`), not for a list: only
    /// then may an all-tickers job skip the day.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_tickers: bool,
}

/// The ledger's name in the state folder (and in a dataset's state prefix on S3).
pub const LEDGER_FILE: &str = "ingested.json";

fn path(dir: &Path) -> PathBuf {
    dir.join(LEDGER_FILE)
}

/// The recorded days (empty when nothing was recorded yet).
pub fn read(dir: &Path) -> io::Result<BTreeMap<Date, Entry>> {
    let text = match std::fs::read(path(dir)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    parse(&text, &path(dir).display().to_string())
}

/// The days of a ledger's JSON; `name` names it in errors.
pub fn parse(text: &[u8], name: &str) -> io::Result<BTreeMap<Date, Entry>> {
    let damaged = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} is damaged ({why}); delete it to start the ledger over"),
        )
    };
    let days: BTreeMap<String, Entry> =
        serde_json::from_slice(text).map_err(|e| damaged(e.to_string()))?;
    days.into_iter()
        .map(|(d, e)| Ok((d.parse().map_err(|_| damaged(format!("bad day {d}")))?, e)))
        .collect()
}

/// Adds `days` to the ledger (replacing older entries of the same days), atomically.
/// Concurrent writers are serialized by a lock file next to it.
pub fn record(dir: &Path, days: BTreeMap<Date, Entry>) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let lock = std::fs::File::create(dir.join("ingested.lock"))?;
    lock.lock()?;
    let mut all = read(dir)?;
    merge(&mut all, days);
    let tmp = dir.join(format!(".ingested.json.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&encode(all)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path(dir))
}

/// Adds `days` to `all`, replacing older entries of the same days.
pub fn merge(all: &mut BTreeMap<Date, Entry>, days: BTreeMap<Date, Entry>) {
    for (day, mut entry) in days {
        // A ticker list re-ingesting the same file keeps the day's every-ticker mark.
        entry.all_tickers |= all
            .get(&day)
            .is_some_and(|old| old.all_tickers && old.etag == entry.etag);
        all.insert(day, entry);
    }
}

/// The ledger's JSON.
pub fn encode(all: BTreeMap<Date, Entry>) -> io::Result<Vec<u8>> {
    let on_disk: BTreeMap<String, Entry> =
        all.into_iter().map(|(d, e)| (d.to_string(), e)).collect();
    serde_json::to_vec_pretty(&on_disk).map_err(io::Error::other)
}

/// The days of `listed` whose ETag differs from the ledger's (days never recorded are
/// not "changed": they are simply not ingested yet).
pub fn changed(recorded: &BTreeMap<Date, Entry>, listed: &BTreeMap<Date, Entry>) -> Vec<Date> {
    listed
        .iter()
        .filter(|(d, e)| recorded.get(d).is_some_and(|r| r.etag != e.etag))
        .map(|(d, _)| *d)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(etag: &str) -> Entry {
        Entry {
            key: "k".into(),
            etag: etag.into(),
            all_tickers: false,
        }
    }

    #[test]
    fn recorded_days_are_kept_and_changes_found() {
        let dir = tempfile::tempdir().unwrap();
        let (d1, d2, d3) = (
            Date::constant(2025, 1, 2),
            Date::constant(2025, 1, 3),
            Date::constant(2025, 1, 6),
        );
        record(
            dir.path(),
            BTreeMap::from([(d1, entry("a")), (d2, entry("b"))]),
        )
        .unwrap();
        record(dir.path(), BTreeMap::from([(d2, entry("b"))])).unwrap();
        let got = read(dir.path()).unwrap();
        assert_eq!(got.len(), 2);
        let listed = BTreeMap::from([(d1, entry("a")), (d2, entry("B")), (d3, entry("c"))]);
        assert_eq!(changed(&got, &listed), vec![d2]);
        // A day ingested for every ticker stays so when a list ingests it again.
        let every = Entry {
            all_tickers: true,
            ..entry("a")
        };
        record(dir.path(), BTreeMap::from([(d1, every)])).unwrap();
        record(dir.path(), BTreeMap::from([(d1, entry("a"))])).unwrap();
        assert!(read(dir.path()).unwrap()[&d1].all_tickers);
    }
}
