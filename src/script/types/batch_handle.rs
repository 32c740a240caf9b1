//! `BatchHandle`: a batch started by `spawn_batch`, passed back to `wait`, `poll`,
//! `wait_any` and `kill`.

use rhai::plugin::*;

/// A started batch attempt, as scripts hold it, with the script's own values that come
/// back in its result (`label` of any type, `data`, `job`).
#[derive(Debug, Clone)]
pub struct ScriptBatchHandle(pub crate::batch::BatchHandle, pub rhai::Map);

impl std::fmt::Display for ScriptBatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.0;
        write!(
            f,
            "BatchHandle(batch-{:04} attempt {}, {} ticker{}",
            h.id,
            h.attempt,
            h.tickers.len(),
            if h.tickers.len() == 1 { "" } else { "s" }
        )?;
        if let Some(pid) = h.pid {
            write!(f, ", pid {pid}")?;
        }
        if let Some(label) = &h.label {
            write!(f, ", {label:?}")?;
        }
        f.write_str(")")
    }
}

/// Properties of `BatchHandle` as a plugin module.
#[export_module]
pub mod batch_handle_fns {
    use rhai::{Array, Dynamic};

    use super::ScriptBatchHandle;

    /// A short description: id, attempt, ticker count, pid and label.
    ///
    /// Example: `print(h);   // BatchHandle(batch-0003 attempt 1, 25 tickers, pid 4242)`
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(h: &mut ScriptBatchHandle) -> String {
        h.to_string()
    }

    /// The batch id (names its log: `batch-0007.attempt-1.log`).
    ///
    /// Example: `log(`started batch ${h.id}`);`
    #[rhai_fn(global, get = "id", pure)]
    pub fn id(h: &mut ScriptBatchHandle) -> i64 {
        i64::from(h.0.id)
    }

    /// The attempt number, from 1.
    ///
    /// Example: `if h.attempt > 1 { warn("retrying"); }`
    #[rhai_fn(global, get = "attempt", pure)]
    pub fn attempt(h: &mut ScriptBatchHandle) -> i64 {
        i64::from(h.0.attempt)
    }

    /// The tickers of the batch (blanks and duplicates dropped).
    ///
    /// Example: `let n = h.tickers.len();`
    #[rhai_fn(global, get = "tickers", pure)]
    pub fn tickers(h: &mut ScriptBatchHandle) -> Array {
        h.0.tickers.iter().cloned().map(Dynamic::from).collect()
    }

    /// The label given to `spawn_batch` (any value), or `()`.
    ///
    /// Example: `print(h.label);`
    #[rhai_fn(global, get = "label", pure)]
    pub fn label(h: &mut ScriptBatchHandle) -> Dynamic {
        match h.1.get("label") {
            Some(v) => v.clone(),
            None => h.0.label.clone().map_or(Dynamic::UNIT, Dynamic::from),
        }
    }

    /// The path of the attempt's log file.
    ///
    /// Example: `print(h.log);`
    #[rhai_fn(global, get = "log", pure)]
    pub fn log(h: &mut ScriptBatchHandle) -> String {
        h.0.log_path.display().to_string()
    }

    /// The worker's process id, or `()` for executors without local processes.
    ///
    /// Example: `print(h.pid);`
    #[rhai_fn(global, get = "pid", pure)]
    pub fn pid(h: &mut ScriptBatchHandle) -> Dynamic {
        h.0.pid
            .map_or(Dynamic::UNIT, |p| Dynamic::from_int(i64::from(p)))
    }
}
