//! The worker's contract with a data source: [`BarSource`].
//!
//! The worker ([`super::Ingest`]) decides which ranges of which tickers are missing,
//! writes what a source returns and records it complete; a source only answers "the
//! bars of this ticker in this piece, and which days of the piece they are complete
//! for". Sources (the REST client, flat files) implement this trait and report
//! failures in the worker's own vocabulary ([`super::error`]), so the worker, the
//! batch runner and scripts never name a source.

use std::future::Future;
use std::time::Duration;

use crate::bars::Bars;
use crate::calendar::DateRange;
use crate::store::{DatasetIdentity, Provenance};

use super::error::{ErrorKind, FetchError};

/// Progress a source reports while fetching one piece.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// A page (a response, a day's block) arrived: `bars` kept from it, `elapsed` =
    /// time of its successful request (send, body and decode).
    Page {
        /// Bars kept from the page.
        bars: usize,
        /// Time of the successful request.
        elapsed: Duration,
    },
    /// A request failed and will be retried after `delay`; sent before sleeping.
    Retry {
        /// The attempt about to be made (2 for the first retry).
        attempt: u32,
        /// Why the previous attempt failed (no secret, short).
        reason: String,
        /// The wait before that attempt.
        delay: Duration,
        /// The failure's kind.
        kind: ErrorKind,
    },
}

/// What a source returns for one piece of one ticker.
#[derive(Debug, Clone, PartialEq)]
pub struct PieceBars {
    /// The bars, strictly increasing by timestamp, all inside the piece.
    pub bars: Bars,
    /// The days of the piece these bars are complete for, sorted and disjoint. Days of
    /// the piece outside them (a flat file not yet published, a day not entitled) are
    /// left as they are on disk and stay missing. Days not over yet in New York are
    /// clipped by the store whatever the source says.
    pub complete: Vec<DateRange>,
    /// Requests made (retries included).
    pub requests: u32,
    /// Exact repeats of a bar already received, removed.
    pub duplicates_dropped: u64,
    /// Bars that arrived out of order and were sorted into place.
    pub reordered: u64,
    /// Where the bars came from, recorded in the file's metadata.
    pub provenance: Provenance,
}

/// A source of minute bars the worker can fill a dataset from.
///
/// `fetch` futures of several tickers run at once on one task (the worker's window),
/// so a source that does heavy CPU work should move it to the blocking pool.
pub trait BarSource: Sync {
    /// What the bars are (provider, timespan, adjusted): the dataset they may go into.
    fn identity(&self) -> DatasetIdentity;

    /// The bars of `ticker` in `piece` (inside one calendar year). `on_event` gets
    /// progress and retries as they happen.
    fn fetch(
        &self,
        ticker: &str,
        piece: DateRange,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> impl Future<Output = Result<PieceBars, FetchError>>;

    /// True while the source's shared request budget has room for more requests at
    /// once: the worker widens its window only then.
    fn has_room(&self) -> bool {
        false
    }

    /// Why `ticker` holds no bar in `range` (e.g. listed later), if the source can tell;
    /// may cost one request.
    fn explain_no_bars(
        &self,
        _ticker: &str,
        _range: DateRange,
    ) -> impl Future<Output = Option<String>> {
        async { None }
    }
}
