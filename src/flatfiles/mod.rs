//! Polygon's (Massive's) flat files: one gzip CSV per trading day holding every
//! ticker's minute bars, on an S3-compatible service. The bulk route to years of bars.
//!
//! - [`layout`]: the bucket's keys and the day each names.
//! - [`csv`]: one day's file, decoded and grouped by ticker.
//! - `block`: one ticker-day's bars as a compact staged block.
//! - `number`: the decoder's number parsing on raw field bytes.
//! - `row`: the header's columns and one row as a bar.
//! - [`stage`]: a decoded day kept on local disk, by ticker, until every ticker's
//!   year has been written once (so no ticker-year file is rewritten per day).
//! - [`source`]: the route as the worker's [`crate::ingest::BarSource`].

mod block;
pub mod csv;
pub mod layout;
pub mod ledger;
mod number;
mod row;
pub mod source;
pub mod stage;

pub use layout::MINUTE_AGGS_PREFIX;
pub use source::{DayOutcome, FlatConfig, FlatFiles, Universe};
