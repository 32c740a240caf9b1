//! A Polygon-compatible HTTP server on loopback, with synthetic bars and injectable
//! faults: the demo, the test suite and the benches run against it, and users can try
//! scripts without an API key (`barsmith sandbox`).
//!
//! - [`synth`]: the bars, a pure function of (ticker, minute); [`synth::bars_for`] is
//!   exactly what a full paginated fetch returns.
//! - [`faults`]: the fault plan (`TICKER=FAULT[:N]` specs, random faults).
//! - `aggs`: the aggregates endpoint, cursors and hand-written page JSON.
//! - `http` / `server`: a small hand-written HTTP/1.1 server (byte-level control is
//!   what lets a response stop half-way or never start).
//! - `limiter`: the server-side GCRA rate limit; `stats`: the request counters.
//!
//! - [`s3`]: Polygon/Massive flat files over an S3-compatible endpoint (SigV4 checked).
//!
//! Endpoints: `GET /v2/aggs/ticker/{T}/range/1/minute/{from}/{to}`,
//! `GET /v3/reference/tickers/{T}` (the listing window, in `reference`),
//! `GET /flatfiles?list-type=2`, `GET|HEAD /flatfiles/<key>` (flat files, [`s3`]),
//! `GET /_sandbox/stats`, `GET|POST /_sandbox/faults`, `GET|POST /_sandbox/flat/faults`,
//! `POST /_sandbox/flat/republish?day=D` (control endpoints need no key).

mod aggs;
mod arrival;
pub mod faults;
mod http;
mod limiter;
mod pages;
mod reference;
pub mod s3;
mod server;
mod stats;
pub mod synth;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::Date;
use tokio::sync::watch;

pub use aggs::{DEFAULT_LIMIT, MAX_LIMIT, page_json};
pub use faults::{Fault, FaultPlan, FaultRule, FaultSpecError, RandomFaults};
pub use s3::{
    FlatFault, FlatFaultPlan, FlatFaultRule, FlatFaultSpecError, SANDBOX_S3_ACCESS_KEY,
    SANDBOX_S3_SECRET_KEY,
};
pub use stats::SandboxStats;

/// The API key the sandbox accepts unless configured otherwise.
pub const SANDBOX_API_KEY: &str = "sandbox";

/// How the sandbox behaves.
#[derive(Clone)]
pub struct SandboxConfig {
    /// The accepted API key (`Authorization: Bearer KEY` or `apiKey=KEY`).
    pub api_key: String,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Added before answering each aggregates request.
    pub latency: Duration,
    /// Server-side rate limit in requests per second (429 beyond it); `None` = off.
    pub rate_limit: Option<f64>,
    /// Requests allowed at once under the rate limit (GCRA burst), at least 1.
    pub rate_burst: u32,
    /// Faults injected from the start (replaceable at run time).
    pub faults: FaultPlan,
    /// Listing windows that override the hashed ones: ticker → (listed, delisted),
    /// both inclusive, `None` for an open end.
    pub listings: HashMap<String, synth::Listing>,
    /// The sandbox's "today" (New York): there are bars for dates up to and including
    /// it, none after, like the real API which has no future data.
    pub today: Date,
    /// How long a `hang` fault holds a connection before closing it unanswered.
    pub hang_for: Duration,
    /// Data seed: a different seed gives every ticker different bars and listings.
    pub seed: u64,
    /// The last day with a published flat file (inclusive); `None` = the day before
    /// `today` (a day's file appears once the day is over).
    pub flat_published_through: Option<Date>,
    /// Tickers of every flat file (default: [`synth::DEMO_TICKERS`]).
    pub flat_tickers: Vec<String>,
    /// Synthetic tickers added to every flat file ([`synth::market_ticker`]`(0..n)`),
    /// for scale tests; 0 by default.
    pub flat_market: u32,
    /// Flat-file faults from the start (replaceable at run time).
    pub flat_faults: FlatFaultPlan,
    /// The S3 access key id the flat-file endpoint accepts.
    pub s3_access_key: String,
    /// The S3 secret key requests must be signed with.
    pub s3_secret_key: String,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            api_key: SANDBOX_API_KEY.to_string(),
            port: 0,
            latency: Duration::ZERO,
            rate_limit: None,
            rate_burst: 1,
            faults: FaultPlan::default(),
            listings: HashMap::new(),
            today: crate::calendar::today_ny(),
            hang_for: Duration::from_secs(120),
            seed: 0,
            flat_published_through: None,
            flat_tickers: synth::DEMO_TICKERS.iter().map(|t| t.to_string()).collect(),
            flat_market: 0,
            flat_faults: FlatFaultPlan::default(),
            s3_access_key: SANDBOX_S3_ACCESS_KEY.to_string(),
            s3_secret_key: SANDBOX_S3_SECRET_KEY.to_string(),
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("api_key", &"<redacted>")
            .field("port", &self.port)
            .field("latency", &self.latency)
            .field("rate_limit", &self.rate_limit)
            .field("rate_burst", &self.rate_burst)
            .field("faults", &self.faults)
            .field("listings", &self.listings)
            .field("today", &self.today)
            .field("hang_for", &self.hang_for)
            .field("seed", &self.seed)
            .field("flat_published_through", &self.flat_published_through)
            .field("flat_tickers", &self.flat_tickers)
            .field("flat_market", &self.flat_market)
            .field("flat_faults", &self.flat_faults)
            .field("s3_access_key", &self.s3_access_key)
            .field("s3_secret_key", &"<redacted>")
            .finish()
    }
}

