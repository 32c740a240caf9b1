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
//! spaced and never draw a 429.
//!
//! The schedule adapts to a server stricter than the rate (AIMD): a 429 makes the key
//! more cautious for every process — the first drops the burst to 1, later ones slow
//! the rate by 3% a step (to at most 25% slower); each 2 s without a 429 takes one
//! step back (the burst comes back by doublings). 429s within a second count as one
//! step (the requests in flight all see the same refusal), unless they are dense
//! (every 5 more is a step, and at the slowest rate a pause: the rate is far above the
//! plan's); a 429 to a request whose slot was taken before the last step counts for
//! nothing (it was sent under the old schedule). The file then holds
//! `tat caution last_429_ns recent_429s`.
//!
//! Machines do not share a file: when batches run on several, the schedule lives in
//! Redis instead ([`shared`], [`Budget::open_shared`]), with the same logic. A file
//! that cannot be used degrades to a per-process schedule with a warning; a shared
//! budget that cannot be reached stops the run ([`BudgetError`]): several machines
//! each on their own schedule would spend the key's rate several times over.

pub mod shared;

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
/// One step of caution is taken back after this long without a 429.
const RECOVER_NS: u64 = 2_000_000_000;
/// 429s closer together than this count as one: the requests in flight when the
/// server starts refusing all see it, and that is one signal, not many.
const SAME_429_NS: u64 = 1_000_000_000;
/// 429s within [`SAME_429_NS`] that count as one more step (and, at the slowest
/// rate, call for a pause): a rate far above the plan's, not jitter.
const DENSE_429S: u32 = 5;
/// Slowest rate caution reaches, as a share of the configured rate.
const MIN_RATE_SHARE: f64 = 0.75;
/// Steps of 3% that reach [`MIN_RATE_SHARE`] (0.97^10 ≈ 0.74).
const MAX_SLOW_STEPS: u32 = 10;

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

/// What the shared file holds: `tat caution last_429_ns` (a file holding only `tat`,
/// as older versions wrote it, reads as no caution).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Schedule {
    /// Theoretical arrival time: the next free slot at the (cautious) rate, ns.
    tat: u64,
    /// Steps of caution after 429s (see the module doc).
    caution: u32,
    /// When the last counted 429 was seen, ns.
    last_429: u64,
    /// 429s seen since then (within [`SAME_429_NS`]), that one included.
    recent: u32,
}

impl Schedule {
    fn parse(text: &str) -> Schedule {
        let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
        let mut next = || it.next().flatten().unwrap_or(0);
        Schedule {
            tat: next(),
            caution: next().min(64) as u32,
            last_429: next(),
            recent: next().min(u64::from(u32::MAX)) as u32,
        }
    }

    fn text(self) -> String {
        let Schedule {
            tat,
            caution,
            last_429,
            recent,
        } = self;
        format!("{tat} {caution} {last_429} {recent}\n")
    }

    /// Caution still in force at `now`: one step less per [`RECOVER_NS`] without a 429.
    fn caution_at(self, now: u64) -> u32 {
        let quiet = now.saturating_sub(self.last_429) / RECOVER_NS;
        self.caution
            .saturating_sub(u32::try_from(quiet).unwrap_or(u32::MAX))
    }
}

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

