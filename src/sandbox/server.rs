//! The accept loop, one task per connection, and request dispatch (auth, rate limit,
//! latency, faults, pages, control endpoints).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::SandboxConfig;
use super::aggs;
use super::arrival::{self, Stamped};
use super::faults::{Fault, FaultPlan, FaultState, RandomFaults, parse_kinds};
use super::http::{self, ReadError, Request, Response};
use super::limiter::Gcra;
use super::pages::{PageCache, page};
use super::reference;
use super::s3;
use super::stats::{Counters, SandboxStats};
use super::synth::{fnv1a, mix2};

/// A keep-alive connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The real API's message for a rejected key.
const UNKNOWN_KEY: &str = "Unknown API Key";
/// The real API's message for too many requests.
const TOO_MANY: &str = "You've exceeded the maximum requests per minute, please wait or upgrade \
                        your subscription to continue. https://polygon.io/pricing";
/// The real API's message for data outside the plan.
const NOT_ENTITLED: &str = "Your plan doesn't include this data timeframe. Please upgrade your \
                            plan at https://polygon.io/pricing";
const BAD_GATEWAY_HTML: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                                <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                                </body>\r\n</html>\r\n";

/// State shared by every connection of one sandbox.
pub(crate) struct Shared {
    pub(crate) cfg: SandboxConfig,
    pub(crate) base_url: String,
    faults: Mutex<FaultState>,
    pub(crate) counters: Mutex<Counters>,
    limiter: Option<Mutex<Gcra>>,
    /// The flat-file (S3) endpoint's state.
    pub(crate) flat: s3::FlatState,
    /// Aggregates pages kept for identical requests (off unless a bench asks).
    pub(crate) pages: PageCache,
}

/// Locks a mutex, ignoring poisoning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters stay usable even if a panic ever poisoned the lock.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn stats(&self) -> SandboxStats {
        lock(&self.counters).stats.clone()
    }

    pub(crate) fn reset_stats(&self) {
        *lock(&self.counters) = Counters::default();
    }

    pub(crate) fn set_faults(&self, plan: FaultPlan) {
        *lock(&self.faults) = FaultState::new(plan);
    }
}

/// Binds 127.0.0.1:`cfg.port` and spawns the accept loop on the current runtime.
pub(crate) async fn spawn(
    cfg: SandboxConfig,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(Arc<Shared>, SocketAddr)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, cfg.port)).await?;
    let addr = listener.local_addr()?;
    let limiter = cfg
        .rate_limit
        .map(|r| Mutex::new(Gcra::new(r, cfg.rate_burst)));
    let shared = Arc::new(Shared {
        faults: Mutex::new(FaultState::new(cfg.faults.clone())),
        counters: Mutex::new(Counters::default()),
        limiter,
        base_url: format!("http://{addr}"),
        flat: s3::FlatState::new(&cfg),
        pages: PageCache::default(),
        cfg,
    });
    tracing::debug!(%addr, "sandbox listening");
    tokio::spawn(accept_loop(listener, Arc::clone(&shared), stop));
    Ok((shared, addr))
}

/// Resolves once the sandbox is asked to stop (or its handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let conn_stop = stop.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let mut stop = conn_stop.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = serve_connection(stream, &shared) => {}
                            _ = stopped(&mut stop) => {}
                        }
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "sandbox accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    tracing::debug!("sandbox stopped");
}

/// What to do with the connection after a request.
pub(crate) enum Reply {
    /// Send a whole response.
    Send(Response),
    /// Send the head and half of the body, then close.
    DropHalf(Response),
    /// Never answer; close after `hang_for`.
    Hang,
    /// A flat file (or a range of it): `resp` gives status and headers, `body` the
    /// bytes (shared with the cache, not copied); for HEAD only the head is sent, with
    /// the body's length; `trickle` spreads the body over about that long.
    Object {
        resp: Response,
        body: bytes::Bytes,
        head_only: bool,
        trickle: Option<Duration>,
    },
}

