//! The classified error of a fetch from any source: what went wrong, and who should
//! act on it. The worker owns this vocabulary; each source (REST, flat files) maps its
//! own failures onto it, so scripts and run records see one set of classes and kinds.
//!
//! The class is the decision scripts make: [`ErrorClass::Retryable`] means "trying
//! again later may help" (even after the client's own retries ran out),
//! [`ErrorClass::Ticker`] means "this ticker cannot be fetched as asked",
//! [`ErrorClass::Run`] means "nothing will work until the configuration changes".
//! Workers emit a [`FetchError`] as JSON and the parent decodes it back, so the
//! serde names (snake_case) are part of the event contract.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who should act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient: a later attempt (or a later pass of the script) may succeed.
    Retryable,
    /// This ticker (or range) is refused by the API; retrying will not help.
    Ticker,
    /// The whole run is misconfigured (key missing or rejected, store unwritable).
    Run,
}

/// What exactly went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// HTTP 429: over the plan's request rate.
    RateLimited,
    /// HTTP 5xx (or 499 / other server-side failure).
    Server,
    /// No complete response within the per-request timeout (or HTTP 408).
    Timeout,
    /// Could not connect, or the connection broke before a response arrived.
    Connect,
    /// TLS handshake or certificate failure.
    Tls,
    /// Truncated or malformed body, or the connection dropped mid-body.
    Body,
    /// HTTP 200 whose JSON says `status: "ERROR"` (or an unknown status).
    ApiError,
    /// The API's `next_url` repeated a cursor already followed in this fetch.
    CursorLoop,
    /// Two different bars for the same minute: a server fault, retried later.
    ConflictingBars,
    /// HTTP 400 (and other 4xx not listed): bad parameters for this ticker or range;
    /// also, with class `Run`, a request the client refuses to make at all.
    BadRequest,
    /// HTTP 404.
    NotFound,
    /// HTTP 403 (or `NOT_AUTHORIZED`, or a flat file's `AccessDenied`): the plan does
    /// not include this data.
    NotEntitled,
    /// HTTP 401, or a 403 saying the key (or the S3 credentials) is unknown or invalid.
    Unauthorized,
    /// No API key configured, or the API says none was sent.
    MissingKey,
    /// The output folder cannot be written.
    Store,
    /// The shared request budget (Redis) cannot be reached: nothing may be sent
    /// unscheduled.
    Budget,
}

impl ErrorClass {
    /// The serde (and event) name: `retryable`, `ticker` or `run`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Ticker => "ticker",
            ErrorClass::Run => "run",
        }
    }
}

impl ErrorKind {
    /// The serde (and event) name, e.g. `rate_limited`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Server => "server",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Body => "body",
            ErrorKind::ApiError => "api_error",
            ErrorKind::CursorLoop => "cursor_loop",
            ErrorKind::ConflictingBars => "conflicting_bars",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::NotEntitled => "not_entitled",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::MissingKey => "missing_key",
            ErrorKind::Store => "store",
            ErrorKind::Budget => "budget",
        }
    }

    /// The class this kind normally belongs to.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorKind::RateLimited
            | ErrorKind::Server
            | ErrorKind::Timeout
            | ErrorKind::Connect
            | ErrorKind::Tls
            | ErrorKind::Body
            | ErrorKind::ApiError
            | ErrorKind::CursorLoop
            | ErrorKind::ConflictingBars => ErrorClass::Retryable,
            ErrorKind::BadRequest | ErrorKind::NotFound | ErrorKind::NotEntitled => {
                ErrorClass::Ticker
            }
            ErrorKind::Unauthorized
            | ErrorKind::MissingKey
            | ErrorKind::Store
            | ErrorKind::Budget => ErrorClass::Run,
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified fetch failure. `Display` is the message, which never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    /// Who should act on it.
    pub class: ErrorClass,
    /// What went wrong.
    pub kind: ErrorKind,
    /// The HTTP status, when a response arrived.
    #[serde(default)]
    pub status: Option<u16>,
    /// Human-readable explanation (key redacted, body excerpts capped).
    #[serde(default)]
    pub message: String,
    /// Attempts made for the request that failed (1 when not retried).
    #[serde(default)]
    pub attempts: u32,
    /// The circuit breaker opened: the request gave up early because its attempts
    /// kept failing with the very same error. Still retryable in a later run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub circuit_open: bool,
}

impl FetchError {
    /// An error of `kind` in its usual class, after one attempt.
    pub fn new(kind: ErrorKind, status: Option<u16>, message: impl Into<String>) -> FetchError {
        FetchError {
            class: kind.class(),
            kind,
            status,
            message: message.into(),
            attempts: 1,
            circuit_open: false,
        }
    }

    /// The same error in another class (e.g. a refused request that is a `Run` problem).
    pub fn with_class(mut self, class: ErrorClass) -> FetchError {
        self.class = class;
        self
    }

    /// The same error with the number of attempts made.
    pub fn with_attempts(mut self, attempts: u32) -> FetchError {
        self.attempts = attempts;
        self
    }

    /// True for class [`ErrorClass::Retryable`].
    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }

    /// The event shape: `{"class","kind","status","message","attempts"}`, plus
    /// `"circuit_open": true` when the breaker opened.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Decodes the shape written by [`FetchError::to_json`] (extra fields, such as an
    /// event's `ticker`, are ignored); `None` when it is not such an object.
    pub fn from_json(value: &serde_json::Value) -> Option<FetchError> {
        serde_json::from_value(value.clone()).ok()
    }
}
