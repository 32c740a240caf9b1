//! A small HTTP/1.1 server side: request parsing and response writing, by hand.
//!
//! Hand-written rather than hyper because the faults need byte-level control: a
//! response can stop half-way through its body, or never start. Supported: GET and
//! POST, `Content-Length` bodies, keep-alive (HTTP/1.1 default, `Connection: close`
//! honoured), percent-decoded query parameters.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest request line or header line accepted.
const MAX_LINE: u64 = 16 * 1024;
/// The most header lines accepted.
const MAX_HEADERS: usize = 100;
/// The largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    /// The path, still percent-encoded, without the query.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers with lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
}

impl Request {
    /// The first header called `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter called `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection between requests.
    Closed,
    /// The bytes are not a request we can serve; answer 400 and close.
    Bad(String),
    /// The socket failed.
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<usize, ReadError> {
    buf.clear();
    let n = r.take(MAX_LINE).read_until(b'\n', buf).await?;
    if n > 0 && buf.last() != Some(&b'\n') {
        return Err(if n as u64 >= MAX_LINE {
            ReadError::Bad("header line too long".into())
        } else {
            ReadError::Bad("connection closed inside the request head".into())
        });
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(n)
}

/// Reads one request (head and `Content-Length` body).
pub(crate) async fn read_request<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Request, ReadError> {
    let mut line = Vec::new();
    // Tolerate blank lines before a request (RFC 9112 §2.2).
    loop {
        if read_line(r, &mut line).await? == 0 {
            return Err(ReadError::Closed);
        }
        if !line.is_empty() {
            break;
        }
    }
    let head = String::from_utf8(line.clone())
        .map_err(|_| ReadError::Bad("request line is not UTF-8".into()))?;
    let mut parts = head.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => {
            return Err(ReadError::Bad(format!(
                "malformed request line '{}'",
                head.escape_debug()
            )));
        }
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => {
            return Err(ReadError::Bad(format!(
                "unsupported protocol '{}'",
                version.escape_debug()
            )));
        }
    };
    let mut headers = Vec::new();
    loop {
        if read_line(r, &mut line).await? == 0 {
            return Err(ReadError::Bad(
                "connection closed inside the request head".into(),
            ));
        }
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(ReadError::Bad("too many headers".into()));
        }
        let text = String::from_utf8_lossy(&line);
        let (k, v) = text
            .split_once(':')
            .ok_or_else(|| ReadError::Bad(format!("malformed header '{}'", text.escape_debug())))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if find("transfer-encoding").is_some() {
        return Err(ReadError::Bad(
            "chunked request bodies are not supported; send Content-Length".into(),
        ));
    }
    let len = match find("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ReadError::Bad(format!("bad Content-Length '{v}'")))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(ReadError::Bad(format!(
            "request body of {len} bytes is too large"
        )));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    let connection = find("connection").map(str::to_ascii_lowercase);
    let keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => !http10,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: parse_query(query),
        headers,
        body,
        keep_alive,
    })
}

/// Splits and percent-decodes a query string (`+` is a space, as in forms).
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set); bad escapes stay as is.
pub(crate) fn percent_decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' => {
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    /// Extra headers (e.g. `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON response.
    pub(crate) fn json(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type: "application/json; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }
}

/// The reason phrase of a status.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The status line and headers, announcing `content_length` body bytes.
pub(crate) fn head(resp: &Response, content_length: usize, keep_alive: bool) -> Vec<u8> {
    let mut h = format!(
        "HTTP/1.1 {} {}\r\nServer: barsmith-sandbox\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        content_length
    );
    for (k, v) in &resp.headers {
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    if !keep_alive {
        h.push_str("Connection: close\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// Writes a whole response.
pub(crate) async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    resp: &Response,
    keep_alive: bool,
) -> io::Result<()> {
    w.write_all(&head(resp, resp.body.len(), keep_alive))
        .await?;
    w.write_all(&resp.body).await?;
    w.flush().await
}

/// Writes a head announcing `len` body bytes, then `body` if any (a HEAD answer has
/// none), spread over about `trickle` in small pieces when set.
pub(crate) async fn write_object<W: AsyncWrite + Unpin>(
    w: &mut W,
    resp: &Response,
    len: usize,
    body: Option<&[u8]>,
    trickle: Option<std::time::Duration>,
    keep_alive: bool,
) -> io::Result<()> {
    w.write_all(&head(resp, len, keep_alive)).await?;
    match (body, trickle) {
        (Some(b), Some(total)) => {
            // 20 pieces, each followed by a flush and a pause, so the client sees a
            // slow but steady stream bounded by `total`.
            let piece = b.len().div_ceil(20).max(1);
            for chunk in b.chunks(piece) {
                w.write_all(chunk).await?;
                w.flush().await?;
                tokio::time::sleep(total / 20).await;
            }
        }
        (Some(b), None) => w.write_all(b).await?,
        (None, _) => {}
    }
    w.flush().await
}

/// Writes the head with the full Content-Length, then only half of the body.
pub(crate) async fn write_half<W: AsyncWrite + Unpin>(
    w: &mut W,
    resp: &Response,
) -> io::Result<()> {
    w.write_all(&head(resp, resp.body.len(), true)).await?;
    w.write_all(&resp.body[..resp.body.len() / 2]).await?;
    w.flush().await?;
    w.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn parse(raw: &str) -> Result<Request, ReadError> {
        read_request(&mut BufReader::new(raw.as_bytes())).await
    }

    #[tokio::test]
    async fn parses_get_with_query_and_headers() {
        let r = parse("GET /v2/x?a=1&apiKey=k%2By&sort=asc+x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/v2/x");
        assert_eq!(r.param("apiKey"), Some("k+y"));
        assert_eq!(r.param("sort"), Some("asc x"));
        assert_eq!(r.header("authorization"), Some("Bearer k"));
        assert!(r.keep_alive);
    }

    #[tokio::test]
    async fn reads_post_body_and_two_requests_in_a_row() {
        let raw = "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /q HTTP/1.1\r\nConnection: close\r\n\r\n";
        let mut rd = BufReader::new(raw.as_bytes());
        let a = read_request(&mut rd).await.unwrap();
        assert_eq!(a.body, b"hello");
        let b = read_request(&mut rd).await.unwrap();
        assert_eq!(b.path, "/q");
        assert!(!b.keep_alive);
        assert!(matches!(
            read_request(&mut rd).await,
            Err(ReadError::Closed)
        ));
    }

    #[tokio::test]
    async fn rejects_garbage_and_http10_closes_by_default() {
        assert!(matches!(
            parse("HELLO\r\n\r\n").await,
            Err(ReadError::Bad(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/2\r\n\r\n").await,
            Err(ReadError::Bad(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nbad header\r\n\r\n").await,
            Err(ReadError::Bad(_))
        ));
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").await.unwrap().keep_alive);
    }

    #[test]
    fn percent_decoding_keeps_bad_escapes() {
        assert_eq!(percent_decode("a%20b%zz%", false), "a b%zz%");
        assert_eq!(percent_decode("BRK%2EA", false), "BRK.A");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }

    #[test]
    fn head_announces_length_and_close() {
        let mut r = Response::json(429, b"{}".to_vec());
        r.headers.push(("Retry-After", "3".into()));
        let h = String::from_utf8(head(&r, 2, false)).unwrap();
        assert!(h.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(h.contains("Content-Length: 2\r\n") && h.contains("Retry-After: 3\r\n"));
        assert!(h.ends_with("Connection: close\r\n\r\n"));
    }
}
