//! What every primitive that talks to the API shares: the client built from the host
//! and an options map, and a runtime that gives up when the host is cancelled (a native
//! function blocks the engine, so it must watch the cancel flag itself).

use std::future::Future;
use std::time::Duration;

use rhai::{Dynamic, Map};

use crate::batch::TickerFailure;
use crate::budget::{Budget, Rate, default_state_dir};
use crate::ingest::FetchError;
use crate::polygon::ClientConfig;
use crate::script::host::Host;
use crate::script::primitives::util::cancelled;
use crate::script::value::{Fallible, Options, error};

/// A client configuration from the host (key, base URL) and the option keys
/// `base_url`, `adjusted`, `timeout` (seconds), `retries` and `max_rps`, whichever
/// `o` allows. Without a key the client reports a classified `missing_key` error.
pub(crate) fn client_config(host: &Host, o: &Options, function: &str) -> Fallible<ClientConfig> {
    let key = host
        .api_key()
        .unwrap_or_else(|| crate::secret::ApiKey::new(""));
    let mut cfg = ClientConfig::new(key.clone());
    if let Some(url) = o
        .string("base_url")?
        .or_else(|| host.config().base_url.clone())
    {
        cfg.base_url = url;
    }
    cfg.allow_insecure_http = host.config().allow_insecure_http;
    if let Some(a) = o.bool("adjusted")? {
        cfg.adjusted = a;
    }
    if let Some(t) = o.seconds("timeout")? {
        cfg.timeout = Duration::from_secs_f64(t.max(0.001));
    }
    if let Some(n) = o.int("retries")? {
        cfg.retry.max_attempts = u32::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| {
            error(format!(
                "{function}: option 'retries' must be at least 1, got {n}"
            ))
        })?;
    }
    if let Some(v) = o.get_dynamic("max_rps") {
        let rate: Rate = v
            .to_string()
            .parse()
            .map_err(|e| error(format!("{function}: option 'max_rps': {e}")))?;
        if !key.expose().is_empty() {
            let budget = Budget::open(&default_state_dir(), &key, rate)
                .map_err(|e| error(format!("{function}: cannot open the request budget: {e}")))?;
            cfg.budget = Some(budget);
        }
    }
    Ok(cfg)
}

/// Runs `work` on a current-thread runtime; a script error `cancelled` when the host
/// is cancelled first, so a hanging request never holds the REPL.
pub(crate) fn block_on_cancellable<T>(
    host: &Host,
    function: &str,
    work: impl Future<Output = T>,
) -> Fallible<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| error(format!("{function}: cannot start the HTTP runtime: {e}")))?;
    block_on_cancellable_in(&runtime, host, work)
}

/// [`block_on_cancellable`] on `runtime` (e.g. one with a worker thread for tasks that
/// must run while `work` computes).
pub(crate) fn block_on_cancellable_in<T>(
    runtime: &tokio::runtime::Runtime,
    host: &Host,
    work: impl Future<Output = T>,
) -> Fallible<T> {
    let cancel = host.cancel_flag().clone();
    let outcome = runtime.block_on(async {
        let watch = async {
            while !cancel.is_cancelled() {
                tokio::time::sleep(crate::batch::CHECK_INTERVAL).await;
            }
        };
        tokio::select! {
            r = work => Some(r),
            () = watch => None,
        }
    });
    outcome.ok_or_else(cancelled)
}

/// A classified error as the map scripts catch: `#{class, kind, status, message,
/// attempts, circuit_open}`.
pub(crate) fn fetch_error_map(e: &FetchError) -> Map {
    failure_map(&TickerFailure::from(e))
}

/// The same map for a ticker's failure as a batch result records it.
pub(crate) fn failure_map(f: &TickerFailure) -> Map {
    let mut m = Map::new();
    m.insert("class".into(), f.class.clone().into());
    m.insert("kind".into(), f.kind.clone().into());
    m.insert(
        "status".into(),
        f.status
            .map_or(Dynamic::UNIT, |s| Dynamic::from_int(i64::from(s))),
    );
    m.insert("message".into(), f.message.clone().into());
    m.insert("attempts".into(), Dynamic::from_int(i64::from(f.attempts)));
    m.insert("circuit_open".into(), f.circuit_open.into());
    m
}
