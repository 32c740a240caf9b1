//! `barsmith sandbox`: a Polygon-compatible API on 127.0.0.1 with synthetic bars and
//! injectable faults, to try scripts without a key or quota.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use jiff::civil::Date;

use crate::calendar::parse_date;
use crate::sandbox::faults::VALID_FAULTS;
use crate::sandbox::s3::{FLAT_BUCKET, S3_REGION, VALID_FLAT_FAULTS};
use crate::sandbox::synth::Listing;
use crate::sandbox::{
    Fault, FaultPlan, FaultRule, FlatFaultPlan, FlatFaultRule, RandomFaults, SANDBOX_API_KEY,
    SANDBOX_S3_ACCESS_KEY, Sandbox, SandboxConfig,
};

/// The environment variable holding the S3 secret key the sandbox checks signatures
/// with (never a flag: it would show in the process list).
pub const S3_SECRET_ENV: &str = "BARSMITH_SANDBOX_S3_SECRET";

/// Flags of `barsmith sandbox`.
#[derive(Debug, Clone, Args)]
#[command(after_long_help = "\
The first line on stdout is `barsmith sandbox listening on http://127.0.0.1:PORT`;
the server then runs until Ctrl-C, SIGTERM or --exit-after.

Endpoints:
  GET  /v2/aggs/ticker/{T}/range/1/minute/{from}/{to}?adjusted=true&sort=asc&limit=50000
  GET  /_sandbox/stats     request counters (JSON)
  GET  /_sandbox/faults    the current fault plan
  POST /_sandbox/faults    replace it: [\"AAPL=429:2\", \"MSFT=drop\"]
  GET  /flatfiles?list-type=2&prefix=us_stocks_sip/minute_aggs_v1/2025/01/
  GET|HEAD /flatfiles/us_stocks_sip/minute_aggs_v1/YYYY/MM/YYYY-MM-DD.csv.gz
                           flat files over S3 (path style, SigV4, region us-east-1)
  GET  /_sandbox/flat/faults   POST it: [\"2025-01-03=forbidden\"]
  POST /_sandbox/flat/republish?day=YYYY-MM-DD   new ETag, volumes + generation

Flat files (S3): bucket `flatfiles`, access key `sandbox` (--s3-access-key or
BARSMITH_SANDBOX_S3_ACCESS_KEY), secret key `sandbox-secret` unless the environment
variable BARSMITH_SANDBOX_S3_SECRET gives another (there is no flag for it). One file
per NYSE trading day before --today (or through --flat-published-through), holding
the REST bars of --flat-tickers plus --flat-market synthetic tickers.

Example:
  barsmith sandbox --port 8787 --fault AAPL=429:2 --fault-rate 0.05 --exit-after 600 &
  POLYGON_API_KEY=sandbox barsmith ingest --base-url http://127.0.0.1:8787 \\
      --tickers AAPL,MSFT --from 2024-01-02 --to 2024-01-31 --outdir /tmp/minute")]
pub struct SandboxArgs {
    /// Port on 127.0.0.1; 0 picks a free one (the URL is printed).
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 0,
        long_help = "\
Port to listen on, always on 127.0.0.1 (loopback only). 0 picks a free port; the
chosen URL is the first line printed.

Example: --port 8787"
    )]
    pub port: u16,

    /// The API key the sandbox accepts (a fake one; default `sandbox`).
    #[arg(long, value_name = "KEY", env = "BARSMITH_SANDBOX_KEY", hide_env_values = true,
          default_value = SANDBOX_API_KEY, long_help = "\
The API key the sandbox accepts, as `Authorization: Bearer KEY` or `apiKey=KEY`;
anything else gets 401 \"Unknown API Key\". Never use a real key here. Also read from
BARSMITH_SANDBOX_KEY, which keeps it out of the process list.

Example: --key test-key")]
    pub key: String,

    /// The sandbox's today (New York date): no bars after it.
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day, long_help = "\
The sandbox's \"today\" (New York date). There are bars up to and including this
day and none after, like the real API which has no future data. Default: today.

Example: --today 2024-06-28")]
    pub today: Option<Date>,

    /// Data seed: another seed gives every ticker other bars and listings.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        long_help = "\
Seed of the synthetic data. The same seed always gives the same bars; another seed
gives every ticker different prices, gaps and listing dates.

Example: --seed 42"
    )]
    pub seed: u64,

    /// Added latency per data request, in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 0,
        long_help = "\
Milliseconds to wait before answering each aggregates request, to mimic a
network round trip and server time.

