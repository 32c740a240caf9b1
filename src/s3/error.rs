//! The classified error of an S3 request, and the classifier that turns
//! object_store's errors into it.
//!
//! object_store keeps the HTTP status and the error body (S3's XML) inside a
//! `RetryError` that is not public, but its `Display` ends with
//! `Server returned non-2xx status code: 403 Forbidden: <?xml ...><Code>...</Code>`,
//! and the `Error` variant tells 401/403/404 apart. S3 answers 403 both for a wrong
//! key pair (`InvalidAccessKeyId`, `SignatureDoesNotMatch`) and for a refusal
//! (`AccessDenied`), so the `<Code>` element decides. A HEAD response has no body:
//! [`super::Bucket::head`] asks again with a one-byte GET to get the code; a 403
//! that still has no code is reported as [`S3ErrorKind::Forbidden`] with a message
//! saying both causes are possible.

use object_store::client::{HttpError, HttpErrorKind};

use super::S3Credentials;

/// What went wrong, which decides who should act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3ErrorKind {
    /// The key pair is wrong: `InvalidAccessKeyId`, `SignatureDoesNotMatch`, an
    /// expired or invalid token, or HTTP 401. Fix the credentials.
    BadCredentials,
    /// HTTP 403 `AccessDenied` (and kin): the key pair is valid but not entitled to
    /// this object or not permitted this operation.
    Forbidden,
    /// No such key (or no such bucket).
    NotFound,
    /// 5xx, `SlowDown`, 429, timeouts, connection failures: still failing after the
    /// retries; a later attempt may succeed.
    Transient,
    /// The configuration cannot work: bad endpoint, missing credentials, region or
    /// TLS trouble, refused `http://`.
    Config,
    /// The body arrived incomplete or inconsistent (shorter than Content-Length).
    Corrupt,
    /// A create-only put ([`super::Bucket::put_if_absent`]) found the object already
    /// there: another writer created it first.
    AlreadyExists,
    /// A replace-only-if-unchanged put ([`super::Bucket::put_if_match`]) found another
    /// ETag (or no object): another writer changed it since it was read.
    PreconditionFailed,
    /// Anything else.
    Other,
}

/// A failed S3 operation. `Display` is one line naming the problem and the fix; it
/// never contains the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct S3Error {
    /// What went wrong.
    pub kind: S3ErrorKind,
    /// The object key (or list prefix) concerned, when there is one.
    pub key: Option<String>,
    /// The one-line explanation.
    pub message: String,
}

impl S3Error {
    /// An error of `kind` about `key`.
    pub fn new(kind: S3ErrorKind, key: Option<&str>, message: impl Into<String>) -> S3Error {
        S3Error {
            kind,
            key: key.map(str::to_string),
            message: message.into(),
        }
    }

    /// True for [`S3ErrorKind::Transient`]: trying again later may help.
    pub fn is_transient(&self) -> bool {
        self.kind == S3ErrorKind::Transient
    }
}

/// The operation that failed, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    List,
    Get,
    Head,
    Put,
    Copy,
    Delete,
}

/// Where a failure happened: enough to say what was being done and what to fix.
pub(crate) struct Context<'a> {
    pub op: Op,
    pub bucket: &'a str,
    pub key: &'a str,
    /// The endpoint's `scheme://host[:port]`.
    pub origin: &'a str,
    pub credentials: &'a S3Credentials,
}

impl Context<'_> {
    fn what(&self) -> String {
        let (bucket, key) = (self.bucket, self.key);
        match self.op {
            Op::List => format!("listing s3://{bucket}/{key}*"),
            Op::Get => format!("GET s3://{bucket}/{key}"),
            Op::Head => format!("HEAD s3://{bucket}/{key}"),
            Op::Put => format!("PUT s3://{bucket}/{key}"),
            Op::Copy => format!("copying s3://{bucket}/{key}"),
            Op::Delete => format!("DELETE s3://{bucket}/{key}"),
        }
    }
}

