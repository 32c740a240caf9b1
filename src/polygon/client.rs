//! The client: its configuration, one page with retries through the shared request
//! budget, and raw requests for the REPL (a whole range: [`super::range`]).

use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};

use crate::budget::Budget;
use crate::secret::{ApiKey, redact};

use super::decode::{Page, decode_page_onto};
use super::request::{bearer, check_transport, parse_base, raw_url, read_body};
use super::retry::{
    RetryPolicy, SameError, classify_api_status, classify_status, classify_transport,
    parse_retry_after,
};
use crate::bars::Bars;
use crate::ingest::error::{ErrorClass, ErrorKind, FetchError};
use crate::ingest::source::SourceEvent;

/// The API's base URL (`https://api.polygon.io` still works too).
pub const DEFAULT_BASE_URL: &str = "https://api.massive.com";

/// Per-request timeout (connect, headers and the whole body), as in the seed's ingestor.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(40);

/// Most body bytes kept by [`Client::raw_get`].
pub const RAW_BODY_MAX: usize = 64 * 1024;

/// Everything the client needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `scheme://host[:port][/prefix]`; the key is only ever sent to this origin.
    pub base_url: String,
    /// The API key, sent as `Authorization: Bearer` on every request.
    pub api_key: ApiKey,
    /// `adjusted=true` (split-adjusted bars) or `false`.
    pub adjusted: bool,
    /// Per-request timeout (default 40 s).
    pub timeout: Duration,
    /// Retries of one request.
    pub retry: RetryPolicy,
    /// The machine-wide request budget; `None` sends as fast as responses come.
    pub budget: Option<Budget>,
    /// Allow an `http://` base URL on a host other than loopback: the key would cross
    /// the network in clear. Off by default; when on, a warning names the host.
    pub allow_insecure_http: bool,
    /// Fetch the rest of a multi-page range as sub-ranges at once after its first page
    /// ([`super::spread`]; on by default). Off, every page follows the previous one's
    /// `next_url`.
    pub spread: bool,
}

impl ClientConfig {
    /// Defaults: Massive's base URL, adjusted bars, 40 s timeout, 8 attempts, no budget.
    pub fn new(api_key: ApiKey) -> ClientConfig {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            api_key,
            adjusted: true,
            timeout: DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
            budget: None,
            allow_insecure_http: false,
            spread: true,
        }
    }
}

/// One raw exchange, for the REPL. Nothing in it contains the key.
#[derive(Debug, Clone, PartialEq)]
pub struct RawResponse {
    /// The URL requested.
    pub url: String,
    /// HTTP status code.
    pub status: u16,
    /// Time from sending to the end of the body.
    pub latency: Duration,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text, at most [`RAW_BODY_MAX`] bytes of it.
    pub body: String,
    /// The full body length in bytes.
    pub body_len: usize,
}

/// The aggregates client. Cheap to clone (connections are shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    pub(super) base: Url,
    pub(super) key: ApiKey,
    auth: HeaderValue,
    pub(super) adjusted: bool,
    timeout: Duration,
    retry: RetryPolicy,
    pub(super) budget: Option<Budget>,
    pub(super) spread: bool,
    /// Bars per ms of each ticker's last full piece: the next piece's sub-ranges.
    pub(super) densities: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, f64>>>,
}

/// A failed attempt, with the server's `Retry-After` when it sent one.
struct Failure {
    err: FetchError,
    retry_after: Option<Duration>,
}

impl From<FetchError> for Failure {
    fn from(err: FetchError) -> Failure {
        Failure {
            err,
            retry_after: None,
        }
    }
}

