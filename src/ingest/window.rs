//! How many tickers a worker keeps in flight: an adaptive window.
//!
//! By Little's law a key needs `rate × latency` requests in flight to use its budget:
//! 100 req/s at 1 s latency is 100 at once, at 50 ms only 5. Nobody knows the latency
//! in advance, and one key's budget is shared by every worker, so each worker adapts
//! its own window to what the shared budget says:
//!
//! - it **doubles** while every slot is busy, tickers are waiting, the budget has room
//!   (a request made now would not wait for the schedule), the worker's CPU is not the
//!   bottleneck (its process under 80% of one core, the share a batch is given: on a
//!   fast server more tickers only queue for the CPU and cost memory), and the bars
//!   held in memory are under a cap;
//! - otherwise it holds. Once the workers of a key together keep the budget busy,
//!   requests wait for their slot, the budget has no room, and growth stops.
//!
//! It does not shrink on a 429: the key's budget answers those by slowing the rate
//! for every worker (AIMD, `budget::schedule`), and requests wait for their slots
//! whatever the window; halving it as well would leave a slow API's budget idle.
//!
//! It never exceeds `max` (`--in-flight`), and starts at [`START`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The window a worker starts with.
pub const START: usize = 2;
/// Bars held by tickers in flight beyond which the window stops growing while pages
/// come back quickly: two liquid ticker-years (~250k bars each), so a worker stays
/// near 80 MB. One-page tickers hold little, so the window still grows wide for them.
pub const MAX_BARS_HELD: u64 = 500_000;
/// The same cap once a page took [`SLOW_PAGE`] or more: eight liquid ticker-years
/// (~130 MB of bars, plus page bodies). By Little's law a key's budget needs its pages'
/// bars in flight (100 req/s at 250 ms is 25 requests of up to 50,000 bars each, over
/// the key's workers), and a piece holds its bars until its last page is in:
/// measured, 500k bars a worker left 40 tickers × 2 years at 250 ms at 53% of the
/// budget, 2M at 88-94%. On a fast server more pieces in memory only cost page faults,
/// so the lower cap stays.
pub const MAX_BARS_HELD_SLOW: u64 = 2_000_000;
/// A page round trip from which the API, not the CPU, bounds the worker.
pub const SLOW_PAGE: Duration = Duration::from_millis(100);
/// Bars a liquid ticker has per calendar day (about 900 minutes on ~250 trading days a
/// year), to size the window before any bar arrives.
const BARS_PER_DAY: u64 = 700;
/// Share of one core above which the worker's CPU counts as the bottleneck.
const BUSY: f64 = 0.8;
/// Shortest interval over which the process's busy share is judged.
const MIN_SAMPLE: Duration = Duration::from_millis(20);

/// The adaptive window of one worker (see the module doc).
#[derive(Debug)]
pub struct Window {
    current: AtomicUsize,
    max: usize,
    /// Days of the longest piece a ticker fetches, to size the window by memory.
    piece_days: u64,
    bars_held: AtomicU64,
    /// A page took [`SLOW_PAGE`] or more: the higher memory cap applies.
    slow: AtomicBool,
    /// Whether any page has come back yet, and since when the window is open: no page
    /// within [`SLOW_PAGE`] of the start also says the API is slow.
    paged: AtomicBool,
    opened: Instant,
    /// When the process's CPU time was last read, and its value then.
    sample: Mutex<(Instant, Duration)>,
}

impl Window {
    /// A window of [`START`] (or `max` if smaller) that may grow to `max` and to what
    /// pieces of `piece_days` days allow in memory ([`Window::memory_cap`]).
    pub fn new(max: usize, piece_days: u64) -> Window {
        let max = max.max(1);
        Window {
            current: AtomicUsize::new(
                START
                    .min(max)
                    .min(Window::memory_cap(piece_days, MAX_BARS_HELD)),
            ),
            max,
            piece_days,
            bars_held: AtomicU64::new(0),
            slow: AtomicBool::new(false),
            paged: AtomicBool::new(false),
            opened: Instant::now(),
            sample: Mutex::new((Instant::now(), process_cpu())),
        }
    }

    /// The most tickers in flight whose pieces of `piece_days` days fit in `bars`, at
    /// least [`START`]: a window sized before any bar arrives, since by the time the
    /// held bars are counted every ticker in flight is already fetching its piece
    /// (one-day tickers: hundreds; ticker-years: 2 under [`MAX_BARS_HELD`]).
    pub fn memory_cap(piece_days: u64, bars: u64) -> usize {
        let per_ticker = piece_days.max(1) * BARS_PER_DAY;
        usize::try_from(bars / per_ticker)
            .unwrap_or(usize::MAX)
            .max(START)
    }

    /// The bars this window may hold: [`MAX_BARS_HELD_SLOW`] once pages were slow (or
    /// none came back within [`SLOW_PAGE`] of the start).
    fn bars_cap(&self) -> u64 {
        let waited = !self.paged.load(Ordering::Relaxed) && self.opened.elapsed() >= SLOW_PAGE;
        match waited || self.slow.load(Ordering::Relaxed) {
            true => MAX_BARS_HELD_SLOW,
            false => MAX_BARS_HELD,
        }
    }

