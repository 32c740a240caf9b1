//! The aggregates client against a scripted loopback HTTP server: pagination, the key's
//! confinement to the base host, cursor loops, de-duplication, retries per error
//! class, redaction. Every server and wait is bounded in time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barsmith::budget::{Budget, Rate};
use barsmith::calendar::DateRange;
use barsmith::ingest::SourceEvent;
use barsmith::polygon::decode::decode_page;
use barsmith::polygon::{
    Client, ClientConfig, ErrorClass, ErrorKind, FetchError, Fetched, Paging, RetryPolicy,
};
use barsmith::secret::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "TESTKEY-8c1f-do-not-leak";
/// 2021-03-01 09:30 New York (14:30 UTC), a minute inside [`day`].
const T0: i64 = 1_614_609_000_000;
const MIN: i64 = 60_000;

fn day() -> DateRange {
    DateRange::parse("2021-03-01", "2021-03-01").unwrap()
}

// ---------------------------------------------------------------- test server

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Req {
    target: String,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
enum Reply {
    /// A complete response.
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Headers announce the whole body, half of it is sent, then the socket closes.
    DropMidBody(String),
    /// Never answers (until the server gives up after 3 s).
    Hang,
}

fn json(status: u16, body: impl Into<String>) -> Reply {
    Reply::Full {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: body.into(),
    }
}

type Handler = dyn Fn(&Req, usize) -> Reply + Send + Sync;

struct Server {
    base: String,
    log: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves `handler(request, index)` on 127.0.0.1, one request per connection.
    async fn start(handler: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let count = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok((sock, _)) = listener.accept().await {
                    let (log, handler, count) = (log.clone(), handler.clone(), count.clone());
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(4),
                            serve_one(sock, log, handler, count),
                        )
                        .await;
                    });
                }
            }
        });
        Server { base, log, task }
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut sock: TcpStream,
    log: Arc<Mutex<Vec<Req>>>,
    handler: Arc<Handler>,
    count: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let target = lines
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("")
        .to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let req = Req { target, headers };
    log.lock().unwrap().push(req.clone());
    let reply = handler(&req, count.fetch_add(1, Ordering::SeqCst));
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = sock.write_all(out.as_bytes()).await;
        }
        Reply::DropMidBody(body) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: application/json\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(&body.as_bytes()[..body.len() / 2]).await;
            let _ = sock.flush().await;
        }
        Reply::Hang => tokio::time::sleep(Duration::from_secs(3)).await,
    }
    let _ = sock.shutdown().await;
}

// ---------------------------------------------------------------- helpers

fn bar_json(t: i64) -> String {
    format!(r#"{{"v":1.5e+03,"vw":10.01,"o":10,"c":10.02,"h":10.05,"l":9.99,"t":{t},"n":7}}"#)
}

fn page(ts: &[i64], next_url: Option<String>) -> String {
    let results: Vec<String> = ts.iter().map(|&t| bar_json(t)).collect();
    let next = next_url
        .map(|u| format!(r#","next_url":"{u}""#))
        .unwrap_or_default();
    format!(
        r#"{{"ticker":"AAPL","queryCount":{n},"resultsCount":{n},"adjusted":true,"results":[{}],"status":"OK","request_id":"r1"{next}}}"#,
        results.join(","),
        n = ts.len()
    )
}

fn minutes(from: i64, n: i64) -> Vec<i64> {
    (from..from + n).map(|i| T0 + i * MIN).collect()
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_millis(100),
        same_error_limit: 0,
    }
}

fn client(base: &str) -> Client {
    let mut cfg = ClientConfig::new(ApiKey::new(KEY));
    cfg.base_url = base.to_string();
    cfg.timeout = Duration::from_millis(400);
    cfg.retry = fast_retry(4);
    Client::new(cfg).unwrap()
}

async fn fetch(c: &Client) -> (Result<Fetched, FetchError>, Vec<SourceEvent>) {
    let mut events = Vec::new();
    let r = c.fetch_bars("AAPL", day(), &mut |e| events.push(e)).await;
    (r, events)
}

fn retries(events: &[SourceEvent]) -> Vec<(u32, ErrorKind, Duration, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Retry {
                attempt,
                reason,
                delay,
                kind,
            } => Some((*attempt, *kind, *delay, reason.clone())),
            SourceEvent::Page { .. } => None,
        })
        .collect()
}

fn assert_no_key(text: &str) {
    assert!(!text.contains(KEY), "the key leaked into: {text}");
}

// ---------------------------------------------------------------- pagination

