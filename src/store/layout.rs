//! Where everything lives.
//!
//! The data root (`--outdir`) holds ONLY finished Parquet files,
//! `ticker=T/year=Y/T_Y.parquet`: Polars fails on any other file below the root, even a
//! hidden one, and every reader fails on a truncated Parquet file. barsmith's own state
//! lives in the sibling state folder `<outdir>.barsmith/` on the same filesystem:
//!
//! ```text
//! data/minute/                 data root: finished Parquet only
//!   ticker=AAPL/year=2004/AAPL_2004.parquet
//! data/minute.barsmith/        state
//!   dataset.json               dataset identity
//!   coverage/AAPL.json         complete date ranges per ticker
//!   locks/AAPL.lock            per-ticker writer lock
//!   staging/                   temporary files, renamed into the data root when complete
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::store::error::StoreError;

/// Suffix appended to the data root's name to form the state folder's name.
pub const STATE_SUFFIX: &str = ".barsmith";

/// The paths of one store.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
    state: PathBuf,
}

impl Layout {
    /// The layout of `outdir`. Symlinks are resolved when `outdir` exists, so the state
    /// folder sits next to the real data root whatever spelling was used.
    pub fn resolve(outdir: &Path) -> Result<Layout, StoreError> {
        let root = match outdir.canonicalize() {
            Ok(p) => p,
            Err(_) => {
                std::path::absolute(outdir).map_err(|e| StoreError::io("resolve", outdir, e))?
            }
        };
        let state = state_dir_for(&root)?;
        Ok(Layout { root, state })
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state folder.
    pub fn state(&self) -> &Path {
        &self.state
    }

    /// `dataset.json`.
    pub fn dataset_file(&self) -> PathBuf {
        self.state.join("dataset.json")
    }

    /// The coverage folder.
    pub fn coverage_dir(&self) -> PathBuf {
        self.state.join("coverage")
    }

    /// The coverage file of `ticker`.
    pub fn coverage_file(&self, ticker: &str) -> PathBuf {
        self.coverage_dir().join(format!("{ticker}.json"))
    }

    /// The staging folder.
    pub fn staging_dir(&self) -> PathBuf {
        self.state.join("staging")
    }

    /// The flat-file route's state: staged days and the ledger of ingested files.
    pub fn flatfiles_dir(&self) -> PathBuf {
        self.state.join("flatfiles")
    }

    /// Where damaged bar files are moved to (out of readers' way, never deleted).
    pub fn quarantine_dir(&self) -> PathBuf {
        self.state.join("quarantine")
    }

    /// The lock folder.
    pub fn locks_dir(&self) -> PathBuf {
        self.state.join("locks")
    }

    /// The lock file of `ticker`.
    pub fn lock_file(&self, ticker: &str) -> PathBuf {
        self.locks_dir().join(format!("{ticker}.lock"))
    }

    /// `ticker=T/year=Y/` under the data root.
    pub fn year_dir(&self, ticker: &str, year: i16) -> PathBuf {
        self.root
            .join(format!("ticker={ticker}"))
            .join(format!("year={year}"))
    }

    /// `ticker=T/year=Y/T_Y.parquet` under the data root.
    pub fn file_path(&self, ticker: &str, year: i16) -> PathBuf {
        self.year_dir(ticker, year)
            .join(format!("{ticker}_{year}.parquet"))
    }
}

/// The state folder of data root `root`: its sibling `<name>.barsmith`.
pub fn state_dir_for(root: &Path) -> Result<PathBuf, StoreError> {
    let bad = || StoreError::BadOutdir {
        path: root.to_path_buf(),
    };
    let name = root.file_name().ok_or_else(bad)?;
    let parent = root.parent().ok_or_else(bad)?;
    let mut state: OsString = name.to_os_string();
    state.push(STATE_SUFFIX);
    Ok(parent.join(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_folder_is_a_sibling_of_the_data_root() {
        let l = Layout::resolve(Path::new("/nonexistent-x/data/minute/")).unwrap();
        assert_eq!(l.state(), Path::new("/nonexistent-x/data/minute.barsmith"));
        assert_eq!(
            l.file_path("BRK.A", 2004),
            Path::new("/nonexistent-x/data/minute/ticker=BRK.A/year=2004/BRK.A_2004.parquet")
        );
        assert!(Layout::resolve(Path::new("/")).is_err());
    }
}
