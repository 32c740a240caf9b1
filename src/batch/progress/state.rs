//! The run as progress sees it: passes, distinct tickers, batches of the pass in
//! progress, running attempts and pending retries. Plain data with the clock passed in
//! (`now`), so every rule is unit-tested without waiting.
//!
//! Totals are per pass and count distinct tickers: a retry attempt never adds to them.
//! A pass starts with `plan` ([`PassPlan`], the script's `set_pass` / `set_total`);
//! a batch belongs to the pass it was started in, and is done once its last attempt
//! finished and no retry of it is due.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::eta::{EtaInput, eta_secs};
use crate::batch::result::{BatchResult, TickerStatus};
use crate::ingest::events::Event;

/// What a script announces about a pass (see the `set_pass` primitive).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassPlan {
    /// The pass number, from 1; `None` = the pass after the current one (or the
    /// current one while it has not started a batch yet).
    pub pass: Option<u32>,
    /// How many passes the script makes at most.
    pub passes: Option<u32>,
    /// Batches planned in this pass.
    pub batches: u64,
    /// The pass's tickers by name, when known.
    pub tickers: Vec<String>,
    /// How many tickers the pass has (at least `tickers.len()`).
    pub ticker_count: u64,
    /// Attempts per batch within a pass.
    pub tries: Option<u32>,
    /// Delay before a failed batch's next attempt.
    pub retry_delay: Option<Duration>,
}

/// When a failed ticker will be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    /// By the next attempt of its batch, in this pass.
    InPass,
    /// By a later pass.
    NextPass,
    /// Not in this run.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TickerState {
    Queued,
    Complete,
    Failed(Again),
}

#[derive(Debug, Clone, Default)]
struct BatchState {
    running: bool,
    /// Seconds its last finished attempt took.
    last_secs: Option<f64>,
    /// A retry in this pass is expected at this time.
    retry_due: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Running {
    started: Instant,
    tickers: Vec<String>,
    left: BTreeSet<String>,
}

/// The longest attempt still running.
#[derive(Debug, Clone, PartialEq)]
pub struct Slowest {
    /// Batch id.
    pub id: u32,
    /// Attempt number.
    pub attempt: u32,
    /// Seconds it has run.
    pub secs: f64,
    /// Its tickers not finished yet, in batch order.
    pub left: Vec<String>,
}

/// Everything a progress line shows, at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Seconds since the run started.
    pub elapsed_secs: f64,
    /// The pass in progress (0 before the first) and the most passes, if known.
    pub pass: u32,
    /// Most passes, when the script said.
    pub passes: Option<u32>,
    /// Batches of this pass done (last attempt finished, no retry due).
    pub batches_done: u64,
    /// Batches of this pass (planned, or started if more).
    pub batches_total: u64,
    /// Attempts running now.
    pub running: u64,
    /// Batches of this pass waiting for their next attempt.
    pub retries_due: u64,
    /// Distinct tickers complete.
    pub tickers_complete: u64,
    /// Distinct tickers whose last attempt failed.
    pub tickers_failed: u64,
    /// Distinct tickers with nothing left to do (complete or failed for good).
    pub tickers_settled: u64,
    /// Distinct tickers of the run.
    pub tickers_total: u64,
    /// The run has ended.
    pub finished: bool,
    /// Seconds left, if it can be estimated.
    pub eta_secs: Option<f64>,
    /// Bars per second and requests per second, recently.
    pub bars_per_sec: f64,
    /// Requests per second, recently.
    pub requests_per_sec: f64,
    /// Requests retried inside workers.
    pub http_retries: u64,
    /// Bars received.
    pub bars: u64,
    /// The longest attempt running.
    pub slowest: Option<Slowest>,
}

/// The state behind the progress display.
#[derive(Debug, Clone)]
pub struct Tracker {
    started: Instant,
    first_spawn: Option<Instant>,
    pass: u32,
    pass_started_batches: bool,
    passes: Option<u32>,
    tries: Option<u32>,
    retry_delay: Duration,
    planned_tickers: u64,
    tickers: HashMap<String, TickerState>,
    planned_batches: u64,
    batches: BTreeMap<u32, BatchState>,
    running: BTreeMap<(u32, u32), Running>,
    next_pass_secs: f64,
    /// Bars received.
    pub bars: u64,
    /// Requests made.
    pub requests: u64,
    /// Requests retried.
    pub http_retries: u64,
    finished: bool,
}

