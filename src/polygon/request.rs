//! Building requests: the aggregates URL, the auth header, and the origin check that
//! keeps the key on the configured host.

use reqwest::Url;

use crate::secret::is_loopback;
use reqwest::header::HeaderValue;

use crate::secret::{ApiKey, redact};

use crate::ingest::error::{ErrorClass, ErrorKind, FetchError};

/// The page size asked for: the API's maximum. Always sent, since the default (5000)
/// silently truncates minute ranges.
pub const PAGE_LIMIT: u32 = 50_000;

/// Parses and checks the configured base URL (`http` or `https`, with a host).
pub fn parse_base(base: &str) -> Result<Url, FetchError> {
    let bad =
        |why: String| FetchError::new(ErrorKind::BadRequest, None, why).with_class(ErrorClass::Run);
    let url = Url::parse(base.trim()).map_err(|e| {
        bad(format!(
            "base URL '{base}' is not a URL ({e}); e.g. https://api.massive.com"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(format!(
            "base URL '{base}' must be http(s)://host[:port]"
        )));
    }
    if url.query().is_some() {
        return Err(bad(format!(
            "base URL '{}' must not carry a query (the key goes in a header, not the URL)",
            url.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

/// `{base}/v2/aggs/ticker/{T}/range/1/minute/{from}/{to}?adjusted=..&sort=asc&limit=50000`,
/// with `from` and `to` New York dates (`YYYY-MM-DD`) or Unix milliseconds, both
/// inclusive, as the API takes them.
pub fn aggs_url(base: &Url, ticker: &str, (from, to): (&str, &str), adjusted: bool) -> Url {
    let mut url = base.clone();
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.pop_if_empty().extend([
            "v2", "aggs", "ticker", ticker, "range", "1", "minute", from, to,
        ]);
    }
    url.query_pairs_mut()
        .clear()
        .append_pair("adjusted", if adjusted { "true" } else { "false" })
        .append_pair("sort", "asc")
        .append_pair("limit", &PAGE_LIMIT.to_string());
    url
}

/// True when scheme, host and port (explicit or default) are equal.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Resolves a `next_url` (absolute or relative to `current`) and refuses it unless it
/// has the base's origin: the key is only ever sent to the configured host. The
/// refusal is class `Run`, since every ticker would hit it.
pub fn checked_next_url(
    base: &Url,
    current: &Url,
    next: &str,
    key: &ApiKey,
) -> Result<Url, FetchError> {
    let shown = redact(next, key);
    let url = current.join(next).map_err(|e| {
        FetchError::new(
            ErrorKind::Body,
            None,
            format!("next_url '{}' is not a URL: {e}", excerpt(&shown)),
        )
    })?;
    if !same_origin(base, &url) {
        return Err(foreign(base, &url, "next_url"));
    }
    Ok(strip_key_param(url))
}

/// Resolves a path (`/v2/...`, `v2/...`) or an absolute URL for a raw request, refusing
/// any other origin than the base's. An `apiKey=` query parameter is removed: the
/// header carries the key.
pub fn raw_url(base: &Url, path_or_url: &str) -> Result<Url, FetchError> {
    let s = path_or_url.trim();
    let url = if s.contains("://") {
        Url::parse(s)
    } else {
        let mut root = base.clone();
        if !root.path().ends_with('/') {
            let p = format!("{}/", root.path());
            root.set_path(&p);
        }
        root.join(s.trim_start_matches('/'))
    }
    .map_err(|e| {
        FetchError::new(
            ErrorKind::BadRequest,
            None,
            format!("'{}' is not a path or URL: {e}", excerpt(s)),
        )
    })?;
    if !same_origin(base, &url) {
        return Err(foreign(base, &url, "URL"));
    }
    Ok(strip_key_param(url))
}

fn foreign(base: &Url, url: &Url, what: &str) -> FetchError {
    FetchError::new(
        ErrorKind::BadRequest,
        None,
        format!(
            "refusing to send the API key to {}: the {what} is not on the configured base {} \
             (pass --base-url {} if that host is the API)",
            url.origin().ascii_serialization(),
            base.origin().ascii_serialization(),
            url.origin().ascii_serialization(),
        ),
    )
    .with_class(ErrorClass::Run)
}

/// Removes `apiKey` query parameters (any case), keeping the others in order.
fn strip_key_param(mut url: Url) -> Url {
    if url.query().is_none() {
        return url;
    }
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("apikey"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    url
}

/// The most room [`read_body`] reserves from a `Content-Length` before any byte has
/// arrived (a full page is ~5 MB); a longer body still grows as it comes.
const MAX_BODY_RESERVE: u64 = 64 << 20;

/// Reads the whole body of `resp` into `buf`, replacing what it held. A fetch passes
/// the same buffer for each of its pages, so the room of the first page's ~5 MB is
/// reused instead of collected afresh in pieces and copied once more into one block
/// per page (memory the kernel must fault in each time).
pub(super) async fn read_body(
    mut resp: reqwest::Response,
    buf: &mut Vec<u8>,
) -> reqwest::Result<()> {
    buf.clear();
    if let Some(len) = resp.content_length() {
        buf.reserve(len.min(MAX_BODY_RESERVE) as usize);
    }
    while let Some(chunk) = resp.chunk().await? {
        buf.extend_from_slice(&chunk);
    }
    Ok(())
}

/// The `Authorization: Bearer KEY` value, marked sensitive so it never prints.
pub fn bearer(key: &ApiKey) -> Result<HeaderValue, FetchError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
        FetchError::new(
            ErrorKind::Unauthorized,
            None,
            "the API key contains characters not allowed in an HTTP header; check POLYGON_API_KEY",
        )
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// The first ~200 characters of `text` (on a char boundary), whitespace collapsed.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 200;
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

/// The key goes only over TLS, except to loopback (the sandbox): a plain `http://`
/// base URL on any other host is refused unless explicitly allowed, with a warning.
pub(super) fn check_transport(base: &Url, allow_insecure_http: bool) -> Result<(), FetchError> {
    if base.scheme() != "http" || is_loopback(base) {
        return Ok(());
    }
    let origin = base.origin().ascii_serialization();
    if allow_insecure_http {
        tracing::warn!(
            "--allow-insecure-http: the API key goes to {origin} in clear text; anyone on \
             the network path can read it"
        );
        return Ok(());
    }
    Err(FetchError::new(
        ErrorKind::BadRequest,
        None,
        format!(
            "refusing to send the API key in clear text to {origin}: use https://, \
             or pass --allow-insecure-http if you really mean it"
        ),
    )
    .with_class(ErrorClass::Run))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(base: &str, allow: bool) -> Result<(), FetchError> {
        check_transport(&parse_base(base).unwrap(), allow)
    }

    #[test]
    fn the_key_goes_in_clear_only_to_loopback_unless_allowed() {
        for ok in [
            "https://api.massive.com",
            "http://127.0.0.1:8787",
            "http://127.8.9.10",
            "http://localhost:1234",
            "http://[::1]:99",
        ] {
            assert!(transport(ok, false).is_ok(), "{ok}");
        }
        for remote in [
            "http://192.0.2.2:18080",
            "http://api.massive.com",
            "http://[2001:db8::1]",
        ] {
            let e = transport(remote, false).unwrap_err();
            assert!(e.message.contains("--allow-insecure-http"), "{e:?}");
            assert!(e.message.contains("https://"), "{e:?}");
            assert_eq!(e.class, ErrorClass::Run);
            // Allowed explicitly: accepted (with a warning), and nothing is sent here.
            assert!(transport(remote, true).is_ok(), "{remote}");
        }
    }

    fn base() -> Url {
        parse_base("https://api.massive.com").unwrap()
    }

    #[test]
    fn aggs_url_has_every_parameter_and_no_key() {
        let r = ("2004-01-01", "2004-12-31");
        let u = aggs_url(&base(), "BRK.A", r, false);
        assert_eq!(
            u.as_str(),
            "https://api.massive.com/v2/aggs/ticker/BRK.A/range/1/minute/2004-01-01/2004-12-31?adjusted=false&sort=asc&limit=50000"
        );
        let prefixed = parse_base("http://127.0.0.1:9/proxy/").unwrap();
        assert!(
            aggs_url(&prefixed, "A", r, true)
                .path()
                .starts_with("/proxy/v2/aggs/ticker/A/")
        );
    }

    #[test]
    fn next_url_must_share_scheme_host_and_port() {
        let k = ApiKey::new("k");
        let cur = aggs_url(&base(), "A", ("2004-01-01", "2004-01-02"), true);
        assert!(
            checked_next_url(&base(), &cur, "https://api.massive.com/v2/x?cursor=1", &k).is_ok()
        );
        assert!(
            checked_next_url(
                &base(),
                &cur,
                "https://api.massive.com:443/v2/x?cursor=1",
                &k
            )
            .is_ok()
        );
        assert!(checked_next_url(&base(), &cur, "/v2/x?cursor=1", &k).is_ok());
        for foreign in [
            "http://api.massive.com/v2/x",
            "https://api.polygon.io/v2/x",
            "https://api.massive.com:8443/v2/x",
            "https://evil.example/v2/x",
        ] {
            let e = checked_next_url(&base(), &cur, foreign, &k).unwrap_err();
            assert_eq!(e.class, ErrorClass::Run, "{foreign}");
            assert!(e.message.contains("refusing"), "{e}");
        }
    }

    #[test]
    fn raw_url_strips_api_key_and_refuses_foreign_hosts() {
        let u = raw_url(&base(), "/v2/aggs?apiKey=secret&x=1").unwrap();
        assert_eq!(u.as_str(), "https://api.massive.com/v2/aggs?x=1");
        assert_eq!(
            raw_url(&base(), "v1/marketstatus/now").unwrap().path(),
            "/v1/marketstatus/now"
        );
        assert!(raw_url(&base(), "https://example.com/v2").is_err());
    }

    #[test]
    fn excerpt_caps_length_on_char_boundaries() {
        let long = "é".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), 201);
        assert_eq!(excerpt("a\n  b"), "a b");
    }
}