#[tokio::test]
async fn pagination_follows_next_url_to_the_end_with_bearer_on_every_page() {
    let server = Server::start(|req, _| {
        let base = format!("http://{}", req.header("host").unwrap());
        let cursor = req.target.split("cursor=").nth(1).unwrap_or("").to_string();
        match cursor.as_str() {
            "" => json(
                200,
                page(
                    &minutes(0, 3),
                    Some(format!(
                        "{base}/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=p2"
                    )),
                ),
            ),
            "p2" => json(
                200,
                page(
                    &minutes(3, 3),
                    Some(format!(
                        "{base}/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=p3"
                    )),
                ),
            ),
            _ => json(200, page(&minutes(6, 2), None)),
        }
    })
    .await;
    let (r, events) = fetch(&client(&server.base)).await;
    let f = r.unwrap();
    assert_eq!(f.bars.timestamp, minutes(0, 8));
    assert_eq!((f.pages, f.requests), (3, 3));
    assert_eq!(f.bars.volume[0], 1500.0);
    let pages: Vec<usize> = events
        .iter()
        .filter_map(|e| {
            if let SourceEvent::Page { bars, .. } = e {
                Some(*bars)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(pages, vec![3, 3, 2]);

    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        reqs[0].target,
        "/v2/aggs/ticker/AAPL/range/1/minute/2021-03-01/2021-03-01?adjusted=true&sort=asc&limit=50000"
    );
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str()),
            "{r:?}"
        );
        assert_no_key(&r.target);
    }
    assert!(reqs[2].target.ends_with("cursor=p3"));
}

/// Turns the page an attempt should have got into the failure it gets instead.
type FailWith = fn(String) -> Reply;

