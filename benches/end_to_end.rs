//! End-to-end benchmark: the release `barsmith` binary against the sandbox on loopback.
//!
//! Prints one table: worker throughput (bars/s, CPU, peak RSS), memory growth with
//! history length, request-budget use against the API's latency (under a server-side
//! limit), resume cost over a complete dataset and the wrapper's overhead per batch.
//!
//! Run: `cargo bench --bench end_to_end` (builds the binary with the bench profile);
//! `BARSMITH_BENCH_KEEP=1` keeps the temporary folder (data, run folders, logs);
//! `BARSMITH_BENCH_BIN=path` runs another build of `barsmith` against the same
//! sandbox (an older commit's, to compare the two run by run on a noisy machine).
//! Every child process has a deadline and is killed when it passes it; the sandboxes
//! stop when dropped. Everything runs on 127.0.0.1 in a temporary folder.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barsmith::sandbox::{SANDBOX_API_KEY, Sandbox, SandboxConfig};

// Scenario 3 (budget against latency) is long enough for its own file.
#[path = "end_to_end/budget.rs"]
mod budget;
#[path = "end_to_end/machines.rs"]
mod machines;
#[path = "end_to_end/slurm.rs"]
mod slurm;
use jiff::civil::Date;

const BUILT: &str = env!("CARGO_BIN_EXE_barsmith");
const TODAY: Date = Date::constant(2026, 6, 30);

/// The binary under test: `BARSMITH_BENCH_BIN`, else the one this bench was built with.
fn bin() -> String {
    std::env::var("BARSMITH_BENCH_BIN").unwrap_or_else(|_| BUILT.to_string())
}

/// Scenario 1: tickers × years for worker throughput.
const THROUGHPUT_TICKERS: usize = 20;
const THROUGHPUT_RANGE: (&str, &str) = ("2024-01-01", "2025-12-31");
/// Scenario 4/5: the complete dataset.
const RESUME_TICKERS: usize = 500;
const SHORT_RANGE: (&str, &str) = ("2026-06-01", "2026-06-05");
/// Scenario 5: batches of complete tickers run one at a time.
const OVERHEAD_BATCH_SIZE: usize = 10;

