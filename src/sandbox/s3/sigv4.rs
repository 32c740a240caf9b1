//! AWS Signature Version 4 verification (header form), as S3 checks it.
//!
//! The sandbox recomputes the signature from the request it received: the canonical
//! request (method, path as sent, sorted strictly-encoded query, the headers named in
//! `SignedHeaders`, the `x-amz-content-sha256` value), the string to sign, and the
//! HMAC-SHA256 chain from the secret key. Only the header form
//! (`Authorization: AWS4-HMAC-SHA256 ...`) is supported; presigned URLs are refused.
//! The request time is not compared with the clock (no `RequestTimeTooSkewed`), so
//! tests with a fixed signing date also verify.

use ring::{digest, hmac};

use crate::sandbox::http::Request;

/// The only algorithm S3 accepts in the header form.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a request is not authenticated; each maps to an S3 error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No `Authorization` header (anonymous access is not allowed).
    #[error("Access Denied")]
    Missing,
    /// The header is not a well-formed SigV4 header (or a required part is missing).
    #[error("{0}")]
    Malformed(String),
    /// The access key id is not the sandbox's.
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    UnknownAccessKey,
    /// The recomputed signature differs.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your key and signing method."
    )]
    BadSignature,
}

impl AuthError {
    /// The S3 error code and HTTP status of this failure.
    pub(crate) fn code(&self) -> (u16, &'static str) {
        match self {
            AuthError::Missing => (403, "AccessDenied"),
            AuthError::Malformed(_) => (400, "AuthorizationHeaderMalformed"),
            AuthError::UnknownAccessKey => (403, "InvalidAccessKeyId"),
            AuthError::BadSignature => (403, "SignatureDoesNotMatch"),
        }
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
struct AuthHeader<'a> {
    access_key: &'a str,
    /// `YYYYMMDD/region/service/aws4_request`.
    scope: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn malformed(msg: &str) -> AuthError {
    AuthError::Malformed(format!("The authorization header is malformed; {msg}"))
}

fn parse_header(value: &str) -> Result<AuthHeader<'_>, AuthError> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| malformed("the algorithm must be AWS4-HMAC-SHA256"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return Err(malformed(
                "expected Credential=, SignedHeaders= and Signature=",
            ));
        };
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return Err(malformed(&format!("unknown field '{k}'"))),
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(malformed(
            "expected Credential=, SignedHeaders= and Signature=",
        ));
    };
    let (access_key, scope) = credential
        .split_once('/')
        .ok_or_else(|| malformed("the Credential has no scope"))?;
    let parts: Vec<&str> = scope.split('/').collect();
    let [date, region, service, "aws4_request"] = parts[..] else {
        return Err(malformed(
            "the Credential scope must be KEY/YYYYMMDD/REGION/SERVICE/aws4_request",
        ));
    };
    Ok(AuthHeader {
        access_key,
        scope,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    s
}

/// The bytes of a hex string, `None` if it is not hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Percent-encodes everything but `A-Z a-z 0-9 - . _ ~` (SigV4's URI encoding).
fn strict_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query: decoded pairs re-encoded strictly, sorted by name then value.
fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (strict_encode(k), strict_encode(v)))
        .collect();
    pairs.sort_unstable();
    let joined: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    joined.join("&")
}

/// `name:value\n` for each signed header: all values of the name joined by commas,
/// trimmed, inner whitespace runs collapsed to one space.
fn canonical_headers(req: &Request, names: &[&str]) -> Result<String, AuthError> {
    let mut out = String::new();
    for name in names {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(malformed(&format!(
                "signed header '{name}' is not in the request"
            )));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Ok(out)
}

/// HMAC-SHA256 of `msg` under `key`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
}

/// The signing key of a day, region and service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac_sha256(k.as_ref(), region.as_bytes());
    let k = hmac_sha256(k.as_ref(), service.as_bytes());
    let k = hmac_sha256(k.as_ref(), b"aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k.as_ref())
}

/// The canonical request and the string to sign, for a parsed header.
fn string_to_sign(req: &Request, auth: &AuthHeader<'_>) -> Result<String, AuthError> {
    let amz_date = req
        .header("x-amz-date")
        .ok_or_else(|| malformed("the x-amz-date header is missing"))?;
    if !amz_date.starts_with(auth.date) {
        return Err(malformed("the Credential date differs from x-amz-date"));
    }
    let payload = req
        .header("x-amz-content-sha256")
        .ok_or_else(|| malformed("the x-amz-content-sha256 header is missing"))?;
    for required in ["host", "x-amz-date", "x-amz-content-sha256"] {
        if !auth.signed_headers.contains(&required) {
            return Err(malformed(&format!("'{required}' must be a signed header")));
        }
    }
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(&req.query),
        canonical_headers(req, &auth.signed_headers)?,
        auth.signed_headers.join(";"),
        payload
    );
    let hashed = digest::digest(&digest::SHA256, canonical.as_bytes());
    Ok(format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        auth.scope,
        hex(hashed.as_ref())
    ))
}

