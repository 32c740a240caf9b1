//! Where batches run: local processes (the default) or Slurm jobs. A script may
//! choose before its first batch; `barsmith run --executor` chooses for a script
//! that does not, so the bundled strategies run unchanged on a cluster.

use std::time::Duration;

use rhai::Map;

use crate::batch::{ExecutorChoice, SlurmOptions};
use crate::script::value::{Fallible, Options, error};

/// The keys `use_executor` accepts for Slurm.
pub(crate) const EXECUTOR_OPTIONS: &[&str] = &["partition", "account", "time", "mem", "poll"];

/// The choice a name and its options make.
fn choice(name: &str, opts: Map) -> Fallible<ExecutorChoice> {
    let opts = Options::parse("use_executor", opts, EXECUTOR_OPTIONS)?;
    match name {
        "local" if opts_empty(&opts) => Ok(ExecutorChoice::Local),
        "local" => Err(error(
            "use_executor: the local executor takes no options (they are Slurm's)",
        )),
        "slurm" => {
            let defaults = SlurmOptions::default();
            Ok(ExecutorChoice::Slurm(SlurmOptions {
                partition: opts.string("partition")?,
                account: opts.string("account")?,
                time: match opts.get_dynamic("time") {
                    Some(t) if t.is_int() => Some(t.as_int().unwrap_or_default().to_string()),
                    _ => opts.string("time")?,
                },
                mem: opts.string("mem")?.unwrap_or(defaults.mem),
                poll: opts
                    .seconds("poll")?
                    .map_or(defaults.poll, Duration::from_secs_f64),
            }))
        }
        other => Err(error(format!(
            "use_executor: unknown executor \"{other}\": use \"local\" or \"slurm\""
        ))),
    }
}

fn opts_empty(opts: &Options) -> bool {
    EXECUTOR_OPTIONS
        .iter()
        .all(|k| opts.get_dynamic(k).is_none())
}

#[rhai::export_module]
pub mod executor_fns {
    use rhai::{Map, NativeCallContext};

    use crate::script::engine::host;
    use crate::script::value::{Fallible, error};

    /// Runs this script's batches with `name`: `"local"` (child processes, the
    /// default) or `"slurm"` (one Slurm job per batch attempt, submitted with
    /// `sbatch`; timeouts, retries, logs and records work as locally). Must come
    /// before the first batch; `barsmith run --executor` makes the same choice from
    /// the command line. The run folder, the output folder and the `barsmith` binary
    /// must be on a filesystem the nodes share.
    ///
    /// Example: `use_executor("slurm");`
    #[rhai_fn(return_raw, name = "use_executor")]
    pub fn use_executor(ctx: NativeCallContext, name: &str) -> Fallible<()> {
        use_executor_with(ctx, name, Map::new())
    }

    /// `use_executor` with Slurm settings: `partition`, `account`, `time` (minutes,
    /// or `"1:30:00"`; default: the batch `timeout` plus the grace period, rounded up
    /// to minutes, plus one), `mem` (default `"2G"`), `poll` (seconds between reads of
    /// a job's state, default 1). Errors on an unknown option, a value Slurm would
    /// refuse, a cluster that does not answer, or a batch already started.
    ///
    /// Example: `use_executor("slurm", #{partition: "short", time: 30, mem: "4G"});`
    #[rhai_fn(return_raw, name = "use_executor")]
    pub fn use_executor_with(ctx: NativeCallContext, name: &str, opts: Map) -> Fallible<()> {
        let choice = super::choice(name, opts)?;
        host(&ctx)?
            .set_executor(choice)
            .map_err(|e| error(format!("use_executor: {e}")))
    }
}
