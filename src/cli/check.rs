//! `barsmith check SCRIPT...`: finds what would stop a script, before running it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::script::check::{check_file, count};

/// Exit status when a script has problems (as for other bad input).
pub const PROBLEMS: u8 = 2;

/// Flags of `barsmith check`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Reports, one line each as `path:line:col: error: ...`, syntax errors, calls to
functions that do not exist (primitives, Rhai built-ins, the script's own functions
and those of the modules it imports are known), methods no function takes, and
unknown keys in literal option maps of primitives (`spawn_batch(t, #{form: ...})`),
with the closest known name. Nothing is run. `barsmith run` makes the same check
before starting a script.

Exit status: 0 no problems; 2 problems found; 1 a script could not be read.

Examples:
  barsmith check scripts/wrapper.rhai
  barsmith check examples/*.rhai")]
pub struct CheckArgs {
    /// The Rhai scripts to check (e.g. scripts/wrapper.rhai).
    #[arg(value_name = "SCRIPT", required = true)]
    pub scripts: Vec<PathBuf>,
}

/// Checks each script; prints its problems and their count.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut total = 0;
    for script in &args.scripts {
        let problems = check_file(script).map_err(|e| anyhow::anyhow!("script: {e}"))?;
        for p in &problems {
            println!("{}", p.line());
        }
        total += problems.len();
    }
    let files = match args.scripts.len() {
        1 => "1 script".to_string(),
        n => format!("{n} scripts"),
    };
    if total == 0 {
        println!("{files} checked: no problems");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{files} checked: {}", count(total));
    Ok(ExitCode::from(PROBLEMS))
}
