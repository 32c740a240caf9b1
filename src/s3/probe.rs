//! [`Bucket::probe`]: one quick question to an endpoint before any real work, so a
//! wrong endpoint fails in seconds with one line naming it. Without it the first real
//! request meets object_store's retries ([`S3Config::retries`] attempts, each up to
//! [`S3Config::timeout`], with backoff): minutes before the same answer.

use std::time::Duration;

use object_store::client::HttpErrorKind;
use object_store::list::{PaginatedListOptions, PaginatedListStore};

use super::error::{Facts, facts};
use super::{Bucket, S3Config, S3Error, S3ErrorKind};

/// Longest the probe waits for the endpoint, to connect and to answer: far above a
/// healthy store's listing (tens of ms), far below the retries it spares.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl Bucket {
    /// Lists at most one key under `prefix` on `cfg`'s endpoint: one request, no
    /// retries, [`PROBE_TIMEOUT`] to connect and answer.
    ///
    /// Fails ([`S3ErrorKind::Config`]) when nothing answers (refused, unreachable,
    /// silent), when the key pair is rejected or when the bucket does not exist: the
    /// real requests would meet the same, after their retries. Any other answer (a
    /// refused listing, a 503) shows the endpoint is there: Ok, and the real requests
    /// (with their retries) decide.
    pub async fn probe(cfg: &S3Config, prefix: &str) -> Result<(), S3Error> {
        let mut quick = cfg.clone();
        quick.retries = 0;
        quick.timeout = PROBE_TIMEOUT;
        let bucket = Bucket::new(quick)?;
        let opts = PaginatedListOptions {
            max_keys: Some(1),
            ..Default::default()
        };
        let listed = bucket
            .store
            .list_paginated(Some(prefix).filter(|p| !p.is_empty()), opts)
            .await;
        let Err(err) = listed else {
            tracing::debug!(origin = bucket.origin(), "S3 endpoint answered the probe");
            return Ok(());
        };
        let found = facts(&err, &cfg.credentials);
        let classified = bucket.error(&err, super::error::Op::List, prefix);
        match verdict(&found, classified.kind) {
            Verdict::Answered => Ok(()),
            Verdict::Refused => Err(S3Error::new(
                S3ErrorKind::Config,
                Some(prefix),
                classified.message,
            )),
            Verdict::Silent(why) => Err(S3Error::new(
                S3ErrorKind::Config,
                Some(prefix),
                format!(
                    "the S3 endpoint {} {why}; check {}, and that the store runs there",
                    bucket.origin(),
                    cfg.endpoint_var.as_deref().unwrap_or("the endpoint")
                ),
            )),
        }
    }
}

/// What the probe's failure says about the endpoint.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// It answered: the endpoint is there, whatever the answer.
    Answered,
    /// It answered with something no retry changes: a rejected key pair, no bucket.
    Refused,
    /// Nothing answered, for this reason (a phrase after "the S3 endpoint X").
    Silent(String),
}

fn verdict(f: &Facts, kind: S3ErrorKind) -> Verdict {
    if f.status.is_none() {
        let secs = PROBE_TIMEOUT.as_secs();
        match f.transport {
            Some(HttpErrorKind::Timeout) => {
                return Verdict::Silent(format!("did not answer within {secs} s"));
            }
            Some(HttpErrorKind::Connect) => {
                return Verdict::Silent(format!("cannot be reached: {}", f.leaf));
            }
            Some(HttpErrorKind::Request | HttpErrorKind::Interrupted) => {
                return Verdict::Silent(format!("dropped the connection: {}", f.leaf));
            }
            _ => {}
        }
    }
    let no_bucket = f.code.as_deref() == Some("NoSuchBucket");
    match kind {
        S3ErrorKind::BadCredentials | S3ErrorKind::Config => Verdict::Refused,
        S3ErrorKind::NotFound if no_bucket => Verdict::Refused,
        _ => Verdict::Answered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts_of(
        status: Option<u16>,
        code: Option<&str>,
        transport: Option<HttpErrorKind>,
    ) -> Facts {
        Facts {
            status,
            code: code.map(str::to_string),
            transport,
            leaf: "connection refused".into(),
            ..Facts::default()
        }
    }

    #[test]
    fn silence_and_rejection_fail_the_probe_any_other_answer_passes() {
        use S3ErrorKind::*;
        let timeout = facts_of(None, None, Some(HttpErrorKind::Timeout));
        assert_eq!(
            verdict(&timeout, Transient),
            Verdict::Silent("did not answer within 5 s".into())
        );
        let refused = facts_of(None, None, Some(HttpErrorKind::Connect));
        assert!(
            matches!(verdict(&refused, Transient), Verdict::Silent(w) if w.contains("refused"))
        );
        let bad_key = facts_of(Some(403), Some("InvalidAccessKeyId"), None);
        assert_eq!(verdict(&bad_key, BadCredentials), Verdict::Refused);
        let no_bucket = facts_of(Some(404), Some("NoSuchBucket"), None);
        assert_eq!(verdict(&no_bucket, NotFound), Verdict::Refused);
        for (status, code, kind) in [
            (503, "SlowDown", Transient),
            (403, "AccessDenied", Forbidden),
            (500, "InternalError", Transient),
        ] {
            let f = facts_of(Some(status), Some(code), Some(HttpErrorKind::Request));
            assert_eq!(verdict(&f, kind), Verdict::Answered, "{code}");
        }
    }
}
