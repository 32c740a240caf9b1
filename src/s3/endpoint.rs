//! The endpoint checks and retry limits every [`super::Bucket`] is built with.

use std::time::Duration;

use reqwest::Url;

use crate::secret::is_loopback;

use super::{S3Error, S3ErrorKind};

/// Longest a request may be retried for. object_store re-sends the same signed
/// request, and SigV4 signatures expire 15 minutes after signing: stay well below.
const MAX_RETRY_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Parses and checks the endpoint: http(s), a host, nothing else (no user info —
/// that would put a secret in a URL —, path, query or fragment).
pub(super) fn check_endpoint(endpoint: &str, allow_insecure_http: bool) -> Result<Url, S3Error> {
    let url = Url::parse(endpoint.trim()).map_err(|e| {
        config_error(format!(
            "invalid S3 endpoint ({e}): give scheme and host, e.g. https://files.massive.com"
        ))
    })?;
    let has_user = !url.username().is_empty() || url.password().is_some();
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || has_user {
        return Err(config_error(
            "invalid S3 endpoint: give https://host[:port] only (credentials go in the \
             environment, never in the URL)",
        ));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(config_error(format!(
            "invalid S3 endpoint {}{}: give the origin only; the bucket is a separate setting",
            url.origin().ascii_serialization(),
            url.path()
        )));
    }
    let origin = url.origin().ascii_serialization();
    if url.scheme() == "http" && !is_loopback(&url) {
        if !allow_insecure_http {
            return Err(config_error(format!(
                "refusing plain http to {origin}: signed requests and data would cross the \
                 network in clear; use https://, or allow insecure http if you really mean it"
            )));
        }
        tracing::warn!(
            "insecure http allowed: S3 requests and data go to {origin} in clear text; anyone \
             on the network path can read them"
        );
    }
    Ok(url)
}

/// How long object_store may keep retrying one request: every attempt's timeout plus
/// backoff, capped below the signature's lifetime.
pub(super) fn retry_window(timeout: Duration, retries: u32) -> Duration {
    let attempts = retries.saturating_add(1);
    (timeout.saturating_mul(attempts) + Duration::from_secs(15) * retries).min(MAX_RETRY_WINDOW)
}

pub(super) fn config_error(message: impl Into<String>) -> S3Error {
    S3Error::new(S3ErrorKind::Config, None, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert!(check_endpoint("https://files.massive.com", false).is_ok());
        assert!(check_endpoint("http://127.0.0.1:9000", false).is_ok());
        assert!(check_endpoint("http://localhost:9000/", false).is_ok());
        assert!(check_endpoint("http://[::1]:9000", false).is_ok());
        let e = check_endpoint("http://files.massive.com", false).unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::Config);
        assert!(e.message.contains("refusing plain http"), "{e}");
        assert!(check_endpoint("http://files.massive.com", true).is_ok());
        for bad in [
            "files.massive.com",
            "ftp://x",
            "https://a:b@x",
            "https://x/flatfiles",
        ] {
            let e = check_endpoint(bad, false).unwrap_err();
            assert_eq!(e.kind, S3ErrorKind::Config, "{bad}");
            assert!(!e.message.contains("a:b"), "{e}");
        }
    }

    #[test]
    fn retry_window_is_bounded() {
        assert_eq!(
            retry_window(Duration::from_secs(10), 2),
            Duration::from_secs(60)
        );
        assert_eq!(retry_window(Duration::from_secs(120), 8), MAX_RETRY_WINDOW);
    }
}
