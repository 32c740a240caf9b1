//! The client: its configuration, one page with retries through the shared request
//! budget, and raw requests for the REPL (a whole range: [`super::range`]).

use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};

use crate::budget::Budget;
use crate::secret::{ApiKey, redact};

use super::decode::{Page, decode_page};
use super::request::{bearer, check_transport, parse_base, raw_url};
use super::retry::{
    RetryPolicy, SameError, classify_api_status, classify_status, classify_transport,
    parse_retry_after,
};
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
        let http = reqwest::Client::builder()
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

    /// One page with retries: `(page, elapsed of the good attempt, attempts)`.
    pub(super) async fn get_page(
        &self,
        url: &Url,
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
            let failure = match self.attempt(url).await {
                Ok(page) => return Ok((page, t0.elapsed(), attempt)),
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

    /// One request for one page, bounded by the timeout.
    async fn attempt(&self, url: &Url) -> Result<Page, Failure> {
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
            let body = resp
                .bytes()
                .await
                .map_err(|e| body_error(&e, status, &self.key))?;
            if !(200..300).contains(&status) {
                return Err(Failure {
                    err: classify_status(status, &body, &self.key),
                    retry_after,
                });
            }
            let page = decode(body).await.map_err(|msg| {
                FetchError::new(ErrorKind::Body, Some(status), redact(&msg, &self.key))
            })?;
            if !page.is_success() {
                let err = classify_api_status(page.status.as_deref(), page.problem(), &self.key);
                return Err(Failure { err, retry_after });
            }
            Ok(page)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error().into()),
        }
    }
}

/// Decodes a body; a big one (a full page is ~5 MB, ~10 ms of CPU) on the blocking
/// pool so it does not stall the other tasks of the runtime.
async fn decode<B: AsRef<[u8]> + Send + 'static>(body: B) -> Result<Page, String> {
    const INLINE_MAX: usize = 256 * 1024;
    if body.as_ref().len() <= INLINE_MAX {
        return decode_page(body.as_ref()).map_err(|e| e.message);
    }
    match tokio::task::spawn_blocking(move || decode_page(body.as_ref()).map_err(|e| e.message))
        .await
    {
        Ok(r) => r,
        Err(e) => Err(format!("decoder task failed: {e}")),
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
