//! Everything that can go wrong in the store, each message naming the path involved
//! and what to do about it.

use std::io;
use std::path::PathBuf;

use crate::store::identity::DatasetIdentity;

/// A store failure. Every variant names the path involved; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The output folder (or its state folder) cannot be created or written.
    #[error(
        "output folder {path} is not writable: {source}; fix its permissions or choose another --outdir"
    )]
    Unwritable {
        /// The folder that could not be created or written.
        path: PathBuf,
        /// The OS reason.
        source: io::Error,
    },

    /// The data root and its state folder are on different filesystems, so a rename
    /// between them would not be atomic.
    #[error(
        "{data} and its state folder {state} are on different filesystems (is {data} a mount \
         point?); barsmith needs both on one filesystem for atomic writes: use a folder \
         inside the mount as --outdir (e.g. {data}/minute)"
    )]
    DifferentFilesystems {
        /// The data root.
        data: PathBuf,
        /// The state folder.
        state: PathBuf,
    },

    /// The output folder has no usable name to derive the state folder from (e.g. `/`).
    #[error(
        "{path} cannot be an output folder (a sibling state folder is needed): use a subfolder such as {path}/minute"
    )]
    BadOutdir {
        /// The rejected folder.
        path: PathBuf,
    },

    /// The output folder was created for other data (adjusted vs unadjusted, another
    /// timespan or provider).
    #[error(
        "{path} holds {recorded} but this run asks for {requested}; mixing them in one \
         folder is refused: use another --outdir for {requested}"
    )]
    IdentityMismatch {
        /// The file recording the dataset identity (or a Parquet file carrying it).
        path: PathBuf,
        /// What the folder holds.
        recorded: Box<DatasetIdentity>,
        /// What was asked for.
        requested: Box<DatasetIdentity>,
    },

    /// A filesystem operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("read", "rename", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS reason.
        source: io::Error,
    },

    /// Parquet or Arrow failed while encoding or decoding a file.
    #[error("cannot {action} Parquet file {path}: {message}")]
    Parquet {
        /// "write" or "read".
        action: &'static str,
        /// The file (or `<memory>` when encoding into a buffer).
        path: PathBuf,
        /// The underlying error.
        message: String,
    },

    /// A state or data file has unexpected content.
    #[error("{path} is damaged: {reason}; delete it (that data will be fetched again)")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A caller passed something the store cannot accept.
    #[error("{0}")]
    Invalid(String),

    /// An S3 request of a dataset on S3 failed (the message names the object and the
    /// fix; it never holds credentials).
    #[error("{0}")]
    S3(#[from] crate::s3::S3Error),

    /// Another writer holds the write lease of a ticker of a dataset on S3, and did not
    /// release it (nor let it expire) within the wait.
    #[error(
        "{ticker} is being written by another writer ({owner}, lease {key}); waited {waited:?} \
         for it: let that writer finish, or run again once its lease has expired"
    )]
    LeaseHeld {
        /// The ticker.
        ticker: String,
        /// The holder's owner id (host/pid/random).
        owner: String,
        /// The lease object's `s3://` URL.
        key: String,
        /// How long this writer waited.
        waited: std::time::Duration,
    },

    /// This writer's lease on a ticker ended: it could not be renewed in time, or
    /// another writer took it over. Nothing more is written for the ticker.
    #[error(
        "lost the write lease of {ticker} ({reason}); nothing more was written for it: run \
         again to finish it"
    )]
    LeaseLost {
        /// The ticker.
        ticker: String,
        /// Why the lease ended.
        reason: String,
    },

    /// A conditional read-modify-write of an S3 object kept losing races to other
    /// writers and gave up (bounded retries, never an unconditional overwrite).
    #[error(
        "gave up updating {key} after {attempts} attempts: other writers kept changing it; \
         run again"
    )]
    Contended {
        /// The object's `s3://` URL.
        key: String,
        /// Attempts made.
        attempts: u32,
    },

    /// A write was attempted on a store opened read-only.
    #[error("store {path} was opened read-only; open it with an identity to write")]
    ReadOnly {
        /// The data root.
        path: PathBuf,
    },
}

impl StoreError {
    /// An [`StoreError::Io`] for `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A [`StoreError::Parquet`] for `path`.
    pub(crate) fn parquet(
        action: &'static str,
        path: impl Into<PathBuf>,
        err: impl std::fmt::Display,
    ) -> Self {
        StoreError::Parquet {
            action,
            path: path.into(),
            message: err.to_string(),
        }
    }
}