impl Tracker {
    /// An empty run started at `now`.
    pub fn new(now: Instant) -> Tracker {
        Tracker {
            started: now,
            first_spawn: None,
            pass: 0,
            pass_started_batches: false,
            passes: None,
            tries: None,
            retry_delay: Duration::ZERO,
            planned_tickers: 0,
            tickers: HashMap::new(),
            planned_batches: 0,
            batches: BTreeMap::new(),
            running: BTreeMap::new(),
            next_pass_secs: 0.0,
            bars: 0,
            requests: 0,
            http_retries: 0,
            finished: false,
        }
    }

    /// Any batch started yet.
    pub fn started_batches(&self) -> bool {
        self.first_spawn.is_some()
    }

    /// A pass is announced: a new pass once the current one has started a batch.
    pub fn plan(&mut self, p: &PassPlan) {
        let new_pass = match p.pass {
            Some(n) => n != self.pass,
            None => self.pass == 0 || self.pass_started_batches,
        };
        if new_pass {
            self.pass = p.pass.unwrap_or(self.pass + 1).max(1);
            self.pass_started_batches = false;
            self.batches.retain(|_, b| b.running);
            self.next_pass_secs = 0.0;
            // A pass that names its tickers leaves out those not retried in this run.
            if !p.tickers.is_empty() {
                for s in self.tickers.values_mut() {
                    if *s == TickerState::Failed(Again::NextPass) {
                        *s = TickerState::Failed(Again::Never);
                    }
                }
            }
        }
        self.passes = p.passes.or(self.passes);
        self.tries = p.tries.or(self.tries);
        self.retry_delay = p.retry_delay.unwrap_or(self.retry_delay);
        self.planned_batches = p.batches;
        self.planned_tickers = self
            .planned_tickers
            .max(p.ticker_count.max(p.tickers.len() as u64));
        for t in &p.tickers {
            self.tickers.insert(t.clone(), TickerState::Queued);
        }
    }

    /// A batch attempt started.
    pub fn spawn(&mut self, now: Instant, id: u32, attempt: u32, tickers: &[String]) {
        self.first_spawn.get_or_insert(now);
        self.pass = self.pass.max(1);
        self.pass_started_batches = true;
        for t in tickers {
            self.tickers.insert(t.clone(), TickerState::Queued);
        }
        let b = self.batches.entry(id).or_default();
        b.running = true;
        b.retry_due = None;
        self.running.insert(
            (id, attempt),
            Running {
                started: now,
                tickers: tickers.to_vec(),
                left: tickers.iter().cloned().collect(),
            },
        );
    }

    /// When a ticker that failed in `attempt` with error `class` goes again.
    fn again(&self, class: &str, attempt: u32) -> Again {
        if class != "retryable" {
            Again::Never
        } else if attempt < self.tries.unwrap_or(1) {
            Again::InPass
        } else if self.pass < self.passes.unwrap_or(self.pass) {
            Again::NextPass
        } else {
            Again::Never
        }
    }

    fn settle(&mut self, id: u32, attempt: u32, ticker: &str, state: TickerState) {
        self.tickers.insert(ticker.to_string(), state);
        if let Some(r) = self.running.get_mut(&(id, attempt)) {
            r.left.remove(ticker);
        }
    }

    /// A worker event of attempt `attempt` of batch `id`.
    pub fn event(&mut self, id: u32, attempt: u32, event: &Event) {
        match event {
            Event::Page { bars, .. } => {
                self.requests += 1;
                self.bars += *bars as u64;
            }
            Event::Retry { .. } => {
                self.requests += 1;
                self.http_retries += 1;
            }
            Event::TickerDone { ticker, .. } | Event::TickerSkipped { ticker, .. } => {
                self.settle(id, attempt, ticker, TickerState::Complete);
            }
            Event::TickerFailed { ticker, error } => {
                let again = self.again(error.class.as_str(), attempt);
                self.settle(id, attempt, ticker, TickerState::Failed(again));
            }
            _ => {}
        }
    }

