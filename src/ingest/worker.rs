//! The worker loop: one ticker after another, each range piece fetched from a
//! [`BarSource`], written and recorded complete before the next, so a worker killed at
//! any instant loses at most the piece in flight. Nothing here names a source, nor
//! where the dataset lives ([`Dataset`]: a ticker's writes go through one
//! [`TickerSession`], which on S3 holds the ticker's write lease).

use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use jiff::civil::Date;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::calendar::DateRange;
use crate::ingest::error::{ErrorClass, ErrorKind, FetchError};
use crate::ingest::events::{Event, EventSink};
use crate::ingest::source::{BarSource, PieceBars, SourceEvent};
use crate::ingest::window::Window;
use crate::s3::S3ErrorKind;
use crate::store::{Dataset, StoreError, TickerSession};

/// Exit status: every ticker complete.
pub const EXIT_OK: i32 = 0;
/// Exit status: bad input, refused before any request.
pub const EXIT_USAGE: i32 = 2;
/// Exit status: some tickers failed; the others are complete.
pub const EXIT_SOME_FAILED: i32 = 3;
/// Exit status: fatal for the whole run (key missing or rejected, outdir unwritable).
pub const EXIT_FATAL: i32 = 4;

/// What one worker run did.
#[derive(Debug, Default)]
pub struct IngestReport {
    /// Tickers completed by this run.
    pub ok: Vec<String>,
    /// Tickers that were already complete.
    pub skipped: Vec<String>,
    /// Tickers fetched as far as possible whose range reaches today or later: not
    /// complete until those days are over (not a failure; exit status 0).
    pub pending: Vec<String>,
    /// Tickers that failed, with the classified error.
    pub failed: Vec<(String, FetchError)>,
    /// Bars written.
    pub bars: u64,
    /// The error that stopped the run, if one did.
    pub fatal: Option<FetchError>,
}

impl IngestReport {
    /// The exit status that describes this report.
    pub fn exit_code(&self) -> i32 {
        if self.fatal.is_some() {
            EXIT_FATAL
        } else if self.failed.is_empty() {
            EXIT_OK
        } else {
            EXIT_SOME_FAILED
        }
    }
}

/// Everything a worker needs besides its tickers.
pub struct Ingest<'a, S: BarSource> {
    /// Where the bars come from (the REST client with its retry policy and shared
    /// budget, or flat files).
    pub source: &'a S,
    /// The output dataset (a local folder or S3).
    pub dataset: &'a Dataset,
    /// Requested range.
    pub range: DateRange,
    /// Today in New York: ranges reaching it are fetched but not recorded complete.
    pub today: Date,
    /// Checked between tickers and pieces; set it to stop early (REPL Ctrl-C).
    pub cancel: &'a dyn Fn() -> bool,
    /// Most tickers fetched at once. The window adapts below it
    /// ([`super::window`]): one request in flight cannot fill a budget when the API is
    /// slow (100 req/s at 1 s latency needs 100 at once); each ticker costs at most
    /// one ticker-year of memory.
    pub in_flight: usize,
}

/// Most tickers a worker fetches at once unless told otherwise.
pub const DEFAULT_IN_FLIGHT: usize = 32;
/// How often the window is re-sized while nothing finishes.
const TICK: std::time::Duration = std::time::Duration::from_millis(25);

/// Sends one event; the lock is never held across an await.
fn emit(sink: &Mutex<&mut dyn EventSink>, event: Event) {
    sink.lock().unwrap_or_else(|p| p.into_inner()).emit(event);
}