impl Client {
    /// Checks the configuration and builds the HTTP client (TLS via rustls + ring).
    pub fn new(cfg: ClientConfig) -> Result<Client, FetchError> {
        if cfg.api_key.expose().trim().is_empty() {
            return Err(FetchError::new(
                ErrorKind::MissingKey,
                None,
                "no API key: set POLYGON_API_KEY (or MASSIVE_API_KEY)",
            ));
        }
        let base = parse_base(&cfg.base_url)?;
        check_transport(&base, cfg.allow_insecure_http)?;
        let auth = bearer(&cfg.api_key)?;
        // Only the first install wins; later calls (other clients) get an Err to ignore.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if base.scheme() == "http" {
            // No request of this client uses TLS (next_url must keep the base's
            // origin), so the system's root certificates are not read and parsed:
            // a few ms of every worker process against the sandbox.
            builder = builder.tls_certs_only([]);
        }
        let http = builder
            .user_agent(format!("barsmith/{}", crate::VERSION))
            // A redirect would carry the Authorization header along; refuse them all
            // (the API does not redirect) and report the 3xx instead.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(cfg.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                FetchError::new(ErrorKind::Tls, None, format!("cannot set up HTTP/TLS: {e}"))
                    .with_class(ErrorClass::Run)
            })?;
        Ok(Client {
            http,
            base,
            key: cfg.api_key,
            auth,
            adjusted: cfg.adjusted,
            timeout: cfg.timeout,
            retry: cfg.retry,
            budget: cfg.budget,
            spread: cfg.spread,
            densities: Default::default(),
        })
    }

    /// The shared request budget, if the client has one.
    pub fn budget(&self) -> Option<&Budget> {
        self.budget.as_ref()
    }

    /// Whether it asks for split-adjusted bars.
    pub fn adjusted(&self) -> bool {
        self.adjusted
    }

    /// The configured base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// One request for the REPL: through the budget, no retries. `path_or_url` is a
    /// path under the base (`/v2/...`) or a URL on the base's origin (others are
    /// refused, so the key never leaves for another host).
    pub async fn raw_get(&self, path_or_url: &str) -> Result<RawResponse, FetchError> {
        let url = raw_url(&self.base, path_or_url)?;
        if let Some(b) = &self.budget {
            b.acquire().await.map_err(budget_failure)?;
        }
        let t0 = Instant::now();
        let exchange = async {
            let resp = self
                .request(&url)
                .send()
                .await
                .map_err(|e| classify_transport(&e, &self.key))?;
            let status = resp.status().as_u16();
            let headers: Vec<(String, String)> = resp
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        redact(&String::from_utf8_lossy(v.as_bytes()), &self.key),
                    )
                })
                .collect();
            let body = resp
                .bytes()
                .await
                .map_err(|e| body_error(&e, status, &self.key))?;
            Ok::<_, FetchError>((status, headers, body))
        };
        let (status, headers, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timeout_error())??;
        let shown = String::from_utf8_lossy(&body[..body.len().min(RAW_BODY_MAX)]);
        Ok(RawResponse {
            url: redact(url.as_str(), &self.key),
            status,
            latency: t0.elapsed(),
            headers,
            body: redact(&shown, &self.key),
            body_len: body.len(),
        })
    }

    fn request(&self, url: &Url) -> reqwest::RequestBuilder {
        self.http
            .get(url.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json")
    }

    fn timeout_error(&self) -> FetchError {
        FetchError::new(
            ErrorKind::Timeout,
            None,
            format!("timed out: no complete response within {:?}", self.timeout),
        )
    }

    /// One page with retries, its bars appended to `bars` (`body` holds each
    /// response): `(page, elapsed of the good attempt, attempts)`.
    pub(super) async fn get_page(
        &self,
        url: &Url,
        bars: &mut Bars,
        body: &mut Vec<u8>,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> Result<(Page, Duration, u32), FetchError> {
        let max = self.retry.max_attempts.max(1);
        let mut backoff = self.retry.backoff();
        let mut same = SameError::default();
        let mut attempt = 1;
        loop {
            let slot = match &self.budget {
                Some(b) => Some(b.acquire().await.map_err(budget_failure)?),
                None => None,
            };
            let t0 = Instant::now();
            let failure = match self.attempt(url, bars, body).await {
                Ok(page) => {
                    if let (Some(b), Some(slot)) = (&self.budget, slot) {
                        b.answered(slot);
                    }
                    return Ok((page, t0.elapsed(), attempt));
                }
                Err(f) => f,
            };
            let mut err = failure.err.with_attempts(attempt);
            if !err.is_retryable() || attempt >= max {
                return Err(err);
            }
            if same.opens(&err, &self.retry) {
                err.circuit_open = true;
                err.message = format!(
                    "{} (circuit open: the same error {} times in a row)",
                    err.message, self.retry.same_error_limit
                );
                return Err(err);
            }
            let mut delay = self.retry.delay(failure.retry_after, &mut backoff);
            if err.kind == ErrorKind::RateLimited
                && let (Some(b), Some(slot)) = (&self.budget, slot)
            {
                // Everyone on the key waits what the API asked for; without a
                // Retry-After the budget slows the key down (Budget::rate_limited) and
                // the retry waits only for its next slot: its own growing backoff on
                // top would hold a batch open for seconds over a refusal that cost
                // one slot.
                let asked = failure.retry_after.map(|ra| delay.min(ra));
                b.rate_limited(slot, asked, delay.min(self.retry.base));
                if asked.is_none() {
                    delay = Duration::ZERO;
                }
            }
            attempt += 1;
            tracing::debug!(attempt, ?delay, kind = %err.kind, reason = %err.message, "retrying");
            on_event(SourceEvent::Retry {
                attempt,
                reason: err.message,
                delay,
                kind: err.kind,
            });
            tokio::time::sleep(delay).await;
        }
    }

    /// One request for one page: the exchange (request, headers, the whole body into
    /// `body`) bounded by the timeout, then the page decoded with its bars appended to
    /// `bars`. Decoding is not under the timeout: a timeout must not drop the fetch's
    /// bars halfway through the decoder.
    async fn attempt(
        &self,
        url: &Url,
        bars: &mut Bars,
        body: &mut Vec<u8>,
    ) -> Result<Page, Failure> {
        let exchange = async {
            let resp = self
                .request(url)
                .send()
                .await
                .map_err(|e| classify_transport(&e, &self.key))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            read_body(resp, body)
                .await
                .map_err(|e| body_error(&e, status, &self.key))?;
            Ok::<_, FetchError>((status, retry_after))
        };
        let (status, retry_after) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => return Err(self.timeout_error().into()),
        };
        if !(200..300).contains(&status) {
            return Err(Failure {
                err: classify_status(status, body, &self.key),
                retry_after,
            });
        }
        let before = bars.len();
        let page = decode(body, bars).await.map_err(|e| {
            FetchError::new(e.kind, Some(status), redact(&e.message, &self.key)).with_class(e.class)
        })?;
        if !page.is_success() {
            bars.truncate(before);
            let err = classify_api_status(page.status.as_deref(), page.problem(), &self.key);
            return Err(Failure { err, retry_after });
        }
        Ok(page)
    }
}

