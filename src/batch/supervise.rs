//! The life of one batch attempt after launch: copy its output to the log, feed events
//! to the tally and progress, enforce the timeout / kill / cancel with TERM→KILL, and
//! build the [`BatchResult`]. Runs on its own thread, one per running attempt; written
//! against [`Execution`] only, so any executor gets the same behaviour.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::cancel::CancelFlag;
use super::events::EventTally;
use super::executor::{EngineStop, Execution, ExitInfo};
use super::progress::Progress;
use super::result::{BatchResult, TickerFailure};
use super::secrets::Secrets;
use crate::ingest::events::parse_line as parse_event_line;

/// How often the supervisor looks at the worker and the stop conditions.
const POLL: Duration = Duration::from_millis(25);
/// How long to wait for the output pipes to drain once the worker is gone (a process
/// that escaped the group could hold them open forever).
const DRAIN: Duration = Duration::from_secs(2);

/// The attempt's log file; whole lines, secrets redacted, written at once (`tail -f` works).
pub(crate) struct LogFile {
    file: Mutex<File>,
    secrets: Arc<Secrets>,
}

impl LogFile {
    pub(crate) fn new(file: File, secrets: Arc<Secrets>) -> LogFile {
        LogFile {
            file: Mutex::new(file),
            secrets,
        }
    }

    pub(crate) fn line(&self, text: &str) {
        let mut line = self.secrets.redact(text).into_owned();
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = f.write_all(line.as_bytes());
    }
}

/// What the supervisor needs to know about the attempt.
pub(crate) struct Attempt {
    pub id: u32,
    pub attempt: u32,
    pub label: Option<String>,
    pub tickers: Vec<String>,
    /// An all-tickers batch: its tickers come from the worker's events.
    pub open: bool,
    /// The batch's `--from` and `--to`.
    pub range: (String, String),
    pub log_path: PathBuf,
    pub started_at: String,
    pub started: Instant,
    pub timeout: Option<Duration>,
    pub grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    TimedOut,
    Killed,
    Cancelled,
}

fn pump(stream: Box<dyn Read + Send>, log: Arc<LogFile>, on_line: impl Fn(&str)) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&buf);
        let text = text.trim_end_matches(['\n', '\r']);
        log.line(text);
        on_line(text);
    }
}