Example: --latency-ms 150"
    )]
    pub latency_ms: u64,

    /// Server-side rate limit in requests per second (429 beyond it).
    #[arg(long, value_name = "RPS", value_parser = parse_rate, long_help = "\
Answer 429 to aggregates requests beyond this many per second (GCRA, per server,
like the real per-key limit). Fractions allowed: 0.0833 is Polygon's free plan
(5 per minute). Default: no limit.

Example: --rate-limit 10 --rate-burst 5")]
    pub rate_limit: Option<f64>,

    /// Requests allowed at once under --rate-limit (default: the rate, at least 1).
    #[arg(
        long,
        value_name = "B",
        requires = "rate_limit",
        long_help = "\
How many requests may arrive at once before --rate-limit applies (the GCRA burst).
Default: the rate rounded up, at least 1.

Example: --rate-limit 10 --rate-burst 1"
    )]
    pub rate_burst: Option<u32>,

    /// A fault for a ticker: TICKER=FAULT[:N] (repeatable; * = every ticker).
    #[arg(long = "fault", value_name = "TICKER=FAULT[:N]", long_help = format!("\
Inject a fault for one ticker. With :N only the first N matching requests of that
ticker fault, then it clears; without it the fault stays. `*` matches every ticker
(counted per ticker). Rules of one ticker are used in order. Repeatable.

Faults: {VALID_FAULTS}.
  429 / 429-retry-after=S   too many requests (without / with Retry-After: S)
  500 502 503 504           server errors with a JSON body
  502-html                  a proxy's HTML 502 page
  hang                      never answer (until --hang-secs or shutdown)
  drop                      send headers and half the body, then close
  truncated                 200 whose body is JSON cut in half (length consistent)
  status-error              200 with {{\"status\":\"ERROR\"}}
  403 / 401                 not entitled / unknown key
  cursor-loop               next_url repeats the cursor just used (paginated fetches)
  repeat-page               a page repeats the previous page's last bars (paginated)
  disorder                  a page's bars in reverse order, the earliest one twice
  conflict                  a page with two different bars for its first minute

Example: --fault AAPL=429:2 --fault MSFT=drop:1 --fault '*=503:1'"))]
    pub faults: Vec<FaultRule>,

    /// Probability that any data request faults at random (0 to 1).
    #[arg(
        long,
        value_name = "P",
        long_help = "\
Make each aggregates request fault with this probability (0 to 1), drawing the kind
from --fault-kinds. Draws hash (--fault-seed, ticker, request number of that ticker),
so the same run sees the same faults. Per-ticker --fault rules come first.

Example: --fault-rate 0.05 --fault-seed 7"
    )]
    pub fault_rate: Option<f64>,

    /// Seed of the random faults.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 0,
        long_help = "\
Seed of --fault-rate draws; change it to get another reproducible pattern.

Example: --fault-seed 7"
    )]
    pub fault_seed: u64,

    /// Faults drawn by --fault-rate (default: the transient ones).
    #[arg(long, value_name = "KINDS", value_delimiter = ',', long_help = format!("\
Comma-separated faults that --fault-rate draws from. Default: 429, 500, 502, 503,
504, 502-html, drop, truncated, status-error. Valid: {VALID_FAULTS}.

Example: --fault-kinds 429,503,drop"))]
    pub fault_kinds: Vec<Fault>,

    /// Listing window of a ticker: TICKER=FROM..TO, either side optional (repeatable).
    #[arg(long = "listing", value_name = "TICKER=FROM..TO",
          value_parser = crate::sandbox::synth::parse_listing, long_help = "\
Override a ticker's listing window (inclusive New York dates): no bars before FROM
or after TO. Either side may be left out; `T=..` means always listed. Without it,
about 15% of symbols list and 10% delist somewhere between 2000 and 2024, derived
from the symbol. Repeatable.

