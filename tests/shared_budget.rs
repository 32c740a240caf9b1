//! One request budget across "machines": worker processes that share no budget file
//! (each its own state folder, as separate machines would be) but one Redis
//! (`BARSMITH_BUDGET_REDIS`) stay under `--max-rps` together, against the sandbox's
//! server-side limit; an unreachable Redis stops the run instead of running unlimited.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barsmith::ingest::SetupKind;
use barsmith::ingest::events::Event;
use barsmith::sandbox::SandboxConfig;
use common::redis::RedisServer;
use common::{Fixture, events, stderr};

/// The rate every machine is given (`--max-rps`).
const RATE: f64 = 16.0;
/// The server's limit: the key's plan, with room for a loaded machine's scheduling
/// jitter (20%), and the same burst tolerance the budget allows itself.
const SERVER_RATE: f64 = 20.0;

fn fixture() -> Fixture {
    Fixture::with_config(SandboxConfig {
        rate_limit: Some(SERVER_RATE),
        rate_burst: barsmith::budget::Rate(RATE).default_burst(),
        ..common::test_config()
    })
}

/// A worker on its own "machine": a private state folder, one-page tickers.
fn machine(f: &Fixture, n: usize, tickers: &[String], redis: Option<&str>) -> Command {
    let mut cmd = f.barsmith();
    cmd.env(
        "BARSMITH_STATE_DIR",
        f.dir.path().join(format!("machine-{n}")),
    )
    .args(["ingest", "--tickers", &tickers.join(",")])
    .args(["--from", "2026-03-02", "--to", "2026-03-02"])
    .args(["--base-url", &f.sandbox.base_url(), "--timeout", "10"])
    .args([
        "--retries",
        "4",
        "--backoff-ms",
        "10",
        "--max-backoff-ms",
        "50",
    ])
    .args(["--max-rps", &RATE.to_string(), "--outdir"])
    .arg(f.dir.path().join(format!("data-{n}")));
    match redis {
        Some(url) => cmd.env("BARSMITH_BUDGET_REDIS", url),
        None => cmd.env_remove("BARSMITH_BUDGET_REDIS"),
    };
    cmd
}

fn tickers(machine: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("M{machine}T{i:02}")).collect()
}

#[test]
fn three_machines_share_one_budget_through_redis() {
    let redis = RedisServer::start();
    let f = fixture();
    let per_machine = 20;
    let t0 = Instant::now();
    let url = redis.url();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..3)
            .map(|m| {
                let cmd = machine(&f, m, &tickers(m, per_machine), Some(&url));
                scope.spawn(move || common::run(cmd))
            })
            .collect();
        for r in runs {
            let out = r.join().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
    });
    let elapsed = t0.elapsed();
    let stats = f.sandbox.stats();
    assert_eq!(stats.rate_limited, 0, "no 429: {stats:?}");
    // Together, never faster than one key's rate: after the burst, one request per
    // 1/RATE. Three separate budgets would take a third of that time.
    let requests = stats.data_requests as f64;
    assert_eq!(requests, 60.0);
    let burst = barsmith::budget::Rate(RATE).default_burst() as f64;
    assert!(
        elapsed >= Duration::from_secs_f64((requests - burst) / RATE),
        "{requests} requests in {elapsed:?} exceed {RATE}/s"
    );
}

#[test]
fn without_the_shared_budget_the_same_machines_overrun_the_key() {
    // The control: each machine alone keeps its own budget, so together they send
    // three times the rate and the server refuses some.
    let f = fixture();
    let children: Vec<Child> = (0..3)
        .map(|m| {
            machine(&f, m, &tickers(m, 20), None)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        let _ = c.wait();
    }
    assert!(
        f.sandbox.stats().rate_limited > 0,
        "{:?}",
        f.sandbox.stats()
    );
}

#[test]
fn an_unreachable_budget_stops_the_run_naming_the_host_not_the_password() {
    let f = fixture();
    let out = common::run(machine(
        &f,
        0,
        &tickers(0, 2),
        Some("redis://:hunter2@127.0.0.1:1/0"),
    ));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("127.0.0.1:1") && err.contains("BARSMITH_BUDGET_REDIS"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(events(&out).iter().any(|e| matches!(
        e,
        Event::SetupFailed {
            kind: SetupKind::Budget,
            ..
        }
    )));
    assert_eq!(f.sandbox.stats().data_requests, 0);
}

#[test]
fn a_budget_lost_mid_run_stops_the_worker_instead_of_running_unlimited() {
    let redis = RedisServer::start();
    let f = fixture();
    let mut child = machine(&f, 0, &tickers(0, 40), Some(&redis.url()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = stdout.lines().map_while(Result::ok);
    assert!(
        lines.any(|l| l.contains("\"event\":\"ticker_done\"")),
        "a ticker finished before Redis went away"
    );
    drop(redis);
    let rest: Vec<String> = lines.collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(4), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("\"kind\":\"budget\"") && l.contains("\"class\":\"run\"")),
        "{rest:?}"
    );
    // Stopped: far fewer than the 40 tickers were fetched.
    assert!(f.sandbox.stats().data_requests < 40);
}
