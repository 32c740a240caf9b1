//! Setup errors stop a run at once with their own reason (exit 4), never as retries;
//! summaries tell the truth; flags and run folders are checked before any batch; a
//! persistent error opens a ticker's circuit instead of costing minutes.

mod common;

use common::{Fixture, run, stderr, stdout};

const FROM: &str = "2024-03-04";
const TO: &str = "2024-03-08";

fn joblog_lines(fx: &Fixture, run: &str) -> usize {
    std::fs::read_to_string(fx.run_dir(run).join("joblog.jsonl"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn a_missing_key_halts_with_its_reason_before_any_worker() {
    let fx = Fixture::with_faults(&[]);
    let csv = fx.universe(&["AAA", "BBB"]);
    let mut cmd = fx.wrapper_run("r", &["--tickers-csv", &csv, "--from", FROM, "--to", TO]);
    cmd.env_remove("POLYGON_API_KEY");
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("error: no API key: set POLYGON_API_KEY"),
        "{err}"
    );
    assert!(!err.contains('✓') && !stdout(&out).contains('✓'), "{err}");
    assert_eq!(joblog_lines(&fx, "r"), 0, "no worker started");
    assert_eq!(fx.sandbox.stats().data_requests, 0);
}

#[test]
fn a_rate_that_does_not_parse_halts_naming_the_flag() {
    let fx = Fixture::with_faults(&[]);
    let csv = fx.universe(&["AAA"]);
    let out = run(fx.wrapper_run(
        "r",
        &[
            "--tickers-csv",
            &csv,
            "--from",
            FROM,
            "--to",
            TO,
            "--max-rps",
            "5/mn",
        ],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains(r#"error: max_rps "5/mn" is not a request rate: use N/s or N/min"#),
        "{err}"
    );
    assert_eq!(joblog_lines(&fx, "r"), 0, "no worker started");
}

#[test]
fn an_output_folder_of_other_data_halts_once_with_the_reason_on_the_console() {
    let fx = Fixture::with_faults(&[]);
    let csv = fx.universe(&["AAA", "BBB"]);
    // One batch of both tickers (a small pass is otherwise spread over the slots).
    let args = [
        "--tickers-csv",
        &csv,
        "--from",
        FROM,
        "--to",
        TO,
        "--max-concurrent",
        "1",
    ];
    let first = run(fx.wrapper_run("adjusted", &args));
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));

    let mut raw = args.to_vec();
    raw.extend(["--no-adjusted", "--no-resume"]);
    let out = run(fx.wrapper_run("raw", &raw));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("halting:"), "{err}");
    assert!(
        err.contains("mixing them in one folder is refused"),
        "{err}"
    );
    assert_eq!(joblog_lines(&fx, "raw"), 1, "not retried: {err}");
    let failed = std::fs::read_to_string(fx.run_dir("raw").join("failed_tickers.csv")).unwrap();
    assert!(failed.contains("AAA,run,store,"), "{failed}");
    assert!(!failed.contains("retryable"), "{failed}");
    let summary = stdout(&out);
    assert!(
        summary.contains("✗ HALTED ON A FATAL ERROR (exit 4)"),
        "{summary}"
    );
}

#[test]
fn the_worker_exits_4_for_setup_errors_and_says_why_in_an_event() {
    let fx = Fixture::with_faults(&[]);
    let mut no_key = fx.ingest(&["AAA"], FROM, TO);
    no_key.env_remove("POLYGON_API_KEY");
    let out = run(no_key);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stdout_has_setup_event(&out, "missing_key"));

    // An output folder below a regular file cannot be created, even by root.
    let blocker = fx.dir.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let mut cmd = fx.barsmith();
    cmd.args(["ingest", "--tickers", "AAA", "--from", FROM, "--to", TO])
        .arg("--outdir")
        .arg(blocker.join("minute"))
        .args(["--base-url", &fx.sandbox.base_url()]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stdout_has_setup_event(&out, "store"));

    let bad_date = run(fx.ingest(&["AAA"], "2024-13-01", TO));
    assert_eq!(bad_date.status.code(), Some(2), "{}", stderr(&bad_date));
    assert!(stdout_has_setup_event(&bad_date, "bad_input"));
    assert_eq!(fx.sandbox.stats().data_requests, 0);
}

fn stdout_has_setup_event(out: &std::process::Output, kind: &str) -> bool {
    common::events(out).iter().any(|e| {
        matches!(e, barsmith::ingest::events::Event::SetupFailed { kind: k, .. } if k.as_str() == kind)
    })
}

