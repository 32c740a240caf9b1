//! The ticker overview (`/v3/reference/tickers/{T}`), read for one purpose: saying why
//! a ticker has no bars in a range — not listed yet, delisted before, or no trades.

use jiff::civil::Date;
use serde::Deserialize;

use crate::calendar::{DateRange, parse_date};
use crate::ingest::error::{ErrorKind, FetchError};
use crate::polygon::client::Client;

/// When a ticker traded, as the API's overview says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listing {
    /// First day of trading, if the API gives it.
    pub list_date: Option<Date>,
    /// Day of delisting, if delisted.
    pub delisted: Option<Date>,
}

#[derive(Deserialize)]
struct Overview {
    results: Option<Results>,
}

#[derive(Deserialize)]
struct Results {
    list_date: Option<String>,
    delisted_utc: Option<String>,
}

impl Listing {
    /// Parses an overview body; missing or unreadable dates are `None`.
    pub fn from_json(body: &str) -> Result<Listing, String> {
        let o: Overview = serde_json::from_str(body).map_err(|e| e.to_string())?;
        let r = o.results.ok_or("the overview has no results")?;
        let day = |s: Option<String>| s.and_then(|s| parse_date(s.get(..10)?).ok());
        Ok(Listing {
            list_date: day(r.list_date),
            delisted: day(r.delisted_utc),
        })
    }

    /// Why a ticker so listed has no bars in `range`.
    pub fn no_bars_reason(&self, range: DateRange) -> String {
        match (self.list_date, self.delisted) {
            (Some(d), _) if d > range.to => format!("listed on {d}, after the range"),
            (_, Some(d)) if d < range.from => format!("delisted on {d}, before the range"),
            _ => "no trades in the range".into(),
        }
    }
}

impl Client {
    /// The listing of `ticker` from the ticker overview, through the request budget
    /// (one request, no retries); `None` when the API does not know the ticker.
    pub async fn listing(&self, ticker: &str) -> Result<Option<Listing>, FetchError> {
        let resp = self
            .raw_get(&format!("/v3/reference/tickers/{ticker}"))
            .await?;
        match resp.status {
            200 => Listing::from_json(&resp.body).map(Some).map_err(|e| {
                FetchError::new(ErrorKind::Body, Some(200), format!("ticker overview: {e}"))
            }),
            404 => Ok(None),
            s => Err(FetchError::new(
                // Only a reason to print depends on it: no finer class is needed.
                ErrorKind::ApiError,
                Some(s),
                format!("ticker overview: HTTP {s}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> DateRange {
        DateRange::parse("2024-01-01", "2024-12-31").unwrap()
    }

    #[test]
    fn the_reason_says_listed_after_delisted_before_or_no_trades() {
        let l = Listing::from_json(
            r#"{"status":"OK","results":{"ticker":"NEW","active":true,"list_date":"2025-03-03"}}"#,
        )
        .unwrap();
        assert_eq!(
            l.no_bars_reason(range()),
            "listed on 2025-03-03, after the range"
        );
        let l = Listing::from_json(
            r#"{"results":{"ticker":"OLD","active":false,"delisted_utc":"2023-05-02T00:00:00Z"}}"#,
        )
        .unwrap();
        assert_eq!(
            l.no_bars_reason(range()),
            "delisted on 2023-05-02, before the range"
        );
        assert_eq!(
            Listing::default().no_bars_reason(range()),
            "no trades in the range"
        );
        assert!(Listing::from_json("{}").is_err());
    }
}
