//! One request budget per API key, shared by every barsmith process on the machine.
//!
//! The API's rate limit applies to the key, not to a process: six worker processes
//! each "staying under 5 req/min" would together send 30. So the schedule lives in a
//! file, `budget-<key fingerprint>.gcra` in the state directory, holding one number:
//! the GCRA *theoretical arrival time* (TAT) — the next free request slot, in
//! nanoseconds since the Unix epoch. Taking a slot is a read-modify-write of that
//! number under an exclusive file lock (`slot = max(tat, now); tat = slot + 1/rate`),
//! after which the caller sleeps until its slot without holding anything. A 429 seen
//! by any process pushes the TAT forward for all of them ([`Budget::penalize`]).
//!
//! There is no burst allowance: requests are spaced evenly at `1/rate`, which is what
//! keeps a free-plan key (`5/min`) from ever seeing a 429.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::secret::ApiKey;

/// A request rate, in requests per second.
///
/// Parsed from `"50"`, `"50/s"`, `"5/min"`, `"300/h"` or `"0.5"` (per second when no
/// unit is given). The default is 50 req/s — comfortably under the < 100 req/s that
/// Polygon advises for paid plans. The free plan allows 5 requests per minute: `5/min`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rate(pub f64);

impl Rate {
    /// barsmith's default: 50 requests per second.
    pub const DEFAULT: Rate = Rate(50.0);
    /// Polygon's free plan: 5 requests per minute.
    pub const FREE_PLAN: Rate = Rate(5.0 / 60.0);

    /// Requests per second.
    pub fn per_second(self) -> f64 {
        self.0
    }

    /// The spacing between two requests.
    pub fn interval(self) -> Duration {
        Duration::from_secs_f64(1.0 / self.0)
    }

    fn interval_ns(self) -> u64 {
        (1e9 / self.0).round().max(1.0) as u64
    }
}

impl Default for Rate {
    fn default() -> Rate {
        Rate::DEFAULT
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1.0 {
            write!(f, "{}/min", trim_float(self.0 * 60.0))
        } else {
            write!(f, "{}/s", trim_float(self.0))
        }
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A rate that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid rate '{0}': use a positive number of requests per second or per minute, e.g. 50, 50/s, 5/min"
)]
pub struct RateError(pub String);

impl FromStr for Rate {
    type Err = RateError;

    fn from_str(s: &str) -> Result<Rate, RateError> {
        let bad = || RateError(s.to_string());
        let t = s.trim().to_ascii_lowercase();
        let (num, unit) = t.split_once('/').unwrap_or((t.as_str(), "s"));
        let n: f64 = num.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return Err(bad()),
        };
        let rate = n / per;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(bad());
        }
        Ok(Rate(rate))
    }
}

/// The state directory: `$BARSMITH_STATE_DIR`, else `$XDG_STATE_HOME/barsmith`, else
/// `$HOME/.local/state/barsmith` (else `./.barsmith-state` when even `HOME` is unset).
pub fn default_state_dir() -> PathBuf {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("BARSMITH_STATE_DIR") {
        return dir;
    }
    if let Some(dir) = var("XDG_STATE_HOME") {
        return dir.join("barsmith");
    }
    match var("HOME") {
        Some(home) => home.join(".local").join("state").join("barsmith"),
        None => PathBuf::from(".barsmith-state"),
    }
}

/// A handle on the machine-wide request schedule of one API key. Cheap to clone.
#[derive(Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    rate: Rate,
    /// Serialises this process's tasks: `flock` does not exclude two threads that
    /// share one open file, so the in-process mutex comes first.
    state: Mutex<State>,
}

struct State {
    file: File,
    /// Used only when the file cannot be read or written: the budget then degrades to
    /// a per-process schedule instead of failing requests.
    local_tat: u64,
    warned: bool,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("path", &self.inner.path)
            .field("rate", &self.inner.rate)
            .finish()
    }
}

