//! Progress fed by the workers' events: indicatif bars on a terminal, plain lines
//! otherwise (one per finished batch like the seed's `Batch 0012: failed(rc=3) (180.5s) |
//! Progress 13/124 = 10.5%`, plus a status line at a fixed interval).
//!
//! Totals: `set_total(batches, tickers)` makes the percentage and ETA meaningful from the
//! start; without it, totals grow as batches are spawned. A retry attempt (attempt > 1)
//! always adds one batch and its tickers to the totals.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::options::{LineSink, ProgressMode};
use super::records::thousands;
use super::result::{BatchResult, TickerStatus};
use crate::ingest::events::Event;

/// Window over which rates (bars/s, req/s) are measured.
const RATE_WINDOW: Duration = Duration::from_secs(15);

#[derive(Debug, Default, Clone)]
struct Counters {
    planned_batches: Option<u64>,
    planned_tickers: Option<u64>,
    spawned: u64,
    spawned_tickers: u64,
    retry_attempts: u64,
    retry_tickers: u64,
    running: u64,
    batches_done: u64,
    batches_failed: u64,
    tickers_ok: u64,
    tickers_skipped: u64,
    tickers_failed: u64,
    bars: u64,
    requests: u64,
    retries: u64,
}

impl Counters {
    fn total_batches(&self) -> u64 {
        self.planned_batches
            .map(|p| p + self.retry_attempts)
            .unwrap_or(self.spawned)
            .max(self.batches_done)
    }

    fn total_tickers(&self) -> u64 {
        self.planned_tickers
            .map(|p| p + self.retry_tickers)
            .unwrap_or(self.spawned_tickers)
            .max(self.tickers_done())
    }

    fn tickers_done(&self) -> u64 {
        self.tickers_ok + self.tickers_skipped + self.tickers_failed
    }
}

enum Display {
    Quiet,
    Lines(LineSink),
    Bars {
        multi: MultiProgress,
        batches: ProgressBar,
        tickers: ProgressBar,
    },
}

struct Inner {
    display: Display,
    interval: Duration,
    counters: Mutex<Counters>,
    samples: Mutex<VecDeque<(Instant, u64, u64)>>,
    started: Instant,
    stop: AtomicBool,
}

