//! `GET /v3/reference/tickers/{T}`: the ticker overview, with the listing window the
//! synthetic bars follow, so a client can say why a ticker has no bars in a range
//! (listed later, delisted before, or simply no trades).

use super::SandboxConfig;
use super::aggs::json_str;
use super::http::Response;
use super::synth::listing;

/// The overview of `ticker` as Polygon shapes it: `results.ticker`, `active`,
/// `list_date` (when the listing has a known start) and `delisted_utc` (when it ended).
pub(crate) fn ticker_details(cfg: &SandboxConfig, ticker: &str, request_id: &str) -> Response {
    let (listed, delisted) = listing(ticker, cfg);
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"status\":\"OK\",\"request_id\":");
    json_str(&mut out, request_id);
    out.extend_from_slice(b",\"results\":{\"ticker\":");
    json_str(&mut out, ticker);
    out.extend_from_slice(b",\"market\":\"stocks\",\"active\":");
    let active = delisted.is_none_or(|d| d >= cfg.today);
    out.extend_from_slice(if active { b"true" } else { b"false" });
    if let Some(d) = listed {
        out.extend_from_slice(b",\"list_date\":");
        json_str(&mut out, &d.to_string());
    }
    if let Some(d) = delisted {
        out.extend_from_slice(b",\"delisted_utc\":");
        json_str(&mut out, &format!("{d}T00:00:00Z"));
    }
    out.extend_from_slice(b"}}");
    Response::json(200, out)
}
