//! Progress fed by the workers' events: indicatif bars on a terminal, plain lines
//! otherwise (one per finished batch, like `Batch 0012 attempt 2: failed(rc=3) (180.5s)
//! | pass 1: 8/9 batches`, plus the status lines at a fixed interval).
//!
//! Totals are per pass and count distinct tickers ([`state`]); the ETA allows for
//! retries and later passes ([`eta`]); lines are at most 100 columns and never say
//! 100% before the run has ended ([`line`]).

mod eta;
mod line;
mod state;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::options::{LineSink, ProgressMode};
use super::result::BatchResult;
use crate::ingest::events::Event;

pub use line::{WIDTH, batch_line, status_lines};
use state::Tracker;
pub use state::{PassPlan, Slowest, Snapshot};

/// Window over which rates (bars/s, req/s) are measured.
const RATE_WINDOW: Duration = Duration::from_secs(15);

/// Columns before a bar's message: `{prefix:>8} [{bar:20}] `.
const BAR_LEAD: usize = 8 + 2 + 20 + 2;

enum Display {
    Quiet,
    Lines(LineSink),
    Bars {
        multi: MultiProgress,
        batches: ProgressBar,
        tickers: ProgressBar,
        rates: ProgressBar,
    },
}

struct Inner {
    display: Display,
    interval: Duration,
    tracker: Mutex<Tracker>,
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

fn bars() -> Display {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let bar = |prefix: &str, template: &str| {
        let b = multi.add(ProgressBar::new(0));
        b.set_style(bar_style(template));
        b.set_prefix(prefix.to_string());
        b
    };
    let batches = bar("batches", "{prefix:>8} [{bar:20.cyan/blue}] {msg}");
    let tickers = bar("tickers", "{prefix:>8} [{bar:20.green/white}] {msg}");
    let rates = bar("", "{msg}");
    Display::Bars {
        multi,
        batches,
        tickers,
        rates,
    }
}

impl Progress {
    /// Progress in the given mode; `interval` paces plain lines.
    pub fn new(mode: &ProgressMode, interval: Duration) -> Progress {
        let stderr_lines = || Display::Lines(Arc::new(|l: &str| eprintln!("{l}")));
        let display = match mode {
            ProgressMode::Quiet => Display::Quiet,
            ProgressMode::Lines(sink) => Display::Lines(sink.clone()),
            ProgressMode::Plain => stderr_lines(),
            ProgressMode::Auto if !std::io::stderr().is_terminal() => stderr_lines(),
            ProgressMode::Auto | ProgressMode::Bars => bars(),
        };
        let now = Instant::now();
        let inner = Arc::new(Inner {
            display,
            interval: interval.max(Duration::from_millis(100)),
            tracker: Mutex::new(Tracker::new(now)),
            samples: Mutex::new(VecDeque::new()),
            started: now,
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

    /// Announces a pass: its number, batches and tickers, and how failures are
    /// retried (for the totals and the ETA).
    pub fn plan(&self, plan: &PassPlan) {
        self.inner.update(|t| t.plan(plan));
    }

    /// Announces the planned totals of a pass (a new pass once the current one has
    /// started a batch).
    pub fn set_total(&self, batches: u64, tickers: u64) {
        self.plan(&PassPlan {
            batches,
            ticker_count: tickers,
            ..PassPlan::default()
        });
    }

    /// A batch attempt started.
    pub fn on_spawn(&self, id: u32, attempt: u32, tickers: &[String]) {
        self.inner
            .update(|t| t.spawn(Instant::now(), id, attempt, tickers));
    }

    /// A worker event of attempt `attempt` of batch `id` arrived.
    pub fn on_event(&self, id: u32, attempt: u32, event: &Event) {
        let counted = matches!(
            event,
            Event::TickerDone { .. } | Event::TickerSkipped { .. } | Event::TickerFailed { .. }
        );
        self.inner.lock().event(id, attempt, event);
        if counted {
            self.inner.refresh_bars();
        }
    }

    /// A batch attempt finished: its outcome settles its tickers; prints the
    /// per-batch line.
    pub fn on_batch_done(&self, r: &BatchResult) {
        let line = {
            let mut t = self.inner.lock();
            let now = Instant::now();
            t.batch_done(now, r);
            batch_line(r, &t.snapshot(now))
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

    /// The current main status line (`Progress 96% | ETA 1m 40s | elapsed ...`).
    pub fn status_line(&self) -> String {
        line::status_line(&self.inner.snapshot())
    }

    /// Every status line: the main one, batches and rates, and the slowest attempt.
    pub fn status_lines(&self) -> Vec<String> {
        status_lines(&self.inner.snapshot())
    }

    /// What the status lines are made from, now.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// Stops the ticker thread and leaves the bars on screen, marked done. Idempotent.
    pub fn finish(&self) {
        // A second call (the runner's Drop after `finish`) must not redraw the bars
        // below a summary printed in between.
        if self.inner.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.lock().finish();
        if let Some(t) = self.ticker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        if let Display::Bars {
            batches,
            tickers,
            rates,
            ..
        } = &self.inner.display
        {
            self.inner.refresh_bars();
            batches.abandon();
            tickers.abandon();
            rates.abandon();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Tracker)) {
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

    /// The snapshot with the rates measured over the recent window.
    fn snapshot(&self) -> Snapshot {
        let now = Instant::now();
        let mut s = self.lock().snapshot(now);
        let (bars_s, req_s) = self.rates(now, s.bars, self.lock().requests);
        s.bars_per_sec = bars_s;
        s.requests_per_sec = req_s;
        s
    }

    /// (bars/s, req/s) over the recent window.
    fn rates(&self, now: Instant, bars: u64, requests: u64) -> (f64, f64) {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        // Bars refresh on every ticker event: one sample per quarter second is plenty.
        if samples
            .back()
            .is_none_or(|s| now - s.0 >= Duration::from_millis(250))
        {
            samples.push_back((now, bars, requests));
        }
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
        (
            bars.saturating_sub(b0) as f64 / dt,
            requests.saturating_sub(r0) as f64 / dt,
        )
    }

    fn refresh_bars(&self) {
        let Display::Bars {
            batches,
            tickers,
            rates,
            ..
        } = &self.display
        else {
            return;
        };
        let s = self.snapshot();
        let width = WIDTH - BAR_LEAD;
        // A bar is full only once the run has ended (never "100%" with work left).
        let cap = |done: u64, total: u64| {
            if s.finished || total == 0 {
                done
            } else {
                done.min(total - 1)
            }
        };
        batches.set_length(s.batches_total);
        batches.set_position(cap(s.batches_done, s.batches_total));
        batches.set_message(line::batches_bar_message(&s, width));
        tickers.set_length(s.tickers_total);
        tickers.set_position(cap(s.tickers_settled, s.tickers_total));
        tickers.set_message(line::tickers_bar_message(&s, width));
        rates.set_message(line::rates_row(&s));
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
                        if self.lock().started_batches() {
                            for l in status_lines(&self.snapshot()) {
                                self.emit(&l);
                            }
                        }
                    }
                }
                Display::Bars { .. } => {
                    if last_rates.elapsed() >= Duration::from_secs(1) {
                        last_rates = Instant::now();
                        self.refresh_bars();
                    }
                }
            }
        }
    }
}
