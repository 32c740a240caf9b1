//! Batch runner tests against a fake worker: a small `/bin/sh` script that prints
//! contract-shaped events, hangs, crashes or exits with a given status depending on its
//! `--fake-*` flags. Every test is bounded in time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barsmith::batch::{
    BatchError, BatchOptions, BatchRunner, CancelFlag, JoblogEntry, ProgressMode, RunConfig,
    TickerStatus, WorkerCommand, create_default_run_dir,
};
use barsmith::ingest::WorkerJob;

const FAKE_WORKER: &str = r#"#!/bin/sh
mode=ok; tf=; pidfile=; code=0; delay=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tickers-file) tf=$2; shift;;
    --fake-mode) mode=$2; shift;;
    --fake-pidfile) pidfile=$2; shift;;
    --fake-code) code=$2; shift;;
    --fake-delay) delay=$2; shift;;
  esac
  shift
done
# Ignore SIGTERM before the pid is published, so a test's kill never races the trap.
case $mode in spin|hang) trap '' TERM;; esac
if [ -n "$pidfile" ]; then echo $$ > "$pidfile.tmp"; mv "$pidfile.tmp" "$pidfile"; fi
echo "fake worker pid $$ mode $mode key=${POLYGON_API_KEY:-none}" >&2
tickers=$(grep -v '^ticker$' "$tf")
ev() { printf '%s\n' "$1"; }
ok() {
  ev "{\"event\":\"ticker_started\",\"ticker\":\"$1\",\"from\":\"2024-01-02\",\"to\":\"2024-01-05\",\"missing\":[[\"2024-01-02\",\"2024-01-05\"]],\"ts\":\"2025-01-01T00:00:00Z\"}"
  ev "{\"event\":\"page\",\"ticker\":\"$1\",\"bars\":60}"
  ev "{\"event\":\"page\",\"ticker\":\"$1\",\"bars\":40}"
  ev "{\"event\":\"ticker_done\",\"ticker\":\"$1\",\"bars\":100,\"files\":1,\"requests\":2,\"duplicates_dropped\":0,\"reordered\":0,\"elapsed_ms\":5}"
}
fail() {
  ev "{\"event\":\"retry\",\"ticker\":\"$1\",\"attempt\":1,\"kind\":\"server\",\"reason\":\"HTTP 502\",\"delay_ms\":1}"
  ev "{\"event\":\"ticker_failed\",\"ticker\":\"$1\",\"class\":\"$2\",\"kind\":\"$3\",\"status\":$4,\"message\":\"$5\",\"attempts\":2}"
}
sleep "$delay"
case $mode in
  ok)
    for t in $tickers; do ok "$t"; done
    ev '{"event":"finished","ok":1,"skipped":0,"failed":0,"bars":100,"exit_code":0}'
    exit 0;;
  mixed)
    i=0
    for t in $tickers; do
      i=$((i+1))
      case $i in
        1) ok "$t";;
        2) fail "$t" retryable timeout null "request timed out after 8 attempts";;
        3) ev "{\"event\":\"ticker_skipped\",\"ticker\":\"$t\",\"reason\":\"complete\"}";;
        *) ;;
      esac
    done
    echo "not json at all" 
    exit 3;;
  fatal)
    set -- $tickers
    ok "$1"
    fail "$2" run unauthorized 401 "API key rejected"
    exit 4;;
  crash)
    set -- $tickers
    ok "$1"
    kill -9 $$;;
  exit)
    exit "$code";;
  refuse)
    echo "error: invalid value 'abc' for '--max-rps <RATE>'" >&2
    exit 2;;
  setup)
    ev '{"event":"setup_failed","kind":"store","message":"output folder /x is not writable: fix its permissions","exit_code":4}'
    exit 4;;
  hang)
    trap '' TERM
    sleep 30 &
    echo $! > "$pidfile.grandchild"
    set -- $tickers
    ok "$1"
    wait;;
  spin)
    trap '' TERM
    while :; do sleep 1; done;;