Example: --listing ABC=2005-03-01..2008-06-30 --listing NEWCO=2019-05-10..")]
    pub listings: Vec<(String, Listing)>,

    /// How long a `hang` fault holds a connection, in seconds.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 120,
        long_help = "\
How long a `hang` fault keeps a connection open without answering before closing
it. Shutdown always closes hung connections at once.

Example: --hang-secs 30"
    )]
    pub hang_secs: u64,

    /// Synthetic tickers added to every flat file (scale tests), e.g. 5000.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        long_help = "\
Add N synthetic tickers (AAAA, AAAB, ...) to every flat file, on top of
--flat-tickers, to test ingesting thousands of tickers a day. 5000 tickers make about
2.3M rows (46 MB gzip) a day; a file takes about 1 s to generate (release),
then stays cached.

Example: --flat-market 5000"
    )]
    pub flat_market: u32,

    /// Tickers of every flat file (default: the 24 demo tickers).
    #[arg(
        long,
        value_name = "T1,T2,...",
        value_delimiter = ',',
        long_help = "\
The tickers each flat file holds (a ticker not listed on a day has no rows that day).
Default: the 24 tickers of `barsmith demo`.

Example: --flat-tickers AAPL,MSFT,BRK.A"
    )]
    pub flat_tickers: Vec<String>,

    /// Last day with a published flat file (default: the day before --today).
    #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_day, long_help = "\
The last trading day whose flat file is published (inclusive). By default a day's
file appears once the day is over: every trading day before --today.

Example: --flat-published-through 2025-01-31")]
    pub flat_published_through: Option<Date>,

    /// A flat-file fault: DAY=FAULT[:N] (repeatable; * = every day).
    #[arg(long = "flat-fault", value_name = "DAY=FAULT[:N]", long_help = format!("\
Inject a fault for one day's flat file (GET and HEAD). With :N only the first N
requests of that file fault, then it clears; without it the fault stays. `*` matches
every day (counted per day). Repeatable.

Faults: {VALID_FLAT_FAULTS}.
  forbidden     403 AccessDenied, as for a day outside the plan
  truncated     200 with the gzip body cut in half (Content-Length matches the cut)
  slowdown      503 with the S3 code SlowDown (clients retry)
  slow          the body trickles out over about 1.5 s

Example: --flat-fault 2025-01-03=forbidden --flat-fault '*=slowdown:1'"))]
    pub flat_faults: Vec<FlatFaultRule>,

    /// The S3 access key id the flat-file endpoint accepts (default `sandbox`).
    #[arg(long, value_name = "KEY", env = "BARSMITH_SANDBOX_S3_ACCESS_KEY", hide_env_values = true,
          default_value = SANDBOX_S3_ACCESS_KEY, long_help = "\
The S3 access key id flat-file requests must be signed with (not a secret). The
secret key is `sandbox-secret` unless BARSMITH_SANDBOX_S3_SECRET holds another; it
is never a flag.

Example: --s3-access-key test-key")]
    pub s3_access_key: String,

    /// Stop by itself after this many seconds (for scripts and tests).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, long_help = "\
Stop after this many seconds, so a script or a test can bound the server's life.
Default: run until Ctrl-C or SIGTERM.

Example: --exit-after 300")]
    pub exit_after: Option<f64>,
}

fn parse_day(s: &str) -> Result<Date, String> {
    parse_date(s).map_err(|e| e.0)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "'{s}' is not a positive number of requests per second, e.g. 10 or 0.5"
        )),
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1e9).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not a number of seconds, e.g. 60 or 0.5")),
    }
}

