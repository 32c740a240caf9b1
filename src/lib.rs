//! barsmith backfills years of 1-minute OHLCV bars from the Polygon.io (Massive)
//! aggregates API into Hive-partitioned Parquet.
//!
//! The mechanics live here, compiled: the HTTP client with its retry policy and shared
//! request budget ([`polygon`], [`budget`]), the crash-safe Parquet store ([`store`]),
//! the worker loop ([`ingest`]) and a Polygon-compatible sandbox ([`sandbox`]). The
//! strategy of a backfill lives in Rhai scripts run by [`script`], which starts batches
//! of work as disposable worker processes through [`batch`]; [`report`] draws a run as
//! one HTML page.

pub mod bars;
pub mod batch;
pub mod budget;
pub mod calendar;
pub mod cli;
pub mod flatfiles;
pub mod ingest;
pub mod input;
pub mod polygon;
pub mod repl;
pub mod report;
pub mod s3;
pub mod sandbox;
pub mod script;
pub mod secret;
pub mod store;
pub mod ticker;

/// The version recorded in run records and Parquet metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
