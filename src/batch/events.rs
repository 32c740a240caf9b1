//! Folds the worker's stdout events (`crate::ingest::events`, read leniently) into
//! per-ticker outcomes.

use std::collections::HashMap;

use super::result::{TickerFailure, TickerOutcome, TickerStatus};
use crate::ingest::ALL_TICKERS;
use crate::ingest::events::Event;

#[derive(Debug, Default, Clone)]
struct TickerTally {
    status: Option<TickerStatus>,
    bars_seen: u64,
    bars_done: u64,
    requests_seen: u64,
    requests_done: Option<u64>,
    error: Option<TickerFailure>,
    /// The range the worker said it started (`ticker_started`), when it did.
    range: Option<(String, String)>,
    /// Why it has no bars, when the worker said so (`no_bars`).
    no_bars: Option<String>,
}

/// Running totals of one batch attempt, fed event by event.
#[derive(Debug, Clone)]
pub struct EventTally {
    order: Vec<String>,
    tickers: HashMap<String, TickerTally>,
    /// Requests that were retried (`retry` events).
    pub retries: u64,
    /// Exact repeats of a bar removed, over the batch's done tickers.
    pub duplicates_dropped: u64,
    /// Bars sorted into place, over the batch's done tickers.
    pub reordered: u64,
    /// Set when the worker printed `finished`.
    pub finished: bool,
    /// The batch's `--from`/`--to`: the range of tickers the worker never started.
    range: (String, String),
    /// The worker could not start work: why (`setup_failed`).
    pub setup_failure: Option<TickerFailure>,
    /// An all-tickers batch: tickers come from the events, in the order reported,
    /// after [`ALL_TICKERS`] (settled by `finished`).
    open: bool,
}

impl EventTally {
    /// A tally for a batch of these tickers (outcomes come out in this order).
    pub fn new(tickers: &[String]) -> EventTally {
        EventTally {
            order: tickers.to_vec(),
            tickers: tickers
                .iter()
                .map(|t| (t.clone(), TickerTally::default()))
                .collect(),
            retries: 0,
            duplicates_dropped: 0,
            reordered: 0,
            finished: false,
            setup_failure: None,
            range: Default::default(),
            open: false,
        }
    }

    /// A tally for an all-tickers batch: the universe is whatever the worker reports,
    /// and [`ALL_TICKERS`] stands for it until the worker says `finished`.
    pub fn open_universe() -> EventTally {
        let mut tally = EventTally::new(&[ALL_TICKERS.to_string()]);
        tally.open = true;
        tally
    }

    /// The range (`YYYY-MM-DD`, inclusive) the batch asked for; outcomes carry it.
    pub fn with_range(mut self, from: &str, to: &str) -> EventTally {
        self.range = (from.to_string(), to.to_string());
        self
    }

    /// Applies one event. Events about tickers outside the batch still count in totals.
    pub fn apply(&mut self, event: &Event) {
        if let Some(t) = event.ticker()
            && self.open
            && !self.tickers.contains_key(t)
        {
            self.order.push(t.to_string());
        }
        let entry = event
            .ticker()
            .map(|t| self.tickers.entry(t.to_string()).or_default());
        match (event, entry) {
            (Event::TickerStarted { from, to, .. }, Some(t)) if !from.is_empty() => {
                t.range = Some((from.clone(), to.clone()));
            }
            (Event::TickerSkipped { .. }, Some(t)) => t.status = Some(TickerStatus::Skipped),
            (Event::Page { bars, .. }, Some(t)) => {
                t.bars_seen += *bars as u64;
                t.requests_seen += 1;
            }
            (Event::Retry { .. }, Some(t)) => {
                t.requests_seen += 1;
                self.retries += 1;
            }
            (
                Event::TickerDone {
                    bars,
                    requests,
                    pending_from,
                    duplicates_dropped,
                    reordered,
                    ..
                },
                Some(t),
            ) => {
                self.duplicates_dropped += duplicates_dropped;
                self.reordered += reordered;
                t.status = Some(TickerStatus::Ok);
                if let Some(from) = pending_from {
                    t.status = Some(TickerStatus::Pending);
                    t.error = Some(TickerFailure::not_yet_available(from));
                }
                t.bars_done = *bars;
                t.requests_done = Some(u64::from(*requests));
            }
            (Event::NoBars { reason, .. }, Some(t)) => t.no_bars = Some(reason.clone()),
            (Event::TickerFailed { error, .. }, Some(t)) => {
                t.status = Some(TickerStatus::Failed);
                t.error = Some(TickerFailure::from(error));
            }
            (Event::SetupFailed { kind, message, .. }, _) => {
                self.setup_failure = Some(TickerFailure {
                    class: "run".into(),
                    kind: kind.as_str().into(),
                    message: message.clone(),
                    ..Default::default()
                });
            }
            (Event::Finished { .. }, _) => {
                self.finished = true;
                if self.open
                    && let Some(all) = self.tickers.get_mut(ALL_TICKERS)
                    && all.status.is_none()
                {
                    all.status = Some(TickerStatus::Ok);
                }
            }
            _ => {}
        }
    }

    /// True if some ticker failed with class `run`.
    pub fn has_run_failure(&self) -> bool {
        self.run_failure().is_some()
    }

    /// The failure of class `run` that stopped the worker, if a ticker had one.
    pub fn run_failure(&self) -> Option<&TickerFailure> {
        self.order
            .iter()
            .filter_map(|t| self.tickers.get(t)?.error.as_ref())
            .find(|e| e.class == "run")
    }