fn main() {
    // `cargo test --benches` runs this without `--bench`: build check only.
    if !std::env::args().any(|a| a == "--bench") {
        println!("end_to_end: run with `cargo bench --bench end_to_end`");
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    if std::env::var_os("BARSMITH_BENCH_KEEP").is_some() {
        eprintln!("keeping {}", tmp.path().display());
    }
    let load_start = loadavg();
    let mut rows: Vec<Row> = Vec::new();

    type Scenario = fn(&Path, &mut Vec<Row>);
    let scenarios: [(&str, Scenario); 8] = [
        ("throughput", throughput),
        ("memory", memory_growth),
        ("budget", budget::budget_vs_latency),
        ("noburst", budget::no_burst),
        ("pages", budget::many_pages),
        ("resume", resume_and_overhead),
        ("machines", machines::budget_across_machines),
        ("slurm", slurm::slurm_overhead),
    ];
    // `BARSMITH_BENCH_ONLY=budget,throughput` runs only those scenarios.
    let only = std::env::var("BARSMITH_BENCH_ONLY").unwrap_or_default();
    for (name, scenario) in scenarios {
        if only.is_empty() || only.split(',').any(|o| o.trim() == name) {
            scenario(tmp.path(), &mut rows);
        }
    }

    println!();
    println!("barsmith end-to-end ({})", bin());
    println!(
        "machine: {} cores | load average at start: {load_start} | at end: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!();
    println!(
        "| {:<58} | {:>34} | {:<16} | {:<4} |",
        "measure", "value", "target", "ok"
    );
    println!("|{:-<60}|{:->36}|{:-<18}|{:-<6}|", "", "", "", "");
    for r in &rows {
        println!(
            "| {:<58} | {:>34} | {:<16} | {:<4} |",
            r.measure,
            r.value,
            r.target,
            match r.ok {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            }
        );
    }
    if std::env::var_os("BARSMITH_BENCH_KEEP").is_some() {
        let _ = tmp.keep();
    }
}

struct Row {
    measure: String,
    value: String,
    target: String,
    ok: Option<bool>,
}

fn row(rows: &mut Vec<Row>, measure: &str, value: String, target: &str, ok: Option<bool>) {
    eprintln!("  {measure}: {value}");
    rows.push(Row {
        measure: measure.to_string(),
        value,
        target: target.to_string(),
        ok,
    });
}

// ── Scenarios ─────────────────────────────────────────────────────────────────────

/// Scenario 1: One worker, 20 tickers × 2 years, no budget in the way.
fn throughput(tmp: &Path, rows: &mut Vec<Row>) {
    let names = tickers("W", THROUGHPUT_TICKERS);
    let sandbox = sandbox(&names, Duration::ZERO, None);
    let mut best: Option<(Proc, u64, Duration)> = None;
    for run in 0..2 {
        let dir = tmp.join(format!("throughput-{run}"));
        let self_cpu = self_cpu();
        let p = run_child(
            worker(&dir, &sandbox, &names, THROUGHPUT_RANGE, "100000"),
            &dir,
            Duration::from_secs(120),
        );
        let sandbox_cpu = self_cpu_since(self_cpu);
        let bars = finished_bars(&dir.join("stdout"));
        eprintln!(
            "throughput run {run}: {} bars in {:.2} s (load {})",
            bars,
            p.wall.as_secs_f64(),
            loadavg()
        );
        assert_eq!(p.status, 0, "worker failed: see {}", dir.display());
        if best.as_ref().is_none_or(|(b, _, _)| p.wall < b.wall) {
            best = Some((p, bars, sandbox_cpu));
        }
    }
    let (p, bars, sandbox_cpu) = best.expect("two runs");
    let rate = bars as f64 / p.wall.as_secs_f64();
    row(
        rows,
        "1. worker: 20 tickers x 2 y, bars/s (best of 2)",
        format!("{:.0}k ({bars} bars)", rate / 1e3),
        ">= 700k",
        Some(rate >= 700_000.0),
    );
    row(
        rows,
        "1. worker: wall / CPU (user+sys) / sandbox CPU",
        format!(
            "{:.2} s / {:.2} s / {:.2} s",
            p.wall.as_secs_f64(),
            p.cpu.as_secs_f64(),
            sandbox_cpu.as_secs_f64()
        ),
        "",
        None,
    );
    row(
        rows,
        "1. worker: peak RSS",
        mb(p.maxrss_kb),
        "<= 100 MB",
        Some(p.maxrss_kb <= 100 * 1024),
    );
}

/// Scenario 2: peak RSS of one ticker over 1, 10 and 20 years. The first year pieces
/// warm the allocator up (a few MB); after that the peak must not move: 10 y -> 20 y
/// within 5%, 1 y -> 10 y within 25%.
fn memory_growth(tmp: &Path, rows: &mut Vec<Row>) {
    let names = tickers("M", 1);
    let sandbox = sandbox(&names, Duration::ZERO, None);
    let mut peaks = Vec::new();
    for (label, range) in [
        ("1y", ("2025-01-01", "2025-12-31")),
        ("10y", ("2016-01-01", "2025-12-31")),
        ("20y", ("2006-01-01", "2025-12-31")),
    ] {
        let dir = tmp.join(format!("memory-{label}"));
        let p = run_child(
            worker(&dir, &sandbox, &names, range, "100000"),
            &dir,
            Duration::from_secs(120),
        );
        assert_eq!(p.status, 0, "worker failed: see {}", dir.display());
        eprintln!(
            "memory {label}: {} bars, peak RSS {}",
            finished_bars(&dir.join("stdout")),
            mb(p.maxrss_kb)
        );
        peaks.push(p.maxrss_kb);
    }
    let growth = peaks[1] as f64 / peaks[0] as f64;
    let late = peaks[2] as f64 / peaks[1] as f64;
    row(
        rows,
        "2. worker peak RSS: 1 ticker 1 y -> 10 y -> 20 y",
        format!(
            "{:.1} -> {:.1} -> {:.1} MB",
            peaks[0] as f64 / 1024.0,
            peaks[1] as f64 / 1024.0,
            peaks[2] as f64 / 1024.0
        ),
        "flat, <= 100 MB",
        Some(growth <= 1.25 && late <= 1.05 && peaks[2] <= 100 * 1024),
    );
}

/// Scenario 4: Build a complete 500-ticker dataset, then time re-runs of `wrapper.rhai` over it;
/// Scenario 5: run batches of complete tickers one at a time to see the wrapper's own overhead.
fn resume_and_overhead(tmp: &Path, rows: &mut Vec<Row>) {
    let names = tickers("R", RESUME_TICKERS);
    let sandbox = sandbox(&names, Duration::ZERO, None);
    let dir = tmp.join("resume");
    let universe = universe(&dir, &names);
    let build = run_child(
        wrapper(
            &dir,
            &sandbox,
            &universe,
            &["--max-rps", "100000", "--batch-size", "50"],
        ),
        &dir,
        Duration::from_secs(180),
    );
    assert_eq!(
        build.status,
        0,
        "dataset build failed: see {}",
        dir.display()
    );
    eprintln!(
        "resume: dataset of {} tickers built in {:.2} s with {} requests",
        names.len(),
        build.wall.as_secs_f64(),
        sandbox.stats().data_requests
    );

    let mut walls = Vec::new();
    let mut requests = 0;
    for run in 0..3 {
        let before = sandbox.stats().data_requests;
        let rdir = tmp.join(format!("resume-{run}"));
        fs::create_dir_all(&rdir).expect("run dir");
        let p = run_child(
            wrapper_in(
                &rdir,
                &dir,
                &sandbox,
                &universe,
                SHORT_RANGE,
                &["--max-rps", "100000"],
            ),
            &rdir,
            Duration::from_secs(60),
        );
        assert_eq!(p.status, 0, "resume run failed: see {}", rdir.display());
        requests += sandbox.stats().data_requests - before;
        walls.push(p.wall);
        eprintln!(
            "resume run {run}: {:.3} s, peak RSS {} (load {})",
            p.wall.as_secs_f64(),
            mb(p.maxrss_kb),
            loadavg()
        );
    }
    walls.sort();
    let median = walls[walls.len() / 2];
    row(
        rows,
        "4. resume over 500 complete tickers: wall (median 3)",
        format!("{:.3} s", median.as_secs_f64()),
        "< 2 s",
        Some(median < Duration::from_secs(2)),
    );
    row(
        rows,
        "4. resume: data requests (3 runs)",
        requests.to_string(),
        "0",
        Some(requests == 0),
    );

    // 5. All tickers complete, --no-resume: every batch is spawned and skips its
    // tickers, one batch at a time.
    let odir = tmp.join("overhead");
    fs::create_dir_all(&odir).expect("run dir");
    let before = sandbox.stats().data_requests;
    let p = run_child(
        wrapper_in(
            &odir,
            &dir,
            &sandbox,
            &universe,
            SHORT_RANGE,
            &[
                "--no-resume",
                "--max-concurrent",
                "1",
                "--batch-size",
                &OVERHEAD_BATCH_SIZE.to_string(),
                "--max-rps",
                "100000",
            ],
        ),
        &odir,
        Duration::from_secs(120),
    );
    assert_eq!(p.status, 0, "overhead run failed: see {}", odir.display());
    assert_eq!(
        sandbox.stats().data_requests,
        before,
        "complete tickers refetched"
    );
    let batches = RESUME_TICKERS.div_ceil(OVERHEAD_BATCH_SIZE);
    let per_batch = p.wall.saturating_sub(median).as_secs_f64() / batches as f64;
    let (joblog_mean, own_mean) = batch_timings(&odir.join("run"));
    eprintln!(
        "overhead: {batches} batches in {:.2} s; joblog mean {:.1} ms; worker own mean {:.1} ms",
        p.wall.as_secs_f64(),
        joblog_mean * 1e3,
        own_mean * 1e3
    );
    row(
        rows,
        "5. wrapper: wall per batch (10 complete tickers)",
        format!("{:.1} ms", per_batch * 1e3),
        "",
        None,
    );
    row(
        rows,
        "5. of which worker's own work (first event..finished)",
        format!("{:.1} ms", own_mean * 1e3),
        "",
        None,
    );
    row(
        rows,
        "5. overhead per batch (spawn, start-up, logs, records)",
        format!(
            "{:.1} ms (joblog {:.1} ms)",
            (per_batch - own_mean) * 1e3,
            joblog_mean * 1e3
        ),
        "",
        None,
    );
}

// ── Helpers ───────────────────────────────────────────────────────────────────────

/// `n` distinct valid tickers starting with `prefix` (`WAAA`, `WAAB`, ...).
fn tickers(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let l = |k: usize| char::from(b'A' + ((i / 26usize.pow(k as u32)) % 26) as u8);
            format!("{prefix}{}{}{}", l(2), l(1), l(0))
        })
        .collect()
}

