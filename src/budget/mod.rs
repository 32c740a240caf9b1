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
//! A handle may allow a *burst*: after an idle spell, up to `burst` requests go at
//! once, then they are spaced at `1/rate` again (GCRA with a tolerance of
//! `burst - 1` intervals). Workers use [`Rate::default_burst`], 0.8 s worth of
//! requests, so that a run's first requests do not wait a whole latency for the
//! schedule to fill; at a free-plan rate (`5/min`) that is 1, so requests stay evenly
//! spaced and never draw a 429. The burst is earned: a pair until the server has
//! answered a burst's request ([`Budget::answered`]), so a server that tolerates none
//! refuses one request at start-up, not the whole burst. A whole burst keeps 20 ms of
//! its tolerance back, so a server whose own tolerance is the budget's does not refuse
//! requests that reach it a little sooner than the first of the burst did.
//!
//! The schedule adapts to a server stricter than the rate, and keeps requests exactly
//! spaced when no burst is allowed: see the `schedule` module (AIMD on the rate after
//! 429s, a dispatch check against timers that wake late). The file holds
//! `tat slow_ppm last_429_ns recent_429s sent_ns burst_ok_ns`.
//!
//! Machines do not share a file: when batches run on several, the schedule lives in
//! Redis instead ([`shared`], [`Budget::open_shared`]), with the same logic. A file
//! that cannot be used degrades to a per-process schedule with a warning; a shared
//! budget that cannot be reached stops the run ([`BudgetError`]): several machines
//! each on their own schedule would spend the key's rate several times over.

mod schedule;
pub mod shared;

use schedule::{Pace, Schedule};

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

    /// The burst a worker allows: [`BURST_SECONDS`] worth of requests, at least 1 (so a
    /// rate under 1.25 req/s is evenly spaced from the first request).
    pub fn default_burst(self) -> u32 {
        ((self.0 * BURST_SECONDS).floor() as u32).max(1)
    }
}

/// How much of a second's requests may go at once after an idle spell. Under one
/// second, so a server limiting "N per second" with a burst of N is never exceeded.
pub const BURST_SECONDS: f64 = 0.8;
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
    /// The schedule file, or the shared budget's `host:port` for messages.
    path: PathBuf,
    rate: Rate,
    burst: u32,
    /// Serialises this process's tasks: `flock` does not exclude two threads that
    /// share one open file, so the in-process mutex comes first.
    state: Mutex<State>,
}

struct State {
    backend: Backend,
    /// Used only when the file cannot be read or written: the budget then degrades to
    /// a per-process schedule instead of failing requests.
    local: Schedule,
    warned: bool,
    /// Why the shared budget failed, once it has: every later request stops.
    broken: Option<String>,
}

/// Where the schedule lives.
enum Backend {
    /// A locked file: every process of this machine.
    File(File),
    /// Redis: every process of every machine using it.
    Redis(shared::RedisSchedule),
}

/// The shared budget failed: the request must not be sent unscheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BudgetError(pub String);

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("path", &self.inner.path)
            .field("rate", &self.inner.rate)
            .finish()
    }
}

fn check_rate(rate: Rate) -> io::Result<()> {
    if rate.0.is_finite() && rate.0 > 0.0 {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("rate must be positive, got {}", rate.0),
    ))
}