esac
"#;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    script: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let script = root.join("fake-worker.sh");
        std::fs::write(&script, FAKE_WORKER).unwrap();
        Fixture {
            _tmp: tmp,
            root,
            script,
        }
    }

    /// A quiet runner with a private cancel flag and a 1 s grace period. The script is run
    /// through `/bin/sh` (never exec'd directly: no ETXTBSY races between parallel tests).
    fn config(&self) -> RunConfig {
        let mut cfg = RunConfig::new(WorkerCommand {
            program: PathBuf::from("/bin/sh"),
            args_prefix: vec![self.script.display().to_string(), "ingest".into()],
        });
        cfg.run_dir = Some(self.root.join("run"));
        cfg.progress = ProgressMode::Quiet;
        cfg.grace = Duration::from_secs(1);
        cfg.cancel = CancelFlag::new();
        cfg
    }

    fn runner(&self) -> BatchRunner {
        BatchRunner::new(self.config()).unwrap()
    }

    fn opts(&self, fake: &[&str]) -> BatchOptions {
        BatchOptions {
            job: WorkerJob {
                outdir: self.root.join("data"),
                from: "2024-01-02".into(),
                to: "2024-01-05".into(),
                ..WorkerJob::default()
            },
            extra_args: fake.iter().map(|s| s.to_string()).collect(),
            ..BatchOptions::default()
        }
    }

    fn pidfile(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn tickers(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// True while the process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

fn read_pid(path: &Path) -> u32 {
    assert!(
        wait_until(Duration::from_secs(10), || path.exists()),
        "no pid file {}",
        path.display()
    );
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn results_are_parsed_per_ticker() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let h = runner
        .spawn(
            tickers(&["AAA", "BBB", "CCC", "DDD"]),
            fx.opts(&["--fake-mode", "mixed"]),
        )
        .unwrap();
    let r = runner.wait(&h).unwrap();
    assert_eq!((r.id, r.attempt), (1, 1));
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(r.signal, None);
    assert!(!r.timed_out && !r.fatal && !r.success());
    let status: Vec<TickerStatus> = r.tickers.iter().map(|t| t.status).collect();
    assert_eq!(
        status,
        [
            TickerStatus::Ok,
            TickerStatus::Failed,
            TickerStatus::Skipped,
            TickerStatus::NotRun
        ]
    );
    assert_eq!(r.tickers[0].bars, 100);
    let e = r.tickers[1].error.as_ref().unwrap();
    assert_eq!(
        (e.class.as_str(), e.kind.as_str(), e.status),
        ("retryable", "timeout", None)
    );
    assert_eq!(r.tickers[3].error.as_ref().unwrap().kind, "not_run");
    assert_eq!(r.bars, 100);
    assert_eq!(r.requests, 3);
    assert_eq!(r.retries, 1);
    assert_eq!(r.retryable_tickers(), ["BBB", "DDD"]);
    assert_eq!(r.status_text(), "failed(rc=3)");
    assert_eq!(runner.poll(&h), Some(r));
}

#[test]
fn a_clean_batch_succeeds() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let h = runner
        .spawn(tickers(&["AAA", "BBB", "AAA", " "]), fx.opts(&[]))
        .unwrap();
    assert_eq!(h.tickers, ["AAA", "BBB"]);
    let r = runner.wait(&h).unwrap();
    assert!(r.success(), "{r:?}");
    assert_eq!(r.bars, 200);
    assert_eq!(r.status_text(), "success");
    assert_eq!(runner.running(), 0);
}

#[test]
fn a_worker_that_refuses_its_setup_is_fatal_with_its_own_reason() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let refused = runner
        .spawn(
            tickers(&["AAA", "BBB"]),
            fx.opts(&["--fake-mode", "refuse"]),
        )
        .unwrap();
    let setup = runner
        .spawn(tickers(&["AAA"]), fx.opts(&["--fake-mode", "setup"]))
        .unwrap();

    // Exit 2 with no event: the reason is the worker's own `error:` line.
    let r = runner.wait(&refused).unwrap();
    assert!(r.fatal, "exit 2 before any ticker is a setup error");
    assert!(r.retryable_tickers().is_empty(), "{r:?}");
    let e = r.tickers[1].error.as_ref().unwrap();
    assert_eq!((e.class.as_str(), e.kind.as_str()), ("run", "setup"));
    assert_eq!(e.message, "invalid value 'abc' for '--max-rps <RATE>'");

    // A `setup_failed` event carries its kind and message to every ticker.
    let r = runner.wait(&setup).unwrap();
    assert!(r.fatal);
    let e = r.tickers[0].error.as_ref().unwrap();
    assert_eq!((e.class.as_str(), e.kind.as_str()), ("run", "store"));
    assert!(e.message.contains("not writable"), "{e:?}");
}

