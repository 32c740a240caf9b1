//! Flat-file ingest into a dataset on S3 against a local folder: the release binary's
//! `ingest --source flat-files --all-tickers` over a few days of a synthetic market
//! (the sandbox's flat-file endpoint on loopback), once into a temporary folder and
//! once into moto's S3 server (started here, as the tests do).
//!
//! Prints each run's wall time, the worker's CPU seconds (user+sys of the reaped
//! child, `getrusage(RUSAGE_CHILDREN)` before and after; moto, reaped only at the end,
//! is not counted) and the rows of the day files. moto is a Python server on the same
//! cores: the S3 wall time bounds barsmith's cost from above, not S3's.
//!
//! `cargo bench --bench s3_flat` (`BENCH_S3_FLAT_TICKERS`, default 500;
//! `BENCH_S3_FLAT_DAYS`, default 5 trading days from 2025-03-03).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barsmith::sandbox::{SANDBOX_S3_ACCESS_KEY, SANDBOX_S3_SECRET_KEY, Sandbox, SandboxConfig};
use common::moto::MotoServer;
use jiff::civil::date;

const BIN: &str = env!("CARGO_BIN_EXE_barsmith");

fn main() {
    // `cargo test --benches` runs this without `--bench`: build check only.
    if !std::env::args().any(|a| a == "--bench") {
        println!("s3_flat: run with `cargo bench --bench s3_flat`");
        return;
    }
    let num = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (tickers, days) = (
        num("BENCH_S3_FLAT_TICKERS", 500),
        num("BENCH_S3_FLAT_DAYS", 5),
    );
    let sandbox = Sandbox::start_background(SandboxConfig {
        today: date(2025, 12, 31),
        flat_tickers: Vec::new(),
        flat_market: tickers,
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    // Weekdays from Monday 2025-03-03: `days` trading days (March 2025 has no holiday).
    let from = date(2025, 3, 3);
    let weeks = (days.max(1) - 1) / 5;
    let to = from
        .checked_add(jiff::Span::new().days(i64::from(7 * weeks + (days.max(1) - 1) % 5)))
        .expect("date");
    let range = barsmith::calendar::DateRange { from, to };
    let warmed = sandbox.warm_flat_days(range);
    let moto = MotoServer::start();
    let tmp = tempfile::tempdir_in(".").expect("temp dir");
    let local = tmp.path().join("minute").display().to_string();
    let s3 = format!("s3://{}/bench/minute", moto.bucket);
    println!(
        "\n{tickers} tickers, {warmed} trading days {from}..{to} (load average {})",
        loadavg()
    );
    println!("| target | wall | CPU (user+sys) | rows | rows/CPU-s |");
    println!("|---|---|---|---|---|");
    for (what, outdir) in [("local folder (ext4)", &local), ("S3 (moto)", &s3)] {
        let mut cmd = Command::new(BIN);
        moto.env_for(&mut cmd)
            .env("MASSIVE_S3_ACCESS_KEY_ID", SANDBOX_S3_ACCESS_KEY)
            .env("MASSIVE_S3_SECRET_ACCESS_KEY", SANDBOX_S3_SECRET_KEY)
            .env("BARSMITH_STATE_DIR", tmp.path().join("state"))
            .env("BARSMITH_S3_LEASE_TTL", "60")
            .env_remove("BARSMITH_LOG")
            .args([
                "ingest",
                "--source",
                "flat-files",
                "--unadjusted",
                "--all-tickers",
            ])
            .args(["--outdir", outdir])
            .args(["--from", &from.to_string(), "--to", &to.to_string()])
            .args(["--flat-endpoint", &sandbox.base_url()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let (cpu0, t0) = (children_cpu(), Instant::now());
        let out = cmd.output().expect("barsmith runs");
        let (wall, cpu) = (t0.elapsed(), children_cpu() - cpu0);
        assert!(out.status.success(), "{what}: {}", out.status);
        let rows: u64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == "day_file")
            .filter_map(|e| e["rows"].as_u64())
            .sum();
        println!(
            "| {what} | {:.2} s | {:.2} s | {rows} | {:.2}M |",
            wall.as_secs_f64(),
            cpu.as_secs_f64(),
            rows as f64 / cpu.as_secs_f64() / 1e6
        );
    }
}

/// User+sys of the reaped children so far.
fn children_cpu() -> Duration {
    // SAFETY: `usage` is a plain C struct that getrusage fills.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to that struct.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