impl SandboxArgs {
    /// The server configuration these flags describe.
    pub fn to_config(&self) -> anyhow::Result<SandboxConfig> {
        let mut cfg = SandboxConfig {
            api_key: self.key.clone(),
            port: self.port,
            latency: Duration::from_millis(self.latency_ms),
            rate_limit: self.rate_limit,
            rate_burst: self
                .rate_burst
                .unwrap_or_else(|| self.rate_limit.map_or(1, |r| r.ceil() as u32))
                .max(1),
            hang_for: Duration::from_secs(self.hang_secs),
            seed: self.seed,
            ..SandboxConfig::default()
        };
        if cfg.api_key.trim().is_empty() {
            anyhow::bail!(
                "--key is empty: give the key the sandbox should accept, e.g. --key sandbox"
            );
        }
        if let Some(today) = self.today {
            cfg.today = today;
        }
        cfg.listings = self.listings.iter().cloned().collect();
        let mut plan = FaultPlan {
            rules: self.faults.clone(),
            random: None,
        };
        match self.fault_rate {
            Some(p) => {
                let kinds = if self.fault_kinds.is_empty() {
                    Fault::default_random_kinds()
                } else {
                    self.fault_kinds.clone()
                };
                plan.random = Some(
                    RandomFaults::new(p, self.fault_seed, kinds)
                        .map_err(|e| anyhow::anyhow!("--fault-rate: {e}"))?,
                );
            }
            None if !self.fault_kinds.is_empty() => {
                anyhow::bail!(
                    "--fault-kinds needs --fault-rate P (the chance that a request faults), e.g. --fault-rate 0.05"
                );
            }
            None => {}
        }
        cfg.faults = plan;
        cfg.flat_market = self.flat_market;
        if !self.flat_tickers.is_empty() {
            cfg.flat_tickers = crate::ticker::clean_tickers(&self.flat_tickers)
                .map_err(|e| anyhow::anyhow!("--flat-tickers: {e}"))?;
        }
        cfg.flat_published_through = self.flat_published_through;
        cfg.flat_faults = FlatFaultPlan {
            rules: self.flat_faults.clone(),
        };
        if self.s3_access_key.trim().is_empty() {
            anyhow::bail!(
                "--s3-access-key is empty: give the access key id to accept, e.g. sandbox"
            );
        }
        cfg.s3_access_key = self.s3_access_key.clone();
        if let Ok(secret) = std::env::var(S3_SECRET_ENV) {
            if secret.trim().is_empty() {
                anyhow::bail!(
                    "{S3_SECRET_ENV} is set but empty: unset it to use the default secret"
                );
            }
            cfg.s3_secret_key = secret;
        }
        Ok(cfg)
    }
}