async fn serve_connection(stream: TcpStream, shared: &Arc<Shared>) {
    if let Err(e) = arrival::enable(&stream) {
        tracing::debug!(error = %e, "no kernel receive stamps: arrivals are read times");
    }
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(Stamped::new(rd));
    loop {
        let req = match tokio::time::timeout(IDLE_TIMEOUT, http::read_request(&mut rd)).await {
            Err(_) | Ok(Err(ReadError::Closed)) => return,
            Ok(Err(ReadError::Io(e))) => {
                tracing::trace!(error = %e, "sandbox connection read failed");
                return;
            }
            Ok(Err(ReadError::Bad(msg))) => {
                lock(&shared.counters).request();
                lock(&shared.counters).status(400);
                let body = error_json("ERROR", "error", "none", &msg);
                let _ = http::write_response(&mut wr, &Response::json(400, body), false).await;
                return;
            }
            Ok(Ok(req)) => req,
        };
        let keep_alive = req.keep_alive;
        match handle(shared, req, rd.get_ref().arrival()).await {
            Reply::Send(resp) => {
                if http::write_response(&mut wr, &resp, keep_alive)
                    .await
                    .is_err()
                    || !keep_alive
                {
                    return;
                }
            }
            Reply::DropHalf(resp) => {
                let _ = http::write_half(&mut wr, &resp).await;
                return;
            }
            Reply::Hang => {
                tokio::time::sleep(shared.cfg.hang_for).await;
                return;
            }
            Reply::Object {
                resp,
                body,
                head_only,
                trickle,
            } => {
                let send = (!head_only).then_some(&body[..]);
                let sent =
                    http::write_object(&mut wr, &resp, body.len(), send, trickle, keep_alive).await;
                if sent.is_err() || !keep_alive {
                    return;
                }
            }
        }
    }
}

/// A Polygon-style error body.
/// Keys in the real API's order: status, request_id, then `error` or `message`.
pub(crate) fn error_json(status: &str, key: &str, request_id: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(b"{\"status\":");
    aggs::json_str(&mut out, status);
    out.extend_from_slice(b",\"request_id\":");
    aggs::json_str(&mut out, request_id);
    out.push(b',');
    aggs::json_str(&mut out, key);
    out.push(b':');
    aggs::json_str(&mut out, message);
    out.push(b'}');
    out
}

/// A request id that depends only on the request (so the same request gets the same
/// bytes), 32 hex digits like the real ones.
fn request_id(req: &Request) -> String {
    let mut h = fnv1a(req.path.as_bytes());
    for (k, v) in req.query.iter().filter(|(k, _)| k != "apiKey") {
        h = mix2(h, fnv1a(k.as_bytes()));
        h = mix2(h, fnv1a(v.as_bytes()));
    }
    format!("{:016x}{:016x}", mix2(h, 1), mix2(h, 2))
}

