//! The primitives scripts call, one file per theme. Each theme is a plugin module
//! whose `///` comments are the reference users read in `barsmith fns`.

use rhai::Module;
use rhai::exported_module;

mod batch_result;
pub mod batches;
pub mod collections;
pub mod dates;
pub mod diagnose;
pub mod executor;
pub mod fetch;
pub mod flags;
pub mod flat;
pub mod io;
mod net;
pub mod pool;
pub mod store;
pub mod tickers;
pub mod util;

/// A group of related primitives, shown together by `barsmith fns`.
pub struct Theme {
    /// Short name, used to filter (`barsmith fns tickers`).
    pub name: &'static str,
    /// Heading shown above the theme's primitives.
    pub title: &'static str,
    /// Builds the theme's module (functions of the theme and of its types).
    pub module: fn() -> Module,
}

/// The primitives that take an option map, with the keys each accepts: what they
/// check at run time and what `barsmith check` checks in literal maps before.
pub const OPTION_KEYS: &[(&str, &[&str])] = &[
    ("spawn_batch", batches::SPAWN_OPTIONS),
    ("pool", pool::POOL_OPTIONS),
    ("set_pass", batches::PASS_OPTIONS),
    ("fetch_minute_bars", fetch::FETCH_OPTIONS),
    ("batch_log", diagnose::LOG_OPTIONS),
    ("request", diagnose::REQUEST_OPTIONS),
    ("ingest", diagnose::INGEST_OPTIONS),
    ("flat_days", flat::FLAT_OPTIONS),
    ("flat_last_day", flat::FLAT_OPTIONS),
    ("flat_bars", flat::FLAT_OPTIONS),
    ("use_executor", executor::EXECUTOR_OPTIONS),
];

/// The option keys `function` accepts, when it takes an option map.
pub fn option_keys(function: &str) -> Option<&'static [&'static str]> {
    OPTION_KEYS
        .iter()
        .find(|(name, _)| *name == function)
        .map(|(_, keys)| *keys)
}

/// Every theme, in the order a backfill script uses them.
pub const THEMES: &[Theme] = &[
    Theme {
        name: "flags",
        title: "Script flags",
        module: || exported_module!(flags::flags_fns),
    },
    Theme {
        name: "tickers",
        title: "Ticker universes",
        module: || exported_module!(tickers::tickers_fns),
    },
    Theme {
        name: "collections",
        title: "Arrays and sets",
        module: || exported_module!(collections::collections_fns),
    },
    Theme {
        name: "dates",
        title: "Dates and ranges",
        module: || {
            let mut m = exported_module!(dates::dates_fns);
            m.combine_flatten(exported_module!(crate::script::types::date::date_fns));
            m
        },
    },
    Theme {
        name: "store",
        title: "What is on disk (resume)",
        module: || exported_module!(store::store_fns),
    },
    Theme {
        name: "batches",
        title: "Batches of worker processes",
        module: || {
            let mut m = exported_module!(batches::batches_fns);
            m.combine_flatten(exported_module!(pool::pool_fns));
            m.combine_flatten(exported_module!(
                crate::script::types::batch_handle::batch_handle_fns
            ));
            m
        },
    },
    Theme {
        name: "executor",
        title: "Where batches run (local processes, Slurm jobs)",
        module: || exported_module!(executor::executor_fns),
    },
    Theme {
        name: "fetch",
        title: "Fetching bars in-process",
        module: || {
            let mut m = exported_module!(fetch::fetch_fns);
            m.combine_flatten(exported_module!(crate::script::types::bars::bars_fns));
            m.combine_flatten(exported_module!(
                crate::script::types::bars::ops::bars_ops_fns
            ));
            m
        },
    },
    Theme {
        name: "flat",
        title: "Flat files (published days, a day's bars)",
        module: || exported_module!(flat::flat_fns),
    },
    Theme {
        name: "diagnose",
        title: "Diagnosing a run (REPL)",
        module: || exported_module!(diagnose::diagnose_fns),
    },
    Theme {
        name: "io",
        title: "Files",
        module: || exported_module!(io::io_fns),
    },
    Theme {
        name: "util",
        title: "Time, logging and environment",
        module: || {
            let mut m = exported_module!(util::util_fns);
            m.combine_flatten(exported_module!(crate::script::types::time::time_fns));
            m
        },
    },
];
