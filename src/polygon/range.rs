//! One ticker's range, page by page: the first page, then the rest followed cursor
//! by cursor or, when the budget has room, fetched as sub-ranges at once
//! ([`super::spread`]).

use std::collections::HashSet;

use reqwest::Url;

use crate::budget::Budget;
use crate::calendar::{DateRange, ny_day_start_ms};
use crate::ingest::error::{ErrorKind, FetchError};
use crate::ingest::source::SourceEvent;
use crate::secret::redact;

use super::client::Client;
use super::fetched::{Fetched, keep_new_bars, reserve_rest, settle};
use super::request::{PAGE_LIMIT, aggs_url, checked_next_url, excerpt};
use super::spread;

impl Client {
    /// All minute bars of one ticker in one range (one year piece at most in
    /// practice), following `next_url` to the end. Once the first page is in, the rest
    /// of the range may be fetched as sub-ranges at once ([`super::spread`]) when the
    /// budget has room for them. Bars are sorted, exact repeats removed and
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
        let bounds = (range.from.to_string(), range.to.to_string());
        let url = aggs_url(&self.base, ticker, (&bounds.0, &bounds.1), self.adjusted);
        let mut out = Fetched::default();
        let mut body = Vec::new();
        let chain = Chain { lo, hi, part: None };
        let first = self.follow(url, chain, &mut out, &mut body, on_event, true);
        let Some(next) = first.await? else {
            settle(&mut out).map_err(|e| with_context(e, chain.label(out.pages)))?;
            return Ok(out);
        };
        let parts = match self.spread {
            true => spread::parts(&out.bars.timestamp, PAGE_LIMIT as usize, lo, hi),
            false => Vec::new(),
        };
        // With the budget busy, requests would only wait for slots: paging sends no more
        // requests than the range needs, and the other tickers use the budget.
        if parts.is_empty() || !self.budget.as_ref().is_none_or(Budget::has_room) {
            reserve_rest(&mut out, lo, hi);
            self.follow(next, chain, &mut out, &mut body, on_event, false)
                .await?;
        } else {
            self.fetch_parts(ticker, &parts, chain, &mut out, on_event)
                .await?;
        }
        settle(&mut out).map_err(|e| with_context(e, chain.label(out.pages)))?;
        Ok(out)
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
        // One move of the columns to their full size, not a doubling per part.
        out.bars.reserve(parts.iter().map(|p| p.bars.len()).sum());
        for part in parts {
            out.absorb(part);
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
    ) -> Result<Option<Url>, FetchError> {
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
                return Ok(Some(next));
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