#[test]
fn exit_code_and_signal_are_reported() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let exit = runner
        .spawn(
            tickers(&["AAA"]),
            fx.opts(&["--fake-mode", "exit", "--fake-code", "1"]),
        )
        .unwrap();
    let crash = runner
        .spawn(tickers(&["AAA", "BBB"]), fx.opts(&["--fake-mode", "crash"]))
        .unwrap();
    let fatal = runner
        .spawn(
            tickers(&["AAA", "BBB", "CCC"]),
            fx.opts(&["--fake-mode", "fatal"]),
        )
        .unwrap();

    let r = runner.wait(&exit).unwrap();
    assert_eq!((r.exit_code, r.signal), (Some(1), None));
    assert_eq!(r.tickers[0].status, TickerStatus::NotRun);
    assert!(
        r.tickers[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("status 1")
    );

    let r = runner.wait(&crash).unwrap();
    assert_eq!((r.exit_code, r.signal), (None, Some(9)));
    assert_eq!(r.tickers[0].status, TickerStatus::Ok);
    assert_eq!(r.tickers[1].status, TickerStatus::NotRun);
    assert_eq!(r.status_text(), "failed(signal 9)");

    let r = runner.wait(&fatal).unwrap();
    assert_eq!(r.exit_code, Some(4));
    assert!(r.fatal);
    assert_eq!(r.tickers[1].error.as_ref().unwrap().kind, "unauthorized");
    assert_eq!(r.tickers[2].error.as_ref().unwrap().class, "run");
    assert!(r.retryable_tickers().is_empty());
}

#[test]
fn timeout_kills_a_hung_worker_and_its_process_group() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let pidfile = fx.pidfile("hang.pid");
    let mut opts = fx.opts(&[
        "--fake-mode",
        "hang",
        "--fake-pidfile",
        pidfile.to_str().unwrap(),
    ]);
    opts.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let h = runner.spawn(tickers(&["AAA", "BBB"]), opts).unwrap();
    let grandchild = read_pid(&PathBuf::from(format!("{}.grandchild", pidfile.display())));
    assert!(alive(grandchild));
    let r = runner.wait(&h).unwrap();
    let took = started.elapsed();
    // TERM is ignored by the fake, so it takes the timeout plus the whole grace period.
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(r.timed_out);
    assert_eq!(r.signal, Some(9));
    assert_eq!(r.tickers[0].status, TickerStatus::Ok);
    assert_eq!(r.tickers[1].status, TickerStatus::NotRun);
    assert!(
        r.tickers[1]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("timed out")
    );
    assert!(!alive(h.pid.unwrap()));
    assert!(
        wait_until(Duration::from_secs(3), || !alive(grandchild)),
        "grandchild {grandchild} survived"
    );
    let log = std::fs::read_to_string(&r.log_path).unwrap();
    assert!(log.contains("SIGTERM to the process group"), "{log}");
    assert!(log.contains("SIGKILL"), "{log}");
}

