//! The one fixture every integration test uses: a sandbox on loopback, a scratch
//! folder, and a `barsmith` command wired to both.

#![allow(dead_code)] // each test binary uses a different part of the fixture

pub mod moto;
pub mod redis;
pub mod slurm;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use barsmith::ingest::events::{Event, parse_line};
use barsmith::sandbox::{FaultPlan, Sandbox, SandboxConfig};
use jiff::civil::Date;

/// A sandbox plus a temporary workspace (outdir, state, runs).
pub struct Fixture {
    pub sandbox: Sandbox,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    /// A sandbox with default data and the given fault specs (`TICKER=FAULT[:N]`).
    pub fn with_faults(specs: &[&str]) -> Fixture {
        Fixture::with_config(SandboxConfig {
            faults: FaultPlan::parse(specs).expect("valid fault specs"),
            ..test_config()
        })
    }

    /// A sandbox with an explicit configuration.
    pub fn with_config(cfg: SandboxConfig) -> Fixture {
        let sandbox = Sandbox::start_background(cfg).expect("sandbox starts on loopback");
        let dir = tempfile::tempdir().expect("temp dir");
        Fixture { sandbox, dir }
    }

    /// The Parquet data root of this fixture.
    pub fn outdir(&self) -> PathBuf {
        self.dir.path().join("data").join("minute")
    }

    /// The shared-budget state dir of this fixture.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `barsmith` with the sandbox key in the environment and a private state dir.
    pub fn barsmith(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_barsmith"));
        cmd.current_dir(self.dir.path())
            .env_remove("MASSIVE_API_KEY")
            .env("POLYGON_API_KEY", &self.sandbox.config().api_key)
            .env("BARSMITH_STATE_DIR", self.state_dir())
            .env("BARSMITH_LOG", "info");
        cmd
    }

    /// `barsmith ingest` for `tickers` over `from..=to` with fast retries (tests must
    /// not wait out production backoffs).
    pub fn ingest(&self, tickers: &[&str], from: &str, to: &str) -> Command {
        self.ingest_with_timeout(tickers, from, to, "10")
    }

    /// [`Fixture::ingest`] with another per-request timeout, in seconds.
    pub fn ingest_with_timeout(
        &self,
        tickers: &[&str],
        from: &str,
        to: &str,
        secs: &str,
    ) -> Command {
        self.ingest_into(tickers, from, to, self.outdir().as_os_str(), secs)
    }

    /// [`Fixture::ingest`] into `outdir` (a folder or `s3://bucket/prefix`), with a
    /// per-request timeout of `secs` seconds.
    pub fn ingest_into(
        &self,
        tickers: &[&str],
        from: &str,
        to: &str,
        outdir: &std::ffi::OsStr,
        secs: &str,
    ) -> Command {
        let mut cmd = self.barsmith();
        cmd.args(["ingest", "--tickers", &tickers.join(",")])
            .arg("--outdir")
            .arg(outdir)
            .args([
                "--from",
                from,
                "--to",
                to,
                "--base-url",
                &self.sandbox.base_url(),
            ])
            .args(["--timeout", secs, "--retries", "4", "--backoff-ms", "10"])
            .args(["--max-backoff-ms", "50", "--max-rps", "1000"]);
        cmd
    }

    /// The store of this fixture, opened read-only.
    pub fn store(&self) -> barsmith::store::Store {
        barsmith::store::Store::open_read_only(&self.outdir()).expect("store opens")
    }
}

/// Sandbox settings for tests: a fixed "today", so data never depends on the clock.
pub fn test_config() -> SandboxConfig {
    SandboxConfig {
        today: Date::constant(2026, 6, 30),
        ..SandboxConfig::default()
    }
}

/// Runs a command to completion (bounded by the worker's own timeouts).
pub fn run(mut cmd: Command) -> Output {
    cmd.output().expect("barsmith runs")
}

