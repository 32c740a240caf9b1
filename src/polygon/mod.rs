//! The Polygon.io (Massive) aggregates client.
//!
//! [`Client::fetch_bars`] returns every minute bar of one ticker in one date range:
//! it builds the request ([`request`]), sends it through the machine-wide
//! [`crate::budget::Budget`], retries what is transient ([`retry`]), decodes each page
//! straight into columns ([`decode`]), follows `next_url` (only on the configured
//! host, never into a loop) and drops duplicate, out-of-order and out-of-range bars.
//! Failures are classified in the worker's vocabulary ([`crate::ingest::error`]) so
//! scripts can decide what to re-queue; [`source`] makes the client a
//! [`crate::ingest::BarSource`].

pub mod client;
pub mod decode;
pub mod fetched;
pub mod listing;
mod range;
pub mod request;
pub mod retry;
mod scan;
mod source;
mod spread;

pub use crate::ingest::error::{ErrorClass, ErrorKind, FetchError};
pub use client::{Client, ClientConfig, DEFAULT_BASE_URL, RawResponse};
pub use decode::{DecodeError, Page, decode_page};
pub use fetched::{Fetched, Paging};
pub use listing::Listing;
pub use retry::RetryPolicy;
