//! The REST client as the worker's [`BarSource`]: a piece is one paginated fetch,
//! complete for every day of it.

use crate::calendar::DateRange;
use crate::ingest::error::FetchError;
use crate::ingest::source::{BarSource, PieceBars, SourceEvent};
use crate::store::{DatasetIdentity, Provenance};

use super::Client;

impl BarSource for Client {
    fn identity(&self) -> DatasetIdentity {
        DatasetIdentity::minute(self.adjusted())
    }

    async fn fetch(
        &self,
        ticker: &str,
        piece: DateRange,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> Result<PieceBars, FetchError> {
        let fetched = self.fetch_bars(ticker, piece, on_event).await?;
        Ok(PieceBars {
            bars: fetched.bars,
            complete: vec![piece],
            requests: fetched.requests,
            duplicates_dropped: fetched.duplicates_dropped,
            reordered: fetched.reordered,
            provenance: Provenance::now(self.adjusted(), piece),
        })
    }

    fn has_room(&self) -> bool {
        self.budget().is_some_and(|b| b.has_room())
    }

    async fn explain_no_bars(&self, ticker: &str, range: DateRange) -> Option<String> {
        Some(match self.listing(ticker).await {
            Ok(Some(listing)) => listing.no_bars_reason(range),
            Ok(None) => "the API does not know this ticker".into(),
            Err(e) => format!("reason unknown: {}", e.message),
        })
    }
}
