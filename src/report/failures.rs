//! Failures of a run grouped by error class and kind: every failure any attempt
//! reported (so failures a retry fixed still show), marked when the ticker is still
//! failing at the end of the run (`failed_tickers.csv`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::batch::{TickerFailure, read_failed_tickers};

/// One ticker failing in one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Symbol; empty for an attempt that failed before any ticker (setup).
    pub ticker: String,
    /// The classified error.
    pub error: TickerFailure,
    /// Batch id.
    pub id: u32,
    /// Attempt number.
    pub attempt: u32,
    /// The attempt's log file name (inside the run folder).
    pub log: String,
}

/// The failures of one class and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureGroup {
    /// Error class: `retryable`, `ticker`, `run`, `pending`.
    pub class: String,
    /// Error kind, snake_case.
    pub kind: String,
    /// Every occurrence, in the order found.
    pub occurrences: Vec<Failure>,
    /// Of the group's tickers, those still failing at the end of the run.
    pub still_failing: BTreeSet<String>,
}

impl FailureGroup {
    /// The distinct tickers of the group, the still-failing ones first, each with its
    /// occurrences (in order).
    pub fn tickers(&self) -> Vec<(&str, Vec<&Failure>)> {
        let mut by: BTreeMap<&str, Vec<&Failure>> = BTreeMap::new();
        for f in &self.occurrences {
            by.entry(f.ticker.as_str()).or_default().push(f);
        }
        let mut out: Vec<(&str, Vec<&Failure>)> = by.into_iter().collect();
        out.sort_by_key(|(t, _)| !self.still_failing.contains(*t));
        out
    }
}

/// Groups `failures` by class and kind, the largest group first. Tickers listed in
/// `failed_tickers.csv` count as still failing; those with no failure in any log (the
/// run was killed before reporting them) are added with their row's error.
pub(super) fn group(dir: &Path, mut failures: Vec<Failure>) -> Vec<FailureGroup> {
    let finals = read_failed_tickers(dir).ok().flatten().unwrap_or_default();
    let still: BTreeSet<(String, String, String)> = finals
        .iter()
        .map(|f| (f.class.clone(), f.kind.clone(), f.ticker.clone()))
        .collect();
    let seen: BTreeSet<&str> = failures.iter().map(|f| f.ticker.as_str()).collect();
    let unseen: Vec<Failure> = finals
        .iter()
        .filter(|f| !seen.contains(f.ticker.as_str()))
        .map(|f| Failure {
            ticker: f.ticker.clone(),
            error: TickerFailure {
                class: f.class.clone(),
                kind: f.kind.clone(),
                message: f.message.clone(),
                ..TickerFailure::default()
            },
            id: 0,
            attempt: 0,
            log: String::new(),
        })
        .collect();
    failures.extend(unseen);
    let mut groups: BTreeMap<(String, String), FailureGroup> = BTreeMap::new();
    for f in failures {
        let key = (f.error.class.clone(), f.error.kind.clone());
        let g = groups.entry(key).or_insert_with(|| FailureGroup {
            class: f.error.class.clone(),
            kind: f.error.kind.clone(),
            occurrences: Vec::new(),
            still_failing: BTreeSet::new(),
        });
        let final_key = (g.class.clone(), g.kind.clone(), f.ticker.clone());
        if still.contains(&final_key) {
            g.still_failing.insert(f.ticker.clone());
        }
        g.occurrences.push(f);
    }
    let mut out: Vec<FailureGroup> = groups.into_values().collect();
    out.sort_by_key(|g| std::cmp::Reverse(g.occurrences.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(ticker: &str, class: &str, kind: &str, attempt: u32) -> Failure {
        Failure {
            ticker: ticker.into(),
            error: TickerFailure {
                class: class.into(),
                kind: kind.into(),
                ..TickerFailure::default()
            },
            id: 1,
            attempt,
            log: format!("batch-0001.attempt-{attempt}.log"),
        }
    }

    #[test]
    fn groups_by_class_and_kind_and_marks_tickers_still_failing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("failed_tickers.csv"),
            "ticker,class,kind,message\nB,retryable,server,HTTP 500\nC,ticker,not_found,gone\n",
        )
        .unwrap();
        let groups = group(
            dir.path(),
            vec![
                failure("A", "retryable", "server", 1),
                failure("B", "retryable", "server", 1),
                failure("B", "retryable", "server", 2),
            ],
        );
        assert_eq!(groups.len(), 2, "{groups:?}");
        let server = &groups[0];
        assert_eq!(
            (server.class.as_str(), server.kind.as_str()),
            ("retryable", "server")
        );
        assert_eq!(server.occurrences.len(), 3);
        assert_eq!(server.still_failing, BTreeSet::from(["B".to_string()]));
        let tickers = server.tickers();
        assert_eq!(tickers[0].0, "B", "the still-failing ticker first");
        assert_eq!(tickers[0].1.len(), 2);
        // C failed in no log (e.g. a killed run): it comes from failed_tickers.csv.
        assert_eq!(groups[1].kind, "not_found");
        assert!(groups[1].still_failing.contains("C"));
    }
}