impl<S: BarSource> Ingest<'_, S> {
    /// Works through `tickers`, `in_flight` of them at a time; one ticker's failure
    /// never stops the rest, a run-fatal error (rejected key, unwritable store) stops
    /// everything at once (tickers in flight are dropped before they write anything).
    pub async fn run(&self, tickers: &[String], sink: &mut dyn EventSink) -> IngestReport {
        let sink = Mutex::new(sink);
        let mut report = IngestReport::default();
        let mut pending = tickers.iter();
        // Declared before the futures that borrow it.
        let window = Window::new(self.in_flight, self.piece_days());
        let mut in_flight = FuturesUnordered::new();
        let has_room = || self.source.has_room();
        loop {
            while in_flight.len() < window.size() && !(self.cancel)() {
                let Some(ticker) = pending.next() else { break };
                let (sink, window) = (&sink, &window);
                in_flight.push(async move { (ticker, self.ticker(ticker, sink, window).await) });
            }
            if in_flight.is_empty() {
                break;
            }
            let next = tokio::select! {
                next = in_flight.next() => next,
                () = tokio::time::sleep(TICK) => None,
            };
            window.adjust(in_flight.len(), pending.len() > 0, has_room);
            let Some((ticker, outcome)) = next else {
                continue;
            };
            match outcome {
                Ok(TickerOutcome::Cancelled) => {}
                Ok(TickerOutcome::Skipped) => report.skipped.push(ticker.clone()),
                Ok(TickerOutcome::Done { bars, pending }) => {
                    report.bars += bars;
                    if pending {
                        report.pending.push(ticker.clone());
                    } else {
                        report.ok.push(ticker.clone());
                    }
                }
                Err(error) => {
                    tracing::warn!(%ticker, kind = ?error.kind, "{}", error.message);
                    emit(
                        &sink,
                        Event::TickerFailed {
                            ticker: ticker.clone(),
                            error: error.clone(),
                        },
                    );
                    let fatal = error.class == ErrorClass::Run;
                    report.failed.push((ticker.clone(), error.clone()));
                    if fatal {
                        report.fatal = Some(error);
                        break;
                    }
                }
            }
        }
        drop(in_flight);
        emit(
            &sink,
            Event::Finished {
                ok: report.ok.len() as u32,
                skipped: report.skipped.len() as u32,
                failed: report.failed.len() as u32,
                bars: report.bars,
                exit_code: report.exit_code(),
                peak_rss_kb: super::events::peak_rss_kb(),
            },
        );
        report
    }

    async fn ticker(
        &self,
        ticker: &str,
        sink: &Mutex<&mut dyn EventSink>,
        window: &Window,
    ) -> Result<TickerOutcome, FetchError> {
        let started = Instant::now();
        let complete = self.reconcile(ticker).await?;
        let missing = crate::store::coverage::subtract(self.range, &complete);
        emit(
            sink,
            Event::TickerStarted {
                ticker: ticker.to_string(),
                from: self.range.from.to_string(),
                to: self.range.to.to_string(),
                missing: missing
                    .iter()
                    .map(|r| [r.from.to_string(), r.to.to_string()])
                    .collect(),
            },
        );
        if missing.is_empty() {
            tracing::info!(%ticker, "already complete");
            emit(
                sink,
                Event::TickerSkipped {
                    ticker: ticker.to_string(),
                    reason: "complete".into(),
                },
            );
            return Ok(TickerOutcome::Skipped);
        }
        let session = self.dataset.begin(ticker).await.map_err(store_error)?;
        let written = self.pieces(ticker, &session, missing, sink, window).await;
        // Released even after a failure, so a re-run need not wait for the lease.
        let released = session.finish().await.map_err(store_error);
        let Some(totals) = written? else {
            return Ok(TickerOutcome::Cancelled);
        };
        released?;
        if totals.bars == 0 {
            self.explain_no_bars(ticker, sink).await;
        }
        emit(
            sink,
            Event::TickerDone {
                ticker: ticker.to_string(),
                bars: totals.bars,
                files: totals.files,
                requests: totals.requests,
                duplicates_dropped: totals.duplicates,
                reordered: totals.reordered,
                elapsed_ms: started.elapsed().as_millis() as u64,
                pending_from: self.pending_from().map(|d| d.to_string()),
            },
        );
        Ok(TickerOutcome::Done {
            bars: totals.bars,
            pending: self.pending_from().is_some(),
        })
    }
}