/// Read-modify-write of the TAT file while holding the exclusive lock: `f` maps the
/// stored TAT to the new one.
fn with_locked_tat(file: &mut File, f: impl FnOnce(u64) -> u64) -> io::Result<()> {
    file.lock()?;
    let result = (|| {
        let mut text = String::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_string(&mut text)?;
        // An empty or damaged file means "no reservation yet".
        let tat = text.trim().parse::<u64>().unwrap_or(0);
        let new_tat = f(tat);
        if new_tat != tat {
            file.seek(SeekFrom::Start(0))?;
            file.set_len(0)?;
            file.write_all(format!("{new_tat}\n").as_bytes())?;
        }
        Ok(())
    })();
    let unlocked = file.unlock();
    result.and(unlocked)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A TAT further ahead than this is a damaged file or a clock jump, not a schedule.
const MAX_AHEAD_NS: u64 = 24 * 3600 * 1_000_000_000;

impl Budget {
    /// Opens (creating if needed) `budget-<fingerprint>.gcra` in `state_dir`.
    pub fn open(state_dir: &Path, key: &ApiKey, rate: Rate) -> io::Result<Budget> {
        if !(rate.0.is_finite() && rate.0 > 0.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("rate must be positive, got {}", rate.0),
            ));
        }
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join(format!("budget-{}.gcra", key.fingerprint()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        Ok(Budget {
            inner: Arc::new(Inner {
                path,
                rate,
                state: Mutex::new(State {
                    file,
                    local_tat: 0,
                    warned: false,
                }),
            }),
        })
    }

    /// The schedule file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The rate this handle schedules at.
    pub fn rate(&self) -> Rate {
        self.inner.rate
    }

    /// Waits for this caller's slot in the machine-wide schedule. Dropping the future
    /// while it sleeps wastes the reserved slot (it is not given back).
    pub async fn acquire(&self) {
        // The locked section is a few syscalls on a tiny file, but the lock may be
        // held for a moment by another process (or this one's other tasks); running
        // it on the blocking pool keeps that wait off the async worker threads.
        let me = self.clone();
        let wait = match tokio::task::spawn_blocking(move || me.reserve()).await {
            Ok(wait) => wait,
            Err(_) => self.reserve(),
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Records a 429: nobody using this key sends again before `now + delay`.
    ///
    /// Synchronous: it runs the same tiny locked section as `acquire`, once per 429,
    /// which is rare enough not to matter to the runtime.
    pub fn penalize(&self, delay: Duration) {
        let until = now_ns().saturating_add(delay.as_nanos().min(u128::from(MAX_AHEAD_NS)) as u64);
        self.update(|_, tat| (tat.max(until), ()));
    }

    /// Reserves the next slot and returns how long to wait for it.
    fn reserve(&self) -> Duration {
        let step = self.inner.rate.interval_ns();
        self.update(|now, tat| {
            let slot = tat.max(now);
            (slot.saturating_add(step), Duration::from_nanos(slot - now))
        })
    }

    /// Applies `f(now, tat) -> (new_tat, result)` to the shared TAT under the lock.
    fn update<R>(&self, f: impl Fn(u64, u64) -> (u64, R)) -> R {
        let mut st = match self.inner.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = now_ns();
        let sane = |tat: u64| {
            if tat > now.saturating_add(MAX_AHEAD_NS) {
                0
            } else {
                tat
            }
        };
        let mut out = None;
        let res = with_locked_tat(&mut st.file, |tat| {
            let (new_tat, r) = f(now, sane(tat));
            out = Some(r);
            new_tat
        });
        if let Err(e) = res
            && !st.warned
        {
            tracing::warn!(path = %self.inner.path.display(), error = %e,
                "request budget file unusable; scheduling this process alone");
            st.warned = true;
        }
        if let Some(r) = out {
            return r;
        }
        // The lock or the read failed before `f` ran: fall back to this process's own
        // schedule rather than failing (or flooding) requests.
        let (new_tat, r) = f(now, sane(st.local_tat));
        st.local_tat = new_tat;
        r
    }
}
