//! `barsmith upgrade DIR`: rewrites the bar files of a dataset written by barsmith 0.1
//! (a `ticker` column beside the `ticker=` folder) in the current layout, so
//! `pandas.read_parquet(DIR)` and `pq.read_table(DIR)` open it untouched.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::store::{DatasetLocation, Store};

/// Exit status for bad input: DIR missing or not a barsmith dataset.
pub const USAGE: u8 = 2;

/// Flags of `barsmith upgrade`.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Files written by barsmith 0.1 carry a `ticker` column that the `ticker=` folder also
gives; pandas.read_parquet(DIR) and pyarrow.parquet.read_table(DIR) cannot merge the two
and refuse the whole dataset. This rewrites each such file with the same bars and
provenance, atomically and under the ticker's lock (an interrupted upgrade leaves every
file whole; run it again to finish). Every later write uses the current layout anyway.
`barsmith status DIR` says how many files need it. Run it while no backfill writes to DIR.

Local folders only: barsmith writes datasets on S3 in the current layout (`barsmith
status s3://...` names any first-layout object, uploaded from an old folder).

Exit status: 0 done (also when nothing needed rewriting); 2 DIR missing, not a
barsmith dataset, or on S3; 1 a file could not be read or written.

Example:
  barsmith upgrade data/minute")]
pub struct UpgradeArgs {
    /// The dataset: the data root given to `barsmith ingest --outdir`, e.g. `data/minute`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// What to do about first-layout files on S3, which `barsmith upgrade` does not
/// rewrite: barsmith never wrote that layout to S3, so such files were uploaded from a
/// folder of barsmith 0.1.
pub const UPGRADE_ON_S3: &str = "files of the first layout on S3 were uploaded from a \
    folder of barsmith 0.1 (barsmith writes S3 in the current one): run `barsmith upgrade` \
    on that folder, then upload it again";

/// Rewrites the dataset's first-layout files.
pub fn run(args: UpgradeArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    if let Ok(DatasetLocation::S3(location)) = DatasetLocation::parse(dir) {
        eprintln!(
            "error: barsmith upgrade rewrites local folders only, not {location}: \
             {UPGRADE_ON_S3}"
        );
        return Ok(ExitCode::from(USAGE));
    }
    let fix = "pass the folder given to `barsmith ingest --outdir`";
    let identity = match Store::open_read_only(dir) {
        Ok(s) if dir.is_dir() => s.identity().cloned(),
        _ => None,
    };
    let Some(identity) = identity else {
        eprintln!("error: {} is not a barsmith dataset: {fix}", dir.display());
        return Ok(ExitCode::from(USAGE));
    };
    let store =
        Store::open(dir, &identity).with_context(|| format!("cannot open {}", dir.display()))?;
    let done = store
        .upgrade(|path| tracing::info!(file = %path.display(), "rewritten in the current layout"))
        .with_context(|| format!("cannot upgrade {}", dir.display()))?;
    println!(
        "{}: {} of {} bar files rewritten in the current layout",
        dir.display(),
        done.rewritten,
        done.files
    );
    Ok(ExitCode::SUCCESS)
}
