//! Crash-safe file replacement: a file appears under its final name only when it is
//! complete.
//!
//! Every write goes to a temporary file in the state folder's `staging/` (same
//! filesystem as the data root, so the final rename is atomic), is fsynced, renamed
//! over the final path, and the destination folder is fsynced. A writer killed at any
//! instant therefore leaves either the old file or the new one, plus perhaps a
//! leftover in `staging/`, which no reader ever looks at.
//!
//! Several worker processes share one output folder, so a staging file is `flock`ed by
//! its writer for as long as it exists under its temporary name: the cleaner removes
//! only leftovers nobody holds (their writer died, and with it the lock).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::error::StoreError;

/// Extension of every staging file.
const STAGING_EXT: &str = "tmp";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A locked temporary file in `staging/`, removed on drop unless committed.
pub(crate) struct Staged {
    file: Option<File>,
    path: PathBuf,
}

impl Staged {
    /// Creates and locks a new temporary file in `staging` whose name mentions `label`.
    pub(crate) fn create(staging: &Path, label: &str) -> Result<Staged, StoreError> {
        let pid = std::process::id();
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = staging.join(format!("{pid}-{n}-{label}.{STAGING_EXT}"));
            let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => f,
                // A dead process with our pid left this name behind: take the next one.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("create staging file", path, e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Error(e)) => return Err(StoreError::io("lock", path, e)),
            }
            // A cleaner in another process may have removed the file between create and
            // lock; then our inode is no longer under that name: start again.
            let ours = file
                .metadata()
                .map_err(|e| StoreError::io("stat", &path, e))?
                .ino();
            match fs::metadata(&path) {
                Ok(m) if m.ino() == ours => {
                    return Ok(Staged {
                        file: Some(file),
                        path,
                    });
                }
                _ => continue,
            }
        }
        Err(StoreError::io(
            "create a staging file in",
            staging,
            io::Error::other("no free temporary name after 16 attempts"),
        ))
    }

    /// The temporary path (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for writing.
    pub(crate) fn file(&self) -> &File {
        // Only `commit` takes the file, and it consumes `self`.
        self.file
            .as_ref()
            .expect("staged file is open until commit")
    }

    /// fsyncs the file, renames it over `dest`, and fsyncs `dest`'s folder.
    pub(crate) fn commit(mut self, dest: &Path) -> Result<(), StoreError> {
        let file = self.file.take().expect("staged file is open until commit");
        file.sync_all()
            .map_err(|e| StoreError::io("fsync", &self.path, e))?;
        fs::rename(&self.path, dest).map_err(|e| StoreError::io("rename into place", dest, e))?;
        // Keep the lock until the temporary name is gone, then release it.
        drop(file);
        sync_parent(dest)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Not committed (an error on the way): the temporary file is garbage.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `dest` atomically through a staging file, using `write` to fill it.
pub(crate) fn write_with<T>(
    staging: &Path,
    dest: &Path,
    label: &str,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let staged = Staged::create(staging, label)?;
    let tmp = staged.path().to_path_buf();
    let mut out = BufWriter::with_capacity(1 << 20, staged.file());
    let value = write(&mut out)?;
    out.flush().map_err(|e| StoreError::io("write", &tmp, e))?;
    drop(out);
    staged.commit(dest)?;
    Ok(value)
}

/// Writes `bytes` to `dest` atomically.
pub(crate) fn write_bytes(
    staging: &Path,
    dest: &Path,
    label: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    write_with(staging, dest, label, |out| {
        out.write_all(bytes)
            .map_err(|e| StoreError::io("write", dest, e))
    })
}

/// Creates `dest` with `bytes` only if it does not exist yet, atomically (a finished
/// temporary file is hard-linked). Returns false when `dest` already existed.
pub(crate) fn publish_new(
    staging: &Path,
    dest: &Path,
    label: &str,
    bytes: &[u8],
) -> Result<bool, StoreError> {
    let staged = Staged::create(staging, label)?;
    let tmp = staged.path().to_path_buf();
    let mut f = staged.file();
    f.write_all(bytes)
        .map_err(|e| StoreError::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| StoreError::io("fsync", &tmp, e))?;
    let created = match fs::hard_link(&tmp, dest) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(StoreError::io("create", dest, e)),
    };
    drop(staged); // removes the temporary name
    if created {
        sync_parent(dest)?;
    }
    Ok(created)
}

/// Removes `path` (if present) and fsyncs its folder.
pub(crate) fn remove_durable(path: &Path) -> Result<bool, StoreError> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("remove", path, e)),
    }
}

/// Creates folder `dir` (and missing parents), fsyncing each parent that gained an entry.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_parent(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(StoreError::Unwritable {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// fsyncs the folder holding `path`, so a rename or new entry in it survives a crash
/// (one fsync for the writers of that folder asking at once: [`super::dirsync`]).
pub(crate) fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    super::dirsync::sync_dir(dir)
}

/// Removes leftover staging files whose writer is gone; returns how many were removed.
pub(crate) fn clean_staging(staging: &Path) -> Result<usize, StoreError> {
    let entries = match fs::read_dir(staging) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StoreError::io("list", staging, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry
            .map_err(|e| StoreError::io("list", staging, e))?
            .path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        // Held by a live writer (in this or another process): leave it alone.
        if file.try_lock().is_err() {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::debug!(path = %path.display(), "removed leftover staging file");
                removed += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("remove leftover", &path, e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_file_replaces_destination_and_leaves_no_staging() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        fs::create_dir(&staging).unwrap();
        let dest = dir.path().join("out.json");
        fs::write(&dest, "old").unwrap();
        write_bytes(&staging, &dest, "out.json", b"new").unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new");
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
    }

    #[test]
    fn failed_write_removes_its_staging_file_and_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        fs::create_dir(&staging).unwrap();
        let dest = dir.path().join("out.json");
        fs::write(&dest, "old").unwrap();
        let r: Result<(), _> = write_with(&staging, &dest, "x", |out| {
            out.write_all(b"partial").unwrap();
            Err(StoreError::Invalid("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old");
        assert_eq!(fs::read_dir(&staging).unwrap().count(), 0);
    }

    #[test]
    fn cleaner_skips_files_held_by_a_live_writer() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path();
        let held = Staged::create(staging, "held").unwrap();
        fs::write(staging.join("123-0-dead.tmp"), "leftover").unwrap();
        assert_eq!(clean_staging(staging).unwrap(), 1);
        assert!(held.path().exists());
        drop(held);
        assert_eq!(fs::read_dir(staging).unwrap().count(), 0);
    }

    #[test]
    fn publish_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("d.json");
        assert!(publish_new(dir.path(), &dest, "d", b"first").unwrap());
        assert!(!publish_new(dir.path(), &dest, "d", b"second").unwrap());
        assert_eq!(fs::read_to_string(&dest).unwrap(), "first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
