//! When to retry and how long to wait: the retry policy, jittered backoff,
//! `Retry-After`, and the classification of responses and transport errors.

use std::error::Error as StdError;
use std::time::{Duration, SystemTime};

use crate::secret::{ApiKey, redact};

use super::decode::decode_page;
use super::request::excerpt;
use crate::ingest::error::{ErrorClass, ErrorKind, FetchError};

/// How one request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included (default 8, like the seed's ingestor).
    pub max_attempts: u32,
    /// Smallest backoff delay (default 500 ms).
    pub base: Duration,
    /// Largest backoff delay (default 30 s).
    pub max_backoff: Duration,
    /// Largest `Retry-After` honoured; longer values are clamped (default 60 s).
    pub max_retry_after: Duration,
    /// The circuit breaker: give up on a request once this many attempts in a row
    /// failed with the very same error (kind, status and message), before
    /// `max_attempts`; 0 (the default) never gives up early. 429s never count: the
    /// shared budget deals with them.
    pub same_error_limit: u32,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            same_error_limit: 0,
        }
    }
}

impl RetryPolicy {
    /// A fresh backoff sequence for one request.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            base: self.base,
            cap: self.max_backoff.max(self.base),
            prev: self.base,
        }
    }

    /// The delay before the next attempt: the server's `Retry-After` (clamped to
    /// `max_retry_after`) when it sent one, else the next jittered backoff.
    pub fn delay(&self, retry_after: Option<Duration>, backoff: &mut Backoff) -> Duration {
        match retry_after {
            Some(ra) => ra.min(self.max_retry_after),
            None => backoff.next_delay(),
        }
    }
}

/// Counts attempts in a row that failed with the same error, for the circuit breaker.
#[derive(Debug, Default)]
pub struct SameError {
    last: Option<(ErrorKind, Option<u16>, String)>,
    count: u32,
}

impl SameError {
    /// Records a failed attempt; true when the breaker of `policy` opens on it.
    pub fn opens(&mut self, err: &FetchError, policy: &RetryPolicy) -> bool {
        let sig = (err.kind, err.status, err.message.clone());
        if self.last.as_ref() == Some(&sig) {
            self.count += 1;
        } else {
            (self.last, self.count) = (Some(sig), 1);
        }
        policy.same_error_limit > 0
            && err.kind != ErrorKind::RateLimited
            && self.count >= policy.same_error_limit
    }
}

/// Exponential backoff with decorrelated jitter: each delay is drawn uniformly from
/// `[base, 3 × previous]`, capped at `max_backoff`. It grows like `base · 3ⁿ` on
/// average, never drops below `base`, and spreads concurrent retriers apart.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    prev: Duration,
}

impl Backoff {
    /// The next delay of the sequence.
    pub fn next_delay(&mut self) -> Duration {
        let lo = self.base.as_secs_f64();
        let hi = (self.prev.as_secs_f64() * 3.0).max(lo);
        let d = Duration::from_secs_f64(lo + fastrand::f64() * (hi - lo)).min(self.cap);
        self.prev = d;
        d
    }
}

/// Parses `Retry-After`: delta seconds (`"5"`, `"1.5"`) or an HTTP date (a date in
/// the past gives zero). `None` when absent or unreadable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(v).ok()?;
    let now = jiff::Timestamp::try_from(now).ok()?;
    let ms = at
        .as_millisecond()
        .saturating_sub(now.as_millisecond())
        .max(0);
    Some(Duration::from_millis(ms as u64))
}

/// Classifies a non-2xx response from its status and body.
pub fn classify_status(status: u16, body: &[u8], key: &ApiKey) -> FetchError {
    let detail = body_detail(body, key);
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let head = format!("HTTP {status} {reason}").trim_end().to_string();
    let msg = |advice: &str| {
        let mut m = head.clone();
        if !detail.is_empty() {
            m.push_str(": ");
            m.push_str(&detail);
        }
        if !advice.is_empty() {
            m.push_str(" — ");
            m.push_str(advice);
        }
        m
    };
    let (kind, advice) = match status {
        429 => (ErrorKind::RateLimited, ""),
        408 => (ErrorKind::Timeout, ""),
        499..=599 => (ErrorKind::Server, ""),
        401 if says_key_missing(&detail) => (ErrorKind::MissingKey, "set POLYGON_API_KEY"),
        401 => (
            ErrorKind::Unauthorized,
            "the API key was rejected; check POLYGON_API_KEY",
        ),
        403 if says_key_missing(&detail) => (ErrorKind::MissingKey, "set POLYGON_API_KEY"),
        403 if says_key_invalid(&detail) => (
            ErrorKind::Unauthorized,
            "the API key was rejected; check POLYGON_API_KEY",
        ),
        403 => (
            ErrorKind::NotEntitled,
            "the plan does not include this data",
        ),
        404 => (ErrorKind::NotFound, ""),
        300..=399 => {
            return FetchError::new(
                ErrorKind::BadRequest,
                Some(status),
                msg("the base URL redirects; set --base-url to the final address"),
            )
            .with_class(ErrorClass::Run);
        }
        _ => (ErrorKind::BadRequest, ""),
    };
    FetchError::new(kind, Some(status), msg(advice))
}

