//! `Time`: an instant returned by `now()`, printed as RFC 3339 UTC.

use rhai::plugin::*;

/// An instant in time, as seen by scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub jiff::Timestamp);

impl Time {
    /// The current instant.
    pub fn now() -> Time {
        Time(jiff::Timestamp::now())
    }

    /// Seconds from `self` to now (negative if `self` is in the future).
    pub fn seconds_ago(&self) -> f64 {
        let d = jiff::Timestamp::now().duration_since(self.0);
        d.as_secs_f64()
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0}", self.0)
    }
}

/// Methods of `Time` as a plugin module.
#[export_module]
pub mod time_fns {
    use super::Time;

    /// The time as RFC 3339 UTC, e.g. `2025-01-02T15:04:05Z`.
    ///
    /// Example: `log(`started at ${now()}`);`
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(t: &mut Time) -> String {
        t.to_string()
    }

    /// Seconds since the Unix epoch (fractional).
    ///
    /// Example: `let secs = now().unix;`
    #[rhai_fn(global, get = "unix", pure)]
    pub fn unix(t: &mut Time) -> f64 {
        t.0.as_millisecond() as f64 / 1000.0
    }
}