/// The events a worker printed.
pub fn events(out: &Output) -> Vec<Event> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse_line)
        .collect()
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A Python with duckdb, polars and pyarrow: `BARSMITH_PYTHON` when set, else a venv
/// under the target folder, created on first use from `tests/readers/requirements.txt`
/// (so `cargo test` on a fresh machine needs nothing but `python3` and PyPI).
pub fn python_with_readers() -> PathBuf {
    if let Some(p) = std::env::var_os("BARSMITH_PYTHON") {
        return PathBuf::from(p);
    }
    python_venv(
        "readers",
        "the Python readers (DuckDB, Polars, pyarrow, pandas)",
        "set BARSMITH_PYTHON to a Python with duckdb, polars and pyarrow to skip the install",
    )
}

/// The Python of a venv under the target folder holding the packages pinned in
/// `tests/<name>/requirements.txt`, created on first use (and again whenever that file
/// changes). `what` names the packages on stderr; `skip` says how to avoid the install.
pub fn python_venv(name: &str, what: &str, skip: &str) -> PathBuf {
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
        .join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .unwrap_or_else(|e| panic!("{}: {e}", requirements.display()));
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-venv"));
    let python = venv.join("bin/python");
    let marker = venv.join("barsmith-requirements.txt");
    // Test binaries run in parallel: one creates the venv, the others wait for it.
    let lock = std::fs::File::create(venv.with_extension("lock")).expect("venv lock file");
    lock.lock().expect("lock the venv");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    // Straight to stderr, past the test harness's capture: a first `cargo test` spends
    // a minute here and should say why.
    let _ = writeln!(
        std::io::stderr(),
        "installing {what} into {} (once; needs python3 with venv and PyPI; {skip})",
        venv.display()
    );
    let step = |cmd: &mut Command, what: &str, fix: &str| {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}; {fix}"));
        assert!(
            out.status.success(),
            "{what} failed: {fix}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    step(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
        "install python3 with its venv module (Debian: apt-get install python3-venv)",
    );
    step(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(&requirements),
        &format!("pip install -r tests/{name}/requirements.txt"),
        &format!("PyPI must be reachable once ({skip})"),
    );
    std::fs::write(&marker, wanted).expect("venv marker");
    python
}

impl Fixture {
    /// `barsmith run --progress none scripts/wrapper.rhai` on this fixture into run
    /// folder `runs/<run>`, with `args` after the script (give `--tickers-csv`,
    /// `--from`, `--to`; `--outdir` is the fixture's).
    pub fn wrapper_run(&self, run: &str, args: &[&str]) -> Command {
        self.wrapper_run_with_progress(run, "none", args)
    }

    /// [`Fixture::wrapper_run`] with another `--progress` mode.
    pub fn wrapper_run_with_progress(&self, run: &str, progress: &str, args: &[&str]) -> Command {
        let mut cmd = self.barsmith();
        cmd.arg("run")
            .arg("--run-dir")
            .arg(self.run_dir(run))
            .args([
                "--progress",
                progress,
                "--base-url",
                &self.sandbox.base_url(),
            ])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai"))
            .arg("--outdir")
            .arg(self.outdir())
            .args(["--retry-delay", "0", "--request-retries", "2"])
            .args(args);
        cmd
    }

    /// [`Fixture::barsmith`] with the sandbox's flat-file key pair in the environment.
    pub fn barsmith_with_flat_key(&self) -> Command {
        let mut cmd = self.barsmith();
        cmd.env(
            "MASSIVE_S3_ACCESS_KEY_ID",
            barsmith::sandbox::SANDBOX_S3_ACCESS_KEY,
        )
        .env(
            "MASSIVE_S3_SECRET_ACCESS_KEY",
            barsmith::sandbox::SANDBOX_S3_SECRET_KEY,
        );
        cmd
    }

    /// `barsmith run` of `script` into run folder `runs/<run>`, REST and flat files at
    /// the sandbox (its flat-file key pair in the environment); the script's own
    /// arguments follow.
    pub fn flat_run(&self, run: &str, script: &Path) -> Command {
        let url = self.sandbox.base_url();
        let mut cmd = self.barsmith_with_flat_key();
        cmd.arg("run")
            .arg("--run-dir")
            .arg(self.run_dir(run))
            .args(["--progress", "none", "--base-url", &url])
            .args(["--flat-endpoint", &url])
            .arg(script);
        cmd
    }