    /// A batch attempt finished: its result is the last word on its tickers.
    pub fn batch_done(&mut self, now: Instant, r: &BatchResult) {
        self.running.remove(&(r.id, r.attempt));
        let mut in_pass = false;
        let mut next_pass = false;
        for t in &r.tickers {
            let state = match t.status {
                TickerStatus::Ok | TickerStatus::Skipped | TickerStatus::Pending => {
                    TickerState::Complete
                }
                TickerStatus::Failed | TickerStatus::NotRun => {
                    let class = t.error.as_ref().map_or("retryable", |e| e.class.as_str());
                    TickerState::Failed(self.again(class, r.attempt))
                }
            };
            in_pass |= state == TickerState::Failed(Again::InPass);
            next_pass |= state == TickerState::Failed(Again::NextPass);
            self.tickers.insert(t.ticker.clone(), state);
        }
        if next_pass {
            self.next_pass_secs = self.next_pass_secs.max(r.elapsed_s);
        }
        let b = self.batches.entry(r.id).or_default();
        b.running = false;
        b.last_secs = Some(r.elapsed_s);
        b.retry_due = (in_pass && !r.fatal).then(|| now + self.retry_delay);
    }

    /// The run has ended: no work remains, whatever the counts say.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Everything to show at `now` (rates are measured by the caller).
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let count = |f: &dyn Fn(&TickerState) -> bool| {
            self.tickers.values().filter(|s| f(s)).count() as u64
        };
        let complete = count(&|s| *s == TickerState::Complete);
        let failed = count(&|s| matches!(s, TickerState::Failed(_)));
        let never = count(&|s| *s == TickerState::Failed(Again::Never));
        let next_pass = count(&|s| *s == TickerState::Failed(Again::NextPass));
        let unnamed = self
            .planned_tickers
            .saturating_sub(self.tickers.len() as u64);
        let in_pass =
            count(&|s| matches!(s, TickerState::Queued | TickerState::Failed(Again::InPass)))
                + unnamed;
        let retries_due = self
            .batches
            .values()
            .filter(|b| b.retry_due.is_some())
            .count() as u64;
        let work_left = !self.finished
            && (!self.running.is_empty() || in_pass > 0 || next_pass > 0 || retries_due > 0);
        let retry_paths = self.retry_paths(now);
        let eta = EtaInput {
            busy_secs: self
                .first_spawn
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64()),
            settled: complete + never,
            in_pass,
            next_pass,
            retry_paths,
            next_pass_secs: self.next_pass_secs,
            work_left,
        };
        Snapshot {
            elapsed_secs: now.saturating_duration_since(self.started).as_secs_f64(),
            pass: self.pass,
            passes: self.passes,
            batches_done: self
                .batches
                .values()
                .filter(|b| !b.running && b.retry_due.is_none())
                .count() as u64,
            batches_total: self.planned_batches.max(self.batches.len() as u64),
            running: self.running.len() as u64,
            retries_due,
            tickers_complete: complete,
            tickers_failed: failed,
            tickers_settled: complete + never,
            tickers_total: self.planned_tickers.max(self.tickers.len() as u64),
            finished: self.finished,
            eta_secs: eta_secs(&eta),
            bars: self.bars,
            http_retries: self.http_retries,
            slowest: self.slowest(now),
            ..Snapshot::default()
        }
    }

    /// Pending retries (delay left + their last attempt's time) and retry attempts
    /// running (what their previous attempt took, minus what they have run).
    fn retry_paths(&self, now: Instant) -> Vec<f64> {
        let pending = self.batches.values().filter_map(|b| {
            let due = b.retry_due?;
            let wait = due.saturating_duration_since(now).as_secs_f64();
            Some(wait + b.last_secs.unwrap_or(0.0))
        });
        let running = self.running.iter().filter_map(|((id, attempt), r)| {
            let previous = self.batches.get(id)?.last_secs?;
            let ran = now.saturating_duration_since(r.started).as_secs_f64();
            (*attempt > 1).then(|| (previous - ran).max(0.0))
        });
        pending.chain(running).collect()
    }

    fn slowest(&self, now: Instant) -> Option<Slowest> {
        let ((id, attempt), r) = self.running.iter().min_by_key(|(_, r)| r.started)?;
        Some(Slowest {
            id: *id,
            attempt: *attempt,
            secs: now.saturating_duration_since(r.started).as_secs_f64(),
            left: r
                .tickers
                .iter()
                .filter(|t| r.left.contains(*t))
                .cloned()
                .collect(),
        })
    }
}