/// Read-modify-write of the schedule file while holding the exclusive lock: `f` maps
/// the stored schedule to the new one.
fn with_locked_schedule(file: &mut File, f: impl FnOnce(Schedule) -> Schedule) -> io::Result<()> {
    file.lock()?;
    let result = (|| {
        let mut text = String::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_string(&mut text)?;
        // An empty or damaged file means "no reservation yet".
        let old = Schedule::parse(&text);
        let new = f(old);
        if new != old {
            file.seek(SeekFrom::Start(0))?;
            file.set_len(0)?;
            file.write_all(new.text().as_bytes())?;
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

/// Sleeps `d` to within a fraction of a millisecond: tokio's timer rounds up to whole
/// milliseconds, too coarse for requests 10 ms apart; the last stretch is an OS sleep
/// on the blocking pool.
async fn precise_sleep(d: Duration) {
    const FINE: Duration = Duration::from_millis(3);
    if d.is_zero() {
        return;
    }
    let start = std::time::Instant::now();
    if d > FINE {
        tokio::time::sleep(d - FINE).await;
    }
    let rest = d.saturating_sub(start.elapsed());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// When a request took its slot in the schedule (ns since the Unix epoch) and whether
/// it went as part of a burst, returned by [`Budget::acquire`] and handed back with a
/// 429 ([`Budget::rate_limited`]) or its answer ([`Budget::answered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    at: u64,
    burst: bool,
    /// Part of a burst not yet earned (the pair): its answer tells the server's
    /// tolerance.
    probe: bool,
}

impl Budget {
    /// Opens (creating if needed) `budget-<fingerprint>.gcra` in `state_dir`, with
    /// no burst: requests evenly spaced at `rate`.
    pub fn open(state_dir: &Path, key: &ApiKey, rate: Rate) -> io::Result<Budget> {
        Budget::open_with_burst(state_dir, key, rate, 1)
    }

    /// Like [`open`](Self::open), allowing up to `burst` requests at once after an
    /// idle spell (see the module doc).
    pub fn open_with_burst(
        state_dir: &Path,
        key: &ApiKey,
        rate: Rate,
        burst: u32,
    ) -> io::Result<Budget> {
        check_rate(rate)?;
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
                burst: burst.max(1),
                state: Mutex::new(State {
                    backend: Backend::File(file),
                    local: Schedule::default(),
                    warned: false,
                    broken: None,
                }),
            }),
        })
    }

    /// Like [`open_with_burst`](Self::open_with_burst), with the schedule in the Redis
    /// at `url` (shared by every machine using it) instead of a file. Fails with a
    /// message naming the host (never a password) when Redis does not answer.
    pub fn open_shared(url: &str, key: &ApiKey, rate: Rate, burst: u32) -> io::Result<Budget> {
        check_rate(rate)?;
        let redis =
            shared::RedisSchedule::connect(url, &key.fingerprint()).map_err(io::Error::other)?;
        Ok(Budget {
            inner: Arc::new(Inner {
                path: PathBuf::from(redis.shown()),
                rate,
                burst: burst.max(1),
                state: Mutex::new(State {
                    backend: Backend::Redis(redis),
                    local: Schedule::default(),
                    warned: false,
                    broken: None,
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

    /// Waits for this caller's slot in the machine-wide schedule and returns when the
    /// slot was taken (for [`Budget::rate_limited`]). Dropping the future while it
    /// sleeps wastes the reserved slot (it is not given back).
    pub async fn acquire(&self) -> Result<Reserved, BudgetError> {
        // The locked section is a few syscalls on a tiny file (or one round trip to
        // Redis), but the lock may be held for a moment by another process (or this
        // one's other tasks); running it on the blocking pool keeps that wait off the
        // async worker threads.
        let at = now_ns();
        let me = self.clone();
        let (wait, burst, probe) = match tokio::task::spawn_blocking(move || me.reserve()).await {
            Ok(slot) => slot,
            Err(_) => self.reserve(),
        };
        let reserved = Reserved { at, burst, probe };
        if let Some(why) = self.broken() {
            return Err(BudgetError(why));
        }
        precise_sleep(wait).await;
        // The slot was reserved ahead and the sleep may end late (timers, a loaded
        // machine): a request let go late makes the next one, on time, look early to
        // a server with no tolerance. So unless a burst is allowed and earned (or this
        // is the pair's request), it goes only a whole interval after the one let go
        // before it, by the clock now.
        while let Some(gap) = self.dispatch(burst) {
            precise_sleep(gap).await;
        }
        Ok(reserved)
    }

    /// Lets a request go now if the last one went at least an interval ago (when the
    /// key is not known to tolerate a burst and this is not a `burst`'s request),
    /// recording it; else how long to wait.
    fn dispatch(&self, burst: bool) -> Option<Duration> {
        let pace = self.pace();
        self.update(|now, s| s.dispatch(pace, now, burst))
            .map(Duration::from_nanos)
    }

    /// The configured interval and burst.
    fn pace(&self) -> Pace {
        Pace {
            interval_ns: self.inner.rate.interval_ns(),
            burst: self.inner.burst,
        }
    }

    /// Why the shared budget failed, if it has.
    fn broken(&self) -> Option<String> {
        let st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        st.broken.clone()
    }

    /// Records a 429 seen by a request: every process on the key waits the server's
    /// `Retry-After` when it sent one. Without one, caution alone (no burst, a slower
    /// rate) answers it while it can, and the key pauses for `fallback` only once the
    /// rate is as slow as caution makes it and 429s keep coming densely: a pause per
    /// 429 would cost a strict server half its budget, none at all would let a badly
    /// set rate storm.
    ///
    /// A 429 to a request whose slot was taken before the key's last counted 429 says
    /// nothing new (it was sent under the old schedule, like the rest of a burst a
    /// strict server refused): it counts for nothing but its `Retry-After`.
    pub fn rate_limited(&self, slot: Reserved, retry_after: Option<Duration>, fallback: Duration) {
        let ns = |d: Duration| d.as_nanos().min(u128::from(u64::MAX)) as u64;
        let pace = self.pace();
        self.update(|now, s| {
            let next = s.note_429(
                pace,
                now,
                Some(slot.at),
                slot.burst,
                |n| match retry_after {
                    Some(ra) => Some(ns(ra)),
                    None => n.wants_pause().then(|| ns(fallback)),
                },
            );
            (next, ())
        });
    }

    /// Records that the server answered (did not refuse) the request of `slot`. Only
    /// the answer to a burst not yet earned says something (the server tolerates
    /// bursts), so this takes the lock only for that pair's second request.
    pub fn answered(&self, slot: Reserved) {
        if slot.probe {
            self.update(|now, s| (s.answered(now, slot.at, true), ()));
        }
    }

    /// Records a 429 not tied to a request: nobody using this key sends again before
    /// `now + delay`, and the key becomes more cautious.
    ///
    /// Synchronous, like [`Budget::rate_limited`]: it runs the same tiny locked section
    /// as `acquire`, once per 429, which is rare enough not to matter to the runtime.
    pub fn penalize(&self, delay: Duration) {
        let ns = delay.as_nanos().min(u128::from(u64::MAX)) as u64;
        let pace = self.pace();
        self.update(|now, s| (s.note_429(pace, now, None, false, |_| Some(ns)), ()));
    }

    /// True when a request made now would not wait for the schedule: the key has
    /// room for more requests in flight. Workers grow their concurrency only then.
    pub fn has_room(&self) -> bool {
        let pace = self.pace();
        self.update(|now, s| (s, s.has_room(pace, now)))
    }

    /// Reserves the next slot: how long to wait for it, whether it is a burst's, and
    /// whether that burst is not yet earned (a probe).
    fn reserve(&self) -> (Duration, bool, bool) {
        let pace = self.pace();
        let (wait, burst, probe) = self.update(|now, s| {
            let (next, (wait, early)) = s.reserve(pace, now);
            (next, (wait, early, early && s.burst_ok == 0))
        });
        (Duration::from_nanos(wait), burst, probe)
    }

    /// Applies `f(now, schedule) -> (new schedule, result)` to the shared schedule
    /// under the lock.
    fn update<R>(&self, f: impl Fn(u64, Schedule) -> (Schedule, R)) -> R {
        let mut st = match self.inner.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let res = match &mut st.backend {
            Backend::File(file) => {
                let mut out = None;
                let res = with_locked_schedule(file, |s| {
                    // The clock is read under the lock: read before it, a process that
                    // waited for the lock would see the last writer's times ahead of
                    // its own `now`.
                    let now = now_ns();
                    let (new, r) = f(now, s.sane_at(now));
                    out = Some(r);
                    new
                });
                if let Some(r) = out {
                    return r;
                }
                res.err().map(|e| e.to_string())
            }
            // Redis's clock, not this machine's: one timeline for every machine.
            Backend::Redis(redis) => match redis.update(|t, s| f(t, s.sane_at(t))) {
                Ok(r) => return r,
                Err(e) => {
                    st.broken.get_or_insert(e);
                    None
                }
            },
        };
        if let Some(e) = res
            && !st.warned
        {
            tracing::warn!(path = %self.inner.path.display(), error = %e,
                "request budget file unusable; scheduling this process alone");
            st.warned = true;
        }
        // The lock or the read failed before `f` ran: fall back to this process's own
        // schedule rather than failing (or flooding) requests.
        let now = now_ns();
        let (new, r) = f(now, st.local.sane_at(now));
        st.local = new;
        r
    }
}

#[cfg(test)]
mod tests;
