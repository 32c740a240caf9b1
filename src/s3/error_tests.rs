//! The classifier over sample object_store errors shaped like the real ones (their
//! `Display` as object_store 0.14.2 writes it, with S3's XML bodies).

use object_store::client::{HttpError, HttpErrorKind};

use super::*;

const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

/// A plain error with a fixed text, standing in for object_store's private RetryError.
#[derive(Debug)]
struct Text(String);

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Text {}

fn creds() -> S3Credentials {
    S3Credentials::new(KEY_ID.into(), SECRET.into())
}

/// The text object_store's retry error prints for an HTTP error response.
fn retry_text(method: &str, status: &str, body: &str) -> Text {
    Text(format!(
        "Error performing {method} https://files.massive.com/flatfiles/k in 52ms - Server \
         returned non-2xx status code: {status}: {body}"
    ))
}

/// An S3 error body (AWS echoes the access key id in some of them).
fn xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\n\
         <Message>{message}</Message><AWSAccessKeyId>{KEY_ID}</AWSAccessKeyId>\
         <RequestId>4442587FB7D0A2F9</RequestId></Error>"
    )
}

fn ctx(op: Op, creds: &S3Credentials) -> Context<'_> {
    Context {
        op,
        bucket: "flatfiles",
        key: "us_stocks_sip/minute_aggs_v1/2024/01/2024-01-02.csv.gz",
        origin: "https://files.massive.com",
        credentials: creds,
    }
}

fn generic(source: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: Box::new(source),
    }
}

fn permission_denied(code: &str, message: &str) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: "k".into(),
        source: Box::new(retry_text("GET", "403 Forbidden", &xml(code, message))),
    }
}

/// A list failure: object_store wraps it as `Generic`, the status only in the text.
fn list_failure(status: &str, body: &str) -> object_store::Error {
    let inner = retry_text("GET", status, body);
    generic(Text(format!("Error performing list request: {inner}")))
}

/// Classifies with code-given credentials and checks what every message must be.
fn check(err: &object_store::Error, op: Op) -> S3Error {
    let c = creds();
    let e = classify(err, &ctx(op, &c));
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(SECRET), "secret in {shown}");
    assert!(!shown.contains(KEY_ID), "key id in {shown}");
    assert!(!e.message.contains('\n'), "not one line: {e}");
    e
}

#[test]
fn the_403s_are_told_apart_by_their_code() {
    let err = permission_denied("SignatureDoesNotMatch", "The signature does not match");
    let e = check(&err, Op::Get);
    assert_eq!(e.kind, S3ErrorKind::BadCredentials);
    assert!(e.message.contains("SignatureDoesNotMatch"), "{e}");
    assert!(e.message.contains("check the secret access key"), "{e}");

    let err = permission_denied("InvalidAccessKeyId", "The Access Key Id does not exist");
    let e = check(&err, Op::Get);
    assert_eq!(e.kind, S3ErrorKind::BadCredentials);
    assert!(e.message.contains("check the access key id"), "{e}");

    let e = check(&permission_denied("AccessDenied", "Access Denied"), Op::Get);
    assert_eq!(e.kind, S3ErrorKind::Forbidden);
    assert!(e.message.contains("not entitled"), "{e}");
    assert!(
        e.message.contains("AccessDenied, HTTP 403: Access Denied"),
        "{e}"
    );
    assert_eq!(e.key.as_deref(), Some(ctx(Op::Get, &creds()).key));
}

#[test]
fn bad_credentials_name_the_variables_they_came_from() {
    let mut c = creds();
    c.vars = Some((
        "MASSIVE_S3_ACCESS_KEY_ID".into(),
        "MASSIVE_S3_SECRET_ACCESS_KEY".into(),
    ));
    let err = permission_denied("SignatureDoesNotMatch", "no match");
    let e = classify(&err, &ctx(Op::Get, &c));
    assert_eq!(
        e.message,
        "S3 credentials rejected by https://files.massive.com (SignatureDoesNotMatch, HTTP 403: \
         no match) while GET s3://flatfiles/us_stocks_sip/minute_aggs_v1/2024/01/2024-01-02.csv.gz: \
         check MASSIVE_S3_SECRET_ACCESS_KEY"
    );
    let err = permission_denied("InvalidAccessKeyId", "unknown");
    let e = classify(&err, &ctx(Op::Get, &c));
    assert!(e.message.ends_with("check MASSIVE_S3_ACCESS_KEY_ID"), "{e}");
}

#[test]
fn list_errors_are_classified_from_their_text() {
    let body = xml("InvalidAccessKeyId", "unknown key");
    let e = check(&list_failure("403 Forbidden", &body), Op::List);
    assert_eq!(e.kind, S3ErrorKind::BadCredentials);
    assert!(e.message.contains("while listing s3://flatfiles/"), "{e}");

    let body = xml("AccessDenied", "Access Denied");
    let e = check(&list_failure("403 Forbidden", &body), Op::List);
    assert_eq!(e.kind, S3ErrorKind::Forbidden);

    let body = xml("NoSuchBucket", "The specified bucket does not exist");
    let e = check(&list_failure("404 Not Found", &body), Op::List);
    assert_eq!(e.kind, S3ErrorKind::NotFound);
    assert!(e.message.contains("check the bucket name"), "{e}");
}