/// Checks the request's SigV4 `Authorization` header against the sandbox's keys.
pub(crate) fn verify(
    req: &Request,
    access_key: &str,
    secret_key: &str,
    region: &str,
) -> Result<(), AuthError> {
    if req.param("X-Amz-Signature").is_some() {
        return Err(AuthError::Malformed(
            "presigned URLs are not supported by the sandbox; sign the Authorization header".into(),
        ));
    }
    let value = req.header("authorization").ok_or(AuthError::Missing)?;
    let auth = parse_header(value)?;
    if auth.access_key != access_key {
        return Err(AuthError::UnknownAccessKey);
    }
    if auth.region != region || auth.service != "s3" {
        return Err(malformed(&format!(
            "the region '{}' or service '{}' is wrong; expecting '{region}' and 's3'",
            auth.region, auth.service
        )));
    }
    let sts = string_to_sign(req, &auth)?;
    let key = signing_key(secret_key, auth.date, auth.region, auth.service);
    let sig = unhex(auth.signature).ok_or(AuthError::BadSignature)?;
    // ring compares in constant time.
    hmac::verify(&key, sts.as_bytes(), &sig).map_err(|_| AuthError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::http::parse_query;

    /// AWS's published example secret (S3 SigV4 documentation).
    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EXAMPLE_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn request(path: &str, query: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            query: parse_query(query),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            keep_alive: true,
        }
    }

    /// "Example: GET Object" of the S3 SigV4 header-signing documentation.
    fn get_object_example(signature: &str) -> Request {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={EXAMPLE_KEY}/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={signature}"
        );
        request(
            "/test.txt",
            "",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA),
                ("x-amz-date", "20130524T000000Z"),
                ("authorization", &auth),
            ],
        )
    }

    #[test]
    fn aws_get_object_example_verifies() {
        let good = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let req = get_object_example(good);
        assert_eq!(
            verify(&req, EXAMPLE_KEY, EXAMPLE_SECRET, "us-east-1"),
            Ok(())
        );
        let bad = get_object_example(&good.replace('f', "e"));
        assert_eq!(
            verify(&bad, EXAMPLE_KEY, EXAMPLE_SECRET, "us-east-1"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&req, EXAMPLE_KEY, "other", "us-east-1"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify(&req, "OTHERKEY", EXAMPLE_SECRET, "us-east-1"),
            Err(AuthError::UnknownAccessKey)
        );
    }

    #[test]
    fn aws_list_objects_example_verifies_with_a_sorted_query() {
        // "Example: GET Bucket (List Objects)": the query arrives unsorted.
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={EXAMPLE_KEY}/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;x-amz-content-sha256;x-amz-date,\
             Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
        let req = request(
            "/",
            "prefix=J&max-keys=2",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("x-amz-content-sha256", EMPTY_SHA),
                ("x-amz-date", "20130524T000000Z"),
                ("authorization", &auth),
            ],
        );
        assert_eq!(
            verify(&req, EXAMPLE_KEY, EXAMPLE_SECRET, "us-east-1"),
            Ok(())
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        let mut req = get_object_example("00");
        req.headers.retain(|(k, _)| k != "authorization");
        assert_eq!(verify(&req, "k", "s", "us-east-1"), Err(AuthError::Missing));
        req.headers
            .push(("authorization".into(), "Bearer x".into()));
        assert!(matches!(
            verify(&req, "k", "s", "us-east-1"),
            Err(AuthError::Malformed(_))
        ));
        let mut req = get_object_example("zz");
        assert_eq!(
            verify(&req, EXAMPLE_KEY, EXAMPLE_SECRET, "us-east-1"),
            Err(AuthError::BadSignature)
        );
        req.headers.retain(|(k, _)| k != "range");
        assert!(matches!(
            verify(&req, EXAMPLE_KEY, EXAMPLE_SECRET, "us-east-1"),
            Err(AuthError::Malformed(m)) if m.contains("range")
        ));
        assert!(matches!(
            verify(
                &get_object_example("00"),
                EXAMPLE_KEY,
                EXAMPLE_SECRET,
                "eu-west-1"
            ),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn canonical_query_encodes_strictly_and_sorts() {
        let q = parse_query("prefix=a%2Fb+c&list-type=2&continuation-token=x%3D");
        assert_eq!(
            canonical_query(&q),
            "continuation-token=x%3D&list-type=2&prefix=a%2Fb%20c"
        );
        assert_eq!(unhex("0aff"), Some(vec![10, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("+f"), None);
        assert_eq!(hex(&[10, 255]), "0aff");
    }
}
