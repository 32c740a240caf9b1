//! [`Bucket`]: list, get (whole or a byte range), head, put (plain or conditional),
//! copy and delete on one bucket, over object_store's S3 store.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::endpoint::{check_endpoint, config_error, retry_window};
use super::error::{Context, Op, classify};
use super::{Object, ObjectInfo, S3Config, S3Credentials, S3Error, S3ErrorKind};
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};

/// One bucket on one endpoint. Cheap to clone; connections are shared.
#[derive(Clone)]
pub struct Bucket {
    pub(super) store: Arc<AmazonS3>,
    bucket: String,
    /// `scheme://host[:port]`, for messages.
    origin: String,
    credentials: S3Credentials,
}

impl Bucket {
    /// Checks the configuration and builds the client: https (rustls with ring, the
    /// system's roots as for the Polygon client), path-style requests, object_store's
    /// retries. `http://` is refused for hosts other than loopback unless
    /// `allow_insecure_http`, which then logs a warning.
    pub fn new(cfg: S3Config) -> Result<Bucket, S3Error> {
        let url = check_endpoint(&cfg.endpoint, cfg.allow_insecure_http)?;
        let origin = url.origin().ascii_serialization();
        if cfg.bucket.trim().is_empty() || cfg.bucket.contains('/') {
            return Err(config_error(format!(
                "invalid bucket name {:?}: give the bare name (e.g. flatfiles)",
                cfg.bucket
            )));
        }
        if cfg.credentials.is_empty() {
            return Err(config_error(
                "empty S3 credentials: both the access key id and the secret are needed",
            ));
        }
        // reqwest is built without a default crypto provider (no aws-lc); object_store
        // builds its own reqwest client, so ring must be the process default. Only the
        // first install wins; later calls get an Err to ignore.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = ClientOptions::new()
            .with_allow_http(url.scheme() == "http")
            .with_timeout(cfg.timeout)
            .with_connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .with_user_agent(object_store::HeaderValue::from_static(concat!(
                "barsmith/",
                env!("CARGO_PKG_VERSION")
            )));
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: cfg.retries as usize,
            retry_timeout: retry_window(cfg.timeout, cfg.retries),
        };
        let (id, secret) = cfg.credentials.pair();
        let store = AmazonS3Builder::new()
            .with_endpoint(origin.clone())
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(id)
            .with_secret_access_key(secret)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(url.scheme() == "http")
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| {
                config_error(format!(
                    "cannot set up the S3 client for {origin}: {}",
                    cfg.credentials.redact(&e.to_string())
                ))
            })?;
        tracing::debug!(%origin, bucket = %cfg.bucket, retries = cfg.retries, "S3 client ready");
        Ok(Bucket {
            store: Arc::new(store),
            bucket: cfg.bucket,
            origin,
            credentials: cfg.credentials,
        })
    }

    /// Every object whose key starts with `prefix` (a plain string prefix, no `/`
    /// added), following continuation tokens to the last page, sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0u32;
        let mut seen = std::collections::HashSet::new();
        loop {
            let opts = PaginatedListOptions {
                page_token: token.take(),
                ..Default::default()
            };
            let page = self
                .store
                .list_paginated(Some(prefix).filter(|p| !p.is_empty()), opts)
                .await
                .map_err(|e| self.error(&e, Op::List, prefix))?;
            pages += 1;
            out.extend(page.result.objects.into_iter().map(info));
            match page.page_token.filter(|t| !t.is_empty()) {
                // A server that hands back a token already followed would page forever.
                Some(next) if !seen.insert(next.clone()) => {
                    return Err(S3Error::new(
                        S3ErrorKind::Other,
                        Some(prefix),
                        format!(
                            "listing s3://{}/{prefix}* at {}: the server repeated a \
                             continuation token after {pages} pages; stopped",
                            self.bucket, self.origin
                        ),
                    ));
                }
                Some(next) => token = Some(next),
                None => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        tracing::debug!(prefix, objects = out.len(), pages, "listed");
        Ok(out)
    }

    /// The whole object. Failed requests are retried (5xx, SlowDown, timeouts,
    /// connection errors), a body cut mid-way is resumed; a body whose length still
    /// differs from the object's size is [`S3ErrorKind::Corrupt`].
    pub async fn get(&self, key: &str) -> Result<Object, S3Error> {
        let path = self.path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| self.error(&e, Op::Get, key))?;
        let meta = result.meta.clone();
        let body = result
            .bytes()
            .await
            .map_err(|e| self.error(&e, Op::Get, key))?;
        if body.len() as u64 != meta.size {
            return Err(S3Error::new(
                S3ErrorKind::Corrupt,
                Some(key),
                format!(
                    "GET s3://{}/{key}: body is {} bytes, the object is {}; try again",
                    self.bucket,
                    body.len(),
                    meta.size
                ),
            ));
        }
        tracing::debug!(key, bytes = body.len(), "got");
        Ok(Object {
            info: info(meta),
            body,
        })
    }

    /// Bytes `range` of the object (e.g. a Parquet footer), in one ranged GET. A range
    /// reaching past the end gives the bytes up to the end.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, S3Error> {
        let path = self.path(key)?;
        let want = range.end.saturating_sub(range.start);
        let body = self
            .store
            .get_range(&path, range)
            .await
            .map_err(|e| self.error(&e, Op::Get, key))?;
        tracing::debug!(key, bytes = body.len(), want, "got a range");
        Ok(body)
    }

    /// The object's metadata, without its body.
    pub async fn head(&self, key: &str) -> Result<ObjectInfo, S3Error> {
        let path = self.path(key)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(info(meta)),
            Err(e @ object_store::Error::PermissionDenied { .. }) => {
                Err(self.explain_head_403(&path, key, &e).await)
            }
            Err(e) => Err(self.error(&e, Op::Head, key)),
        }
    }

    /// A HEAD 403 has no body, so no code telling bad credentials from a refusal: ask
    /// the same question with a one-byte GET, whose 403 carries the code. Any other
    /// outcome of that probe keeps the HEAD's own error.
    async fn explain_head_403(
        &self,
        path: &Path,
        key: &str,
        head: &object_store::Error,
    ) -> S3Error {
        let probe = GetOptions {
            range: Some(GetRange::Bounded(0..1)),
            ..Default::default()
        };
        match self.store.get_opts(path, probe).await {
            Err(e @ object_store::Error::PermissionDenied { .. }) => {
                let explained = self.error(&e, Op::Head, key);
                if explained.message.contains("no error code") {
                    self.error(head, Op::Head, key)
                } else {
                    explained
                }
            }
            _ => self.error(head, Op::Head, key),
        }
    }

    /// Writes `body` as `key` in one PUT (no multipart: meant for objects up to a few
    /// hundred MB) and returns its new metadata with S3's ETag.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<ObjectInfo, S3Error> {
        let path = self.path(key)?;
        let size = body.len() as u64;
        let result = self
            .store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| self.error(&e, Op::Put, key))?;
        tracing::debug!(key, bytes = size, "put");
        Ok(ObjectInfo {
            key: key.to_string(),
            size,
            etag: result.e_tag.as_deref().map(unquote),
            last_modified: now_ms(),
        })
    }

    /// Writes `body` as `key` only if no object `key` exists (`If-None-Match: *`): of
    /// writers racing to create one key, exactly one succeeds; the others get
    /// [`S3ErrorKind::AlreadyExists`].
    pub async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<ObjectInfo, S3Error> {
        self.put_expecting(key, body, None).await
    }

    /// Replaces `key` with `body` only if its current ETag is `etag` (`If-Match`): a
    /// read-modify-write that loses a race (or finds the object gone) gets
    /// [`S3ErrorKind::PreconditionFailed`] instead of overwriting another writer's work.
    pub async fn put_if_match(
        &self,
        key: &str,
        body: Bytes,
        etag: &str,
    ) -> Result<ObjectInfo, S3Error> {
        self.put_expecting(key, body, Some(etag)).await
    }

    /// [`Bucket::put_if_match`] when `expected` is the ETag read, else
    /// [`Bucket::put_if_absent`]: the write of a read-modify-write that found the object
    /// (or found none).
    ///
    /// A conditional PUT is not retried after a timeout (object_store retries only
    /// idempotent requests then), but a 5xx is: if a first attempt landed and its
    /// answer was lost, the retry fails its precondition. Callers therefore re-read
    /// after a failed precondition and recognise their own write.
    pub async fn put_expecting(
        &self,
        key: &str,
        body: Bytes,
        expected: Option<&str>,
    ) -> Result<ObjectInfo, S3Error> {
        let path = self.path(key)?;
        let size = body.len() as u64;
        let mode = match expected {
            None => PutMode::Create,
            // Quoted, as the HTTP entity-tag grammar (and S3's own answers) have it.
            Some(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(format!("\"{}\"", unquote(etag))),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        let result = self
            .store
            .put_opts(&path, PutPayload::from(body), opts)
            .await
            .map_err(|e| self.conditional_error(&e, key, expected.is_none()))?;
        tracing::debug!(key, bytes = size, expected, "conditional put");
        Ok(ObjectInfo {
            key: key.to_string(),
            size,
            etag: result.e_tag.as_deref().map(unquote),
            last_modified: now_ms(),
        })
    }

    /// Copies `from` to `to` on the server (S3's CopyObject: no body crosses the
    /// network), replacing any object `to`.
    pub async fn copy(&self, from: &str, to: &str) -> Result<(), S3Error> {
        let (src, dest) = (self.path(from)?, self.path(to)?);
        self.store
            .copy(&src, &dest)
            .await
            .map_err(|e| self.error(&e, Op::Copy, from))?;
        tracing::debug!(from, to, "copied");
        Ok(())
    }

    /// Removes `key`. Removing a key that does not exist succeeds (S3 answers 204).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let path = self.path(key)?;
        self.store
            .delete(&path)
            .await
            .map_err(|e| self.error(&e, Op::Delete, key))?;
        tracing::debug!(key, "deleted");
        Ok(())
    }

    /// The error of a conditional PUT. object_store names a failed `If-None-Match`
    /// `AlreadyExists`, a failed `If-Match` `Precondition` (S3's 404 for a vanished
    /// object included), and a 409 that outlasted its retries `AlreadyExists` too.
    fn conditional_error(&self, err: &object_store::Error, key: &str, create: bool) -> S3Error {
        let kind = match err {
            object_store::Error::AlreadyExists { .. } if create => S3ErrorKind::AlreadyExists,
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => S3ErrorKind::PreconditionFailed,
            _ => return self.error(err, Op::Put, key),
        };
        let what = if create {
            "the object already exists (another writer created it first)"
        } else {
            "the object changed since it was read (another writer replaced or removed it)"
        };
        tracing::debug!(key, ?kind, "conditional put refused");
        S3Error::new(
            kind,
            Some(key),
            format!("PUT s3://{}/{key}: {what}", self.bucket),
        )
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.bucket
    }

    /// The endpoint's `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `key` as object_store's path, refusing what S3 would store under another name
    /// (empty segments, `.`/`..`, a leading or trailing `/`).
    fn path(&self, key: &str) -> Result<Path, S3Error> {
        Path::parse(key)
            .ok()
            .filter(|p| p.as_ref() == key && !key.is_empty())
            .ok_or_else(|| {
                S3Error::new(
                    S3ErrorKind::Other,
                    Some(key),
                    format!(
                        "invalid object key {key:?}: keys are non-empty `/`-separated names \
                         without empty, `.` or `..` parts"
                    ),
                )
            })
    }

    pub(super) fn error(&self, err: &object_store::Error, op: Op, key: &str) -> S3Error {
        let e = classify(
            err,
            &Context {
                op,
                bucket: &self.bucket,
                key,
                origin: &self.origin,
                credentials: &self.credentials,
            },
        );
        tracing::debug!(kind = ?e.kind, error = %e.message, "S3 request failed");
        e
    }
}

// By hand: object_store's own Debug prints the access key id (it masks the secret).
impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("bucket", &self.bucket)
            .field("origin", &self.origin)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

fn info(meta: ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        key: meta.location.to_string(),
        size: meta.size,
        etag: meta.e_tag.as_deref().map(unquote),
        last_modified: meta.last_modified.timestamp_millis(),
    }
}

/// S3 sends ETags quoted (`"9b2c…"`); callers compare bare values.
fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(unquote("\"abc\""), "abc");
        assert_eq!(unquote("abc"), "abc");
    }
}