#[test]
fn wait_any_returns_the_first_finished() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let slow = runner
        .spawn(tickers(&["SLOW"]), fx.opts(&["--fake-delay", "2"]))
        .unwrap();
    let fast = runner
        .spawn(tickers(&["FAST"]), fx.opts(&["--fake-delay", "0.2"]))
        .unwrap();
    assert_eq!(runner.running(), 2);
    let handles = vec![slow.clone(), fast];
    let (i, r) = runner
        .wait_any(&handles, Some(Duration::from_secs(10)))
        .unwrap()
        .unwrap();
    assert_eq!(i, 1);
    assert_eq!(r.tickers[0].ticker, "FAST");
    let only_slow = std::slice::from_ref(&slow);
    assert_eq!(
        runner
            .wait_any(only_slow, Some(Duration::from_millis(100)))
            .unwrap(),
        None
    );
    let (i, r) = runner
        .wait_any(only_slow, Some(Duration::from_secs(10)))
        .unwrap()
        .unwrap();
    assert_eq!((i, r.tickers[0].ticker.as_str()), (0, "SLOW"));
    assert_eq!(runner.wait_any(&[], None).unwrap(), None);
}

#[test]
fn cancel_interrupts_wait_and_shutdown_leaves_no_process() {
    let fx = Fixture::new();
    let cfg = fx.config();
    let cancel = cfg.cancel.clone();
    let runner = BatchRunner::new(cfg).unwrap();
    let pidfile = fx.pidfile("spin.pid");
    let h = runner
        .spawn(
            tickers(&["AAA"]),
            fx.opts(&[
                "--fake-mode",
                "spin",
                "--fake-pidfile",
                pidfile.to_str().unwrap(),
            ]),
        )
        .unwrap();
    let pid = read_pid(&pidfile);
    let setter = {
        let cancel = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cancel.cancel();
        })
    };
    let started = Instant::now();
    let err = runner.wait(&h).unwrap_err();
    assert!(matches!(err, BatchError::Cancelled), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    setter.join().unwrap();
    assert!(matches!(
        runner.spawn(tickers(&["BBB"]), fx.opts(&[])),
        Err(BatchError::Cancelled)
    ));

    runner.shutdown();
    assert_eq!(runner.running(), 0);
    assert!(!alive(pid), "worker {pid} survived shutdown");
    let r = runner.poll(&h).unwrap();
    assert!(r.cancelled && !r.timed_out);
    assert_eq!(r.tickers[0].status, TickerStatus::NotRun);
    runner.shutdown(); // idempotent
    cancel.reset();
    assert!(matches!(
        runner.spawn(tickers(&["BBB"]), fx.opts(&[])),
        Err(BatchError::ShutDown)
    ));
}

#[test]
fn kill_stops_one_batch() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let pidfile = fx.pidfile("kill.pid");
    let h = runner
        .spawn(
            tickers(&["AAA"]),
            fx.opts(&[
                "--fake-mode",
                "spin",
                "--fake-pidfile",
                pidfile.to_str().unwrap(),
            ]),
        )
        .unwrap();
    let pid = read_pid(&pidfile);
    assert!(runner.poll(&h).is_none());
    assert!(runner.kill(&h));
    let r = runner.wait(&h).unwrap();
    assert!(r.killed);
    assert_eq!(r.signal, Some(9));
    assert!(!alive(pid));
    assert!(!runner.kill(&h));
}

