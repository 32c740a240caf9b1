//! How many tickers a worker keeps in flight: an adaptive window.
//!
//! By Little's law a key needs `rate × latency` requests in flight to use its budget:
//! 100 req/s at 1 s latency is 100 at once, at 50 ms only 5. Nobody knows the latency
//! in advance, and one key's budget is shared by every worker, so each worker adapts
//! its own window to what the shared budget says:
//!
//! - it **doubles** while every slot is busy, tickers are waiting, the budget has room
//!   (a request made now would not wait for the schedule), the worker's own thread is
//!   not the bottleneck (under 80% busy: on a fast server more tickers only queue for
//!   the CPU and cost memory), and the bars held in memory are under a cap;
//! - otherwise it holds. Once the workers of a key together keep the budget busy,
//!   requests wait for their slot, the budget has no room, and growth stops.
//!
//! It does not shrink on a 429: the key's budget answers those by slowing the rate
//! for every worker (AIMD, `budget::schedule`), and requests wait for their slots
//! whatever the window; halving it as well would leave a slow API's budget idle.
//!
//! It never exceeds `max` (`--in-flight`), and starts at [`START`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The window a worker starts with.
pub const START: usize = 2;
/// Bars held by tickers in flight beyond which the window stops growing: two liquid
/// ticker-years (~250k bars each, ~75 bytes a bar in columns and page buffers), so a
/// worker stays within its 100 MB however slow the API. One-page tickers hold little,
/// so the window still grows wide for them, where latency needs it.
pub const MAX_BARS_HELD: u64 = 500_000;
/// Bars a liquid ticker has per calendar day (about 900 minutes on ~250 trading days a
/// year), to size the window before any bar arrives.
const BARS_PER_DAY: u64 = 700;
/// Share of one core above which the worker thread counts as the bottleneck.
const BUSY: f64 = 0.8;
/// Shortest interval over which the thread's busy share is judged.
const MIN_SAMPLE: Duration = Duration::from_millis(20);

/// The adaptive window of one worker (see the module doc).
#[derive(Debug)]
pub struct Window {
    current: AtomicUsize,
    max: usize,
    bars_held: AtomicU64,
    /// When the thread's CPU time was last read, and its value then.
    sample: Mutex<(Instant, Duration)>,
}

impl Window {
    /// A window of [`START`] (or `max` if smaller) that may grow to `max`.
    pub fn new(max: usize) -> Window {
        let max = max.max(1);
        Window {
            current: AtomicUsize::new(START.min(max)),
            max,
            bars_held: AtomicU64::new(0),
            sample: Mutex::new((Instant::now(), thread_cpu())),
        }
    }

    /// The most tickers in flight whose pieces of `piece_days` days fit in
    /// [`MAX_BARS_HELD`], at least [`START`]: a window sized before any bar arrives,
    /// since by the time the held bars are counted every ticker in flight is already
    /// fetching its piece (one-day tickers: hundreds; ticker-years: 2).
    pub fn memory_cap(piece_days: u64) -> usize {
        let per_ticker = piece_days.max(1) * BARS_PER_DAY;
        usize::try_from(MAX_BARS_HELD / per_ticker)
            .unwrap_or(usize::MAX)
            .max(START)
    }

    /// Tickers that may be in flight now.
    pub fn size(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// `n` bars arrived and are held until their piece is written.
    pub fn hold(&self, n: u64) {
        self.bars_held.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` held bars were written (or dropped with a failed ticker).
    pub fn release(&self, n: u64) {
        let _ = self
            .bars_held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n))
            });
    }

    /// Re-sizes the window from what was seen since the last call: `busy` tickers in
    /// flight, whether more are `waiting`, and whether the key's budget `has_room`
    /// (asked only when it matters: it takes the budget's lock).
    pub fn adjust(&self, busy: usize, waiting: bool, has_room: impl FnOnce() -> bool) {
        let thread_free = self.thread_free();
        self.resize(busy, waiting, thread_free, has_room);
    }

    /// Whether the calling thread was less than [`BUSY`] busy since the last sample;
    /// `None` while the interval is too short to tell (then nothing grows).
    fn thread_free(&self) -> Option<bool> {
        let mut sample = self.sample.lock().unwrap_or_else(|p| p.into_inner());
        let now = (Instant::now(), thread_cpu());
        let wall = now.0.duration_since(sample.0);
        if wall < MIN_SAMPLE {
            return None;
        }
        let cpu = now.1.saturating_sub(sample.1);
        *sample = now;
        Some(cpu.as_secs_f64() < BUSY * wall.as_secs_f64())
    }

    fn resize(
        &self,
        busy: usize,
        waiting: bool,
        thread_free: Option<bool>,
        has_room: impl FnOnce() -> bool,
    ) {
        let current = self.size();
        let memory_free = self.bars_held.load(Ordering::Relaxed) < MAX_BARS_HELD;
        if busy >= current
            && waiting
            && current < self.max
            && thread_free == Some(true)
            && memory_free
            && has_room()
        {
            self.current
                .store((current * 2).min(self.max), Ordering::Relaxed);
        }
    }
}

/// CPU time of the calling thread (the worker's runtime thread).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_cap_keeps_ticker_years_few_and_one_day_tickers_many() {
        assert_eq!(Window::memory_cap(366), START, "two ticker-years at most");
        assert_eq!(
            Window::memory_cap(1),
            (MAX_BARS_HELD / BARS_PER_DAY) as usize
        );
        assert!(
            Window::memory_cap(5) >= 128,
            "a week per ticker still fills 1 s of latency"
        );
    }

    /// One adjustment after a long sample in which the thread was idle.
    fn step(w: &Window, busy: usize, waiting: bool, room: bool) {
        w.resize(busy, waiting, Some(true), || room);
    }

    #[test]
    fn grows_while_the_budget_has_room_and_every_slot_is_busy() {
        let w = Window::new(32);
        assert_eq!(w.size(), START);
        for want in [4, 8, 16, 32, 32] {
            step(&w, w.size(), true, true);
            assert_eq!(w.size(), want);
        }
    }

    #[test]
    fn holds_when_the_budget_is_full_slots_are_free_or_nothing_waits() {
        let w = Window::new(32);
        step(&w, 2, true, false);
        step(&w, 1, true, true);
        step(&w, 2, false, true);
        assert_eq!(w.size(), START);
    }

    #[test]
    fn holds_when_the_thread_is_the_bottleneck_or_memory_is_full() {
        let w = Window::new(32);
        w.resize(2, true, Some(false), || true);
        assert_eq!(
            w.size(),
            START,
            "a busy thread gains nothing from more tickers"
        );
        w.resize(2, true, None, || true);
        assert_eq!(w.size(), START, "too short a sample to tell");
        w.hold(MAX_BARS_HELD);
        step(&w, 2, true, true);
        assert_eq!(w.size(), START, "memory cap");
        w.release(MAX_BARS_HELD);
        step(&w, 2, true, true);
        assert_eq!(w.size(), 4);
    }

    #[test]
    fn an_idle_thread_is_free_and_a_short_sample_tells_nothing() {
        let w = Window::new(4);
        assert_eq!(w.thread_free(), None, "just made: no interval yet");
        std::thread::sleep(MIN_SAMPLE * 2);
        assert_eq!(w.thread_free(), Some(true), "sleeping burns no CPU");
    }
}
