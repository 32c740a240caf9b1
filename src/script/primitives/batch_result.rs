//! A batch result as the map scripts see (`wait`, `wait_any`, `poll`, `pool`).

use rhai::{Dynamic, Map};

use crate::batch::{BatchResult, TickerOutcome, TickerStatus};
use crate::script::primitives::net::failure_map;

/// A result map with the script's own values of its handle put back.
pub(crate) fn result_with(r: &BatchResult, extras: &Map) -> Map {
    let mut m = result_map(r);
    for (k, v) in extras {
        m.insert(k.clone(), v.clone());
    }
    m
}

fn outcome_map(t: &TickerOutcome) -> Dynamic {
    let mut m = Map::new();
    m.insert("ticker".into(), t.ticker.clone().into());
    m.insert("status".into(), t.status.as_str().into());
    m.insert("bars".into(), Dynamic::from_int(t.bars as i64));
    m.insert("requests".into(), Dynamic::from_int(t.requests as i64));
    m.insert(
        "error".into(),
        t.error
            .as_ref()
            .map_or(Dynamic::UNIT, |f| Dynamic::from_map(failure_map(f))),
    );
    Dynamic::from_map(m)
}

fn names(items: Vec<String>) -> Dynamic {
    Dynamic::from_array(items.into_iter().map(Dynamic::from).collect())
}

fn opt_int(v: Option<i32>) -> Dynamic {
    v.map_or(Dynamic::UNIT, |v| Dynamic::from_int(i64::from(v)))
}

/// A batch result as the map scripts see (every key always present).
fn result_map(r: &BatchResult) -> Map {
    let mut m = Map::new();
    m.insert("id".into(), Dynamic::from_int(i64::from(r.id)));
    m.insert("attempt".into(), Dynamic::from_int(i64::from(r.attempt)));
    m.insert(
        "label".into(),
        r.label.clone().map_or(Dynamic::UNIT, Dynamic::from),
    );
    m.insert("success".into(), r.success().into());
    m.insert("status".into(), r.status_text().into());
    m.insert("exit".into(), opt_int(r.exit_code));
    m.insert("signal".into(), opt_int(r.signal));
    m.insert("timed_out".into(), r.timed_out.into());
    m.insert("killed".into(), r.killed.into());
    m.insert("cancelled".into(), r.cancelled.into());
    m.insert("fatal".into(), r.fatal.into());
    m.insert(
        "ended_by".into(),
        r.ended_by
            .map_or(Dynamic::UNIT, |e| Dynamic::from(e.as_str().to_string())),
    );
    m.insert("elapsed".into(), Dynamic::from_float(r.elapsed_s));
    m.insert("started_at".into(), r.started_at.clone().into());
    m.insert("log".into(), r.log_path.display().to_string().into());
    m.insert("bars".into(), Dynamic::from_int(r.bars as i64));
    m.insert("requests".into(), Dynamic::from_int(r.requests as i64));
    m.insert("retries".into(), Dynamic::from_int(r.retries as i64));
    m.insert(
        "tickers".into(),
        Dynamic::from_array(r.tickers.iter().map(outcome_map).collect()),
    );
    let complete: Vec<String> = r
        .tickers
        .iter()
        .filter(|t| t.status.is_complete())
        .map(|t| t.ticker.clone())
        .collect();
    m.insert("ok".into(), names(complete));
    m.insert("failed".into(), names(r.incomplete_tickers()));
    m.insert("retryable".into(), names(r.retryable_tickers()));
    m.insert(
        "pending".into(),
        names(r.tickers_with(TickerStatus::Pending)),
    );
    m
}