#[test]
fn a_bare_403_or_401() {
    // HEAD responses carry no body, so no code: Forbidden, saying both causes.
    let err = object_store::Error::PermissionDenied {
        path: "k".into(),
        source: Box::new(retry_text("HEAD", "403 Forbidden", "")),
    };
    let e = check(&err, Op::Head);
    assert_eq!(e.kind, S3ErrorKind::Forbidden);
    assert!(e.message.contains("or is wrong"), "{e}");
    let err = object_store::Error::Unauthenticated {
        path: "k".into(),
        source: Box::new(retry_text("GET", "401 Unauthorized", "")),
    };
    assert_eq!(check(&err, Op::Get).kind, S3ErrorKind::BadCredentials);
}

#[test]
fn throttling_and_server_errors_are_transient() {
    let slow = Text(format!(
        "Error performing GET https://files.massive.com/flatfiles/k in 3.1s, after 8 retries, \
         max_retries: 8, retry_timeout: 600s  - Server returned non-2xx status code: 503 \
         Service Unavailable: {}",
        xml("SlowDown", "Please reduce your request rate.")
    ));
    let e = check(&generic(slow), Op::Get);
    assert_eq!(e.kind, S3ErrorKind::Transient);
    assert!(e.message.contains("SlowDown, HTTP 503"), "{e}");
    assert!(e.message.contains("after 8 retries"), "{e}");
    for status in [
        "500 Internal Server Error",
        "502 Bad Gateway",
        "429 Too Many Requests",
    ] {
        let err = list_failure(status, "");
        assert_eq!(
            check(&err, Op::List).kind,
            S3ErrorKind::Transient,
            "{status}"
        );
    }
    // S3's 200-with-an-error-body, once retries are exhausted.
    let body = xml("InternalError", "We encountered an internal error");
    let err = generic(Text(format!("Server returned error response: {body}")));
    assert_eq!(check(&err, Op::Put).kind, S3ErrorKind::Transient);
}

#[test]
fn transport_failures() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
    let e = check(
        &generic(HttpError::new(HttpErrorKind::Connect, io)),
        Op::Get,
    );
    assert_eq!(e.kind, S3ErrorKind::Transient);
    assert!(e.message.contains("Connection refused"), "{e}");

    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "operation timed out");
    let err = generic(HttpError::new(HttpErrorKind::Timeout, io));
    assert_eq!(check(&err, Op::Head).kind, S3ErrorKind::Transient);

    let cut = Text("error reading a body: end of file before message length reached".into());
    let err = generic(HttpError::new(HttpErrorKind::Unknown, cut));
    assert_eq!(check(&err, Op::Get).kind, S3ErrorKind::Corrupt);

    let cut = Text("Content-Range header not present in partial response".into());
    assert_eq!(check(&generic(cut), Op::Get).kind, S3ErrorKind::Corrupt);

    let tls = Text("invalid peer certificate: UnknownIssuer".into());
    let err = generic(HttpError::new(HttpErrorKind::Connect, tls));
    assert_eq!(check(&err, Op::Get).kind, S3ErrorKind::Config);
}

#[test]
fn not_found_and_others() {
    let body = xml("NoSuchKey", "The specified key does not exist.");
    let err = object_store::Error::NotFound {
        path: "k".into(),
        source: Box::new(retry_text("GET", "404 Not Found", &body)),
    };
    let e = check(&err, Op::Get);
    assert_eq!(e.kind, S3ErrorKind::NotFound);
    assert!(
        e.message
            .starts_with("not found: GET s3://flatfiles/us_stocks_sip/"),
        "{e}"
    );

    let err = generic(Text("something odd".into()));
    assert_eq!(check(&err, Op::Get).kind, S3ErrorKind::Other);

    let body = xml("PermanentRedirect", "use the other endpoint");
    let err = generic(retry_text("GET", "301 Moved Permanently", &body));
    assert_eq!(check(&err, Op::Get).kind, S3ErrorKind::Config);
}

#[test]
fn secrets_echoed_by_a_server_are_redacted() {
    let body = format!("<Error><Code>Weird</Code><Message>got {SECRET}</Message></Error>");
    let e = check(&list_failure("400 Bad Request", &body), Op::List);
    assert_eq!(e.kind, S3ErrorKind::Other);
    assert!(e.message.contains("<redacted>"), "{e}");
}

#[test]
fn element_and_status_parsing() {
    let body = "<Error><Code>SlowDown</Code></Error>";
    assert_eq!(element(body, "Code").as_deref(), Some("SlowDown"));
    assert_eq!(element("<Code></Code>", "Code"), None);
    assert_eq!(element("no xml", "Code"), None);
    assert_eq!(
        status_in("status code: 503 Service Unavailable: x"),
        Some(503)
    );
    assert_eq!(status_in("no status"), None);
    assert_eq!(
        retries_in("in 3s, after 4 retries, max_retries: 4"),
        Some(4)
    );
    assert_eq!(cap("ééé", 3), "é…");
}

#[test]
fn a_failed_precondition_is_its_own_kind() {
    let err = object_store::Error::Precondition {
        path: "k".into(),
        source: Box::new(retry_text(
            "PUT",
            "412 Precondition Failed",
            &xml(
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            ),
        )),
    };
    let e = check(&err, Op::Put);
    assert_eq!(e.kind, S3ErrorKind::PreconditionFailed, "{e}");
    assert!(e.message.contains("changed since it was read"), "{e}");
    let e = check(&list_failure("412 Precondition Failed", ""), Op::Delete);
    assert_eq!(e.kind, S3ErrorKind::PreconditionFailed, "{e}");
    assert!(e.message.starts_with("DELETE s3://flatfiles/"), "{e}");
}