/// A later page that fails and is retried: the fetch keeps the bars of the pages
/// before it (collected in the same columns) and none of the failed attempt's, for
/// failures before, in and after decoding, on pages decoded inline and on the pool.
#[tokio::test]
async fn a_retried_later_page_keeps_the_earlier_pages_and_drops_its_failed_attempt() {
    let failures: [(&str, FailWith); 4] = [
        ("truncated", |p| json(200, p[..p.len() - 40].to_string())),
        ("dropped", Reply::DropMidBody),
        ("status ERROR with bars", |p| {
            json(200, p.replace(r#""status":"OK""#, r#""status":"ERROR""#))
        }),
        ("500", |_| json(500, "{}")),
    ];
    // Pages over 256 KiB are decoded on the blocking pool: padding makes them so.
    let pad = |p: String| {
        p.replace(
            r#","status""#,
            &format!(r#","pad":"{}","status""#, "x".repeat(300_000)),
        )
    };
    for (name, fail) in failures {
        for big in [false, true] {
            // Page 2's first answer is the failure, holding bars of its own.
            let server = Server::start(move |req, i| {
                let base = format!("http://{}", req.header("host").unwrap());
                let fit = |p: String| if big { pad(p) } else { p };
                if !req.target.contains("cursor=p2") {
                    let next = format!("{base}/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=p2");
                    return json(200, fit(page(&minutes(0, 400), Some(next))));
                }
                if i == 1 {
                    fail(fit(page(&minutes(600, 40), None)))
                } else {
                    json(200, page(&minutes(400, 3), None))
                }
            })
            .await;
            let (r, events) = fetch(&client(&server.base)).await;
            let f = r.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                f.bars.timestamp == minutes(0, 403),
                "{name}, big {big}: wrong bars"
            );
            assert_eq!((f.pages, f.requests), (2, 3), "{name}");
            assert_eq!(retries(&events).len(), 1, "{name}");
        }
    }
}

#[tokio::test]
async fn key_is_never_sent_to_a_foreign_next_url_host() {
    let foreign = Server::start(|_, _| json(200, page(&[], None))).await;
    // Same IP, other port: a different origin.
    let next = format!(
        "{}/v2/aggs/ticker/AAPL/range/1/minute/1/2?cursor=x",
        foreign.base
    );
    let server =
        Server::start(move |_, _| json(200, page(&minutes(0, 2), Some(next.clone())))).await;
    let (r, _) = fetch(&client(&server.base)).await;
    let e = r.unwrap_err();
    assert_eq!(e.class, ErrorClass::Run, "{e}");
    assert!(e.message.contains("refusing to send the API key"), "{e}");
    assert!(e.message.contains(&foreign.base), "{e}");
    assert_no_key(&e.message);
    assert!(
        foreign.requests().is_empty(),
        "the foreign host was contacted"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn cursor_loop_is_detected_not_followed_forever() {
    let server = Server::start(|req, i| {
        let base = format!("http://{}", req.header("host").unwrap());
        // Page 1 → cursor a → cursor b → cursor a again.
        let cursor = if i % 2 == 0 { "a" } else { "b" };
        json(
            200,
            page(
                &minutes(i as i64, 1),
                Some(format!("{base}/v2/aggs/x?cursor={cursor}")),
            ),
        )
    })
    .await;
    let (r, _) = fetch(&client(&server.base)).await;
    let e = r.unwrap_err();
    assert_eq!(
        (e.class, e.kind),
        (ErrorClass::Retryable, ErrorKind::CursorLoop),
        "{e}"
    );
    assert_eq!(server.requests().len(), 3);
    assert_no_key(&e.message);
}

#[tokio::test]
async fn bars_out_of_order_are_sorted_repeats_removed_and_out_of_range_dropped() {
    let server = Server::start(|req, _| {
        let base = format!("http://{}", req.header("host").unwrap());
        if req.target.contains("cursor") {
            // Repeats two bars of page 1, one new bar behind the last kept one, a bar
            // of the next New York day, and a repeat within the page.
            let ts = [
                T0 + MIN,
                T0 + 2 * MIN,
                T0 + 3 * MIN,
                T0 + MIN / 2,
                T0 + 3 * MIN,
                T0 + 4 * MIN,
                T0 + 86_400_000,
            ];
            json(200, page(&ts, None))
        } else {
            json(
                200,
                page(&minutes(0, 3), Some(format!("{base}/v2/next?cursor=1"))),
            )
        }
    })
    .await;
    let (r, _) = fetch(&client(&server.base)).await;
    let f = r.unwrap();
    let mut want = minutes(0, 5);
    want.insert(1, T0 + MIN / 2);
    assert_eq!(f.bars.timestamp, want);
    assert_eq!(f.duplicates_dropped, 3);
    assert_eq!(
        f.reordered, 2,
        "the repeat of minute 1 and the new bar behind it"
    );
    assert_eq!(f.out_of_range_dropped, 1);
}

#[tokio::test]
async fn a_page_in_reverse_keeps_every_bar() {
    // The issue's case: [t+60s, t, t] used to keep one bar.
    let server = Server::start(|_, _| json(200, page(&[T0 + MIN, T0, T0], None))).await;
    let f = fetch(&client(&server.base)).await.0.unwrap();
    assert_eq!(f.bars.timestamp, minutes(0, 2));
    assert_eq!((f.duplicates_dropped, f.reordered), (1, 2));
}

#[tokio::test]
async fn two_different_bars_for_one_minute_fail_retryable() {
    let server = Server::start(|_, _| {
        // A second bar for the first minute, with another close, ahead of the page.
        let other = bar_json(T0).replace(r#""c":10.02"#, r#""c":10.07"#);
        let body = page(&minutes(0, 2), None);
        json(
            200,
            body.replace(r#""results":["#, &format!(r#""results":[{other},"#)),
        )
    })
    .await;
    let e = fetch(&client(&server.base)).await.0.unwrap_err();
    assert_eq!(
        (e.class, e.kind),
        (ErrorClass::Retryable, ErrorKind::ConflictingBars),
        "{e}"
    );
    assert!(e.message.contains("two different bars"), "{e}");
}

#[tokio::test]
async fn empty_results_in_every_form_mean_no_bars() {
    for body in [
        r#"{"status":"OK","resultsCount":0}"#,
        r#"{"status":"OK","results":null}"#,
        r#"{"status":"DELAYED","results":[]}"#,
    ] {
        let server = Server::start(move |_, _| json(200, body)).await;
        let f = fetch(&client(&server.base)).await.0.unwrap();
        assert!(f.bars.is_empty() && f.pages == 1, "{body}");
    }
}

// ---------------------------------------------------------------- retries

/// Builds the first reply of a retry case.
type MakeReply = Box<dyn Fn() -> Reply + Send + Sync>;

/// Serves `first` once, then a good page.
async fn fault_then_ok(first: impl Fn() -> Reply + Send + Sync + 'static) -> Server {
    Server::start(move |_, i| {
        if i == 0 {
            first()
        } else {
            json(200, page(&minutes(0, 2), None))
        }
    })
    .await
}

async fn assert_retried_then_ok(name: &str, server: Server, kind: ErrorKind) {
    let t = Instant::now();
    let (r, events) = fetch(&client(&server.base)).await;
    let f = r.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(f.bars.len(), 2, "{name}");
    assert_eq!(f.requests, 2, "{name}");
    let rs = retries(&events);
    assert_eq!(rs.len(), 1, "{name}: {rs:?}");
    assert_eq!((rs[0].0, rs[0].1), (2, kind), "{name}: {rs:?}");
    assert_no_key(&rs[0].3);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "{name} took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn each_retryable_failure_is_retried_then_succeeds() {
    let cut = page(&minutes(0, 2), None);
    let cases: Vec<(&str, MakeReply, ErrorKind)> = vec![
        (
            "429",
            Box::new(|| {
                json(
                    429,
                    r#"{"status":"ERROR","error":"exceeded the maximum requests per minute"}"#,
                )
            }),
            ErrorKind::RateLimited,
        ),
        ("500", Box::new(|| json(500, "{}")), ErrorKind::Server),
        ("503", Box::new(|| json(503, "")), ErrorKind::Server),
        (
            "504",
            Box::new(|| json(504, "gateway timeout")),
            ErrorKind::Server,
        ),
        (
            "502 html",
            Box::new(|| Reply::Full {
                status: 502,
                headers: vec![("content-type", "text/html".into())],
                body: "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
            }),
            ErrorKind::Server,
        ),
        (
            "truncated 200",
            Box::new(move || json(200, cut[..cut.len() - 40].to_string())),
            ErrorKind::Body,
        ),
        (
            "malformed 200",
            Box::new(|| json(200, "<html>oops</html>")),
            ErrorKind::Body,
        ),
        (
            "dropped mid-body",
            Box::new(|| Reply::DropMidBody(page(&minutes(0, 50), None))),
            ErrorKind::Body,
        ),
        (
            "200 status ERROR",
            Box::new(|| {
                json(
                    200,
                    r#"{"status":"ERROR","error":"internal","request_id":"x"}"#,
                )
            }),
            ErrorKind::ApiError,
        ),
        ("hang", Box::new(|| Reply::Hang), ErrorKind::Timeout),
    ];
    for (name, first, kind) in cases {
        assert_retried_then_ok(name, fault_then_ok(first).await, kind).await;
    }
}

#[tokio::test]
async fn connection_refused_is_retryable_connect_error() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (r, events) = fetch(&client(&format!("http://{addr}"))).await;
    let e = r.unwrap_err();
    assert_eq!(
        (e.class, e.kind, e.attempts),
        (ErrorClass::Retryable, ErrorKind::Connect, 4),
        "{e}"
    );
    assert_eq!(retries(&events).len(), 3);
}

#[tokio::test]
async fn tls_failure_is_retryable_tls_error() {
    // An https base on a server that answers in plain HTTP at once: the handshake fails.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = sock.shutdown().await;
        }
    });
    let (r, _) = fetch(&client(&format!("https://{addr}"))).await;
    task.abort();
    let e = r.unwrap_err();
    assert_eq!(
        (e.class, e.kind, e.attempts),
        (ErrorClass::Retryable, ErrorKind::Tls, 4),
        "{e}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_clamped() {
    for (value, expect) in [
        ("1", Duration::from_millis(100)), // 1 s clamped to max_retry_after = 100 ms
        ("0", Duration::ZERO),
        ("Sun, 06 Nov 1994 08:49:37 GMT", Duration::ZERO), // a date in the past
    ] {
        let server = fault_then_ok(move || Reply::Full {
            status: 429,
            headers: vec![("retry-after", value.to_string())],
            body: String::new(),
        })
        .await;
        let (r, events) = fetch(&client(&server.base)).await;
        r.unwrap();
        let rs = retries(&events);
        assert_eq!(rs.len(), 1);
        assert_eq!(
            (rs[0].1, rs[0].2),
            (ErrorKind::RateLimited, expect),
            "Retry-After: {value}"
        );
    }
}

#[tokio::test]
async fn fatal_classes_are_not_retried() {
    let cases = [
        (
            400,
            r#"{"status":"ERROR","error":"Could not parse the date"}"#,
            ErrorClass::Ticker,
            ErrorKind::BadRequest,
        ),
        (
            404,
            r#"{"status":"NOT_FOUND","message":"Not found"}"#,
            ErrorClass::Ticker,
            ErrorKind::NotFound,
        ),
        (
            403,
            r#"{"status":"NOT_AUTHORIZED","request_id":"x","message":"You are not entitled to this data. Please upgrade your plan."}"#,
            ErrorClass::Ticker,
            ErrorKind::NotEntitled,
        ),
        (
            403,
            r#"{"status":"ERROR","error":"Unknown API Key"}"#,
            ErrorClass::Run,
            ErrorKind::Unauthorized,
        ),
        (
            401,
            r#"{"status":"ERROR","request_id":"x","error":"Unknown API Key"}"#,
            ErrorClass::Run,
            ErrorKind::Unauthorized,
        ),
    ];
    for (status, body, class, kind) in cases {
        let server = Server::start(move |_, _| json(status, body)).await;
        let (r, events) = fetch(&client(&server.base)).await;
        let e = r.unwrap_err();
        assert_eq!(
            (e.class, e.kind, e.status, e.attempts),
            (class, kind, Some(status), 1),
            "{status}: {e}"
        );
        assert!(retries(&events).is_empty());
        assert_eq!(server.requests().len(), 1);
    }
}

#[tokio::test]
async fn exhausted_retries_stay_retryable_and_count_attempts() {
    let server = Server::start(|_, _| json(503, r#"{"status":"ERROR","error":"busy"}"#)).await;
    let (r, events) = fetch(&client(&server.base)).await;
    let e = r.unwrap_err();
    assert_eq!(
        (e.class, e.kind, e.status, e.attempts),
        (ErrorClass::Retryable, ErrorKind::Server, Some(503), 4)
    );
    assert!(e.message.contains("gave up after 4 attempts"), "{e}");
    assert_eq!(server.requests().len(), 4);
    let attempts: Vec<u32> = retries(&events).iter().map(|r| r.0).collect();
    assert_eq!(attempts, vec![2, 3, 4]);
    // The event shape the worker emits and the parent decodes.
    let back = FetchError::from_json(&e.to_json()).unwrap();
    assert_eq!(back, e);
    assert_eq!(e.to_json()["class"], "retryable");
    assert_eq!(e.to_json()["kind"], "server");
}

#[tokio::test]
async fn key_appears_in_no_error_or_event_text() {
    // A hostile server echoing the Authorization header everywhere it can.
    let server = Server::start(|req, i| {
        let auth = req.header("authorization").unwrap_or("").to_string();
        match i {
            0 => json(500, format!(r#"{{"status":"ERROR","error":"bad {auth}"}}"#)),
            1 => json(200, format!(r#"{{"status":"ERROR","error":"{auth}"}}"#)),
            2 => json(200, format!("garbage {auth}")),
            _ => json(
                400,
                format!(r#"{{"status":"ERROR","message":"{auth} rejected"}}"#),
            ),
        }
    })
    .await;
    let c = client(&server.base);
    assert_no_key(&format!("{c:?}"));
    let (r, events) = fetch(&c).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert_no_key(&e.message);
    assert_no_key(&e.to_json().to_string());
    assert_no_key(&format!("{e:?}"));
    assert_eq!(retries(&events).len(), 3);
    for ev in &events {
        assert_no_key(&format!("{ev:?}"));
    }
}

#[tokio::test]
async fn missing_key_is_a_run_error() {
    let e = Client::new(ClientConfig::new(ApiKey::new("  "))).unwrap_err();
    assert_eq!((e.class, e.kind), (ErrorClass::Run, ErrorKind::MissingKey));
}

// ---------------------------------------------------------------- budget

fn client_with_budget(base: &str, budget: Budget) -> Client {
    let mut cfg = ClientConfig::new(ApiKey::new(KEY));
    cfg.base_url = base.to_string();
    cfg.timeout = Duration::from_millis(400);
    cfg.retry = RetryPolicy {
        max_retry_after: Duration::from_millis(300),
        ..fast_retry(4)
    };
    cfg.budget = Some(budget);
    Client::new(cfg).unwrap()
}

#[tokio::test]
async fn every_request_goes_through_the_budget() {
    let server = Server::start(|req, i| {
        let base = format!("http://{}", req.header("host").unwrap());
        let next = (i < 4).then(|| format!("{base}/v2/next?cursor={i}"));
        json(200, page(&minutes(i as i64, 1), next))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let budget = Budget::open(dir.path(), &ApiKey::new(KEY), Rate(20.0)).unwrap();
    let t = Instant::now();
    let (r, _) = fetch(&client_with_budget(&server.base, budget)).await;
    assert_eq!(r.unwrap().pages, 5);
    // 5 requests at 20/s: 4 × 50 ms at least.
    assert!(
        t.elapsed() >= Duration::from_millis(195),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_429_slows_every_holder_of_the_budget() {
    let server = fault_then_ok(|| Reply::Full {
        status: 429,
        headers: vec![("retry-after", "1".into())],
        body: String::new(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = ApiKey::new(KEY);
    let budget = Budget::open(dir.path(), &key, Rate(1000.0)).unwrap();
    let other = Budget::open(dir.path(), &key, Rate(1000.0)).unwrap();
    let c = client_with_budget(&server.base, budget);
    let fetching = tokio::spawn(async move { fetch(&c).await });
    // Wait until the 429 has been served, then ask for a slot as another process would.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.requests().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = Instant::now();
    other.acquire().await.unwrap();
    let waited = t.elapsed();
    let (r, events) = fetching.await.unwrap();
    r.unwrap();
    // Retry-After: 1 s, clamped to 300 ms; the other handle waits out most of it.
    assert_eq!(retries(&events)[0].2, Duration::from_millis(300));
    assert!(
        waited >= Duration::from_millis(200),
        "other holder waited only {waited:?}"
    );
}

#[tokio::test]
async fn a_429_without_retry_after_waits_for_its_budget_slot_not_its_own_backoff() {
    let server = fault_then_ok(|| Reply::Full {
        status: 429,
        headers: vec![],
        body: String::new(),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let budget = Budget::open(dir.path(), &ApiKey::new(KEY), Rate(50.0)).unwrap();
    let mut cfg = ClientConfig::new(ApiKey::new(KEY));
    cfg.base_url = server.base.clone();
    cfg.timeout = Duration::from_millis(400);
    // A backoff that would dominate: the budget alone must pace the retry.
    cfg.retry = RetryPolicy {
        base: Duration::from_secs(5),
        max_backoff: Duration::from_secs(10),
        ..fast_retry(4)
    };
    cfg.budget = Some(budget);
    let c = Client::new(cfg).unwrap();
    let t = Instant::now();
    let (r, events) = fetch(&c).await;
    r.unwrap();
    assert_eq!(retries(&events)[0].2, Duration::ZERO);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

// ---------------------------------------------------------------- raw_get

#[tokio::test]
async fn raw_get_shows_status_headers_and_redacted_body() {
    let server = Server::start(|req, _| {
        let auth = req.header("authorization").unwrap_or("").to_string();
        Reply::Full {
            status: 418,
            headers: vec![("x-echo", auth.clone())],
            body: format!("you sent {auth}"),
        }
    })
    .await;
    let c = client(&server.base);
    let r = c
        .raw_get(&format!("/v1/marketstatus/now?apiKey={KEY}&x=1"))
        .await
        .unwrap();
    assert_eq!(r.status, 418);
    assert!(r.body.starts_with("you sent Bearer "), "{}", r.body);
    assert_no_key(&format!("{r:?}"));
    assert!(r.headers.iter().any(|(k, _)| k == "x-echo"));
    let sent = &server.requests()[0];
    assert_eq!(sent.target, "/v1/marketstatus/now?x=1");
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    let e = c.raw_get("http://127.0.0.2:1/v2/x").await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Run);
    assert_eq!(server.requests().len(), 1);
}

// ---------------------------------------------------------------- throughput

fn synth_page(n: usize) -> Vec<u8> {
    let mut s = String::from(
        r#"{"ticker":"AAPL","queryCount":50000,"resultsCount":50000,"adjusted":true,"results":["#,
    );
    let mut p = 130.0f64;
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        p += ((i * 7919 % 13) as f64 - 6.0) * 0.01;
        s.push_str(&format!(
            r#"{{"v":{},"vw":{:.4},"o":{:.2},"c":{:.2},"h":{:.2},"l":{:.2},"t":{},"n":{}}}"#,
            1000 + (i * 31 % 50000),
            p + 0.0123,
            p,
            p + 0.05,
            p + 0.1,
            p - 0.1,
            T0 + i as i64 * MIN,
            i % 97 + 1
        ));
    }
    s.push_str(r#"],"status":"OK","request_id":"6a7e466379af0a71039d60cc78e72282","count":50000}"#);
    s.into_bytes()
}

/// `cargo test --release --test client decode_throughput -- --ignored --nocapture`
#[test]
#[ignore = "measurement; run in release mode"]
fn decode_throughput() {
    let page = synth_page(50_000);
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        let p = decode_page(&page).unwrap();
        assert_eq!(p.bars.len(), 50_000);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "decode: {} bytes/bar, {:.2} M bars/s, {:.0} MB/s (best of 20, 50,000-bar page)",
        page.len() / 50_000,
        0.05 / best,
        page.len() as f64 / best / 1e6
    );
}

// ---------------------------------------------------------------- against the sandbox

mod against_sandbox {
    use super::*;
    use barsmith::sandbox::{FaultPlan, SANDBOX_API_KEY, Sandbox, SandboxConfig, synth};

    fn sandbox(faults: &[&str]) -> Sandbox {
        let cfg = SandboxConfig {
            faults: FaultPlan::parse(faults).unwrap(),
            hang_for: Duration::from_secs(2),
            today: jiff::civil::date(2024, 1, 1),
            ..SandboxConfig::default()
        };
        Sandbox::start_background(cfg).unwrap()
    }

    /// Short enough for the `hang` fault to time out quickly.
    const QUICK: Duration = Duration::from_millis(500);
    /// For multi-page fetches: a debug-build sandbox makes 50,000-bar pages slowly.
    const PATIENT: Duration = Duration::from_secs(5);

    fn sandbox_client(sb: &Sandbox, timeout: Duration, budget: Option<Budget>) -> Client {
        let mut cfg = ClientConfig::new(ApiKey::new(SANDBOX_API_KEY));
        cfg.base_url = sb.base_url();
        cfg.timeout = timeout;
        cfg.retry = fast_retry(4);
        cfg.budget = budget;
        Client::new(cfg).unwrap()
    }

    async fn get(
        c: &Client,
        ticker: &str,
        range: DateRange,
    ) -> (Result<Fetched, FetchError>, Vec<SourceEvent>) {
        let mut events = Vec::new();
        let r = c.fetch_bars(ticker, range, &mut |e| events.push(e)).await;
        (r, events)
    }

    /// Long enough for more than one 50,000-bar page.
    fn multi_page() -> DateRange {
        DateRange::parse("2021-01-01", "2021-12-31").unwrap()
    }

    #[tokio::test]
    async fn a_paginated_fetch_returns_exactly_the_synthetic_bars() {
        let sb = sandbox(&[]);
        let (r, _) = get(&sandbox_client(&sb, PATIENT, None), "AAPL", multi_page()).await;
        let f = r.unwrap();
        assert!(f.pages >= 2, "{} pages", f.pages);
        assert!(
            f.bars == synth::bars_for("AAPL", multi_page(), sb.config()),
            "bars differ"
        );
        assert_eq!((f.duplicates_dropped, f.reordered), (0, 0));
    }

    #[tokio::test]
    async fn transient_sandbox_faults_are_ridden_out() {
        let cases = [
            ("A", "429", ErrorKind::RateLimited),
            ("B", "429-retry-after=1", ErrorKind::RateLimited),
            ("C", "500", ErrorKind::Server),
            ("D", "502-html", ErrorKind::Server),
            ("E", "drop", ErrorKind::Body),
            ("F", "truncated", ErrorKind::Body),
            ("G", "status-error", ErrorKind::ApiError),
            ("H", "hang", ErrorKind::Timeout),
        ];
        let specs: Vec<String> = cases.iter().map(|(t, f, _)| format!("{t}={f}:1")).collect();
        let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
        let sb = sandbox(&specs);
        let c = sandbox_client(&sb, QUICK, None);
        for (ticker, fault, kind) in cases {
            let (r, events) = get(&c, ticker, day()).await;
            let f = r.unwrap_or_else(|e| panic!("{fault}: {e}"));
            assert_eq!(
                f.bars,
                synth::bars_for(ticker, day(), sb.config()),
                "{fault}"
            );
            let rs = retries(&events);
            assert_eq!(
                rs.iter().map(|r| r.1).collect::<Vec<_>>(),
                vec![kind],
                "{fault}"
            );
        }
    }

    /// A client that follows every `next_url` (the cursor faults act on those pages).
    fn paging_client(sb: &Sandbox) -> Client {
        let mut cfg = ClientConfig::new(ApiKey::new(SANDBOX_API_KEY));
        cfg.base_url = sb.base_url();
        cfg.timeout = PATIENT;
        cfg.retry = fast_retry(4);
        cfg.spread = false;
        Client::new(cfg).unwrap()
    }

    #[tokio::test]
    async fn a_spread_fetch_has_its_pages_in_flight_at_once_for_as_many_requests() {
        let sb = Sandbox::start_background(SandboxConfig {
            latency: Duration::from_millis(150),
            today: jiff::civil::date(2024, 1, 1),
            ..SandboxConfig::default()
        })
        .unwrap();
        let (paged, _) = get(&paging_client(&sb), "AAPL", multi_page()).await;
        let paged = paged.unwrap();
        assert!(paged.pages >= 3, "{} pages", paged.pages);
        assert_eq!(
            sb.stats().max_in_flight,
            1,
            "paging: one page after another"
        );
        sb.reset_stats();
        let (spread, _) = get(&sandbox_client(&sb, PATIENT, None), "AAPL", multi_page()).await;
        let spread = spread.unwrap();
        assert!(spread.bars == paged.bars, "the same bars");
        assert!(
            spread.requests <= paged.requests + 1,
            "{} requests spread, {} paged",
            spread.requests,
            paged.requests
        );
        assert!(
            sb.stats().max_in_flight >= 2,
            "the rest of the range fetched at once"
        );
        assert!(
            matches!(spread.paging, Paging::AfterFirstPage(n) if n >= 2),
            "{:?}",
            spread.paging
        );
        assert_eq!(paged.paging, Paging::Cursor);
    }

    #[tokio::test]
    async fn a_later_year_of_a_ticker_is_spread_from_its_start() {
        let sb = Sandbox::start_background(SandboxConfig {
            latency: Duration::from_millis(150),
            today: jiff::civil::date(2024, 1, 1),
            ..SandboxConfig::default()
        })
        .unwrap();
        let c = sandbox_client(&sb, PATIENT, None);
        let (first, _) = get(&c, "AAPL", multi_page()).await;
        assert!(matches!(first.unwrap().paging, Paging::AfterFirstPage(_)));
        let next_year = DateRange::parse("2022-01-01", "2022-12-31").unwrap();
        let (r, _) = get(&c, "AAPL", next_year).await;
        let f = r.unwrap();
        assert!(
            matches!(f.paging, Paging::FromStart(n) if n >= 2),
            "no first page needed: {:?}",
            f.paging
        );
        assert!(f.bars == synth::bars_for("AAPL", next_year, sb.config()));
        // Another ticker has no density yet.
        let (other, _) = get(&c, "MSFT", next_year).await;
        assert!(matches!(other.unwrap().paging, Paging::AfterFirstPage(_)));
    }

    #[tokio::test]
    async fn repeated_page_is_deduplicated_to_the_synthetic_bars() {
        let sb = sandbox(&["AAPL=repeat-page"]);
        let (r, _) = get(&paging_client(&sb), "AAPL", multi_page()).await;
        let f = r.unwrap();
        assert!(
            f.pages >= 2 && f.duplicates_dropped > 0,
            "{} pages",
            f.pages
        );
        assert!(
            f.bars == synth::bars_for("AAPL", multi_page(), sb.config()),
            "bars differ"
        );
    }

    #[tokio::test]
    async fn sandbox_cursor_loop_and_fatal_answers_are_classified() {
        let sb = sandbox(&["AAPL=cursor-loop", "N=403", "U=401"]);
        let c = paging_client(&sb);
        // (Not `unwrap_err`: on failure it would print a year of bars.)
        let Err(e) = get(&c, "AAPL", multi_page()).await.0 else {
            panic!("expected a cursor loop error");
        };
        assert_eq!(
            (e.class, e.kind),
            (ErrorClass::Retryable, ErrorKind::CursorLoop),
            "{e}"
        );
        let e = get(&c, "N", day()).await.0.unwrap_err();
        assert_eq!(
            (e.class, e.kind, e.attempts),
            (ErrorClass::Ticker, ErrorKind::NotEntitled, 1),
            "{e}"
        );
        let e = get(&c, "U", day()).await.0.unwrap_err();
        assert_eq!(
            (e.class, e.kind, e.attempts),
            (ErrorClass::Run, ErrorKind::Unauthorized, 1),
            "{e}"
        );
        // A key the sandbox does not know.
        let mut cfg = ClientConfig::new(ApiKey::new("wrong-key"));
        cfg.base_url = sb.base_url();
        let e = get(&Client::new(cfg).unwrap(), "AAPL", day())
            .await
            .0
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::Run, "{e}");
        assert!(!e.message.contains("wrong-key"), "{e}");
    }

    #[tokio::test]
    async fn a_server_without_burst_tolerance_refuses_one_request_at_start_up_not_a_burst() {
        // A worker's budget allows 80 at once (0.8 s at 100/s); this server none.
        let sb = Sandbox::start_background(SandboxConfig {
            rate_limit: Some(100.0),
            rate_burst: 1,
            latency: Duration::from_millis(100),
            ..SandboxConfig::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rate = Rate(50.0);
        let budget = Budget::open_with_burst(
            dir.path(),
            &ApiKey::new(SANDBOX_API_KEY),
            rate,
            rate.default_burst(),
        )
        .unwrap();
        let c = sandbox_client(&sb, PATIENT, Some(budget));
        let fetches = (0..30).map(|i| {
            let c = c.clone();
            async move { get(&c, &format!("T{i}"), day()).await.0 }
        });
        for r in futures_util::future::join_all(fetches).await {
            r.unwrap();
        }
        let stats = sb.stats();
        assert_eq!(stats.data_requests - stats.rate_limited, 30);
        // The pair that asks the server's tolerance: its second request, at most.
        assert!(stats.rate_limited <= 2, "{stats:?}");
    }

    #[tokio::test]
    async fn the_budget_keeps_a_rate_limited_sandbox_from_answering_429() {
        // The sandbox allows 20/s; the budget spaces requests at 10/s, leaving room for
        // the scheduling jitter of a loaded machine.
        let cfg = SandboxConfig {
            rate_limit: Some(20.0),
            rate_burst: 2,
            ..SandboxConfig::default()
        };
        let sb = Sandbox::start_background(cfg).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::open(dir.path(), &ApiKey::new(SANDBOX_API_KEY), Rate(10.0)).unwrap();
        let c = sandbox_client(&sb, PATIENT, Some(budget));
        for t in ["A", "B", "C", "D", "E", "F", "G", "H"] {
            let (r, events) = get(&c, t, day()).await;
            r.unwrap();
            assert!(retries(&events).is_empty(), "{t}: {:?}", retries(&events));
        }
        let stats = sb.stats();
        assert_eq!(stats.data_requests, 8);
        assert_eq!(stats.rate_limited, 0, "{stats:?}");
    }
}