/// A sandbox where every one of `names` has full history.
fn sandbox(names: &[String], latency: Duration, rate_limit: Option<f64>) -> Sandbox {
    sandbox_with(names, latency, rate_limit, 1)
}

/// The same with a GCRA burst for the rate limit.
fn sandbox_with(
    names: &[String],
    latency: Duration,
    rate_limit: Option<f64>,
    rate_burst: u32,
) -> Sandbox {
    Sandbox::start_background(SandboxConfig {
        today: TODAY,
        latency,
        rate_limit,
        rate_burst,
        listings: names.iter().map(|t| (t.clone(), (None, None))).collect(),
        ..SandboxConfig::default()
    })
    .expect("sandbox starts on loopback")
}

fn universe(dir: &Path, names: &[String]) -> PathBuf {
    fs::create_dir_all(dir).expect("bench dir");
    let path = dir.join("universe.csv");
    fs::write(&path, format!("ticker\n{}\n", names.join("\n"))).expect("universe");
    path
}

fn base_command(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("POLYGON_API_KEY", SANDBOX_API_KEY)
        .env_remove("MASSIVE_API_KEY")
        .env("BARSMITH_STATE_DIR", dir.join("state"))
        .env_remove("BARSMITH_LOG");
    cmd
}

/// `barsmith ingest` of `names` into `dir/data`.
fn worker(
    dir: &Path,
    sandbox: &Sandbox,
    names: &[String],
    range: (&str, &str),
    max_rps: &str,
) -> Command {
    fs::create_dir_all(dir).expect("bench dir");
    let mut cmd = base_command(dir);
    cmd.arg("ingest")
        .args(["--tickers", &names.join(",")])
        .arg("--outdir")
        .arg(dir.join("data"))
        .args(["--from", range.0, "--to", range.1])
        .args(["--max-rps", max_rps, "--base-url", &sandbox.base_url()]);
    cmd
}