fn authorized(cfg: &SandboxConfig, req: &Request) -> bool {
    let bearer = req.header("authorization").and_then(|h| {
        let (scheme, token) = h.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    bearer == Some(cfg.api_key.as_str()) || req.param("apiKey") == Some(cfg.api_key.as_str())
}

/// Answers `req`, whose bytes arrived at `arrived` (for the rate limit).
async fn handle(shared: &Arc<Shared>, req: Request, arrived: Instant) -> Reply {
    if let Some(ctl) = req.path.strip_prefix("/_sandbox/") {
        return Reply::Send(control(shared, ctl, &req));
    }
    lock(&shared.counters).request();
    let resp = if s3::is_s3_request(&req) {
        lock(&shared.counters).flat_request();
        s3::answer(shared, req).await
    } else {
        answer(shared, req, arrived).await
    };
    let status = match &resp {
        Reply::Send(r) | Reply::DropHalf(r) | Reply::Object { resp: r, .. } => Some(r.status),
        Reply::Hang => None,
    };
    if let Some(s) = status {
        lock(&shared.counters).status(s);
    }
    resp
}

async fn answer(shared: &Arc<Shared>, req: Request, arrived: Instant) -> Reply {
    let id = request_id(&req);
    let json = |status: u16, st: &str, key: &str, msg: &str| {
        Reply::Send(Response::json(status, error_json(st, key, &id, msg)))
    };
    let path = req.path.trim_end_matches('/');
    if let Some(t) = path.strip_prefix("/v3/reference/tickers/") {
        if !authorized(&shared.cfg, &req) {
            return json(401, "ERROR", "error", UNKNOWN_KEY);
        }
        let ticker = http::percent_decode(t, false);
        return Reply::Send(reference::ticker_details(&shared.cfg, &ticker, &id));
    }
    let Some(rest) = path.strip_prefix("/v2/aggs/ticker/") else {
        return json(
            404,
            "NOT_FOUND",
            "message",
            "Not found: the sandbox serves /v2/aggs/ticker/{T}/range/1/minute/{from}/{to} \
             and /v3/reference/tickers/{T}",
        );
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let ticker = http::percent_decode(segments[0], false);
    lock(&shared.counters).data_request(&ticker, arrived);
    let _answering = Answering::new(shared);
    if req.method != "GET" {
        return json(405, "ERROR", "error", "Method not allowed: use GET");
    }
    let authed = authorized(&shared.cfg, &req);
    let limited = authed
        && shared
            .limiter
            .as_ref()
            .is_some_and(|l| !lock(l).check(arrived));
    if !shared.cfg.latency.is_zero() {
        tokio::time::sleep(shared.cfg.latency).await;
    }
    if !authed {
        return json(401, "ERROR", "error", UNKNOWN_KEY);
    }
    if limited {
        return json(429, "ERROR", "error", TOO_MANY);
    }
    let aggs_req = match aggs::parse(&segments, &req.query) {
        Ok(r) => r,
        Err((404, msg)) => return json(404, "NOT_FOUND", "message", &msg),
        Err((status, msg)) => return json(status, "ERROR", "error", &msg),
    };
    let fault = lock(&shared.faults).pick(&aggs_req.ticker, aggs_req.raw_cursor.is_some());
    if let Some(f) = fault {
        lock(&shared.counters).fault();
        tracing::debug!(ticker = %aggs_req.ticker, fault = %f, "sandbox fault");
    }
    match fault {
        Some(Fault::RateLimited) => json(429, "ERROR", "error", TOO_MANY),
        Some(Fault::RateLimitedRetryAfter(secs)) => {
            let mut r = Response::json(429, error_json("ERROR", "error", &id, TOO_MANY));
            r.headers.push(("Retry-After", secs.to_string()));
            Reply::Send(r)
        }
        Some(Fault::ServerError(code)) => {
            let msg = match code {
                502 => "Bad gateway",
                503 => "Service unavailable, please try again",
                504 => "Gateway timeout",
                _ => "Internal server error",
            };
            json(code, "ERROR", "error", msg)
        }
        Some(Fault::BadGatewayHtml) => Reply::Send(Response {
            status: 502,
            content_type: "text/html",
            headers: Vec::new(),
            body: BAD_GATEWAY_HTML.as_bytes().to_vec(),
        }),
        Some(Fault::Hang) => Reply::Hang,
        Some(Fault::NotEntitled) => json(403, "NOT_AUTHORIZED", "message", NOT_ENTITLED),
        Some(Fault::Unauthorized) => json(401, "ERROR", "error", UNKNOWN_KEY),
        Some(Fault::StatusError) => json(
            200,
            "ERROR",
            "error",
            "Internal error while querying aggregates, please try again",
        ),
        Some(Fault::Drop) => {
            let body = page(shared, aggs_req, id, None).await;
            Reply::DropHalf(Response::json(200, body.to_vec()))
        }
        Some(Fault::Truncated) => {
            let body = page(shared, aggs_req, id, None).await;
            Reply::Send(Response::json(200, body[..body.len() / 2].to_vec()))
        }
        Some(f @ (Fault::CursorLoop | Fault::RepeatPage | Fault::Disorder | Fault::Conflict)) => {
            let body = page(shared, aggs_req, id, Some(f)).await;
            Reply::Send(Response::json(200, body.to_vec()))
        }
        // Sent as the shared bytes the cache keeps (see `pages`).
        None => Reply::Object {
            resp: Response::json(200, Vec::new()),
            body: page(shared, aggs_req, id, None).await,
            head_only: false,
            trickle: None,
        },
    }
}

/// An aggregates request being answered, counted from arrival until its reply is
/// ready (or the request is dropped).
struct Answering<'a>(&'a Shared);

impl<'a> Answering<'a> {
    fn new(shared: &'a Shared) -> Answering<'a> {
        lock(&shared.counters).answering();
        Answering(shared)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        lock(&self.0.counters).answered();
    }
}

/// The shape `POST /_sandbox/faults` accepts besides a plain array of spec strings.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsBody {
    #[serde(default)]
    rules: Vec<String>,
    rate: Option<f64>,
    #[serde(default)]
    seed: u64,
    kinds: Option<String>,
}

fn parse_fault_body(body: &[u8]) -> Result<FaultPlan, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if value.is_array() {
        let specs: Vec<String> = serde_json::from_value(value).map_err(|_| {
            "expected a JSON array of fault spec strings, e.g. [\"AAPL=429:2\"]".to_string()
        })?;
        return FaultPlan::parse(&specs).map_err(|e| e.0);
    }
    let b: FaultsBody = serde_json::from_value(value).map_err(|e| {
        format!("expected [\"T=FAULT[:N]\", ...] or {{\"rules\":[...],\"rate\":P,\"seed\":S,\"kinds\":\"429,500\"}}: {e}")
    })?;
    let mut plan = FaultPlan::parse(&b.rules).map_err(|e| e.0)?;
    if let Some(rate) = b.rate {
        let kinds = match b.kinds {
            Some(k) => parse_kinds(&k).map_err(|e| e.0)?,
            None => Fault::default_random_kinds(),
        };
        plan.random = Some(RandomFaults::new(rate, b.seed, kinds).map_err(|e| e.0)?);
    }
    Ok(plan)
}

fn plan_json(plan: &FaultPlan) -> serde_json::Value {
    json!({
        "rules": plan.specs(),
        "random": plan.random.as_ref().map(|r| json!({
            "rate": r.probability,
            "seed": r.seed,
            "kinds": r.kinds.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })),
    })
}

/// `/_sandbox/*`: stats and the fault plan; no key needed, not counted.
fn control(shared: &Shared, what: &str, req: &Request) -> Response {
    let ok = |v: serde_json::Value| Response::json(200, v.to_string().into_bytes());
    let err = |status: u16, msg: &str| {
        Response::json(status, error_json("ERROR", "error", "sandbox", msg))
    };
    if let Some(resp) = s3::control(shared, what.trim_end_matches('/'), req) {
        return resp;
    }
    match (req.method.as_str(), what.trim_end_matches('/')) {
        ("GET", "stats") => match serde_json::to_value(shared.stats()) {
            Ok(v) => ok(v),
            Err(e) => err(500, &e.to_string()),
        },
        ("GET", "faults") => ok(plan_json(lock(&shared.faults).plan())),
        ("POST", "faults") => match parse_fault_body(&req.body) {
            Ok(plan) => {
                let v = plan_json(&plan);
                shared.set_faults(plan);
                ok(json!({ "status": "OK", "plan": v }))
            }
            Err(msg) => err(400, &msg),
        },
        (_, "stats" | "faults") => {
            err(405, "use GET /_sandbox/stats, GET or POST /_sandbox/faults")
        }
        _ => err(
            404,
            "unknown control endpoint: use /_sandbox/stats, /_sandbox/faults, \
             /_sandbox/flat/faults or /_sandbox/flat/republish",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            query: http::parse_query(query),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            keep_alive: true,
        }
    }

    #[test]
    fn auth_accepts_bearer_or_api_key_param_only_with_the_right_key() {
        let cfg = SandboxConfig::default();
        assert!(authorized(
            &cfg,
            &req("GET", "/", "", &[("authorization", "Bearer sandbox")])
        ));
        assert!(authorized(
            &cfg,
            &req("GET", "/", "", &[("authorization", "bearer sandbox")])
        ));
        assert!(authorized(&cfg, &req("GET", "/", "apiKey=sandbox", &[])));
        assert!(!authorized(
            &cfg,
            &req("GET", "/", "", &[("authorization", "Bearer nope")])
        ));
        assert!(!authorized(
            &cfg,
            &req("GET", "/", "", &[("authorization", "Basic sandbox")])
        ));
        assert!(!authorized(&cfg, &req("GET", "/", "", &[])));
    }

    #[test]
    fn error_bodies_keep_the_real_key_order_and_escape_text() {
        let body = error_json("NOT_AUTHORIZED", "message", "abc", "say \"hi\"\n");
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            r#"{"status":"NOT_AUTHORIZED","request_id":"abc","message":"say \"hi\"\u000a"}"#
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["message"], "say \"hi\"\n");
    }

    #[test]
    fn request_id_ignores_the_key_and_depends_on_the_query() {
        let a = request_id(&req("GET", "/x", "limit=5&apiKey=k1", &[]));
        let b = request_id(&req("GET", "/x", "limit=5&apiKey=k2", &[]));
        let c = request_id(&req("GET", "/x", "limit=6", &[]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn fault_body_takes_an_array_or_an_object_with_random_faults() {
        let p = parse_fault_body(br#"["A=429:2","*=drop"]"#).unwrap();
        assert_eq!(p.specs(), vec!["A=429:2", "*=drop"]);
        let p = parse_fault_body(br#"{"rules":["A=500"],"rate":0.5,"seed":3,"kinds":"503,drop"}"#)
            .unwrap();
        let r = p.random.unwrap();
        assert_eq!(
            (r.probability, r.seed, r.kinds),
            (0.5, 3, vec![Fault::ServerError(503), Fault::Drop])
        );
        assert!(
            parse_fault_body(br#"["A=boom"]"#)
                .unwrap_err()
                .contains("'boom'")
        );
        assert!(parse_fault_body(b"nope").unwrap_err().contains("not JSON"));
        assert!(parse_fault_body(br#"{"rulez":[]}"#).is_err());
    }
}