    /// `barsmith ingest --source flat-files --unadjusted` of `tickers` (empty: every
    /// ticker of the files) over `from..=to` into `outdir`, the files at the sandbox
    /// (its key pair in the environment).
    pub fn flat_ingest_into(
        &self,
        tickers: &[&str],
        from: &str,
        to: &str,
        outdir: &std::ffi::OsStr,
    ) -> Command {
        let mut cmd = self.barsmith_with_flat_key();
        cmd.args(["ingest", "--source", "flat-files", "--unadjusted"]);
        if tickers.is_empty() {
            cmd.arg("--all-tickers");
        } else {
            cmd.args(["--tickers", &tickers.join(",")]);
        }
        cmd.arg("--outdir")
            .arg(outdir)
            .args(["--from", from, "--to", to])
            .args(["--flat-endpoint", &self.sandbox.base_url()])
            .args(["--timeout", "10", "--retries", "3"]);
        cmd
    }

    /// The run folder `runs/<run>` of this fixture.
    pub fn run_dir(&self, run: &str) -> PathBuf {
        self.dir.path().join("runs").join(run)
    }

    /// Writes a universe CSV with these tickers and returns its path as text.
    pub fn universe(&self, tickers: &[&str]) -> String {
        let path = self.dir.path().join("universe.csv");
        std::fs::write(&path, format!("ticker\n{}\n", tickers.join("\n"))).unwrap();
        path.display().to_string()
    }
}

/// Spawns `cmd` (a worker), reads its events until the `after`-th `event` (e.g.
/// `ticker_done`), then SIGKILLs it; returns how many such events it saw (fewer when
/// the worker ended first).
pub fn kill_after(mut cmd: Command, event: &str, after: usize) -> usize {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("barsmith starts");
    let marker = format!("\"event\":\"{event}\"");
    let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let seen = stdout
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains(&marker))
        .take(after)
        .count();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    seen
}

/// Runs `cmd` with `input` on stdin (then closed), killed after `limit`.
pub fn run_with_input(mut cmd: Command, input: &str, limit: std::time::Duration) -> Output {
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("barsmith starts");
    let mut stdin = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut stdin, input.as_bytes()).expect("write input");
    drop(stdin);
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let _ = std::io::Read::read_to_end(&mut out, &mut o);
        let _ = std::io::Read::read_to_end(&mut err, &mut e);
        let _ = tx.send((o, e));
    });
    let (stdout, stderr) = match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => {
            let _ = child.kill();
            panic!("barsmith (pid {pid}) still running after {limit:?}");
        }
    };
    let status = child.wait().expect("wait");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// The joblog lines of a run folder as JSON values (none when it has no joblog yet).
pub fn joblog_at(run_dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("joblog.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("joblog lines are JSON"))
        .collect()
}

/// Synthetic minute bars for every weekday of `r`: `per_day` minutes from 04:00 New
/// York time, every 7th bar without vwap, every 11th without a trade count, every 13th
/// OTC (the store and S3 dataset tests' data).
pub fn synth_bars(
    r: barsmith::calendar::DateRange,
    per_day: usize,
    close: f64,
) -> barsmith::bars::Bars {
    use jiff::civil::Weekday;
    let mut bars = barsmith::bars::Bars::default();
    let mut d = r.from;
    let mut i = 0u64;
    while d <= r.to {
        if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            let start = barsmith::calendar::ny_day_start_ms(d) + 4 * 3_600_000;
            for m in 0..per_day {
                i += 1;
                let px = close + (i % 97) as f64 * 0.01;
                bars.push(barsmith::bars::Bar {
                    timestamp: start + m as i64 * 60_000,
                    open: px,
                    high: px + 0.05,
                    low: px - 0.05,
                    close: px,
                    volume: (100 + i % 1000) as f64,
                    vwap: (!i.is_multiple_of(7)).then_some(px + 0.01),
                    transactions: (!i.is_multiple_of(11)).then_some((i % 50) as i64),
                    otc: i.is_multiple_of(13),
                });
            }
        }
        d = d.tomorrow().unwrap();
    }
    bars
}