/// Live progress of a run. Cheap to share; all methods take `&self`.
pub struct Progress {
    inner: Arc<Inner>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress {
    /// Progress in the given mode; `interval` paces plain lines.
    pub fn new(mode: &ProgressMode, interval: Duration) -> Progress {
        let display = match mode {
            ProgressMode::Quiet => Display::Quiet,
            ProgressMode::Lines(sink) => Display::Lines(sink.clone()),
            ProgressMode::Plain => Display::Lines(Arc::new(|l: &str| eprintln!("{l}"))),
            ProgressMode::Auto if !std::io::stderr().is_terminal() => {
                Display::Lines(Arc::new(|l: &str| eprintln!("{l}")))
            }
            ProgressMode::Auto | ProgressMode::Bars => {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                let batches = multi.add(ProgressBar::new(0));
                batches.set_style(bar_style(
                    "{prefix:>8} [{bar:30.cyan/blue}] {pos}/{len} {msg}",
                ));
                batches.set_prefix("batches");
                let tickers = multi.add(ProgressBar::new(0));
                tickers.set_style(bar_style(
                    "{prefix:>8} [{bar:30.green/white}] {pos}/{len} ETA {eta} | {msg}",
                ));
                tickers.set_prefix("tickers");
                Display::Bars {
                    multi,
                    batches,
                    tickers,
                }
            }
        };
        let inner = Arc::new(Inner {
            display,
            interval: interval.max(Duration::from_millis(100)),
            counters: Mutex::new(Counters::default()),
            samples: Mutex::new(VecDeque::new()),
            started: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let ticker = match inner.display {
            Display::Quiet => None,
            _ => {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name("barsmith-progress".into())
                    .spawn(move || inner.tick_loop())
                    .ok()
            }
        };
        Progress {
            inner,
            ticker: Mutex::new(ticker),
        }
    }

    /// Announces the planned totals (for percentages and ETA).
    pub fn set_total(&self, batches: u64, tickers: u64) {
        self.inner.update(|c| {
            c.planned_batches = Some(batches);
            c.planned_tickers = Some(tickers);
        });
    }

    /// A batch attempt started.
    pub fn on_spawn(&self, attempt: u32, tickers: usize) {
        self.inner.update(|c| {
            c.spawned += 1;
            c.spawned_tickers += tickers as u64;
            c.running += 1;
            if attempt > 1 {
                c.retry_attempts += 1;
                c.retry_tickers += tickers as u64;
            }
        });
    }

    /// A worker event arrived.
    pub fn on_event(&self, event: &Event) {
        let changed = {
            let mut c = self.inner.lock();
            match event {
                Event::Page { bars, .. } => {
                    c.requests += 1;
                    c.bars += *bars as u64;
                    false
                }
                Event::Retry { .. } => {
                    c.requests += 1;
                    c.retries += 1;
                    false
                }
                Event::TickerDone { .. } => {
                    c.tickers_ok += 1;
                    true
                }
                Event::TickerSkipped { .. } => {
                    c.tickers_skipped += 1;
                    true
                }
                Event::TickerFailed { .. } => {
                    c.tickers_failed += 1;
                    true
                }
                _ => false,
            }
        };
        if changed {
            self.inner.refresh_bars();
        }
    }

    /// A batch attempt finished: counts tickers it never reported and prints the
    /// per-batch line.
    pub fn on_batch_done(&self, r: &BatchResult) {
        let line = {
            let mut c = self.inner.lock();
            c.running = c.running.saturating_sub(1);
            c.batches_done += 1;
            c.batches_failed += !r.success() as u64;
            c.tickers_failed += r.count(TickerStatus::NotRun) as u64;
            batch_line(r, c.batches_done, c.total_batches())
        };
        self.inner.emit(&line);
        self.inner.refresh_bars();
    }

    /// Prints one line above the bars (or as a plain line).
    ///
    /// With no progress display the line still goes to stderr: `--progress none` hides
    /// progress, never a warning or the reason for a halt.
    pub fn println(&self, line: &str) {
        match self.inner.display {
            Display::Quiet => eprintln!("{line}"),
            _ => self.inner.emit(line),
        }
    }

    /// The current status line (`Progress 13/124 batches = 10.5% | ...`).
    pub fn status_line(&self) -> String {
        self.inner.status_line()
    }

    /// Stops the ticker thread and leaves the bars on screen. Idempotent.
    pub fn finish(&self) {
        // A second call (the runner's Drop after `finish`) must not redraw the bars
        // below a summary printed in between.
        if self.inner.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(t) = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        if let Display::Bars {
            batches, tickers, ..
        } = &self.inner.display
        {
            self.inner.refresh_bars();
            self.inner.refresh_rates();
            batches.abandon();
            tickers.abandon();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The seed's per-batch line: `Batch 0012: failed(rc=3) (180.5s) | Progress 13/124 = 10.5%`.
pub fn batch_line(r: &BatchResult, done: u64, total: u64) -> String {
    let pct = if total == 0 {
        100.0
    } else {
        done as f64 * 100.0 / total as f64
    };
    let attempt = if r.attempt > 1 {
        format!(" attempt {}", r.attempt)
    } else {
        String::new()
    };
    let failed = r.incomplete_tickers().len();
    let tickers = if failed > 0 {
        format!(" [{failed}/{} tickers failed]", r.tickers.len())
    } else {
        String::new()
    };
    format!(
        "Batch {:04}{attempt}: {} ({:.1}s){tickers} | Progress {done}/{total} = {pct:.1}%",
        r.id,
        r.status_text(),
        r.elapsed_s
    )
}

fn rate(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn eta(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.lock());
        self.refresh_bars();
    }

    fn emit(&self, line: &str) {
        match &self.display {
            Display::Quiet => {}
            Display::Lines(sink) => sink(line),
            Display::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
        }
    }

    /// (bars/s, req/s) over the recent window.
    fn rates(&self) -> (f64, f64) {
        let (bars, requests) = {
            let c = self.lock();
            (c.bars, c.requests)
        };
        let now = Instant::now();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back((now, bars, requests));
        while samples.len() > 2 && samples.front().is_some_and(|s| now - s.0 > RATE_WINDOW) {
            samples.pop_front();
        }
        let (t0, b0, r0) = samples.front().copied().unwrap_or((self.started, 0, 0));
        let (t0, b0, r0) = if now - t0 < Duration::from_millis(500) {
            (self.started, 0, 0)
        } else {
            (t0, b0, r0)
        };
        let dt = (now - t0).as_secs_f64().max(0.001);
        ((bars - b0) as f64 / dt, (requests - r0) as f64 / dt)
    }

    fn eta_secs(&self, c: &Counters) -> Option<f64> {
        let elapsed = self.started.elapsed().as_secs_f64();
        let (done, total) = if c.tickers_done() > 0 {
            (c.tickers_done(), c.total_tickers())
        } else {
            (c.batches_done, c.total_batches())
        };
        (done > 0 && total >= done).then(|| elapsed / done as f64 * (total - done) as f64)
    }

    fn status_line(&self) -> String {
        let (bars_s, req_s) = self.rates();
        let c = self.lock().clone();
        let total = c.total_batches();
        let pct = if total == 0 {
            0.0
        } else {
            c.batches_done as f64 * 100.0 / total as f64
        };
        let eta = self.eta_secs(&c).map(eta).unwrap_or_else(|| "?".into());
        format!(
            "Progress {}/{total} batches = {pct:.1}% ({} running) | tickers {}/{} ({} failed) | {} bars/s | {} req/s | retries {} | ETA {eta}",
            c.batches_done,
            c.running,
            thousands(c.tickers_done()),
            thousands(c.total_tickers()),
            thousands(c.tickers_failed),
            rate(bars_s),
            rate(req_s),
            thousands(c.retries),
        )
    }

    fn refresh_bars(&self) {
        let Display::Bars {
            batches, tickers, ..
        } = &self.display
        else {
            return;
        };
        let c = self.lock().clone();
        batches.set_length(c.total_batches());
        batches.set_position(c.batches_done);
        batches.set_message(format!(
            "{} running | {} failed",
            c.running, c.batches_failed
        ));
        tickers.set_length(c.total_tickers());
        tickers.set_position(c.tickers_done());
    }

    fn refresh_rates(&self) {
        let Display::Bars { tickers, .. } = &self.display else {
            return;
        };
        let (bars_s, req_s) = self.rates();
        let c = self.lock().clone();
        tickers.set_message(format!(
            "{} bars/s | {} req/s | retries {} | failed {} | bars {}",
            rate(bars_s),
            rate(req_s),
            thousands(c.retries),
            thousands(c.tickers_failed),
            thousands(c.bars)
        ));
    }

    fn tick_loop(&self) {
        let mut last_line = Instant::now();
        let mut last_rates = Instant::now();
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            match &self.display {
                Display::Quiet => return,
                Display::Lines(_) => {
                    if last_line.elapsed() >= self.interval {
                        last_line = Instant::now();
                        if self.lock().spawned > 0 {
                            self.emit(&self.status_line());
                        }
                    }
                }
                Display::Bars { .. } => {
                    if last_rates.elapsed() >= Duration::from_secs(1) {
                        last_rates = Instant::now();
                        self.refresh_rates();
                    }
                }
            }
        }
    }
}