#[test]
fn records_joblog_failed_tickers_run_json_and_logs() {
    let fx = Fixture::new();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut cfg = fx.config();
    let sink = lines.clone();
    cfg.progress = ProgressMode::Lines(Arc::new(move |l: &str| {
        sink.lock().unwrap().push(l.to_string())
    }));
    let runner = BatchRunner::new(cfg).unwrap();
    runner.set_total(2, 5);

    let a = runner
        .spawn(
            tickers(&["AAA", "BBB", "CCC", "DDD"]),
            fx.opts(&["--fake-mode", "mixed"]),
        )
        .unwrap();
    let r = runner.wait(&a).unwrap();
    // Retry the incomplete ones as attempt 2 of the same batch: BBB now works, DDD fails.
    let mut retry = fx.opts(&["--fake-mode", "mixed"]);
    retry.id = Some(r.id);
    let b = runner.spawn(tickers(&["BBB", "DDD"]), retry).unwrap();
    assert_eq!((b.id, b.attempt), (1, 2));
    runner.wait(&b).unwrap();
    let c = runner.spawn(tickers(&["EEE"]), fx.opts(&[])).unwrap();
    assert_eq!((c.id, c.attempt), (2, 1));
    runner.wait(&c).unwrap();

    // Distinct tickers: BBB and DDD went twice, still 5 of them. With no pass plan
    // a failed ticker is failed for good, so all are settled; the run has not ended:
    // not 100%.
    let status = runner.status_line();
    assert!(
        status.starts_with("Progress 99% | ETA 1s | elapsed "),
        "{status}"
    );
    assert!(
        status.ends_with("| pass 1 | tickers 4/5, 1 failed"),
        "{status}"
    );

    let flags = BTreeMap::from([("batch_size".to_string(), serde_json::json!(25))]);
    let start = jiff::Timestamp::now();
    let summary = runner
        .finish("scripts/wrapper.rhai", &flags, start, 3)
        .unwrap();
    let dir = runner.run_dir();

    let joblog: Vec<JoblogEntry> = std::fs::read_to_string(dir.join("joblog.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(joblog.len(), 3);
    assert_eq!(
        (joblog[0].id, joblog[0].attempt, joblog[0].exit),
        (1, 1, Some(3))
    );
    assert_eq!(
        (
            joblog[0].tickers_ok,
            joblog[0].tickers_failed,
            joblog[0].tickers_not_run
        ),
        (1, 2, 1)
    );
    assert_eq!(joblog[0].log, "batch-0001.attempt-1.log");
    assert_eq!(
        (joblog[1].attempt, joblog[2].id, joblog[2].exit),
        (2, 2, Some(0))
    );

    let csv = std::fs::read_to_string(dir.join("failed_tickers.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "ticker,class,kind,message,from,to");
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[1].starts_with("DDD,retryable,timeout,"), "{csv}");
    assert!(rows[1].ends_with(",2024-01-02,2024-01-05"), "{csv}");
    let universe = barsmith::ticker::read_ticker_file(&dir.join("failed_tickers.csv")).unwrap();
    assert_eq!(universe, ["DDD"]);

    assert_eq!(
        (summary.batches_ok, summary.batches_failed, summary.attempts),
        (1, 1, 3)
    );
    assert_eq!(
        (
            summary.tickers_ok,
            summary.tickers_skipped,
            summary.tickers_failed
        ),
        (3, 1, 1)
    );
    let text = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(text.contains("1/2 batches OK | 1 failed"), "{text}");
    assert!(text.contains("failed_tickers.csv"), "{text}");

    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["script"], "scripts/wrapper.rhai");
    assert_eq!(run["flags"]["batch_size"], 25);
    assert_eq!(run["exit"], 3);
    assert_eq!(run["barsmith_version"], barsmith::VERSION);
    assert!(run["end"].is_string());

    let log = std::fs::read_to_string(dir.join("batch-0001.attempt-1.log")).unwrap();
    assert!(log.starts_with("== BATCH 0001 attempt 1 =="), "{log}");
    assert!(log.contains("tickers (4): AAA,BBB,CCC,DDD"), "{log}");
    assert!(log.contains(r#""event":"ticker_done""#), "{log}");
    assert!(log.contains("fake worker pid"), "{log}");
    assert!(log.contains("not json at all"), "{log}");
    assert!(log.contains("finished: failed(rc=3)"), "{log}");
    let tickers_file =
        std::fs::read_to_string(dir.join("batch-0001.attempt-2.tickers.csv")).unwrap();
    assert_eq!(tickers_file, "ticker\nBBB\nDDD\n");

    let lines = lines.lock().unwrap();
    assert!(
        lines[0].starts_with("Batch 0001: failed(rc=3) ("),
        "{lines:?}"
    );
    // set_total(2, ..) announced two batches; the retry attempt adds none.
    assert!(
        lines[0].ends_with("[2/4 tickers failed] | pass 1: 1/2 batches"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("Batch 0001 attempt 2: failed(rc=3)")
            && lines[1].ends_with("| pass 1: 1/2 batches"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("Batch 0002: success") && lines[2].ends_with("pass 1: 2/2 batches"),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("100")), "{lines:?}");
}

#[test]
fn api_key_goes_through_env_only() {
    const KEY: &str = "sk-test-SECRET-4242";
    let fx = Fixture::new();
    let mut cfg = fx.config();
    cfg.env.push(("POLYGON_API_KEY".into(), KEY.into()));
    let runner = BatchRunner::new(cfg).unwrap();
    let h = runner
        .spawn(tickers(&["AAA"]), fx.opts(&["--fake-delay", "1"]))
        .unwrap();
    let pid = h.pid.unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let contains = |hay: &[u8]| hay.windows(KEY.len()).any(|w| w == KEY.as_bytes());
    assert!(String::from_utf8_lossy(&cmdline).contains("--tickers-file"));
    assert!(!contains(&cmdline), "key in argv");
    assert!(
        contains(&environ),
        "the worker did not get the key in its environment"
    );
    let r = runner.wait(&h).unwrap();
    assert!(r.success());

    let mut bad = fx.opts(&[]);
    bad.extra_args = vec![format!("--api-key={KEY}")];
    assert!(matches!(
        runner.spawn(tickers(&["AAA"]), bad),
        Err(BatchError::InvalidOptions(_))
    ));

    let flags = BTreeMap::from([("key".to_string(), serde_json::json!(KEY))]);
    runner
        .finish("s.rhai", &flags, jiff::Timestamp::now(), 0)
        .unwrap();
    let log = std::fs::read_to_string(&r.log_path).unwrap();
    assert!(log.contains("key=<redacted>"), "{log}");
    for entry in std::fs::read_dir(runner.run_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(KEY), "key found in {}", path.display());
    }
}

#[test]
fn invalid_batches_are_refused() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let refused = |t: &[&str], o: BatchOptions| {
        matches!(
            runner.spawn(tickers(t), o),
            Err(BatchError::InvalidOptions(_))
        )
    };
    assert!(refused(&[], fx.opts(&[])));
    assert!(refused(&["../etc"], fx.opts(&[])));
    assert!(refused(&["AAA"], {
        let mut o = fx.opts(&[]);
        o.job.from = "2024-13-01".into();
        o
    }));
    assert!(refused(&["AAA"], {
        let mut o = fx.opts(&[]);
        o.job.outdir = PathBuf::new();
        o
    }));
    let h = runner
        .spawn(
            tickers(&["AAA"]),
            BatchOptions {
                id: Some(7),
                ..fx.opts(&[])
            },
        )
        .unwrap();
    assert!(refused(
        &["AAA"],
        BatchOptions {
            id: Some(7),
            attempt: Some(1),
            ..fx.opts(&[])
        }
    ));
    runner.wait(&h).unwrap();
    let other = fx.runner_in("other");
    assert!(matches!(other.wait(&h), Err(BatchError::UnknownHandle(_))));
}

impl Fixture {
    fn runner_in(&self, name: &str) -> BatchRunner {
        let mut cfg = self.config();
        cfg.run_dir = Some(self.root.join(name));
        BatchRunner::new(cfg).unwrap()
    }
}

#[test]
fn missing_worker_program_is_a_spawn_error() {
    let fx = Fixture::new();
    let mut cfg = fx.config();
    cfg.worker.program = fx.root.join("no-such-worker");
    let runner = BatchRunner::new(cfg).unwrap();
    let err = runner.spawn(tickers(&["AAA"]), fx.opts(&[])).unwrap_err();
    assert!(matches!(err, BatchError::Spawn { .. }), "{err}");
}

#[test]
fn default_run_dirs_never_collide() {
    let fx = Fixture::new();
    let a = create_default_run_dir(&fx.root.join("runs")).unwrap();
    let b = create_default_run_dir(&fx.root.join("runs")).unwrap();
    assert_ne!(a, b);
    assert!(a.is_dir() && b.is_dir());
}

const CHILD_ENV: &str = "BARSMITH_BATCH_TEST_CHILD_DIR";

/// Not a test on its own: the body of the parent-death test's child process.
#[test]
fn child_mode_runner_that_gets_killed() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let fx = Fixture {
        _tmp: tempfile::tempdir().unwrap(),
        root: dir.clone(),
        script: dir.join("fake-worker.sh"),
    };
    let runner = fx.runner_in("child-run");
    let pidfile = dir.join("orphan.pid");
    // Spawned from this test thread, which lives on; PDEATHSIG must still fire when the
    // whole process is SIGKILLed.
    let _h = runner
        .spawn(
            tickers(&["AAA"]),
            fx.opts(&[
                "--fake-mode",
                "spin",
                "--fake-pidfile",
                pidfile.to_str().unwrap(),
            ]),
        )
        .unwrap();
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn killing_the_parent_kills_the_worker() {
    let fx = Fixture::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_mode_runner_that_gets_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &fx.root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = read_pid(&fx.root.join("orphan.pid"));
    assert!(alive(pid));
    child.kill().unwrap(); // SIGKILL: no destructor, no shutdown runs in the parent
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || !alive(pid)),
        "worker {pid} outlived its parent"
    );
}

#[test]
fn spawning_from_a_short_lived_thread_is_safe() {
    // PDEATHSIG follows the forking *thread*; the runner forks on its own spawner thread,
    // so a worker outlives the (script) thread that asked for it.
    let fx = Fixture::new();
    let runner = Arc::new(fx.runner());
    let h = {
        let (runner, opts) = (runner.clone(), fx.opts(&["--fake-delay", "0.5"]));
        std::thread::spawn(move || runner.spawn(tickers(&["AAA"]), opts).unwrap())
            .join()
            .unwrap()
    };
    let r = runner.wait(&h).unwrap();
    assert!(r.success(), "{r:?}");
}

#[test]
fn a_run_folder_that_holds_a_run_is_never_mixed_into() {
    let fx = Fixture::new();
    {
        let runner = fx.runner();
        let h = runner.spawn(tickers(&["AAA"]), fx.opts(&[])).unwrap();
        runner.wait(&h).unwrap();
    }
    let joblog = fx.root.join("run").join("joblog.jsonl");
    let before = std::fs::read_to_string(&joblog).unwrap();
    match BatchRunner::new(fx.config()) {
        Err(BatchError::Setup(m)) => {
            assert!(m.contains("already holds a run"), "{m}");
            assert!(m.contains("--run-dir"), "names the fix: {m}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a used run folder was accepted"),
    }
    assert_eq!(std::fs::read_to_string(&joblog).unwrap(), before);
}

#[test]
fn a_rate_that_does_not_parse_stops_before_any_worker() {
    let fx = Fixture::new();
    let runner = fx.runner();
    let mut opts = fx.opts(&[]);
    opts.job.max_rps = Some("5/mn".into());
    match runner.spawn(tickers(&["AAA"]), opts) {
        Err(BatchError::Setup(m)) => assert!(m.contains(r#"max_rps "5/mn""#), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a worker was started with a bad rate"),
    }
    let logs: Vec<_> = std::fs::read_dir(fx.root.join("run"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .collect();
    assert!(logs.is_empty(), "no worker may start: {logs:?}");
}