/// Runs `barsmith sandbox` until Ctrl-C, SIGTERM or `--exit-after`.
pub fn run(args: SandboxArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.to_config()?;
    let custom_key = cfg.api_key != SANDBOX_API_KEY;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let port = cfg.port;
        let sandbox = Sandbox::start(cfg).await.with_context(|| {
            format!("cannot listen on 127.0.0.1:{port} (is the port in use? try --port 0)")
        })?;
        let url = sandbox.base_url();
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "barsmith sandbox listening on {url}")?;
            out.flush()?;
        }
        let key_hint = if custom_key {
            "the key given to --key"
        } else {
            "sandbox"
        };
        eprintln!(
            "Use it with: POLYGON_API_KEY={key_hint} barsmith ingest --base-url {url} ...\n\
             Flat files: S3 endpoint {url}, bucket {FLAT_BUCKET}, region {S3_REGION}, path style\n\
             Stats: curl {url}/_sandbox/stats   Stop: Ctrl-C"
        );
        let reason = wait_for_stop(args.exit_after).await;
        let stats = sandbox.stats();
        sandbox.shutdown();
        eprintln!(
            "barsmith sandbox stopped ({reason}): {} requests, {} data requests, {} answered 429, \
             {} faults injected, {} flat-file requests",
            stats.requests,
            stats.data_requests,
            stats.rate_limited,
            stats.faults_injected,
            stats.flat_requests
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Waits for Ctrl-C, SIGTERM or the `--exit-after` deadline; says which.
async fn wait_for_stop(exit_after: Option<f64>) -> &'static str {
    let deadline = async {
        match exit_after {
            Some(s) => tokio::time::sleep(Duration::from_secs_f64(s)).await,
            None => std::future::pending().await,
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = deadline => "--exit-after reached",
        _ = term => "SIGTERM",
        r = tokio::signal::ctrl_c() => if r.is_ok() { "Ctrl-C" } else { std::future::pending().await },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use jiff::civil::date;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SandboxArgs,
    }

    fn parse(argv: &[&str]) -> Result<SandboxArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("sandbox").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn every_flag_reaches_the_config() {
        let a = parse(&[
            "--port",
            "8787",
            "--key",
            "k",
            "--today",
            "2024-06-28",
            "--seed",
            "3",
            "--latency-ms",
            "150",
            "--rate-limit",
            "2.5",
            "--fault",
            "AAPL=429:2",
            "--fault",
            "*=drop:1",
            "--fault-rate",
            "0.1",
            "--fault-seed",
            "9",
            "--fault-kinds",
            "503,hang",
            "--listing",
            "ABC=2005-03-01..2008-06-30",
            "--hang-secs",
            "5",
            "--exit-after",
            "0.5",
            "--flat-market",
            "5000",
            "--flat-tickers",
            "AAPL,MSFT",
            "--flat-published-through",
            "2024-06-20",
            "--flat-fault",
            "2024-06-03=forbidden",
            "--flat-fault",
            "*=slowdown:2",
            "--s3-access-key",
            "ak",
        ])
        .unwrap();
        let c = a.to_config().unwrap();
        assert_eq!(
            (c.port, c.api_key.as_str(), c.today, c.seed),
            (8787, "k", date(2024, 6, 28), 3)
        );
        assert_eq!(c.latency, Duration::from_millis(150));
        assert_eq!((c.rate_limit, c.rate_burst), (Some(2.5), 3));
        assert_eq!(c.faults.specs(), vec!["AAPL=429:2", "*=drop:1"]);
        let r = c.faults.random.unwrap();
        assert_eq!(
            (r.probability, r.seed, r.kinds),
            (0.1, 9, vec![Fault::ServerError(503), Fault::Hang])
        );
        assert_eq!(
            c.listings["ABC"],
            (Some(date(2005, 3, 1)), Some(date(2008, 6, 30)))
        );
        assert_eq!(c.hang_for, Duration::from_secs(5));
        assert_eq!(a.exit_after, Some(0.5));
        assert_eq!((c.flat_market, c.flat_tickers.len()), (5000, 2));
        assert_eq!(c.flat_published_through, Some(date(2024, 6, 20)));
        assert_eq!(
            c.flat_faults.specs(),
            vec!["2024-06-03=forbidden", "*=slowdown:2"]
        );
        assert_eq!(c.s3_access_key, "ak");
    }

    #[test]
    fn bad_values_are_refused_with_clear_messages() {
        let err = |argv: &[&str]| match parse(argv) {
            Ok(a) => a.to_config().unwrap_err().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(err(&["--fault", "AAPL=boom"]).contains("'boom'"));
        assert!(err(&["--fault", "AAPL=boom"]).contains("repeat-page"));
        assert!(err(&["--fault-kinds", "429"]).contains("--fault-rate"));
        assert!(
            err(&["--fault-rate", "2"]).contains("--fault-rate: fault rate 2 is not a probability")
        );
        assert!(err(&["--rate-limit=-1"]).contains("positive"));
        assert!(err(&["--rate-burst", "3"]).contains("--rate-limit"));
        assert!(err(&["--listing", "ABC=2005"]).contains("'..'"));
        assert!(err(&["--today", "tomorrow"]).contains("YYYY-MM-DD"));
        assert!(err(&["--flat-fault", "2025-01-03=boom"]).contains("forbidden, truncated"));
        assert!(err(&["--flat-tickers", "A/B"]).contains("--flat-tickers"));
        assert!(err(&["--s3-access-key", " "]).contains("empty"));
    }

    #[test]
    fn run_serves_until_exit_after() {
        let a = parse(&["--exit-after", "0.2"]).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(run(a).unwrap(), ExitCode::SUCCESS);
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