/// `barsmith run scripts/wrapper.rhai` writing into `dir/data`, run folder `dir/run`.
fn wrapper(dir: &Path, sandbox: &Sandbox, universe: &Path, extra: &[&str]) -> Command {
    wrapper_in(dir, dir, sandbox, universe, SHORT_RANGE, extra)
}

/// The same with the run folder in `run_dir`, the data in `data_dir/data` and the
/// dates `range`.
fn wrapper_in(
    run_dir: &Path,
    data_dir: &Path,
    sandbox: &Sandbox,
    universe: &Path,
    range: (&str, &str),
    extra: &[&str],
) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai");
    let mut cmd = base_command(run_dir);
    cmd.arg("run")
        .args(["--base-url", &sandbox.base_url(), "--progress", "none"])
        .arg("--run-dir")
        .arg(run_dir.join("run"))
        .arg(script)
        .arg("--tickers-csv")
        .arg(universe)
        .args(["--from", range.0, "--to", range.1])
        .arg("--outdir")
        .arg(data_dir.join("data"))
        .args(extra);
    cmd
}

/// What a finished child cost.
struct Proc {
    status: i32,
    wall: Duration,
    cpu: Duration,
    /// The worker's own peak RSS when it reported one, else the child's `ru_maxrss`.
    maxrss_kb: i64,
    killed: bool,
}