    /// Tickers that may be in flight now.
    pub fn size(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// A page of `n` bars arrived after `elapsed`; they are held until their piece is
    /// written.
    pub fn hold(&self, n: u64, elapsed: Duration) {
        self.bars_held.fetch_add(n, Ordering::Relaxed);
        self.paged.store(true, Ordering::Relaxed);
        if elapsed >= SLOW_PAGE {
            self.slow.store(true, Ordering::Relaxed);
        }
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
        let cpu_free = self.cpu_free();
        self.resize(busy, waiting, cpu_free, has_room);
    }

    /// Whether the process used less than [`BUSY`] of a core since the last sample;
    /// `None` while the interval is too short to tell (then nothing grows).
    fn cpu_free(&self) -> Option<bool> {
        let mut sample = self.sample.lock().unwrap_or_else(|p| p.into_inner());
        let now = (Instant::now(), process_cpu());
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
        cpu_free: Option<bool>,
        has_room: impl FnOnce() -> bool,
    ) {
        let current = self.size();
        let cap = self.bars_cap();
        let memory_free = self.bars_held.load(Ordering::Relaxed) < cap;
        let target = (current * 2)
            .min(self.max)
            .min(Window::memory_cap(self.piece_days, cap));
        if busy >= current
            && waiting
            && target > current
            && cpu_free == Some(true)
            && memory_free
            && has_room()
        {
            self.current.store(target, Ordering::Relaxed);
        }
    }
}

/// CPU time of the whole process: the runtime thread decoding and the blocking pool
/// encoding and writing Parquet (a batch is given one core for both).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
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

    /// One-day pieces: memory never binds in these tests.
    const DAY: u64 = 1;
    const FAST: Duration = Duration::from_millis(5);

    #[test]
    fn the_memory_cap_keeps_ticker_years_few_and_one_day_tickers_many() {
        assert_eq!(
            Window::memory_cap(366, MAX_BARS_HELD),
            START,
            "two ticker-years"
        );
        assert_eq!(
            Window::memory_cap(1, MAX_BARS_HELD),
            (MAX_BARS_HELD / BARS_PER_DAY) as usize
        );
        assert!(
            Window::memory_cap(5, MAX_BARS_HELD) >= 128,
            "a week per ticker still fills 1 s of latency"
        );
        assert_eq!(Window::memory_cap(366, MAX_BARS_HELD_SLOW), 7);
    }

    /// One adjustment after a long sample in which the process was idle.
    fn step(w: &Window, busy: usize, waiting: bool, room: bool) {
        w.resize(busy, waiting, Some(true), || room);
    }

    #[test]
    fn grows_while_the_budget_has_room_and_every_slot_is_busy() {
        let w = Window::new(32, DAY);
        assert_eq!(w.size(), START);
        for want in [4, 8, 16, 32, 32] {
            step(&w, w.size(), true, true);
            assert_eq!(w.size(), want);
        }
    }

    #[test]
    fn holds_when_the_budget_is_full_slots_are_free_or_nothing_waits() {
        let w = Window::new(32, DAY);
        step(&w, 2, true, false);
        step(&w, 1, true, true);
        step(&w, 2, false, true);
        assert_eq!(w.size(), START);
    }

    #[test]
    fn holds_when_the_cpu_is_the_bottleneck_or_memory_is_full() {
        let w = Window::new(32, DAY);
        w.resize(2, true, Some(false), || true);
        assert_eq!(
            w.size(),
            START,
            "a busy CPU gains nothing from more tickers"
        );
        w.resize(2, true, None, || true);
        assert_eq!(w.size(), START, "too short a sample to tell");
        w.hold(MAX_BARS_HELD, FAST);
        step(&w, 2, true, true);
        assert_eq!(w.size(), START, "memory cap");
        w.release(MAX_BARS_HELD);
        step(&w, 2, true, true);
        assert_eq!(w.size(), 4);
    }

    #[test]
    fn slow_pages_raise_the_memory_cap_for_ticker_years() {
        let w = Window::new(32, 366);
        for _ in 0..4 {
            step(&w, w.size(), true, true);
        }
        assert_eq!(
            w.size(),
            START,
            "two ticker-years while pages come back fast"
        );
        w.hold(1, FAST);
        step(&w, w.size(), true, true);
        assert_eq!(w.size(), START);
        w.hold(1, SLOW_PAGE);
        for _ in 0..4 {
            step(&w, w.size(), true, true);
        }
        assert_eq!(w.size(), Window::memory_cap(366, MAX_BARS_HELD_SLOW));
    }

    #[test]
    fn no_page_back_within_a_slow_round_trip_counts_as_slow() {
        let w = Window::new(32, 366);
        step(&w, w.size(), true, true);
        assert_eq!(w.size(), START);
        std::thread::sleep(SLOW_PAGE);
        for _ in 0..4 {
            step(&w, w.size(), true, true);
        }
        assert_eq!(w.size(), Window::memory_cap(366, MAX_BARS_HELD_SLOW));
    }

    #[test]
    fn an_idle_process_is_free_and_a_short_sample_tells_nothing() {
        let w = Window::new(4, DAY);
        assert_eq!(w.cpu_free(), None, "just made: no interval yet");
        std::thread::sleep(MIN_SAMPLE * 2);
        assert_eq!(w.cpu_free(), Some(true), "sleeping burns no CPU");
    }
}