    /// Bars over all tickers (written for done tickers, received so far for others).
    pub fn bars(&self) -> u64 {
        self.tickers.values().map(|t| t.bars()).sum()
    }

    /// Requests over all tickers.
    pub fn requests(&self) -> u64 {
        self.tickers.values().map(|t| t.requests()).sum()
    }

    /// The outcome of every batch ticker; those never finished become `NotRun` with
    /// `not_run_error` as their error.
    pub fn outcomes(&self, not_run_error: &TickerFailure) -> Vec<TickerOutcome> {
        self.order
            .iter()
            .map(|name| {
                let t = self.tickers.get(name).cloned().unwrap_or_default();
                let status = t.status.unwrap_or(TickerStatus::NotRun);
                let error = match status {
                    TickerStatus::NotRun => Some(not_run_error.clone()),
                    TickerStatus::Failed | TickerStatus::Pending => t.error.clone(),
                    _ => None,
                };
                let (from, to) = t.range.clone().unwrap_or_else(|| self.range.clone());
                TickerOutcome {
                    ticker: name.clone(),
                    status,
                    bars: t.bars(),
                    requests: t.requests(),
                    error,
                    from,
                    to,
                    no_bars: t.no_bars.clone(),
                }
            })
            .collect()
    }
}

impl TickerTally {
    fn bars(&self) -> u64 {
        if matches!(self.status, Some(TickerStatus::Ok | TickerStatus::Pending)) {
            self.bars_done
        } else {
            self.bars_seen
        }
    }

    fn requests(&self) -> u64 {
        self.requests_done.unwrap_or(self.requests_seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::events::parse_line as parse_event_line;

    #[test]
    fn parses_contract_events_and_ignores_noise() {
        let failed = r#"{"event":"ticker_failed","ticker":"X","class":"retryable","kind":"timeout","status":null,"message":"slow","attempts":8,"ts":"2025-01-01T00:00:00Z"}"#;
        match parse_event_line(failed) {
            Some(Event::TickerFailed { ticker, error }) => {
                assert_eq!(ticker, "X");
                assert_eq!(error.kind.as_str(), "timeout");
                assert_eq!(error.attempts, 8);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_event_line(r#"{"event":"something_new","x":1}"#),
            Some(Event::Other)
        );
        assert_eq!(parse_event_line("plain text"), None);
        assert_eq!(parse_event_line("{broken"), None);
    }

    #[test]
    fn an_all_tickers_batch_takes_its_tickers_from_the_events() {
        let lines = [
            r#"{"event":"ticker_done","ticker":"B","bars":3,"requests":0}"#,
            r#"{"event":"ticker_failed","ticker":"A","class":"retryable","kind":"store","message":"disk"}"#,
        ];
        let not_run = TickerFailure {
            class: "retryable".into(),
            kind: "not_run".into(),
            ..Default::default()
        };
        let mut cut = EventTally::open_universe();
        for line in lines {
            cut.apply(&parse_event_line(line).unwrap());
        }
        let out = cut.outcomes(&not_run);
        let names: Vec<&str> = out.iter().map(|t| t.ticker.as_str()).collect();
        assert_eq!(names, ["*", "B", "A"]);
        // Stopped before `finished`: the rest of the universe did not run.
        assert_eq!(out[0].status, TickerStatus::NotRun);
        let mut whole = cut.clone();
        whole.apply(&parse_event_line(r#"{"event":"finished","ok":1,"failed":1}"#).unwrap());
        let out = whole.outcomes(&not_run);
        assert_eq!(out[0].status, TickerStatus::Ok);
        assert_eq!(out[2].status, TickerStatus::Failed);
    }

    #[test]
    fn tally_marks_unreported_tickers_not_run() {
        let tickers: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        let mut tally = EventTally::new(&tickers).with_range("2024-01-02", "2024-01-31");
        for line in [
            r#"{"event":"page","ticker":"A","bars":10}"#,
            r#"{"event":"retry","ticker":"A","attempt":1,"kind":"server","reason":"500","delay_ms":1}"#,
            r#"{"event":"ticker_done","ticker":"A","bars":10,"requests":2}"#,
            r#"{"event":"ticker_started","ticker":"B","from":"2024-01-03","to":"2024-01-31"}"#,
            r#"{"event":"page","ticker":"B","bars":5}"#,
        ] {
            tally.apply(&parse_event_line(line).unwrap());
        }
        let not_run = TickerFailure {
            class: "retryable".into(),
            kind: "not_run".into(),
            message: "crashed".into(),
            ..Default::default()
        };
        let out = tally.outcomes(&not_run);
        assert_eq!(out[0].status, TickerStatus::Ok);
        assert_eq!(out[0].requests, 2);
        assert_eq!(out[1].status, TickerStatus::NotRun);
        assert_eq!(out[1].bars, 5);
        assert_eq!(out[2].status, TickerStatus::NotRun);
        assert_eq!(
            (out[1].from.as_str(), out[1].to.as_str()),
            ("2024-01-03", "2024-01-31")
        );
        assert_eq!(
            (out[2].from.as_str(), out[2].to.as_str()),
            ("2024-01-02", "2024-01-31")
        );
        assert_eq!(tally.bars(), 15);
        assert_eq!(tally.retries, 1);
    }
}