#[test]
fn a_missing_required_argument_is_named() {
    let fx = Fixture::with_faults(&[]);
    let out = run({
        let mut c = fx.barsmith();
        c.args(["ingest", "--tickers", "AAA", "--from", FROM]);
        c
    });
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("were not provided: --outdir <DIR>, --to <YYYY-MM-DD>;"),
        "{err}"
    );
}

#[test]
fn flags_no_run_can_use_are_refused_with_the_flag_named() {
    let fx = Fixture::with_faults(&[]);
    let csv = fx.universe(&["AAA"]);
    for (flag, value, message) in [
        (
            "--max-concurrent",
            "0",
            "--max-concurrent must be at least 1, got 0",
        ),
        ("--shrink", "0", "--shrink must be at least 1, got 0"),
        (
            "--batch-size",
            "-3",
            "--batch-size must be at least 1, got -3",
        ),
        (
            "--retry-delay",
            "-1",
            "--retry-delay must be at least 0, got -1",
        ),
        (
            "--max-failed-pct",
            "150",
            "--max-failed-pct must be at most 100, got 150",
        ),
    ] {
        let out = run(fx.wrapper_run(
            flag,
            &[
                "--tickers-csv",
                &csv,
                "--from",
                FROM,
                "--to",
                TO,
                flag,
                value,
            ],
        ));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(&format!("error: {message}")), "{flag}: {err}");
        assert!(!err.contains("COMPLETED"), "{flag}: {err}");
        assert!(!stdout(&out).contains("COMPLETED"), "{flag}");
    }
    assert_eq!(fx.sandbox.stats().data_requests, 0);
}