/// Supervises a launched attempt until it ends; returns its result.
pub(crate) fn supervise(
    a: Attempt,
    mut exec: Box<dyn Execution>,
    log: Arc<LogFile>,
    cancel: CancelFlag,
    kill: Arc<AtomicBool>,
    progress: Arc<Progress>,
) -> BatchResult {
    let tally = if a.open {
        EventTally::open_universe()
    } else {
        EventTally::new(&a.tickers)
    };
    let tally = Arc::new(Mutex::new(tally.with_range(&a.range.0, &a.range.1)));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut readers = 0;
    if let Some(out) = exec.take_stdout() {
        let (id, attempt) = (a.id, a.attempt);
        let (log, tally, progress, done) = (
            log.clone(),
            tally.clone(),
            progress.clone(),
            done_tx.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("batch-{:04}-out", a.id))
            .spawn(move || {
                pump(out, log, |line| {
                    if let Some(event) = parse_event_line(line) {
                        tally
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .apply(&event);
                        progress.on_event(id, attempt, &event);
                    }
                });
                let _ = done.send(());
            });
        readers += spawned.is_ok() as usize;
    }
    // The worker's last `error:` line: the reason when it stops before reporting
    // anything (e.g. a flag it refused), so the run can show it instead of a status.
    let last_error: Arc<Mutex<Option<String>>> = Arc::default();
    if let Some(err) = exec.take_stderr() {
        let (log, done, last_error) = (log.clone(), done_tx.clone(), last_error.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("batch-{:04}-err", a.id))
            .spawn(move || {
                pump(err, log, |line| {
                    if let Some(msg) = line.strip_prefix("error: ") {
                        *last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(msg.to_string());
                    }
                });
                let _ = done.send(());
            });
        readers += spawned.is_ok() as usize;
    }
    drop(done_tx);

    // The timeout counts from when the worker runs: time queued on a busy cluster is
    // not the batch's (Slurm's own --time counts the same way).
    let mut running_since = (!exec.is_queued()).then_some(a.started);
    let mut deadline = a.timeout.zip(running_since).map(|(t, s)| s + t);
    let mut stop: Option<(StopReason, Instant)> = None;
    let mut sent_kill = false;
    let exit: Option<ExitInfo> = loop {
        match exec.try_wait() {
            Ok(Some(exit)) => {
                // A short job can leave the queue and end between two polls: its wait
                // still gets its line.
                if running_since.is_none() {
                    log.line(&format!(
                        "== ended {:.1}s after submission; it was in the queue at the last poll ==",
                        a.started.elapsed().as_secs_f64()
                    ));
                }
                break Some(exit);
            }
            Ok(None) => {}
            Err(e) => {
                log.line(&format!("== cannot watch the worker ({e}); killing it =="));
                let _ = exec.kill();
                break None;
            }
        }
        let now = Instant::now();
        if running_since.is_none() && !exec.is_queued() {
            log.line(&format!(
                "== running after {:.1}s in the queue ==",
                a.started.elapsed().as_secs_f64()
            ));
            running_since = Some(now);
            deadline = a.timeout.map(|t| now + t);
        }
        if stop.is_none() {
            let reason = if cancel.is_cancelled() {
                Some(StopReason::Cancelled)
            } else if kill.load(Ordering::SeqCst) {
                Some(StopReason::Killed)
            } else if deadline.is_some_and(|d| now >= d) {
                Some(StopReason::TimedOut)
            } else {
                None
            };
            if let Some(reason) = reason {
                let why = match reason {
                    StopReason::TimedOut => format!(
                        "batch timeout of {:.1}s reached",
                        a.timeout.unwrap_or_default().as_secs_f64()
                    ),
                    StopReason::Killed => "kill requested".into(),
                    StopReason::Cancelled => "run cancelled".into(),
                };
                log.line(&format!(
                    "== {why}: SIGTERM to the process group, SIGKILL in {:.1}s ==",
                    a.grace.as_secs_f64()
                ));
                if let Err(e) = exec.terminate() {
                    log.line(&format!("== SIGTERM failed: {e} =="));
                }
                stop = Some((reason, now));
            }
        }
        if let Some((_, since)) = stop
            && !sent_kill
            && now.duration_since(since) >= a.grace
        {
            log.line("== grace period over: SIGKILL to the process group ==");
            if let Err(e) = exec.kill() {
                log.line(&format!("== SIGKILL failed: {e} =="));
            }
            sent_kill = true;
        }
        std::thread::sleep(POLL);
    };
    drop(exec);

    let drain_until = Instant::now() + DRAIN;
    for _ in 0..readers {
        let left = drain_until.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            log.line("== output still open after the worker ended (a process escaped its group?); not waiting ==");
            break;
        }
    }

    let tally = tally.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let exit_code = exit.and_then(|e| e.code);
    let signal = exit.and_then(|e| e.signal);
    let reason = stop.map(|(r, _)| r);
    // An engine's own stop (a cluster's time limit, an outside scancel) only counts
    // when barsmith did not stop the attempt first.
    let ended_by = exit.and_then(|e| e.ended_by).filter(|_| reason.is_none());
    // Exit 2 (input refused) and 4 (fatal) come before or instead of any ticker
    // work: the setup is wrong, and another attempt would fail the same way.
    let setup_exit = matches!(exit_code, Some(2 | 4)) && reason.is_none() && ended_by.is_none();
    if let Some(stop) = ended_by {
        log.line(&format!("== {} ==", stop.describe()));
    }
    let fatal = setup_exit || tally.setup_failure.is_some() || tally.has_run_failure();
    let last_error = last_error.lock().unwrap_or_else(|p| p.into_inner()).take();
    let not_run = match (&tally.setup_failure, last_error) {
        (Some(setup), _) => setup.clone(),
        (None, Some(message)) if setup_exit => TickerFailure {
            class: "run".into(),
            kind: "setup".into(),
            message,
            ..Default::default()
        },
        _ => TickerFailure {
            class: if fatal { "run" } else { "retryable" }.into(),
            kind: "not_run".into(),
            status: None,
            message: match tally.run_failure() {
                // The reason the worker stopped, not only that it did.
                Some(f) if reason.is_none() => format!("not run: {}", f.message),
                _ => match ended_by {
                    Some(stop) => stop.not_run_message(),
                    None => not_run_message(reason, fatal, exit_code, signal),
                },
            },
            ..Default::default()
        },
    };
    let result = BatchResult {
        id: a.id,
        attempt: a.attempt,
        label: a.label,
        tickers: tally.outcomes(&not_run),
        exit_code,
        signal,
        timed_out: reason == Some(StopReason::TimedOut) || ended_by == Some(EngineStop::TimeLimit),
        killed: reason == Some(StopReason::Killed) || ended_by == Some(EngineStop::Cancelled),
        ended_by,
        cancelled: reason == Some(StopReason::Cancelled),
        fatal,
        elapsed_s: a.started.elapsed().as_secs_f64(),
        started_at: a.started_at,
        log_path: a.log_path,
        bars: tally.bars(),
        requests: tally.requests(),
        retries: tally.retries,
        duplicates_dropped: tally.duplicates_dropped,
        reordered: tally.reordered,
    };
    let opt = |v: Option<i32>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    log.line(&format!(
        "== BATCH {:04} attempt {} finished: {} exit={} signal={} timed_out={} elapsed={:.1}s ok={} skipped={} failed={} not_run={} bars={} ==",
        result.id,
        result.attempt,
        result.status_text(),
        opt(exit_code),
        opt(signal),
        result.timed_out,
        result.elapsed_s,
        result.count(super::TickerStatus::Ok),
        result.count(super::TickerStatus::Skipped),
        result.count(super::TickerStatus::Failed),
        result.count(super::TickerStatus::NotRun),
        result.bars
    ));
    result
}

/// Why a ticker the worker never reported did not run.
fn not_run_message(
    reason: Option<StopReason>,
    fatal: bool,
    exit_code: Option<i32>,
    signal: Option<i32>,
) -> String {
    match reason {
        Some(StopReason::TimedOut) => "the batch timed out before this ticker finished".into(),
        Some(StopReason::Killed) => "the batch was killed before this ticker finished".into(),
        Some(StopReason::Cancelled) => "the run was cancelled before this ticker finished".into(),
        None if fatal => "the worker stopped on a run-fatal error before this ticker".into(),
        None => match (exit_code, signal) {
            (_, Some(sig)) => {
                format!("the worker died by signal {sig} before finishing this ticker")
            }
            (Some(rc), _) => {
                format!("the worker exited with status {rc} without reporting this ticker")
            }
            (None, None) => "the worker could not be watched".into(),
        },
    }
}
