//! A wrong S3 endpoint for a dataset fails in seconds with one line naming it and the
//! variable to fix, after one request without retries: before any worker starts
//! (`spawn_batch`), before the worker's first real request (`barsmith ingest`), and for
//! `barsmith status`. Two wrong endpoints on loopback: a port with nothing listening,
//! and one that accepts connections and never answers.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::moto::{KEY_ID, SECRET, free_port, without_aws};
use common::{Fixture, stderr, test_config};

const URL: &str = "s3://barsmith/bars/minute";
/// Bound on each command: the object_store retries the probe spares take minutes.
const LIMIT: Duration = Duration::from_secs(60);

/// A loopback port that accepts connections, holds them open and never answers, until
/// dropped (or [`LIMIT`] twice over); counts the connections.
struct Silent {
    port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (accepted, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (count, done) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut held = Vec::new();
            while !done.load(Ordering::Relaxed) && t0.elapsed() < 2 * LIMIT {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        held.push(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Silent {
            port,
            accepted,
            stop,
        }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `cmd` with a dataset endpoint on loopback `port` and a key pair.
fn at_port(cmd: &mut Command, port: u16) -> &mut Command {
    without_aws(cmd)
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
}

fn ingest(fx: &Fixture, port: u16) -> Output {
    let mut cmd = fx.ingest_into(&["AAPL"], "2024-01-02", "2024-01-31", URL.as_ref(), "10");
    at_port(&mut cmd, port);
    common::run_with_input(cmd, "", LIMIT)
}

/// The one `error:` line of `out`, checked to name the endpoint and the fix.
fn one_error_line(out: &Output, port: u16) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    let line = lines[0];
    assert!(line.contains(&format!("http://127.0.0.1:{port}")), "{line}");
    assert!(line.contains("check AWS_ENDPOINT_URL"), "{line}");
    assert!(!err.contains(SECRET), "{err}");
    line.to_string()
}

/// `out` stopped with exit 4 and one line on `silent`, after one connection to it.
fn silence_stopped(out: &Output, silent: &Silent) {
    assert_eq!(out.status.code(), Some(4), "{}", stderr(out));
    let line = one_error_line(out, silent.port);
    assert!(line.contains("did not answer within 5 s"), "{line}");
    let accepted = silent.accepted.load(Ordering::Relaxed);
    assert_eq!(accepted, 1, "one request, no retries");
}

#[test]
fn a_port_with_nothing_listening_stops_ingest_and_status_in_one_line() {
    let fx = Fixture::with_config(test_config());
    let port = free_port();
    let out = ingest(&fx, port);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let line = one_error_line(&out, port);
    assert!(line.contains("cannot be reached"), "{line}");
    assert_eq!(fx.sandbox.stats().data_requests, 0);

    let mut status = fx.barsmith();
    at_port(&mut status, port).args(["status", URL]);
    let out = common::run_with_input(status, "", LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    one_error_line(&out, port);
}

#[test]
fn an_endpoint_that_never_answers_gets_one_request_then_one_line() {
    let fx = Fixture::with_config(test_config());
    let silent = Silent::start();
    silence_stopped(&ingest(&fx, silent.port), &silent);
}

#[test]
fn a_run_stops_before_any_worker_when_the_dataset_endpoint_does_not_answer() {
    let fx = Fixture::with_config(test_config());
    let silent = Silent::start();
    let script = fx.dir.path().join("direct.rhai");
    std::fs::write(
        &script,
        format!(
            "let h = spawn_batch([\"AAPL\"], #{{outdir: \"{URL}\", from: \"2024-01-02\", \
             to: \"2024-01-31\"}});\nprint(wait(h));\n"
        ),
    )
    .unwrap();
    let mut cmd = fx.barsmith();
    at_port(&mut cmd, silent.port)
        .arg("run")
        .arg("--run-dir")
        .arg(fx.run_dir("direct"))
        .args(["--progress", "none", "--base-url", &fx.sandbox.base_url()])
        .arg(&script);
    silence_stopped(&common::run_with_input(cmd, "", LIMIT), &silent);
    assert!(
        common::joblog_at(&fx.run_dir("direct")).is_empty(),
        "no batch started"
    );
}