/// The facts pulled out of an object_store error.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// S3's `<Code>` from the error body.
    pub code: Option<String>,
    /// S3's `<Message>` from the error body.
    pub s3_message: Option<String>,
    /// The transport failure, when no (complete) response arrived.
    pub transport: Option<HttpErrorKind>,
    /// The innermost error's text (redacted, one line).
    pub leaf: String,
    /// The whole chain's text (redacted, one line).
    pub text: String,
}

/// Converts an object_store error into an [`S3Error`] for `ctx`.
pub(crate) fn classify(err: &object_store::Error, ctx: &Context<'_>) -> S3Error {
    let facts = facts(err, ctx.credentials);
    let kind = decide(&facts);
    let message = ctx.credentials.redact(&message(kind, &facts, ctx));
    S3Error::new(kind, Some(ctx.key), message)
}

/// Reads status, S3 code and transport kind out of an error and its sources.
pub(crate) fn facts(err: &object_store::Error, creds: &S3Credentials) -> Facts {
    let text = one_line(&creds.redact(&err.to_string()));
    let mut status = match err {
        object_store::Error::NotFound { .. } => Some(404),
        object_store::Error::PermissionDenied { .. } => Some(403),
        object_store::Error::Unauthenticated { .. } => Some(401),
        _ => None,
    };
    if status.is_none() {
        status = status_in(&text);
    }
    let mut transport = None;
    let mut leaf = text.clone();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err as _);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<HttpError>() {
            transport.get_or_insert(h.kind());
        }
        leaf = one_line(&creds.redact(&e.to_string()));
        source = e.source();
    }
    Facts {
        status,
        code: element(&text, "Code"),
        s3_message: element(&text, "Message"),
        transport,
        leaf,
        text,
    }
}

/// The kind for a set of facts: the S3 code first (it is what tells the 403s apart),
/// then the status, then the transport failure.
pub(crate) fn decide(f: &Facts) -> S3ErrorKind {
    use S3ErrorKind::*;
    if let Some(code) = f.code.as_deref() {
        match code {
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "TokenRefreshRequired"
            | "InvalidSecurity"
            | "MissingSecurityHeader" => {
                return BadCredentials;
            }
            "AccessDenied" | "AllAccessDisabled" | "AccountProblem" | "InvalidPayer"
            | "NotSignedUp" => return Forbidden,
            // The machine's clock, or a region the endpoint does not sign for.
            "RequestTimeTooSkewed"
            | "AuthorizationHeaderMalformed"
            | "PermanentRedirect"
            | "InvalidBucketName" => return Config,
            "NoSuchKey" | "NoSuchBucket" => return NotFound,
            "SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout" => {
                return Transient;
            }
            "PreconditionFailed" | "ConditionalRequestConflict" => return PreconditionFailed,
            _ => {}
        }
    }
    match f.status {
        Some(401) => return BadCredentials,
        Some(403) => return Forbidden,
        Some(404) => return NotFound,
        Some(408 | 429) => return Transient,
        Some(412) => return PreconditionFailed,
        Some(s) if s >= 500 => return Transient,
        Some(300..=399) => return Config,
        _ => {}
    }
    // The top error's text need not include the innermost one's (HttpError hides it).
    let lower = format!("{} {}", f.text, f.leaf).to_ascii_lowercase();
    if is_tls(&lower) || lower.contains("redirect without location") {
        return Config;
    }
    // hyper's words for a body that ended before its Content-Length, and
    // object_store's for a resumed download whose range answer does not fit.
    if lower.contains("end of file before message length")
        || lower.contains("content-range")
        || lower.contains("non-partial response")
    {
        return Corrupt;
    }
    match f.transport {
        Some(HttpErrorKind::Decode) => Corrupt,
        Some(_) => Transient,
        None if f.status.is_some() => Other,
        None if lower.contains("generic s3 error") && lower.contains("credential") => Config,
        None => Other,
    }
}