impl<S: BarSource> Ingest<'_, S> {
    /// Fetches and writes the pieces of `missing` (taken again once the S3 lease is
    /// held: a writer that waited for it sees what the previous holder completed);
    /// `None` when cancelled.
    async fn pieces(
        &self,
        ticker: &str,
        session: &TickerSession,
        mut missing: Vec<DateRange>,
        sink: &Mutex<&mut dyn EventSink>,
        window: &Window,
    ) -> Result<Option<Totals>, FetchError> {
        if let Some(complete) = session.complete_after_lease().await.map_err(store_error)? {
            missing = crate::store::coverage::subtract(self.range, &complete);
        }
        let mut totals = Totals::default();
        // Days after today have no bars yet: asking for them costs requests for nothing.
        let pieces = missing
            .iter()
            .flat_map(DateRange::split_by_year)
            .filter(|p| p.from <= self.today);
        for piece in pieces {
            if (self.cancel)() {
                return Ok(None);
            }
            let received = AtomicU64::new(0);
            let mut on_event = |e: SourceEvent| match e {
                SourceEvent::Page { bars, elapsed } => {
                    window.hold(bars as u64, elapsed);
                    received.fetch_add(bars as u64, Ordering::Relaxed);
                    emit(
                        sink,
                        Event::Page {
                            ticker: ticker.to_string(),
                            bars,
                        },
                    );
                }
                SourceEvent::Retry {
                    attempt,
                    reason,
                    delay,
                    kind,
                } => {
                    tracing::info!(%ticker, attempt, ?delay, "retry: {reason}");
                    emit(
                        sink,
                        Event::Retry {
                            ticker: ticker.to_string(),
                            attempt,
                            kind: kind.as_str().to_string(),
                            reason,
                            delay_ms: delay.as_millis() as u64,
                        },
                    );
                }
            };
            let fetched = self.source.fetch(ticker, piece, &mut on_event).await;
            let held = received.load(Ordering::Relaxed);
            let fetched = fetched.inspect_err(|_| window.release(held))?;
            let n = fetched.bars.len() as u64;
            totals.requests += fetched.requests;
            totals.duplicates += fetched.duplicates_dropped;
            totals.reordered += fetched.reordered;
            let wrote = self.write(session, piece, fetched).await;
            window.release(held);
            totals.files += u32::from(wrote?);
            tracing::info!(%ticker, %piece, bars = n, "piece written");
            totals.bars += n;
        }
        Ok(Some(totals))
    }

    /// Writes one piece and records it complete (the coverage record follows the
    /// data, so a kill at any instant leaves nothing recorded that is not written).
    /// True when a file was written.
    async fn write(
        &self,
        session: &TickerSession,
        piece: DateRange,
        got: PieceBars,
    ) -> Result<bool, FetchError> {
        let PieceBars {
            bars,
            complete,
            provenance,
            ..
        } = got;
        session
            .write(piece, complete, bars, provenance, self.today)
            .await
            .map_err(store_error)
    }

    /// Quarantines the years of `ticker` whose files are not as recorded (deleted,
    /// truncated), so they are fetched again rather than reported "already complete";
    /// returns the ranges still known complete.
    async fn reconcile(&self, ticker: &str) -> Result<Vec<DateRange>, FetchError> {
        let (complete, findings) = self.dataset.reconcile(ticker).await.map_err(store_error)?;
        for f in findings {
            let moved = f.moved_to.as_ref().map_or(String::new(), |p| {
                format!("; the file was moved to {}", p.display())
            });
            tracing::warn!(
                "{ticker} {}: {}{moved}; the year's coverage is withdrawn and fetched again",
                f.year,
                f.damage
            );
        }
        Ok(complete)
    }

    /// When `ticker` holds no bar anywhere in the range, asks the ticker overview why
    /// (one request through the budget) and says so in a `no_bars` event: a ticker
    /// "done" with nothing on disk otherwise looks like a bug.
    async fn explain_no_bars(&self, ticker: &str, sink: &Mutex<&mut dyn EventSink>) {
        let years = self.range.from.year()..=self.range.to.year();
        // Unknown (a failed read) counts as holding data: the ticker is not worth a request.
        if self.dataset.has_data(ticker, years).await.unwrap_or(true) {
            return;
        }
        let Some(reason) = self.source.explain_no_bars(ticker, self.range).await else {
            return;
        };
        tracing::info!(%ticker, "no bars in the range: {reason}");
        emit(
            sink,
            Event::NoBars {
                ticker: ticker.to_string(),
                reason,
            },
        );
    }

    /// The first day of the range that cannot be complete yet (today or later in New
    /// York), if the range reaches it.
    fn pending_from(&self) -> Option<Date> {
        (self.range.to >= self.today).then(|| self.range.from.max(self.today))
    }

    /// Days in the longest year piece of the range (a year at most).
    fn piece_days(&self) -> u64 {
        self.range
            .split_by_year()
            .iter()
            .map(|p| {
                p.from
                    .until(p.to)
                    .map_or(366, |s| s.get_days().unsigned_abs() as u64)
                    + 1
            })
            .max()
            .unwrap_or(1)
    }
}

enum TickerOutcome {
    Cancelled,
    Skipped,
    Done { bars: u64, pending: bool },
}

#[derive(Default)]
struct Totals {
    bars: u64,
    files: u32,
    requests: u32,
    duplicates: u64,
    reordered: u64,
}

/// A store that cannot be written stops the run: every later ticker would fail the same
/// way. Contention on S3 is the exception: another writer holding the ticker's lease (or
/// taking it over, or racing its objects), or a transient S3 failure, fails only this
/// ticker, retryable.
fn store_error(e: StoreError) -> FetchError {
    let ticker_only = match &e {
        StoreError::LeaseHeld { .. } | StoreError::LeaseLost { .. } => true,
        StoreError::Contended { .. } => true,
        StoreError::S3(s3) => matches!(s3.kind, S3ErrorKind::Transient | S3ErrorKind::Corrupt),
        _ => false,
    };
    let error = FetchError::new(ErrorKind::Store, None, e.to_string());
    if ticker_only {
        error.with_class(ErrorClass::Retryable)
    } else {
        error
    }
}