/// Decodes `body`, its bars appended to `bars`; a big one (a full page is ~5 MB, a few
/// ms of CPU) on the blocking pool so it does not stall the other tasks of the
/// runtime. Body and bars travel to the pool and back: a panic in the decoder is
/// caught there and reported as a bad body (the bars as they were), and only a
/// runtime shutting down can lose them, which then ends the run rather than let a
/// retry go on without the bars of the earlier pages.
async fn decode(body: &mut Vec<u8>, bars: &mut Bars) -> Result<Page, FetchError> {
    const INLINE_MAX: usize = 256 * 1024;
    let bad = |message: String| FetchError::new(ErrorKind::Body, None, message);
    if body.len() <= INLINE_MAX {
        return decode_page_onto(body, bars).map_err(|e| bad(e.message));
    }
    let (input, mut onto) = (std::mem::take(body), std::mem::take(bars));
    let task = tokio::task::spawn_blocking(move || {
        let before = onto.len();
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decode_page_onto(&input, &mut onto)
        }));
        if decoded.is_err() {
            onto.truncate(before);
        }
        (input, onto, decoded)
    });
    let (input, onto, decoded) = task
        .await
        .map_err(|e| bad(format!("the page decoder stopped: {e}")).with_class(ErrorClass::Run))?;
    (*body, *bars) = (input, onto);
    match decoded {
        Ok(page) => page.map_err(|e| bad(e.message)),
        Err(_) => Err(bad("the page decoder failed on this body".into())),
    }
}

/// A failure while reading the body (after the status line): always kind `Body`
/// unless it was TLS, and it keeps the status.
fn body_error(e: &reqwest::Error, status: u16, key: &ApiKey) -> FetchError {
    let mut err = classify_transport(e, key);
    if err.kind != ErrorKind::Tls {
        err.kind = ErrorKind::Body;
        err.class = ErrorKind::Body.class();
        if !err.message.starts_with("connection dropped mid-body") {
            err.message = format!("connection dropped mid-body: {}", err.message);
        }
    }
    err.status = Some(status);
    err
}

/// Appends the attempt count and page to a final error message.
/// A shared budget that failed stops the run: requests must not go unscheduled.
fn budget_failure(e: crate::budget::BudgetError) -> FetchError {
    FetchError::new(ErrorKind::Budget, None, e.0)
}
