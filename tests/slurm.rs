//! The Slurm executor on a real single-node Slurm (Debian's slurm-wlm, started by
//! tests/common/slurm.rs): the unchanged `scripts/wrapper.rhai` runs its batches as
//! jobs end to end; Slurm's time limit and an outside `scancel` end a batch whose
//! tickers the wrapper then retries; a rejected key still halts the run; Ctrl-C
//! cancels the run's jobs; setup mistakes stop the run before any job.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use barsmith::calendar::DateRange;
use barsmith::sandbox::synth;
use common::slurm::SlurmCluster;
use common::{Fixture, joblog_at, stderr};

const FROM: &str = "2024-03-04";
const TO: &str = "2024-03-08";

/// `barsmith run --executor slurm` of the wrapper on this fixture and cluster.
fn wrapper(
    fx: &Fixture,
    cluster: &SlurmCluster,
    run: &str,
    tickers: &[&str],
    extra: &[&str],
) -> Command {
    let universe = fx.universe(tickers);
    let mut cmd = fx.barsmith();
    cmd.env("SLURM_CONF", cluster.conf())
        .arg("run")
        .arg("--run-dir")
        .arg(fx.run_dir(run))
        .args(["--progress", "plain", "--base-url", &fx.sandbox.base_url()])
        .args(["--executor", "slurm", "--slurm-poll", "0.2"])
        .args(extra.iter().take_while(|a| **a != "--"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai"))
        .args(["--tickers-csv", &universe, "--from", FROM, "--to", TO])
        .arg("--outdir")
        .arg(fx.outdir())
        .args(["--retry-delay", "0", "--request-retries", "2"])
        .args(extra.iter().skip_while(|a| **a != "--").skip(1));
    cmd
}

/// Runs `cmd` (no input), killed if it is still running after `limit`.
fn run_within(cmd: Command, limit: Duration) -> Output {
    common::run_with_input(cmd, "", limit)
}

fn assert_complete(fx: &Fixture, tickers: &[&str]) {
    let range = DateRange::parse(FROM, TO).unwrap();
    for t in tickers {
        let stored = fx.store().read_bars(t, range).unwrap();
        assert_eq!(
            stored,
            synth::bars_for(t, range, fx.sandbox.config()),
            "{t}"
        );
    }
}

fn batch_logs(run_dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

#[test]
fn the_wrapper_runs_its_batches_as_slurm_jobs() {
    let cluster = SlurmCluster::start();
    let fx = Fixture::with_faults(&["T5=403"]);
    let tickers = ["T0", "T1", "T2", "T3", "T4", "T5", "T6", "T7"];
    let out = run_within(
        wrapper(
            &fx,
            &cluster,
            "slurm",
            &tickers,
            &["--", "--batch-size", "2", "--max-concurrent", "3"],
        ),
        Duration::from_secs(240),
    );
    let err = stderr(&out);
    let run_dir = fx.run_dir("slurm");
    assert_complete(&fx, &["T0", "T1", "T2", "T3", "T4", "T6", "T7"]);

    let log = joblog_at(&run_dir);
    assert_eq!(log.len(), 4, "one attempt per batch of 2: {log:?}");
    let run_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run_json["executor"], "slurm", "{run_json}");
    // The ticker that does not exist is a ticker failure, reported as locally.
    let failed = std::fs::read_to_string(run_dir.join("failed_tickers.csv")).unwrap();
    assert!(
        failed.lines().any(|l| l.starts_with("T5,ticker,")),
        "{failed}\n{err}"
    );
    assert_ne!(out.status.code(), Some(4), "{err}");
    // Each batch log holds its job's id and the worker's own output, read from the
    // job's files in the run folder.
    for path in batch_logs(&run_dir) {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("slurm job: "), "{}: {text}", path.display());
        assert!(
            text.contains("\"event\":\"ticker_done\"") || text.contains("ticker_failed"),
            "{text}"
        );
    }
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    assert!(
        jobs.iter()
            .all(|j| j.ends_with("COMPLETED") || j.ends_with("FAILED")),
        "{jobs:?}"
    );
    assert!(
        !err.contains("POLYGON_API_KEY=")
            && !std::fs::read_dir(run_dir.join("slurm"))
                .unwrap()
                .flatten()
                .any(|e| std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains(&fx.sandbox.config().api_key)),
        "the key is in no job file"
    );
}

#[test]
fn slurms_time_limit_ends_a_batch_and_the_wrapper_retries_its_tickers() {
    let cluster = SlurmCluster::start();
    // The first request for T1 never answers; the worker would wait 10 minutes for it.
    let fx = Fixture::with_faults(&["T1=hang:1"]);
    let out = run_within(
        wrapper(
            &fx,
            &cluster,
            "limit",
            &["T0", "T1"],
            &[
                "--slurm-time",
                "1",
                "--",
                "--batch-size",
                "2",
                "--max-concurrent",
                "1",
                "--request-timeout",
                "600",
            ],
        ),
        Duration::from_secs(300),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_complete(&fx, &["T0", "T1"]);
    let log = joblog_at(&fx.run_dir("limit"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        log[0]["timed_out"], true,
        "Slurm's TIMEOUT is the batch's timeout: {:?}",
        log[0]
    );
    assert_eq!(log[1]["attempt"], 2);
    let first = std::fs::read_to_string(&batch_logs(&fx.run_dir("limit"))[0]).unwrap();
    assert!(
        first.contains("== the cluster's time limit ended the batch"),
        "{first}"
    );
    assert_eq!(log[0]["ended_by"], "time_limit");
    assert!(
        cluster.jobs().iter().any(|j| j.ends_with("TIMEOUT")),
        "{:?}",
        cluster.jobs()
    );
}

#[test]
fn an_outside_scancel_ends_a_batch_and_the_wrapper_retries_its_tickers() {
    let cluster = SlurmCluster::start();
    let fx = Fixture::with_faults(&["T1=hang:1"]);
    let cmd = wrapper(
        &fx,
        &cluster,
        "scancel",
        &["T0", "T1"],
        &[
            "--",
            "--batch-size",
            "2",
            "--max-concurrent",
            "1",
            "--request-timeout",
            "600",
        ],
    );
    let waiter = std::thread::spawn(move || run_within(cmd, Duration::from_secs(180)));
    let job = cluster.wait_for_job("RUNNING", Duration::from_secs(60));
    // Let the worker reach the hanging request, then cancel its job as a user would.
    std::thread::sleep(Duration::from_secs(2));
    let cancelled = cluster.command("scancel").arg(&job).output().unwrap();
    assert!(cancelled.status.success(), "{cancelled:?}");
    let out = waiter.join().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_complete(&fx, &["T0", "T1"]);
    let log = joblog_at(&fx.run_dir("scancel"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["killed"], true, "{:?}", log[0]);
    let first = std::fs::read_to_string(&batch_logs(&fx.run_dir("scancel"))[0]).unwrap();
    assert!(
        first.contains("== the batch's job was cancelled outside barsmith (scancel) =="),
        "{first}"
    );
    assert_eq!(log[0]["ended_by"], "cancelled_outside");
}

#[test]
fn ctrl_c_cancels_the_runs_jobs() {
    let cluster = SlurmCluster::start();
    let fx = Fixture::with_faults(&["T0=hang:9", "T1=hang:9"]);
    let cmd = wrapper(
        &fx,
        &cluster,
        "ctrlc",
        &["T0", "T1"],
        &["--", "--batch-size", "1", "--request-timeout", "600"],
    );
    let mut child = {
        let mut cmd = cmd;
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    cluster.wait_for_job("RUNNING", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("barsmith did not stop within 60 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130));
    let jobs = cluster.jobs();
    assert!(
        jobs.iter()
            .all(|j| !j.ends_with("RUNNING") && !j.ends_with("PENDING")),
        "no job of the run is left: {jobs:?}"
    );
    assert_eq!(jobs.len(), 2, "{jobs:?}");
}

#[test]
fn a_rejected_key_halts_a_slurm_run_after_its_first_batch() {
    let cluster = SlurmCluster::start();
    let fx = Fixture::with_faults(&[]);
    let mut cmd = wrapper(
        &fx,
        &cluster,
        "badkey",
        &["T0", "T1", "T2", "T3"],
        &["--", "--batch-size", "1", "--max-concurrent", "1"],
    );
    cmd.env("POLYGON_API_KEY", "not-the-key");
    let out = run_within(cmd, Duration::from_secs(120));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("halting") && err.contains("Unknown API Key"),
        "{err}"
    );
    assert_eq!(joblog_at(&fx.run_dir("badkey")).len(), 1);
}

#[test]
fn setup_mistakes_stop_the_run_before_any_job() {
    let fx = Fixture::with_faults(&[]);
    let universe = fx.universe(&["T0"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai");
    let attempt = |flags: &[&str], conf: &Path| {
        let mut cmd = fx.barsmith();
        cmd.env("SLURM_CONF", conf)
            .arg("run")
            .args(["--progress", "none", "--base-url", &fx.sandbox.base_url()])
            .args(flags)
            .arg(&script)
            .args(["--tickers-csv", &universe, "--from", FROM, "--to", TO])
            .arg("--outdir")
            .arg(fx.outdir());
        run_within(cmd, Duration::from_secs(60))
    };
    let nowhere = fx.dir.path().join("slurm.conf");
    // A controller nobody runs, asked for briefly.
    std::fs::write(
        &nowhere,
        format!(
            "ClusterName=none\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={}\nMessageTimeout=2\n\
             AuthType=auth/none\nNodeName=localhost CPUs=1\nPartitionName=p Nodes=localhost\n",
            common::moto::free_port()
        ),
    )
    .unwrap();
    for (flags, code, says) in [
        (
            &["--executor", "slurm", "--slurm-time", "1h"][..],
            2,
            "--slurm-time \"1h\" is not a Slurm time",
        ),
        (
            &["--executor", "slurm", "--slurm-mem", "2GB"][..],
            2,
            "--slurm-mem \"2GB\" is not a Slurm size",
        ),
        (
            &["--slurm-partition", "short"][..],
            2,
            "the --slurm-* flags need --executor slurm",
        ),
        (
            &["--executor", "slurm"][..],
            4,
            "the Slurm controller does not answer",
        ),
    ] {
        let out = attempt(flags, &nowhere);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{flags:?}: {err}");
        assert!(err.contains(says), "{flags:?}: {err}");
        assert_eq!(err.matches("error").count(), 1, "one line: {err}");
    }
    assert!(
        !fx.outdir().exists()
            || fx
                .store()
                .missing("T0", DateRange::parse(FROM, TO).unwrap())
                .unwrap()
                .len()
                == 1
    );
}

#[test]
fn a_script_chooses_slurm_itself_before_its_first_batch() {
    let cluster = SlurmCluster::start();
    let fx = Fixture::with_faults(&[]);
    let script = fx.dir.path().join("choose.rhai");
    std::fs::write(
        &script,
        format!(
            r#"use_executor("slurm", #{{poll: 0.2, time: 5, mem: "1G"}});
let r = wait(spawn_batch(["T0"], #{{outdir: "{out}", from: "{FROM}", to: "{TO}", base_url: "{url}"}}));
print(`status=${{r.status}} ended_by=${{r.ended_by}}`);
try {{ use_executor("local"); }} catch (e) {{ print(`late: ${{e}}`); }}
"#,
            out = fx.outdir().display(),
            url = fx.sandbox.base_url(),
        ),
    )
    .unwrap();
    let mut cmd = fx.barsmith();
    cmd.env("SLURM_CONF", cluster.conf())
        .args(["run", "--progress", "none", "--run-dir"])
        .arg(fx.run_dir("script"))
        .arg(&script);
    let out = run_within(cmd, Duration::from_secs(120));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("status=success ended_by="), "{text}");
    assert!(
        text.contains("late: ") && text.contains("must come before the first batch"),
        "{text}"
    );
    assert_complete(&fx, &["T0"]);
    let jobs = cluster.jobs();
    assert_eq!(jobs.len(), 1, "the batch ran as a Slurm job: {jobs:?}");
    let script_text = std::fs::read_to_string(
        fx.run_dir("script")
            .join("slurm")
            .join("batch-0001.attempt-1.sh"),
    )
    .unwrap();
    assert!(script_text.contains("exec '"), "{script_text}");
}

#[test]
fn the_batch_timeout_stops_a_slurm_job_and_the_wrapper_retries_it() {
    let cluster = SlurmCluster::start();
    let fx = Fixture::with_faults(&["T1=hang:1"]);
    let out = run_within(
        wrapper(
            &fx,
            &cluster,
            "timeout",
            &["T0", "T1"],
            &[
                "--",
                "--batch-size",
                "2",
                "--max-concurrent",
                "1",
                "--batch-timeout",
                "4",
                "--request-timeout",
                "600",
            ],
        ),
        Duration::from_secs(120),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_complete(&fx, &["T0", "T1"]);
    let log = joblog_at(&fx.run_dir("timeout"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0]["timed_out"], true, "{:?}", log[0]);
    assert!(
        log[0].get("ended_by").is_none(),
        "barsmith stopped it, not Slurm: {:?}",
        log[0]
    );
    let first = std::fs::read_to_string(&batch_logs(&fx.run_dir("timeout"))[0]).unwrap();
    assert!(first.contains("batch timeout of 4.0s reached"), "{first}");
    // The job's --time came from the batch timeout: 4 s + 10 s grace -> 1 + 1 minutes.
    let shown = cluster
        .command("scontrol")
        .args(["show", "job", "-o", "1"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("TimeLimit=00:02:00"),
        "{shown:?}"
    );
}

#[test]
fn the_flat_file_strategy_runs_through_slurm_with_a_core_per_parallel_day() {
    use barsmith::sandbox::{SANDBOX_S3_ACCESS_KEY, SANDBOX_S3_SECRET_KEY, SandboxConfig};
    use jiff::civil::date;
    let cluster = SlurmCluster::start();
    let fx = Fixture::with_config(SandboxConfig {
        today: date(2025, 2, 5),
        flat_published_through: Some(date(2025, 2, 3)),
        flat_tickers: vec!["AAPL".into(), "MSFT".into()],
        ..common::test_config()
    });
    let universe = fx.universe(&["AAPL", "IBM", "MSFT"]);
    let url = fx.sandbox.base_url();
    let mut cmd = fx.barsmith();
    cmd.env("SLURM_CONF", cluster.conf())
        .env("MASSIVE_S3_ACCESS_KEY_ID", SANDBOX_S3_ACCESS_KEY)
        .env("MASSIVE_S3_SECRET_ACCESS_KEY", SANDBOX_S3_SECRET_KEY)
        .args([
            "run",
            "--progress",
            "none",
            "--base-url",
            &url,
            "--flat-endpoint",
            &url,
        ])
        .args(["--executor", "slurm", "--slurm-poll", "0.2", "--run-dir"])
        .arg(fx.run_dir("flat"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/flatfiles.rhai"))
        .args([
            "--tickers-csv",
            &universe,
            "--from",
            "2025-01-27",
            "--to",
            "2025-02-04",
        ])
        .arg("--outdir")
        .arg(fx.outdir())
        .args(["--retry-delay", "0", "--request-retries", "2"]);
    let out = run_within(cmd, Duration::from_secs(180));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = DateRange::parse("2025-01-27", "2025-02-04").unwrap();
    for t in ["AAPL", "IBM", "MSFT"] {
        assert_eq!(fx.store().missing(t, all).unwrap(), vec![], "{t}");
    }
    let log = joblog_at(&fx.run_dir("flat"));
    let labels: Vec<&str> = log.iter().filter_map(|e| e["label"].as_str()).collect();
    assert!(labels.iter().any(|l| l.starts_with("flat ")), "{labels:?}");
    assert!(labels.iter().any(|l| l.starts_with("rest ")), "{labels:?}");
    // The flat batch's job asked for its parallel days (2) in cores; REST jobs for 1.
    let cpus: Vec<String> = (1..=log.len())
        .map(|id| {
            let shown = cluster
                .command("scontrol")
                .args(["show", "job", "-o"])
                .arg(id.to_string())
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&shown.stdout).into_owned();
            text.split_whitespace()
                .find_map(|t| t.strip_prefix("NumCPUs="))
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    let flat = labels.iter().filter(|l| l.starts_with("flat ")).count();
    assert_eq!(
        cpus.iter().filter(|c| *c == "2").count(),
        flat,
        "{cpus:?} {labels:?}"
    );
    assert_eq!(
        cpus.iter().filter(|c| *c == "1").count(),
        log.len() - flat,
        "{cpus:?}"
    );
}

#[test]
fn time_queued_behind_other_jobs_does_not_count_against_the_batch_timeout() {
    let cluster = SlurmCluster::start();
    let fx = Fixture::with_faults(&[]);
    // Another user's job holds all 8 CPUs of the node for 12 s.
    let hog = cluster
        .command("sbatch")
        .args([
            "--parsable",
            "-c",
            "8",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 12",
        ])
        .output()
        .unwrap();
    assert!(hog.status.success(), "{hog:?}");
    cluster.wait_for_job("RUNNING", Duration::from_secs(30));
    let out = run_within(
        wrapper(
            &fx,
            &cluster,
            "queued",
            &["T0"],
            &["--", "--batch-timeout", "4"],
        ),
        Duration::from_secs(120),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_complete(&fx, &["T0"]);
    let log = joblog_at(&fx.run_dir("queued"));
    assert_eq!(log.len(), 1, "no timeout, no retry: {log:?}");
    assert_eq!(log[0]["timed_out"], false);
    assert!(
        log[0]["duration_s"].as_f64().unwrap() > 5.0,
        "it did wait: {:?}",
        log[0]
    );
    let text = std::fs::read_to_string(&batch_logs(&fx.run_dir("queued"))[0]).unwrap();
    // Either seen leaving the queue, or (a short job) ended between two polls.
    assert!(text.contains("in the queue"), "{text}");
}