/// rustls's words for a handshake that cannot succeed by trying again (a wrong
/// certificate, or no TLS at all on the other end).
fn is_tls(lower: &str) -> bool {
    [
        "certificate",
        "received corrupt message",
        "peer is incompatible",
        "peer misbehaved",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// The one-line message for `kind`.
fn message(kind: S3ErrorKind, f: &Facts, ctx: &Context<'_>) -> String {
    let what = ctx.what();
    let origin = ctx.origin;
    let why = reason(f);
    let creds = ctx.credentials;
    match kind {
        S3ErrorKind::BadCredentials => {
            let check = match f.code.as_deref() {
                Some("SignatureDoesNotMatch") => creds.secret_hint(),
                Some("InvalidAccessKeyId") => creds.id_hint(),
                _ => format!("{} and {}", creds.id_hint(), creds.secret_hint()),
            };
            format!("S3 credentials rejected by {origin} ({why}) while {what}: check {check}")
        }
        S3ErrorKind::Forbidden if f.code.is_none() => format!(
            "access denied by {origin} ({why}, no error code) while {what}: the key pair is \
             not entitled to this object, or is wrong; check {} and the plan's flat-file access",
            creds.id_hint()
        ),
        S3ErrorKind::Forbidden => format!(
            "access denied by {origin} ({why}) while {what}: the key pair is valid but not \
             entitled to this object or operation; check the plan's flat-file access"
        ),
        S3ErrorKind::NotFound if f.code.as_deref() == Some("NoSuchBucket") => format!(
            "no bucket {} at {origin} (NoSuchBucket) while {what}: check the bucket name",
            ctx.bucket
        ),
        S3ErrorKind::NotFound => format!("not found: {what} ({why})"),
        S3ErrorKind::Transient => {
            format!("{what} failed at {origin}: {why}; a later attempt may succeed")
        }
        S3ErrorKind::Corrupt => format!("{what}: incomplete or corrupt body ({why}); try again"),
        S3ErrorKind::AlreadyExists => {
            format!("{what}: the object already exists (another writer created it first)")
        }
        S3ErrorKind::PreconditionFailed => format!(
            "{what}: the object changed since it was read (another writer replaced or \
             removed it; {why})"
        ),
        S3ErrorKind::Config if is_tls(&format!("{} {}", f.text, f.leaf).to_lowercase()) => {
            format!(
                "TLS with {origin} failed while {what}: {why}; check the endpoint's scheme, host and port"
            )
        }
        S3ErrorKind::Config => format!("{what}: cannot work as configured: {why}"),
        S3ErrorKind::Other => format!("{what} failed at {origin}: {why}"),
    }
}

/// A short reason: S3's code (and message), else the status, else the innermost error.
fn reason(f: &Facts) -> String {
    let retries = retries_in(&f.text)
        .map(|n| format!(", after {n} retries"))
        .unwrap_or_default();
    let status = f.status.map(|s| format!("HTTP {s}")).unwrap_or_default();
    let mut out = match (&f.code, &f.s3_message) {
        (Some(code), Some(msg)) if !status.is_empty() => format!("{code}, {status}: {msg}"),
        (Some(code), _) if !status.is_empty() => format!("{code}, {status}"),
        (Some(code), _) => code.clone(),
        (None, _) if !status.is_empty() => status,
        (None, _) => f.leaf.clone(),
    };
    out.push_str(&retries);
    cap(&out, 300)
}

/// The status in object_store's "status code: 503 Service Unavailable" text.
fn status_in(text: &str) -> Option<u16> {
    let rest = &text[text.find("status code: ")? + "status code: ".len()..];
    rest.get(..3)?.parse().ok()
}

/// The retry count in object_store's "after 3 retries" text.
fn retries_in(text: &str) -> Option<u32> {
    let before = &text[..text.find(" retries")?];
    before.rsplit(' ').next()?.parse().ok()
}

/// The text of the first `<name>` element (S3 error bodies are flat XML).
pub(crate) fn element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    let value = text[start..end].trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// Collapses whitespace (XML bodies carry newlines) so a message stays one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
