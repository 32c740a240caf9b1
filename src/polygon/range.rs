//! One ticker's range, page by page: the first page, then the rest followed cursor
//! by cursor or, when the budget has room, fetched as sub-ranges at once
//! ([`super::spread`]).

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Url;

use crate::budget::Budget;
use crate::calendar::{DateRange, ny_day_start_ms};
use crate::ingest::error::{ErrorKind, FetchError};
use crate::ingest::source::SourceEvent;
use crate::secret::redact;

use super::client::Client;
use super::fetched::{Fetched, Paging, keep_new_bars, reserve_rest, settle};
use super::request::{PAGE_LIMIT, aggs_url, checked_next_url, excerpt};
use super::spread;

impl Client {
    /// All minute bars of one ticker in one range (one year piece at most in
    /// practice), following `next_url` to the end. When the budget has room, the range
    /// is fetched as sub-ranges at once ([`super::spread`]): from the start when the
    /// ticker's previous piece said how dense its bars are, else once the first page
    /// is in. Bars are sorted, exact repeats removed and
    /// out-of-range bars dropped, all counted; two different bars for one minute fail
    /// the fetch ([`ErrorKind::ConflictingBars`]).
    pub async fn fetch_bars(
        &self,
        ticker: &str,
        range: DateRange,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> Result<Fetched, FetchError> {
        let lo = ny_day_start_ms(range.from);
        let hi = range.to.tomorrow().map(ny_day_start_ms).unwrap_or(i64::MAX);
        let chain = Chain { lo, hi, part: None };
        let mut out = Fetched::default();
        let known = self.known_density(ticker);
        let parts = known.map_or_else(Vec::new, |d| {
            spread::parts_at(d, PAGE_LIMIT as usize, lo, hi)
        });
        if !parts.is_empty() && self.budget_has_room() {
            self.fetch_parts(ticker, &parts, chain, &mut out, on_event)
                .await?;
            out.paging = Paging::FromStart(parts.len());
        } else {
            self.first_then_rest(ticker, range, chain, &mut out, on_event)
                .await?;
        }
        settle(&mut out).map_err(|e| with_context(e, chain.label(out.pages)))?;
        self.note_density(ticker, &out, lo, hi);
        Ok(out)
    }

    /// The first page of `range`, then the rest paged or spread by its density.
    async fn first_then_rest(
        &self,
        ticker: &str,
        range: DateRange,
        chain: Chain,
        out: &mut Fetched,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> Result<(), FetchError> {
        let Chain { lo, hi, .. } = chain;
        let bounds = (range.from.to_string(), range.to.to_string());
        let url = aggs_url(&self.base, ticker, (&bounds.0, &bounds.1), self.adjusted);
        let mut body = Vec::new();
        let first = self.follow(url, chain, out, &mut body, on_event, true);
        let Some((next, elapsed)) = first.await? else {
            return Ok(());
        };
        // A quick first page means the API is not what keeps the budget idle: paging
        // holds fewer page bodies in memory and sends no extra request.
        let parts = match self.spread && elapsed >= spread::SLOW_PAGE {
            true => spread::parts(&out.bars.timestamp, PAGE_LIMIT as usize, lo, hi),
            false => Vec::new(),
        };
        if parts.is_empty() || !self.budget_has_room() {
            reserve_rest(out, lo, hi);
            self.follow(next, chain, out, &mut body, on_event, false)
                .await?;
        } else {
            self.fetch_parts(ticker, &parts, chain, out, on_event)
                .await?;
            out.paging = Paging::AfterFirstPage(parts.len());
        }
        Ok(())
    }

    /// Whether spread sub-ranges may go: with the budget busy, requests would only wait
    /// for slots, so paging sends no more requests than the range needs and the other
    /// tickers use the budget.
    fn budget_has_room(&self) -> bool {
        self.budget.as_ref().is_none_or(Budget::has_room)
    }

    /// The density of `ticker`'s last full piece, when spreading is on.
    fn known_density(&self, ticker: &str) -> Option<f64> {
        if !self.spread {
            return None;
        }
        let known = self.densities.lock().unwrap_or_else(|p| p.into_inner());
        known.get(ticker).copied()
    }

    /// Remembers how dense `ticker`'s bars were over `[lo, hi)`, when they filled more
    /// than a page of a slow API (a range of one page, or pages that come back quickly,
    /// tell nothing worth spreading); forgets it otherwise.
    fn note_density(&self, ticker: &str, got: &Fetched, lo: i64, hi: i64) {
        if !self.spread {
            return;
        }
        let bars = got.bars.len();
        let mut known = self.densities.lock().unwrap_or_else(|p| p.into_inner());
        let slow = got.slowest_page >= spread::SLOW_PAGE;
        if !slow || bars < PAGE_LIMIT as usize || hi <= lo || hi == i64::MAX {
            known.remove(ticker);
            return;
        }
        known.insert(ticker.to_string(), bars as f64 / (hi - lo) as f64);
    }

    /// Fetches the sub-ranges `parts` of a range at once, appending their bars to
    /// `out` in range order.
    async fn fetch_parts(
        &self,
        ticker: &str,
        parts: &[(i64, i64)],
        chain: Chain,
        out: &mut Fetched,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> Result<(), FetchError> {
        let events = std::sync::Mutex::new(on_event);
        let fetches = parts.iter().enumerate().map(|(i, &(from, to))| {
            let events = &events;
            let (from, to) = (from.to_string(), to.to_string());
            let url = aggs_url(&self.base, ticker, (&from, &to), self.adjusted);
            async move {
                let mut part = Fetched::default();
                let mut emit = |e: SourceEvent| {
                    (events.lock().unwrap_or_else(|p| p.into_inner()))(e);
                };
                let chain = Chain {
                    part: Some(i + 1),
                    ..chain
                };
                let mut body = Vec::new();
                self.follow(url, chain, &mut part, &mut body, &mut emit, false)
                    .await?;
                Ok::<Fetched, FetchError>(part)
            }
        });
        let parts = futures_util::future::join_all(fetches).await;
        let parts: Vec<Fetched> = parts.into_iter().collect::<Result<_, _>>()?;
        // The columns grow once to their full size, not by doubling part after part:
        // an empty `out` takes the first part's columns as they are, so room for the
        // rest is made after each part is in, not before.
        let mut rest: usize = parts.iter().map(|p| p.bars.len()).sum();
        for part in parts {
            rest -= part.bars.len();
            out.absorb(part);
            out.bars.reserve(rest);
        }
        Ok(())
    }

    /// Follows pages from `url` into `out` until the last one (or only the first,
    /// when `first_only`: then the `next_url` it gave, if any). Each page's body is
    /// read into `body` and its bars decoded straight onto `out.bars`.
    async fn follow(
        &self,
        mut url: Url,
        chain: Chain,
        out: &mut Fetched,
        body: &mut Vec<u8>,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
        first_only: bool,
    ) -> Result<Option<(Url, Duration)>, FetchError> {
        let mut followed: HashSet<String> = HashSet::from([url.as_str().to_string()]);
        loop {
            let page_no = out.pages + 1;
            let label = chain.label(page_no);
            let before = out.bars.len();
            let (page, elapsed, attempts) = self
                .get_page(&url, &mut out.bars, body, on_event)
                .await
                .map_err(|e| with_context(e, label.clone()))?;
            out.requests += attempts;
            out.pages = page_no;
            out.slowest_page = out.slowest_page.max(elapsed);
            let kept = keep_new_bars(out, before, chain.lo, chain.hi);
            on_event(SourceEvent::Page {
                bars: kept,
                elapsed,
            });
            tracing::debug!(page = %label, bars = kept, ?elapsed, "page");
            let Some(next) = page.next_url.filter(|n| !n.trim().is_empty()) else {
                return Ok(None);
            };
            let next = checked_next_url(&self.base, &url, &next, &self.key)
                .map_err(|e| with_context(e, label.clone()))?;
            if !followed.insert(next.as_str().to_string()) {
                return Err(FetchError::new(
                    ErrorKind::CursorLoop,
                    Some(200),
                    format!(
                        "cursor loop: {label}'s next_url repeats one already followed ({}); \
                         stopped after {page_no} pages",
                        excerpt(&redact(next.as_str(), &self.key))
                    ),
                ));
            }
            if first_only {
                return Ok(Some((next, elapsed)));
            }
            url = next;
        }
    }
}

/// Where a chain of pages is: the range's bounds (Unix ms, `hi` exclusive) that bars
/// must fall in, and which sub-range it fetches, if the range was spread.
#[derive(Debug, Clone, Copy)]
struct Chain {
    lo: i64,
    hi: i64,
    part: Option<usize>,
}

impl Chain {
    /// How errors name page `page` of this chain: `page 3`, or `part 2, page 1`.
    fn label(self, page: u32) -> String {
        match self.part {
            None => format!("page {page}"),
            Some(part) => format!("part {part}, page {page}"),
        }
    }
}

fn with_context(mut e: FetchError, page: String) -> FetchError {
    let tries = if e.attempts > 1 {
        format!("gave up after {} attempts, ", e.attempts)
    } else {
        String::new()
    };
    e.message = format!("{} ({tries}{page})", e.message);
    e
}