#[test]
fn a_range_not_over_yet_is_reported_as_such_not_as_success() {
    let fx = Fixture::with_faults(&[]);
    let csv = fx.universe(&["AAA"]);
    let out = run(fx.wrapper_run(
        "future",
        &[
            "--tickers-csv",
            &csv,
            "--from",
            "2099-01-05",
            "--to",
            "2099-01-09",
        ],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    let summary = stdout(&out);
    assert!(!summary.contains('✓'), "{summary}");
    assert!(summary.contains("✗ NOT YET AVAILABLE"), "{summary}");
    assert!(summary.contains("1 not yet available"), "{summary}");
    let failed = std::fs::read_to_string(fx.run_dir("future").join("failed_tickers.csv")).unwrap();
    assert!(
        failed.contains("AAA,pending,not_yet_available,"),
        "{failed}"
    );
    assert_eq!(
        fx.sandbox.stats().data_requests,
        0,
        "future days cost nothing"
    );
}

#[test]
fn a_script_error_never_prints_a_success_mark() {
    let fx = Fixture::with_faults(&[]);
    let script = fx.dir.path().join("broken.rhai");
    std::fs::write(
        &script,
        format!(
            "let h = spawn_batch([\"AAA\"], #{{outdir: \"{}\", from: \"{FROM}\", to: \"{TO}\"}});\n\
             wait(h);\n\
             let x = \"2024-01-31\" - 1;\n",
            fx.outdir().display()
        ),
    )
    .unwrap();
    let mut cmd = fx.barsmith();
    cmd.args([
        "run",
        "--progress",
        "none",
        "--base-url",
        &fx.sandbox.base_url(),
    ])
    .arg(&script);
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let summary = stdout(&out);
    assert!(!summary.contains('✓'), "{summary}");
    assert!(summary.contains("STOPPED BY A SCRIPT ERROR"), "{summary}");
}

#[test]
fn a_reused_run_dir_is_refused_and_left_as_it_was() {
    let fx = Fixture::with_faults(&[]);
    let csv = fx.universe(&["AAA"]);
    let args = [
        "--tickers-csv",
        &csv,
        "--from",
        FROM,
        "--to",
        TO,
        "--no-resume",
    ];
    let first = run(fx.wrapper_run("same", &args));
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let joblog = std::fs::read_to_string(fx.run_dir("same").join("joblog.jsonl")).unwrap();

    let again = run(fx.wrapper_run("same", &args));
    let err = stderr(&again);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(err.contains("already holds a run"), "{err}");
    assert_eq!(
        std::fs::read_to_string(fx.run_dir("same").join("joblog.jsonl")).unwrap(),
        joblog
    );
}

#[test]
fn a_rejected_key_shows_its_reason_even_without_progress() {
    let fx = Fixture::with_faults(&[]);
    let csv = fx.universe(&["AAA", "BBB"]);
    let args = [
        "--tickers-csv",
        &csv,
        "--from",
        FROM,
        "--to",
        TO,
        "--max-concurrent",
        "1",
    ];
    let mut cmd = fx.wrapper_run("r", &args);
    cmd.env("POLYGON_API_KEY", "not-the-sandbox-key");
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    // `--progress none` hides progress, never the reason for a halt.
    assert!(
        err.contains("halting: batch 1 hit an error fatal for the whole run:")
            && err.contains("401")
            && err.contains("Unknown API Key"),
        "{err}"
    );
}

#[test]
fn the_key_is_never_sent_in_clear_off_loopback() {
    // Refused before any connection: nothing is sent to this (non-loopback) address.
    let remote = "http://192.0.2.2:18080";
    let fx = Fixture::with_faults(&[]);
    let mut cmd = fx.barsmith();
    cmd.args(["ingest", "--tickers", "AAA", "--from", FROM, "--to", TO])
        .arg("--outdir")
        .arg(fx.outdir())
        .args(["--base-url", remote]);
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refusing to send the API key in clear text to http://192.0.2.2:18080")
            && err.contains("--allow-insecure-http"),
        "{err}"
    );
    assert!(stdout_has_setup_event(&out, "bad_input"));

    // Through a run: the first worker refuses, the run halts with that reason.
    let csv = fx.universe(&["AAA"]);
    let mut cmd = fx.barsmith();
    cmd.args(["run", "--progress", "none", "--run-dir"])
        .arg(fx.run_dir("insecure"))
        .args(["--base-url", remote])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai"))
        .args([
            "--tickers-csv",
            &csv,
            "--from",
            FROM,
            "--to",
            TO,
            "--outdir",
        ])
        .arg(fx.outdir());
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("refusing to send the API key in clear text"),
        "{err}"
    );
    let log = std::fs::read_to_string(fx.run_dir("insecure").join("joblog.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "not retried: {log}");
}

#[test]
fn a_persistent_500_opens_the_circuit_and_a_later_run_retries_it() {
    // 40 tickers, one answering 500 to its first 6 requests: with the defaults (8
    // tries per request, 2 attempts per batch, 3 passes) it used to cost 48 requests
    // and minutes of backoff. The breaker gives up after 3 identical errors, twice.
    let fx = Fixture::with_faults(&["T20=500:6"]);
    let names: Vec<String> = (0..40).map(|i| format!("T{i:02}")).collect();
    let csv = fx.universe(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let args = ["--tickers-csv", &csv, "--from", FROM, "--to", TO];
    let mut cmd = fx.wrapper_run("r1", &args);
    cmd.args(["--request-retries", "8"]);
    let out = run(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("circuit open for [\"T20\"]"), "{err}");
    assert_eq!(
        fx.sandbox.stats().by_ticker["T20"],
        6,
        "3 tries × 2 attempts"
    );
    let failed = std::fs::read_to_string(fx.run_dir("r1").join("failed_tickers.csv")).unwrap();
    let row = failed
        .lines()
        .find(|l| l.starts_with("T20,"))
        .expect("T20 listed");
    assert!(row.contains("retryable,server"), "{row}");
    assert!(
        row.contains("circuit open: the same error 3 times in a row"),
        "{row}"
    );
    assert_eq!(failed.lines().count(), 2, "only T20 failed: {failed}");

    // Nothing about the breaker is remembered: the next run retries T20, and the
    // server has recovered.
    let mut cmd = fx.wrapper_run("r2", &args);
    cmd.args(["--request-retries", "8"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn the_breaker_is_off_unless_asked_and_counts_only_identical_errors() {
    let fx = Fixture::with_faults(&["AAA=500:3", "BBB=500:2", "BBB=503:1"]);
    // Off: AAA rides out its three 500s.
    let out = run(fx.ingest(&["AAA"], FROM, TO));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // On: BBB's errors change (500, 500, 503), so not 3 in a row: it completes.
    let mut cmd = fx.ingest(&["BBB"], FROM, TO);
    cmd.args(["--breaker", "3"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // On, with the same error 3 times: gives up after 3 tries, circuit open.
    let fx = Fixture::with_faults(&["CCC=500"]);
    let mut cmd = fx.ingest(&["CCC"], FROM, TO);
    cmd.args(["--breaker", "3"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""circuit_open":true"#));
    assert_eq!(fx.sandbox.stats().by_ticker["CCC"], 3);
}
