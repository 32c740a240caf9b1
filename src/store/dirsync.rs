//! One folder fsync for the writers that need one at the same time.
//!
//! Every ticker-file ends with an fsync of the folder it was renamed into, and every
//! coverage record with one of `coverage/`; a first write of a ticker also syncs the
//! data root for its new `ticker=` folder. A worker writes many tickers at once, so
//! several writers often wait on an fsync of the same folder: they share it instead
//! of queueing one each (group commit). A writer asks after its own change (rename,
//! new entry) is made; an fsync that *starts* after it asked covers that change, so a
//! writer returns only once such an fsync has finished. Durability is as before: the
//! change is on disk when the call returns.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

use crate::store::error::StoreError;

/// The folders some writer is syncing or waiting on now (an entry goes with its last
/// user, so the map stays as small as the writers in flight).
static FOLDERS: LazyLock<Mutex<HashMap<PathBuf, Arc<Folder>>>> = LazyLock::new(Default::default);

/// The syncs of one folder.
#[derive(Debug, Default)]
struct Folder {
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Requests so far; a writer's ticket is the count when it asked.
    asked: u64,
    /// Every ticket up to this one is on disk.
    synced: u64,
    /// An fsync is under way.
    running: bool,
    /// Writers holding this entry.
    users: usize,
    /// fsyncs made (for tests).
    fsyncs: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// fsyncs `dir` once the caller's change in it is made, sharing the fsync with the
/// writers asking at the same time.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let folder = {
        let mut map = lock(&FOLDERS);
        let folder = map.entry(dir.to_path_buf()).or_default().clone();
        lock(&folder.state).users += 1;
        folder
    };
    let result = folder.sync(dir);
    let mut map = lock(&FOLDERS);
    let mut state = lock(&folder.state);
    state.users -= 1;
    if state.users == 0 {
        map.remove(dir);
    }
    result
}

impl Folder {
    /// Returns once an fsync of `dir` that started after this call has finished: makes
    /// one if none is under way, else waits for the one running and, unless a later
    /// one covered this call meanwhile, makes the next.
    fn sync(&self, dir: &Path) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        state.asked += 1;
        let ticket = state.asked;
        while state.synced < ticket {
            if state.running {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.running = true;
            let covers = state.asked;
            drop(state);
            let result = File::open(dir).and_then(|d| d.sync_all());
            state = lock(&self.state);
            state.running = false;
            state.fsyncs += 1;
            self.finished.notify_all();
            match result {
                Ok(()) => state.synced = state.synced.max(covers),
                // The waiters try again themselves.
                Err(e) => return Err(StoreError::io("fsync folder", dir, e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn writers_asking_during_an_fsync_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::default();
        lock(&folder.state).running = true; // as if an fsync were under way
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| folder.sync(dir.path()).unwrap());
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while lock(&folder.state).asked < 4 {
                assert!(Instant::now() < deadline, "the writers never asked");
                std::thread::sleep(Duration::from_millis(1));
            }
            // The fsync "under way" ends without covering them: one more covers all 4.
            lock(&folder.state).running = false;
            folder.finished.notify_all();
        });
        let state = lock(&folder.state);
        assert_eq!((state.fsyncs, state.synced), (1, 4));
    }

    #[test]
    fn each_call_returns_after_a_sync_and_leaves_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| sync_dir(dir.path()).unwrap());
            }
        });
        assert!(!lock(&FOLDERS).contains_key(dir.path()));
        let gone = dir.path().join("absent");
        let e = sync_dir(&gone).unwrap_err();
        assert!(e.to_string().contains("fsync folder"), "{e}");
        assert!(!lock(&FOLDERS).contains_key(&gone));
    }
}