/// Classifies a 200 page whose `status` is not a success (`ERROR`, `NOT_AUTHORIZED`, …).
pub fn classify_api_status(
    status: Option<&str>,
    problem: Option<&str>,
    key: &ApiKey,
) -> FetchError {
    let st = status.unwrap_or("(none)");
    let detail = excerpt(&redact(problem.unwrap_or(""), key));
    let message = if detail.is_empty() {
        format!("HTTP 200 with status {st}")
    } else {
        format!("HTTP 200 with status {st}: {detail}")
    };
    let kind = if st.eq_ignore_ascii_case("NOT_AUTHORIZED") {
        if says_key_missing(&detail) {
            ErrorKind::MissingKey
        } else if says_key_invalid(&detail) {
            ErrorKind::Unauthorized
        } else {
            ErrorKind::NotEntitled
        }
    } else {
        ErrorKind::ApiError
    };
    FetchError::new(kind, Some(200), message)
}

/// Classifies a transport failure (no complete response).
pub fn classify_transport(err: &reqwest::Error, key: &ApiKey) -> FetchError {
    let chain = redact(&error_chain(err), key);
    let kind = if is_tls(err) {
        ErrorKind::Tls
    } else if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_body() || err.is_decode() {
        ErrorKind::Body
    } else {
        ErrorKind::Connect
    };
    let what = match kind {
        ErrorKind::Tls => "TLS failure",
        ErrorKind::Timeout => "timed out",
        ErrorKind::Body => "connection dropped mid-body",
        _ => "connection failed",
    };
    FetchError::new(kind, None, format!("{what}: {}", excerpt(&chain)))
}

/// A body's explanation: the JSON `error`/`message` when it is a page, else the text.
fn body_detail(body: &[u8], key: &ApiKey) -> String {
    let text = match decode_page(body) {
        Ok(p) => p.problem().map(str::to_string).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
    };
    excerpt(&redact(&text, key))
}

fn says_key_missing(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    (t.contains("api key") || t.contains("apikey") || t.contains("authorization"))
        && (t.contains("not provided") || t.contains("missing") || t.contains("no api key"))
}

fn says_key_invalid(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    (t.contains("key") || t.contains("token") || t.contains("credential"))
        && [
            "unknown",
            "invalid",
            "not valid",
            "not found",
            "expired",
            "revoked",
            "incorrect",
        ]
        .iter()
        .any(|w| t.contains(w))
}

/// `err: cause: cause …`, each level once.
fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// True when a rustls error is anywhere in the chain (also inside `io::Error`s,
/// whose `source()` skips the wrapped error).
fn is_tls(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_tls(inner)
        {
            return true;
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn retry_after_is_clamped_and_backoff_stays_in_bounds() {
        let p = RetryPolicy::default();
        let mut b = p.backoff();
        assert_eq!(
            p.delay(Some(Duration::from_secs(3600)), &mut b),
            Duration::from_secs(60)
        );
        for _ in 0..50 {
            let d = p.delay(None, &mut b);
            assert!(d >= p.base && d <= p.max_backoff, "{d:?}");
        }
    }

    #[test]
    fn statuses_are_classified_per_contract() {
        let k = ApiKey::new("SECRETKEY");
        let c = |s: u16, body: &str| {
            let e = classify_status(s, body.as_bytes(), &k);
            (e.class, e.kind)
        };
        use ErrorClass::*;
        use ErrorKind::*;
        assert_eq!(c(429, ""), (Retryable, RateLimited));
        assert_eq!(c(502, "<html>Bad Gateway</html>"), (Retryable, Server));
        assert_eq!(
            c(400, r#"{"status":"ERROR","error":"bad date"}"#),
            (Ticker, BadRequest)
        );
        assert_eq!(c(404, ""), (Ticker, NotFound));
        assert_eq!(
            c(
                403,
                r#"{"status":"NOT_AUTHORIZED","message":"You are not entitled to this data."}"#
            ),
            (Ticker, NotEntitled)
        );
        assert_eq!(
            c(403, r#"{"status":"ERROR","error":"Unknown API Key"}"#),
            (Run, Unauthorized)
        );
        assert_eq!(
            c(401, r#"{"status":"ERROR","error":"Unknown API Key"}"#),
            (Run, Unauthorized)
        );
        assert_eq!(
            c(
                401,
                r#"{"status":"ERROR","error":"API Key was not provided"}"#
            ),
            (Run, MissingKey)
        );
        assert_eq!(c(301, ""), (Run, BadRequest));
        let e = classify_status(500, b"key SECRETKEY leaked", &k);
        assert!(
            !e.message.contains("SECRETKEY") && e.message.starts_with("HTTP 500"),
            "{e}"
        );
        let e = classify_api_status(Some("ERROR"), Some("try again"), &k);
        assert_eq!((e.class, e.kind), (Retryable, ApiError));
    }
}
