//! The process-wide cancel flag: set by SIGINT/SIGTERM (and by the REPL's Ctrl-C), watched
//! by every blocking call of the batch runner.
//!
//! The signal handler only stores an atomic (the one thing that is safe to do in a signal
//! handler); everything else — stopping workers, writing records — happens in normal
//! threads that notice the flag within ~100 ms. A second signal while the flag is still
//! set exits at once with status 128+signal: the impatient user wins, and workers still
//! die with us through `PR_SET_PDEATHSIG` (see [`super::process`]).
//!
//! Tests and embedders that must not share the process-wide flag use [`CancelFlag::new`].

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use super::BatchError;

/// The flag the signal handlers set.
static GLOBAL: AtomicBool = AtomicBool::new(false);
/// The last signal received (0 = none).
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// How often blocking calls look at the flag.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// A cancel flag: the process-wide one ([`CancelFlag::global`], the default everywhere)
/// or a private one ([`CancelFlag::new`]) for tests and embedding. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Option<Arc<AtomicBool>>);

impl CancelFlag {
    /// The process-wide flag, set by the handlers of [`install_signal_handlers`].
    pub fn global() -> CancelFlag {
        CancelFlag(None)
    }

    /// A private flag, independent of signals and of every other flag.
    pub fn new() -> CancelFlag {
        CancelFlag(Some(Arc::new(AtomicBool::new(false))))
    }

    fn atomic(&self) -> &AtomicBool {
        match &self.0 {
            Some(a) => a,
            None => &GLOBAL,
        }
    }

    /// Asks everything watching this flag to stop.
    pub fn cancel(&self) {
        self.atomic().store(true, Ordering::SeqCst);
    }

    /// True once [`cancel`](Self::cancel) was called (or a signal arrived, for the global flag).
    pub fn is_cancelled(&self) -> bool {
        self.atomic().load(Ordering::SeqCst)
    }

    /// Clears the flag (the REPL does this after a cancelled command).
    pub fn reset(&self) {
        self.atomic().store(false, Ordering::SeqCst);
        if self.0.is_none() {
            LAST_SIGNAL.store(0, Ordering::SeqCst);
        }
    }

    /// Returns `Err(Cancelled)` if the flag is set.
    pub fn check(&self) -> Result<(), BatchError> {
        if self.is_cancelled() {
            Err(BatchError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Sleeps for `duration`, waking every [`CHECK_INTERVAL`] to return `Err(Cancelled)`
    /// as soon as the flag is set (for a script's `sleep`).
    pub fn sleep(&self, duration: Duration) -> Result<(), BatchError> {
        let end = Instant::now() + duration;
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            std::thread::sleep((end - now).min(CHECK_INTERVAL));
        }
    }
}

/// The last SIGINT/SIGTERM received since the last reset of the global flag, if any
/// (exit status convention: 128 + signal).
pub fn last_signal() -> Option<i32> {
    match LAST_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    LAST_SIGNAL.store(signal, Ordering::SeqCst);
    if GLOBAL.swap(true, Ordering::SeqCst) {
        // Second signal while still cancelling: quit now. `_exit` is async-signal-safe.
        unsafe { libc::_exit(128 + signal) };
    }
}

/// Installs handlers for SIGINT and SIGTERM that set the global flag (a second signal
/// exits at once). Call once, early in `main`, for commands that run batches. Replaces
/// any handler installed before for these two signals.
pub fn install_signal_handlers() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; the handler
        // only touches atomics and `_exit`.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
