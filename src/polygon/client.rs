//! The client: one ticker's minute bars for one range, page by page, with retries,
//! the shared request budget, cursor-loop detection and de-duplication.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};

use crate::budget::Budget;
use crate::calendar::{DateRange, ny_day_start_ms};
use crate::secret::{ApiKey, redact};

use super::decode::{Page, decode_page};
use super::fetched::{Fetched, keep_new_bars, settle};
use super::request::{
    PAGE_LIMIT, aggs_url, bearer, check_transport, checked_next_url, excerpt, parse_base, raw_url,
};
use super::retry::{
    RetryPolicy, SameError, classify_api_status, classify_status, classify_transport,
    parse_retry_after,
};
use super::spread;
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
    base: Url,
    key: ApiKey,
    auth: HeaderValue,
    adjusted: bool,
    timeout: Duration,
    retry: RetryPolicy,
    budget: Option<Budget>,
    spread: bool,
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

    /// All minute bars of one ticker in one range (one year piece at most in
    /// practice), following `next_url` to the end. Once the first page is in, the rest
    /// of the range may be fetched as sub-ranges at once ([`super::spread`]) when the
    /// budget has room for them. Bars are sorted, exact repeats removed and
    /// out-of-range bars dropped, all counted; two different bars for one minute fail
    /// the fetch ([`ErrorKind::ConflictingBars`]).
    pub async fn fetch_bars(
        &self,
        ticker: &str,
        range: DateRange,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> Result<Fetched, FetchError> {
        let lo = ny_day_start_ms(range.from);
        let hi = range.to.tomorrow().map(ny_day_start_ms).unwrap_or(i64::MAX);
        let bounds = (range.from.to_string(), range.to.to_string());
        let url = aggs_url(&self.base, ticker, (&bounds.0, &bounds.1), self.adjusted);
        let mut out = Fetched::default();
        let chain = Chain { lo, hi, part: None };
        let Some(next) = self.follow(url, chain, &mut out, on_event, true).await? else {
            settle(&mut out).map_err(|e| with_context(e, chain.label(out.pages)))?;
            return Ok(out);
        };
        let parts = match self.spread {
            true => spread::parts(&out.bars.timestamp, PAGE_LIMIT as usize, lo, hi),
            false => Vec::new(),
        };
        // With the budget busy, requests would only wait for slots: paging sends no more
        // requests than the range needs, and the other tickers use the budget.
        if parts.is_empty() || !self.budget.as_ref().is_none_or(Budget::has_room) {
            self.follow(next, chain, &mut out, on_event, false).await?;
        } else {
            self.fetch_parts(ticker, &parts, chain, &mut out, on_event)
                .await?;
        }
        settle(&mut out).map_err(|e| with_context(e, chain.label(out.pages)))?;
        Ok(out)
    }

    /// Fetches the sub-ranges `parts` of a range at once, appending their bars to
    /// `out` in range order.
    async fn fetch_parts(
        &self,
        ticker: &str,
        parts: &[(i64, i64)],
        chain: Chain,
        out: &mut Fetched,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
    ) -> Result<(), FetchError> {
        let events = std::sync::Mutex::new(on_event);
        let fetches = parts.iter().enumerate().map(|(i, &(from, to))| {
            let events = &events;
            let (from, to) = (from.to_string(), to.to_string());
            let url = aggs_url(&self.base, ticker, (&from, &to), self.adjusted);
            async move {
                let mut part = Fetched::default();
                let mut emit = |e: SourceEvent| {
                    (events.lock().unwrap_or_else(|p| p.into_inner()))(e);
                };
                let chain = Chain {
                    part: Some(i + 1),
                    ..chain
                };
                self.follow(url, chain, &mut part, &mut emit, false).await?;
                Ok::<Fetched, FetchError>(part)
            }
        });
        for part in futures_util::future::join_all(fetches).await {
            out.absorb(part?);
        }
        Ok(())
    }

    /// Follows pages from `url` into `out` until the last one (or only the first,
    /// when `first_only`: then the `next_url` it gave, if any).
    async fn follow(
        &self,
        mut url: Url,
        chain: Chain,
        out: &mut Fetched,
        on_event: &mut (dyn FnMut(SourceEvent) + Send),
        first_only: bool,
    ) -> Result<Option<Url>, FetchError> {
        let mut followed: HashSet<String> = HashSet::from([url.as_str().to_string()]);
        loop {
            let page_no = out.pages + 1;
            let label = chain.label(page_no);
            let (page, elapsed, attempts) = self
                .get_page(&url, on_event)
                .await
                .map_err(|e| with_context(e, label.clone()))?;
            out.requests += attempts;
            out.pages = page_no;
            let kept = keep_new_bars(out, page.bars, chain.lo, chain.hi);
            on_event(SourceEvent::Page {
                bars: kept,
                elapsed,
            });
            tracing::debug!(page = %label, bars = kept, ?elapsed, "page");
            let Some(next) = page.next_url.filter(|n| !n.trim().is_empty()) else {
                return Ok(None);
            };
            let next = checked_next_url(&self.base, &url, &next, &self.key)
                .map_err(|e| with_context(e, label.clone()))?;
            if !followed.insert(next.as_str().to_string()) {
                return Err(FetchError::new(
                    ErrorKind::CursorLoop,
                    Some(200),
                    format!(
                        "cursor loop: {label}'s next_url repeats one already followed ({}); \
                         stopped after {page_no} pages",
                        excerpt(&redact(next.as_str(), &self.key))
                    ),
                ));
            }
            if first_only {
                return Ok(Some(next));
            }
            url = next;
        }
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
    async fn get_page(
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
/// Where a chain of pages is: the range's bounds (Unix ms, `hi` exclusive) that bars
/// must fall in, and which sub-range it fetches, if the range was spread.
#[derive(Debug, Clone, Copy)]
struct Chain {
    lo: i64,
    hi: i64,
    part: Option<usize>,
}

impl Chain {
    /// How errors name page `page` of this chain: `page 3`, or `part 2, page 1`.
    fn label(self, page: u32) -> String {
        match self.part {
            None => format!("page {page}"),
            Some(part) => format!("part {part}, page {page}"),
        }
    }
}

fn with_context(mut e: FetchError, page: String) -> FetchError {
    let tries = if e.attempts > 1 {
        format!("gave up after {} attempts, ", e.attempts)
    } else {
        String::new()
    };
    e.message = format!("{} ({tries}{page})", e.message);
    e
}

/// A shared budget that failed stops the run: requests must not go unscheduled.
fn budget_failure(e: crate::budget::BudgetError) -> FetchError {
    FetchError::new(ErrorKind::Budget, None, e.0)
}
