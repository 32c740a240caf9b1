//! The read side of the run folder, for reports and tools that look at a run after the
//! fact: the joblog, `run.json`, `failed_tickers.csv`, each attempt's ticker list and
//! the timestamped worker events in each attempt's log. Reading is lenient: a line that
//! does not parse (a run killed mid-write, a newer version's field) is skipped.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use super::{JoblogEntry, Summary, names};
use crate::ingest::events::{Event, parse_line};

/// What `run.json` records about a run (the fields a reader needs).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RunInfo {
    /// The script path, as given.
    #[serde(default)]
    pub script: String,
    /// The script's flag values (secrets redacted).
    #[serde(default)]
    pub flags: BTreeMap<String, serde_json::Value>,
    /// The barsmith version that ran it.
    #[serde(default)]
    pub barsmith_version: String,
    /// Where its batches ran (`local`, `slurm`); `None` in records older than the
    /// choice.
    #[serde(default)]
    pub executor: Option<String>,
    /// Start, RFC 3339 UTC.
    #[serde(default)]
    pub start: Option<String>,
    /// End, RFC 3339 UTC; `None` while the run goes on (or if it was killed).
    #[serde(default)]
    pub end: Option<String>,
    /// The run's exit status, once known.
    #[serde(default)]
    pub exit: Option<i32>,
    /// The totals when `run.json` was last written.
    #[serde(default)]
    pub summary: Option<Summary>,
}

/// The joblog lines of `dir`, in the order the attempts finished (unparsable lines
/// skipped). A missing joblog is an error of kind `NotFound`.
pub fn read_joblog(dir: &Path) -> io::Result<Vec<JoblogEntry>> {
    let text = std::fs::read_to_string(dir.join(names::JOBLOG))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// `run.json` of `dir`; `None` when there is none (a run killed before writing it).
pub fn read_run_json(dir: &Path) -> io::Result<Option<RunInfo>> {
    let text = match std::fs::read_to_string(dir.join(names::RUN_JSON)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The tickers of one attempt (its `--tickers-file`); empty when the file is gone.
pub fn read_attempt_tickers(dir: &Path, id: u32, attempt: u32) -> Vec<String> {
    std::fs::read_to_string(dir.join(names::tickers(id, attempt)))
        .map(|t| {
            t.lines()
                .skip(1)
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// The log file of a joblog entry (its `log` field, else the usual name).
pub fn attempt_log_name(entry: &JoblogEntry) -> String {
    if entry.log.is_empty() {
        names::log(entry.id, entry.attempt)
    } else {
        entry.log.clone()
    }
}

/// Calls `f` with every worker event in the attempt log `path`, in order, with the
/// time the worker stamped on it (`None` for an event without a readable `ts`). Lines
/// that are not events (the header, the worker's stderr) are skipped.
pub fn for_each_logged_event(
    path: &Path,
    mut f: impl FnMut(Option<jiff::Timestamp>, Event),
) -> io::Result<()> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let Some(event) = parse_line(&line) else {
            continue;
        };
        f(event_time(&line), event);
    }
}

/// The `ts` field of an event line.
fn event_time(line: &str) -> Option<jiff::Timestamp> {
    #[derive(Deserialize)]
    struct Stamp {
        ts: Option<String>,
    }
    let stamp: Stamp = serde_json::from_str(line.trim()).ok()?;
    stamp.ts?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_events_with_their_stamps_and_skips_other_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(
            &path,
            "== BATCH 0001 attempt 1 ==\n\
             {\"event\":\"page\",\"ticker\":\"A\",\"bars\":7,\"ts\":\"2025-01-01T00:00:01Z\"}\n\
             2025-01-01T00:00:01Z  INFO something\n\
             {\"event\":\"retry\",\"ticker\":\"A\"}\n",
        )
        .unwrap();
        let mut seen = Vec::new();
        for_each_logged_event(&path, |ts, e| seen.push((ts.map(|t| t.as_second()), e))).unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, Some(1_735_689_601));
        assert!(matches!(seen[0].1, Event::Page { bars: 7, .. }));
        assert_eq!(seen[1].0, None);
        assert!(read_run_json(dir.path()).unwrap().is_none());
        assert!(
            super::super::failed::read_failed_tickers(dir.path())
                .unwrap()
                .is_none()
        );
        assert!(read_attempt_tickers(dir.path(), 1, 1).is_empty());
    }
}