/// Runs `cmd` with stdout/stderr to files in `dir`, reaps it with `wait4` for its
/// rusage (children it waited for included), and SIGKILLs it past `limit`.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its rusage"
)]
fn run_child(mut cmd: Command, dir: &Path, limit: Duration) -> Proc {
    let out = File::create(dir.join("stdout")).expect("stdout file");
    let err = File::create(dir.join("stderr")).expect("stderr file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn barsmith");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data; zeroed is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut killed = false;
    loop {
        // SAFETY: pid is our own unreaped child; status and ru are valid out-pointers.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        if !killed && start.elapsed() > limit {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let wall = start.elapsed();
    if killed {
        eprintln!("{} killed after {limit:?}", dir.display());
    }
    let status = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Proc {
        status,
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        maxrss_kb: worker_peak_kb(&dir.join("stdout"), ru.ru_maxrss),
        killed,
    }
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// CPU time of this process so far (the in-process sandbox, mostly).
fn self_cpu() -> Duration {
    // SAFETY: rusage is plain old data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn self_cpu_since(start: Duration) -> Duration {
    self_cpu().saturating_sub(start)
}

fn mb(kb: i64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect()
}

/// Bars of the worker's `finished` event.
/// The worker's own peak RSS in KiB from its `finished` event (`VmHWM` after exec):
/// `ru_maxrss` of a child also counts the bench's pages it was forked with.
fn worker_peak_kb(stdout: &Path, fallback: i64) -> i64 {
    events(stdout)
        .iter()
        .rev()
        .find(|e| e["event"] == "finished")
        .and_then(|e| e["peak_rss_kb"].as_i64())
        .unwrap_or(fallback)
}

fn finished_bars(stdout: &Path) -> u64 {
    events(stdout)
        .iter()
        .rev()
        .find(|e| e["event"] == "finished")
        .and_then(|e| e["bars"].as_u64())
        .unwrap_or(0)
}

fn ts(v: &serde_json::Value) -> Option<jiff::Timestamp> {
    v.as_str()?.parse().ok()
}

fn joblog(run: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(run.join("joblog.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Mean batch duration from the joblog and mean worker span (first event to
/// `finished`) from the batch logs, in seconds.
fn batch_timings(run: &Path) -> (f64, f64) {
    let jobs = joblog(run);
    let mut joblog_total = 0.0;
    let mut own_total = 0.0;
    let mut own_n = 0;
    for j in &jobs {
        joblog_total += j["duration_s"].as_f64().unwrap_or(0.0);
        let Some(log) = j["log"].as_str() else {
            continue;
        };
        let ev = events(&run.join(log));
        let first = ev.first().and_then(|e| ts(&e["ts"]));
        let end = ev
            .iter()
            .find(|e| e["event"] == "finished")
            .and_then(|e| ts(&e["ts"]));
        if let (Some(a), Some(b)) = (first, end) {
            own_total += b.duration_since(a).as_secs_f64();
            own_n += 1;
        }
    }
    (
        joblog_total / jobs.len().max(1) as f64,
        own_total / own_n.max(1) as f64,
    )
}