/// A running sandbox. Dropping it (or [`Sandbox::shutdown`]) stops the server and
/// closes every connection, hung ones included.
pub struct Sandbox {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sandbox {
    /// Starts the server on the current tokio runtime, bound to 127.0.0.1:`cfg.port`.
    pub async fn start(cfg: SandboxConfig) -> io::Result<Sandbox> {
        let (stop, stopped) = watch::channel(false);
        let (shared, addr) = server::spawn(cfg, stopped).await?;
        Ok(Sandbox {
            shared,
            addr,
            stop,
            thread: None,
        })
    }

    /// Starts the server on its own thread with its own multi-thread runtime, for sync
    /// tests, benches and the demo; returns once it is listening.
    pub fn start_background(cfg: SandboxConfig) -> io::Result<Sandbox> {
        let (stop, stopped) = watch::channel(false);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("barsmith-sandbox".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("barsmith-sandbox-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut wait = stopped.clone();
                    match server::spawn(cfg, stopped).await {
                        Ok(started) => {
                            let _ = ready_tx.send(Ok(started));
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                    let _ = wait.wait_for(|s| *s).await;
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        let (shared, addr) = ready
            .recv()
            .map_err(|_| io::Error::other("the sandbox thread stopped before listening"))??;
        Ok(Sandbox {
            shared,
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, the base URL to give a client.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it runs with (faults as they were at start).
    pub fn config(&self) -> &SandboxConfig {
        &self.shared.cfg
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> SandboxStats {
        self.shared.stats()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.shared.reset_stats();
    }

    /// Replaces the fault plan; counts of `:N` rules start over.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.shared.set_faults(plan);
    }

    /// Replaces the flat-file fault plan; counts of `:N` rules start over.
    pub fn set_flat_faults(&self, plan: FlatFaultPlan) {
        self.shared.flat.set_faults(plan);
    }

    /// Republishes `day`'s flat file: bumps its generation `g` (0 at start) and returns
    /// the new one. The file then has a new ETag, Last-Modified `g` hours later, and
    /// every row's volume is the REST volume + `g` (prices, times and trade counts
    /// unchanged). A day without a file just gets a generation for later.
    pub fn republish_flat_day(&self, day: Date) -> u32 {
        self.shared.flat.republish(day)
    }

    /// The ETag `day`'s flat file has now (quoted, 32 hex digits).
    pub fn flat_etag(&self, day: Date) -> String {
        self.shared.flat.etag(day)
    }

    /// Generates and caches the flat files of the published days in `range` (up to
    /// [`s3::FLAT_CACHE_BYTES`] stay cached), so a benchmark does not time their
    /// generation; listings then give their exact sizes. Blocking (about 0.9 s per
    /// 5,000-ticker day in release); returns the number of days generated.
    pub fn warm_flat_days(&self, range: crate::calendar::DateRange) -> usize {
        self.shared.flat.warm(&self.shared.cfg, range)
    }

    /// Keeps up to `bytes` of generated flat files in memory instead of
    /// [`s3::FLAT_CACHE_BYTES`]: a month of a 5,000-ticker market is ~1 GB of gzip,
    /// and a benchmark warms it all before timing.
    pub fn set_flat_cache_bytes(&self, bytes: usize) {
        self.shared.flat.set_cache_limit(bytes);
    }

    /// Keeps up to `bytes` of generated aggregates pages for identical requests (0, the
    /// default: none), so a benchmark can warm them with one run and time another
    /// without timing the sandbox's JSON.
    pub fn set_page_cache_bytes(&self, bytes: usize) {
        self.shared.pages.set_limit(bytes);
    }

    /// Stops the server and closes all its connections.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
