//! Why a worker could not start work at all: bad input, or a setup that no ticker can
//! get past (no key, an unwritable or mismatched output folder, no budget file).
//!
//! A setup failure is reported once, as a [`Event::SetupFailed`](super::events::Event)
//! on stdout before the worker exits, so the batch runner can halt the run with the
//! real reason instead of retrying a batch whose tickers were never reported.

use serde::{Deserialize, Serialize};

use super::worker::{EXIT_FATAL, EXIT_USAGE};

/// What kind of setup failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupKind {
    /// The worker's own arguments were wrong (dates, tickers, base URL, rate).
    BadInput,
    /// No API key in the environment.
    MissingKey,
    /// The output folder cannot be used: unwritable, or holds other data (adjusted vs
    /// unadjusted).
    Store,
    /// The shared request budget file cannot be opened.
    Budget,
    /// The HTTP client could not be built.
    Client,
    /// The data source refused the run as a whole: flat-file credentials rejected, or
    /// the bucket's listing refused.
    Source,
    /// A kind this version does not know (read side only).
    #[serde(other)]
    Other,
}

impl SetupKind {
    /// The snake_case name used in events, records and `failed_tickers.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            SetupKind::BadInput => "bad_input",
            SetupKind::MissingKey => "missing_key",
            SetupKind::Store => "store",
            SetupKind::Budget => "budget",
            SetupKind::Client => "client",
            SetupKind::Source => "source",
            SetupKind::Other => "setup",
        }
    }

    /// The worker's exit status for this kind: 2 for its own input, 4 for the rest
    /// (fatal for the whole run), as `barsmith ingest --help` documents.
    pub fn exit_code(self) -> i32 {
        match self {
            SetupKind::BadInput => EXIT_USAGE,
            _ => EXIT_FATAL,
        }
    }
}

/// A setup failure: its kind and a one-line message that names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SetupError {
    /// What failed.
    pub kind: SetupKind,
    /// What is wrong and what to do, in one line; never holds the key.
    pub message: String,
}

impl SetupError {
    /// A setup error of `kind`.
    pub fn new(kind: SetupKind, message: impl Into<String>) -> SetupError {
        SetupError {
            kind,
            message: message.into(),
        }
    }
}
