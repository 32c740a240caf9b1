//! The worker: fetch a list of tickers for one date range into the store.
//!
//! `barsmith ingest` runs this as a disposable process for each batch; the REPL runs it
//! in-process. Output is a stream of [`events::Event`]s and an [`IngestReport`].

pub mod error;
pub mod events;
pub mod job;
mod setup;
pub mod source;
pub mod window;
mod worker;

pub use error::{ErrorClass, ErrorKind, FetchError};
pub use job::{ALL_TICKERS, IngestArgs, WorkerJob};
pub use setup::{SetupError, SetupKind};
pub use source::{BarSource, PieceBars, SourceEvent};

pub use worker::{
    DEFAULT_IN_FLIGHT, EXIT_FATAL, EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, Ingest, IngestReport,
};