/// A schedule read at `now`, or none when it is too far ahead (a damaged file, a
/// clock jump).
fn sane_at(now: u64, s: Schedule) -> Schedule {
    if s.tat > now.saturating_add(MAX_AHEAD_NS) || s.last_429 > now {
        return Schedule::default();
    }
    s
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// When a request took its slot in the schedule (ns since the Unix epoch), returned by
/// [`Budget::acquire`] and handed back with a 429 ([`Budget::rate_limited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved(u64);

/// A TAT further ahead than this is a damaged file or a clock jump, not a schedule.
const MAX_AHEAD_NS: u64 = 24 * 3600 * 1_000_000_000;

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
        let reserved = Reserved(now_ns());
        let me = self.clone();
        let wait = match tokio::task::spawn_blocking(move || me.reserve()).await {
            Ok(wait) => wait,
            Err(_) => self.reserve(),
        };
        if let Some(why) = self.broken() {
            return Err(BudgetError(why));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(reserved)
    }

    /// Why the shared budget failed, if it has.
    fn broken(&self) -> Option<String> {
        let st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        st.broken.clone()
    }

    /// Records a 429: nobody using this key sends again before `now + delay`, and
    /// the key becomes more cautious (see the module doc) until it has been quiet for
    /// a while.
    ///
    /// Synchronous: it runs the same tiny locked section as `acquire`, once per 429,
    /// which is rare enough not to matter to the runtime.
    pub fn penalize(&self, delay: Duration) {
        self.note_429(None, |_| Some(delay));
    }

    /// Records a 429 seen by a request: every process on the key waits the server's
    /// `Retry-After` when it sent one. Without one, caution alone (a smaller burst, a
    /// slower rate) answers it while it can, and the key pauses for `fallback` only
    /// once the rate is as slow as caution makes it: a pause per 429 would cost a
    /// strict server half its budget, none at all would let a badly set rate storm.
    ///
    /// A 429 to a request whose slot was taken before the key last grew more cautious
    /// says nothing new (it was sent under the old schedule, like the rest of a
    /// burst a strict server refused): it counts for nothing but its `Retry-After`.
    pub fn rate_limited(&self, slot: Reserved, retry_after: Option<Duration>, fallback: Duration) {
        let floor = self.inner.burst.ilog2() + MAX_SLOW_STEPS;
        self.note_429(Some(slot), |s| match retry_after {
            Some(ra) => Some(ra),
            // Sparse 429s at the slowest cautious rate are arrival jitter against a
            // server with no tolerance: pausing for them would cost more than they do.
            None => (s.caution >= floor && s.recent >= DENSE_429S).then_some(fallback),
        });
    }

    /// Counts a 429 (simultaneous ones once, unless they are dense; stale ones not at
    /// all) and pushes the schedule past the pause `pause(new schedule)` returns.
    fn note_429(&self, slot: Option<Reserved>, pause: impl Fn(Schedule) -> Option<Duration>) {
        self.update(|now, s| {
            let mut next = s;
            let stale = slot.is_some_and(|r| r.0 < s.last_429);
            let step = if stale {
                false
            } else if now.saturating_sub(s.last_429) >= SAME_429_NS {
                next.last_429 = now;
                next.recent = 1;
                true
            } else {
                // Many 429s at once are a rate far too high, not jitter: each
                // DENSE_429S of them is one more step.
                next.recent = s.recent.saturating_add(1);
                next.recent.is_multiple_of(DENSE_429S)
            };
            if step {
                // The first 429 drops the burst at once (halving it step by step would
                // draw a storm of 429s from a server that allows none); later ones slow
                // the rate.
                let halvings = self.inner.burst.ilog2();
                next.caution = (s.caution_at(now) + 1).max(halvings).min(64);
            }
            if let Some(delay) = pause(next) {
                let ns = delay.as_nanos().min(u128::from(MAX_AHEAD_NS)) as u64;
                next.tat = s.tat.max(now.saturating_add(ns));
            }
            (next, ())
        });
    }

    /// True when a request made now would not wait for the schedule: the key has
    /// room for more requests in flight. Workers grow their concurrency only then.
    pub fn has_room(&self) -> bool {
        self.update(|now, s| {
            let (_, tolerance) = self.spacing(s.caution_at(now));
            (s, s.tat.saturating_sub(tolerance) <= now)
        })
    }

    /// The interval between requests and the burst tolerance at `caution`, in ns.
    fn spacing(&self, caution: u32) -> (u64, u64) {
        let base = self.inner.rate.interval_ns();
        // Halvings that bring the burst down to 1 (floor of log2); caution beyond
        // them slows the rate.
        let halvings = self.inner.burst.ilog2();
        let burst = (self.inner.burst >> caution.min(31)).max(1);
        let slow = caution.saturating_sub(halvings);
        let share = 0.97f64
            .powi(slow.min(MAX_SLOW_STEPS) as i32)
            .max(MIN_RATE_SHARE);
        let interval = (base as f64 / share).round() as u64;
        (interval, interval * u64::from(burst - 1))
    }

    /// Reserves the next slot and returns how long to wait for it.
    fn reserve(&self) -> Duration {
        self.update(|now, s| {
            let (interval, tolerance) = self.spacing(s.caution_at(now));
            let slot = s.tat.saturating_sub(tolerance).max(now);
            let next = Schedule {
                tat: s.tat.max(now).saturating_add(interval),
                ..s
            };
            (next, Duration::from_nanos(slot - now))
        })
    }

    /// Applies `f(now, schedule) -> (new schedule, result)` to the shared schedule
    /// under the lock.
    fn update<R>(&self, f: impl Fn(u64, Schedule) -> (Schedule, R)) -> R {
        let mut st = match self.inner.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = now_ns();
        let sane = |s: Schedule| sane_at(now, s);
        let res = match &mut st.backend {
            Backend::File(file) => {
                let mut out = None;
                let res = with_locked_schedule(file, |s| {
                    let (new, r) = f(now, sane(s));
                    out = Some(r);
                    new
                });
                if let Some(r) = out {
                    return r;
                }
                res.err().map(|e| e.to_string())
            }
            // Redis's clock, not this machine's: one timeline for every machine.
            Backend::Redis(redis) => match redis.update(|t, s| f(t, sane_at(t, s))) {
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
        let (new, r) = f(now, sane(st.local));
        st.local = new;
        r
    }
}

#[cfg(test)]
mod tests;
