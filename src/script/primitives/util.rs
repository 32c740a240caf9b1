//! Small utilities: time, sleeping, logging, the environment and ending the script.

use std::time::Duration;

use rhai::{EvalAltResult, Position};

use crate::script::host::Host;
use crate::script::value::{Fallible, error};

/// The error that ends a script when cancellation is requested (not catchable).
pub(crate) fn cancelled() -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(
        "cancelled".into(),
        Position::NONE,
    ))
}

/// Sleeps for `secs`, waking early (with the cancellation error) when the host is cancelled.
pub(crate) fn sleep_interruptibly(host: &Host, secs: f64) -> Fallible<()> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(error(format!(
            "sleep: expected a non-negative number of seconds, got {secs}"
        )));
    }
    host.cancel_flag()
        .sleep(Duration::from_secs_f64(secs.min(1e9)))
        .map_err(|_| cancelled())
}

/// Utilities as a plugin module.
#[rhai::plugin::export_module]
pub mod util_fns {
    use rhai::{Dynamic, EvalAltResult, NativeCallContext, Position};

    use crate::script::engine::host;
    use crate::script::host::Ending;
    use crate::script::types::time::Time;
    use crate::script::value::{Fallible, error};

    /// Pauses the script for `secs` seconds (fractions allowed). Ctrl-C interrupts it
    /// and ends the script. Errors when `secs` is negative or not finite.
    ///
    /// Example: `sleep(1.5);`
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_float(ctx: NativeCallContext, secs: f64) -> Fallible<()> {
        let h = host(&ctx)?;
        super::sleep_interruptibly(&h, secs)
    }

    /// Pauses the script for `secs` whole seconds. Ctrl-C interrupts it and ends the
    /// script. Errors when `secs` is negative.
    ///
    /// Example: `sleep(2);`
    #[rhai_fn(name = "sleep", return_raw)]
    pub fn sleep_int(ctx: NativeCallContext, secs: i64) -> Fallible<()> {
        let h = host(&ctx)?;
        super::sleep_interruptibly(&h, secs as f64)
    }

    /// Writes an informational line to the log (stderr), hidden by `--quiet`.
    ///
    /// Example: `log(`${todo.len()} tickers to fetch`);`
    #[rhai_fn(return_raw)]
    pub fn log(ctx: NativeCallContext, message: &str) -> Fallible<()> {
        host(&ctx)?.log(message);
        Ok(())
    }

    /// Writes a warning to the log (stderr); shown even with `--quiet`.
    ///
    /// Example: `warn(`batch ${id} failed, retrying`);`
    #[rhai_fn(return_raw)]
    pub fn warn(ctx: NativeCallContext, message: &str) -> Fallible<()> {
        host(&ctx)?.warn(message);
        Ok(())
    }

    /// The current time, a `Time` that prints as RFC 3339 UTC; see `elapsed`.
    ///
    /// Example: `let t0 = now();`
    #[rhai_fn(volatile)]
    pub fn now() -> Time {
        Time::now()
    }

    /// Seconds (fractional) elapsed since `t`, a value from `now()`.
    ///
    /// Example: `log(`done in ${elapsed(t0)} s`);`
    #[rhai_fn(volatile)]
    pub fn elapsed(t: Time) -> f64 {
        t.seconds_ago()
    }

    /// Today's date in New York (the exchange's calendar) as `YYYY-MM-DD`.
    ///
    /// Example: `let to = today();`
    #[rhai_fn(volatile)]
    pub fn today() -> String {
        crate::calendar::today_ny().to_string()
    }

    /// The value of environment variable `name`, or `()` when unset. The API key
    /// variables (`POLYGON_API_KEY`, `MASSIVE_API_KEY`) are refused with an error: use
    /// `has_api_key()`.
    ///
    /// Example: `let root = env("DATA_ROOT") ?? "data";`
    #[rhai_fn(return_raw, volatile)]
    pub fn env(name: &str) -> Fallible<Dynamic> {
        if crate::secret::KEY_ENV_VARS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name.trim()))
        {
            return Err(error(format!(
                "env: {name} holds the API key, which scripts cannot read; use has_api_key() to check that it is set"
            )));
        }
        if crate::s3::FLATFILES_CREDENTIAL_VARS
            .iter()
            .any(|(_, secret)| secret.eq_ignore_ascii_case(name.trim()))
        {
            return Err(error(format!(
                "env: {name} holds the flat-file secret key, which scripts cannot read"
            )));
        }
        Ok(std::env::var(name).map_or(Dynamic::UNIT, Dynamic::from))
    }

    /// True when an API key is set (`POLYGON_API_KEY` or `MASSIVE_API_KEY`); the key
    /// itself never reaches scripts.
    ///
    /// Example: `if !has_api_key() { warn("set POLYGON_API_KEY"); exit(2); }`
    #[rhai_fn(return_raw)]
    pub fn has_api_key(ctx: NativeCallContext) -> Fallible<bool> {
        Ok(host(&ctx)?.has_api_key())
    }

    /// The folder of the running script (`.` in the REPL), for files that sit beside it.
    ///
    /// Example: `let universe = read_tickers(`${script_dir()}/universe.csv`);`
    #[rhai_fn(return_raw)]
    pub fn script_dir(ctx: NativeCallContext) -> Fallible<String> {
        Ok(host(&ctx)?
            .script_dir()
            .map_or_else(|| ".".to_string(), |p| p.display().to_string()))
    }

    /// Ends the script now with exit status `code` (0-255); running batches are shut
    /// down and the run records written first. Errors when `code` is outside 0-255.
    ///
    /// Example: `if failed.len() > 0 { exit(3); }`
    #[rhai_fn(name = "exit", return_raw, volatile)]
    pub fn exit_with(ctx: NativeCallContext, code: i64) -> Fallible<()> {
        let code = i32::try_from(code)
            .ok()
            .filter(|c| (0..=255).contains(c))
            .ok_or_else(|| error(format!("exit: the status must be 0-255, got {code}")))?;
        host(&ctx)?.set_ending(Ending::Exit(code));
        Err(Box::new(EvalAltResult::Exit(Dynamic::UNIT, Position::NONE)))
    }

    /// Ends the script now with exit status 0.
    ///
    /// Example: `if todo.is_empty() { log("nothing to do"); exit(); }`
    #[rhai_fn(name = "exit", return_raw, volatile)]
    pub fn exit_ok(ctx: NativeCallContext) -> Fallible<()> {
        exit_with(ctx, 0)
    }
}
