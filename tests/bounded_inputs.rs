//! No input makes barsmith's memory grow without bound: ticker files, scripts,
//! imported modules and the CSV / JSON files primitives read all stop at a documented
//! limit with one line naming the file, the limit and the fix.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, stderr};

/// Runs `cmd`, killing it if it is still running after 30 s (an unbounded read of
/// `/dev/zero` would otherwise eat the machine's memory).
fn bounded(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("barsmith starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("still reading after 30 s: the input is not bounded");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn script(fx: &Fixture, body: &str) -> std::path::PathBuf {
    let path = fx.dir.path().join("s.rhai");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn ingest_refuses_a_ticker_file_past_the_line_limit() {
    let fx = Fixture::with_faults(&[]);
    let mut cmd = fx.barsmith();
    cmd.args([
        "ingest",
        "--tickers-file",
        "/dev/zero",
        "--from",
        "2024-03-04",
    ])
    .args(["--to", "2024-03-04", "--outdir"])
    .arg(fx.outdir());
    let out = bounded(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/dev/zero: line 1 is longer than the 64 KiB limit for a ticker file"),
        "{err}"
    );
    assert_eq!(fx.sandbox.stats().data_requests, 0);
}

#[test]
fn the_wrapper_refuses_a_universe_past_the_line_limit() {
    let fx = Fixture::with_faults(&[]);
    let out = bounded(fx.wrapper_run(
        "r",
        &[
            "--tickers-csv",
            "/dev/zero",
            "--from",
            "2024-03-04",
            "--to",
            "2024-03-04",
        ],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("limit for a ticker file"), "{err}");
}

#[test]
fn run_refuses_a_script_past_the_limits() {
    let fx = Fixture::with_faults(&[]);
    let mut cmd = fx.barsmith();
    cmd.args(["run", "/dev/zero"]);
    let out = bounded(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("64 KiB limit for a script"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let big = script(&fx, &format!("{}\n", "// padding\n".repeat(400_000)));
    let mut cmd = fx.barsmith();
    cmd.arg("run").arg(&big);
    let err = stderr(&bounded(cmd));
    assert!(
        err.contains("larger than the 4 MiB limit for a script"),
        "{err}"
    );
}

#[test]
fn primitives_refuse_csv_json_and_modules_past_the_limits() {
    let fx = Fixture::with_faults(&[]);
    for (call, needle) in [
        (r#"read_csv("/dev/zero")"#, "1 MiB limit for a CSV file"),
        (r#"read_json("/dev/zero")"#, "64 MiB limit for a JSON file"),
        (
            r#"read_tickers("/dev/zero")"#,
            "64 KiB limit for a ticker file",
        ),
        (r#"import "zero" as z;"#, "not a regular file"),
    ] {
        // Rhai adds `.rhai` to module paths: a module that is a link to /dev/zero.
        let zero = fx.dir.path().join("zero.rhai");
        if !zero.exists() {
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        }
        let call = if call.ends_with(';') {
            call.to_string()
        } else {
            format!("{call};")
        };
        let s = script(&fx, &format!("{call}\nprint(\"after\");\n"));
        let mut cmd = fx.barsmith();
        cmd.arg("run").arg(&s);
        let out = bounded(cmd);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{call}: {err}");
        assert!(err.contains(needle), "{call}: {err}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("after"),
            "{call}"
        );
    }
}
