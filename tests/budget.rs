//! The machine-wide request budget: separate `Budget` handles (as separate processes
//! hold) and separate processes share one schedule per key.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use barsmith::budget::{Budget, Rate, default_state_dir};
use barsmith::secret::ApiKey;

/// Selects what the re-executed test binary does in [`child_entry`].
const CHILD_ENV: &str = "BARSMITH_BUDGET_TEST_CHILD";

fn key() -> ApiKey {
    ApiKey::new("budget-test-key")
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn rate_parses_the_documented_forms() {
    let r = |s: &str| s.parse::<Rate>().unwrap().per_second();
    assert_eq!(r("50"), 50.0);
    assert_eq!(r("50/s"), 50.0);
    assert_eq!(r(" 5/min "), 5.0 / 60.0);
    assert_eq!(r("0.5"), 0.5);
    assert_eq!(r("360/h"), 0.1);
    assert_eq!(Rate::default(), Rate(50.0));
    assert_eq!(Rate::FREE_PLAN.interval(), Duration::from_secs(12));
    assert_eq!("5/min".parse::<Rate>().unwrap().to_string(), "5/min");
    assert_eq!("50".parse::<Rate>().unwrap().to_string(), "50/s");
    for bad in ["", "0", "-1", "fast", "5/day", "inf", "NaN"] {
        let e = bad.parse::<Rate>().unwrap_err();
        assert!(e.to_string().contains("5/min"), "{bad}: {e}");
    }
}

#[test]
fn budget_file_is_named_by_key_fingerprint_not_key() {
    let dir = tempfile::tempdir().unwrap();
    let b = Budget::open(&dir.path().join("nested"), &key(), Rate(10.0)).unwrap();
    let name = b.path().file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(name, format!("budget-{}.gcra", key().fingerprint()));
    assert!(!name.contains("budget-test-key"));
}

#[tokio::test]
async fn two_handles_on_one_state_dir_share_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let rate = Rate(20.0); // 50 ms apart
    let a = Budget::open(dir.path(), &key(), rate).unwrap();
    let b = Budget::open(dir.path(), &key(), rate).unwrap();
    let t = Instant::now();
    let run = |h: Budget| async move {
        for _ in 0..4 {
            h.acquire().await.unwrap();
        }
    };
    tokio::join!(run(a), run(b));
    let took = t.elapsed();
    // 8 acquisitions at 20/s: the first is immediate, then 7 × 50 ms.
    assert!(took >= Duration::from_millis(345), "8 slots in {took:?}");
    assert!(took < Duration::from_millis(1500), "8 slots in {took:?}");
}

#[tokio::test]
async fn clones_of_one_handle_share_the_schedule_too() {
    let dir = tempfile::tempdir().unwrap();
    let a = Budget::open(dir.path(), &key(), Rate(20.0)).unwrap();
    let t = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            tokio::spawn({
                let a = a.clone();
                async move { a.acquire().await.unwrap() }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        t.elapsed() >= Duration::from_millis(245),
        "6 slots in {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn other_keys_have_their_own_budget() {
    let dir = tempfile::tempdir().unwrap();
    let a = Budget::open(dir.path(), &ApiKey::new("key-one"), Rate(20.0)).unwrap();
    let b = Budget::open(dir.path(), &ApiKey::new("key-two"), Rate(20.0)).unwrap();
    assert_ne!(a.path(), b.path());
    let t = Instant::now();
    let run = |h: Budget| async move {
        for _ in 0..4 {
            h.acquire().await.unwrap();
        }
    };
    tokio::join!(run(a), run(b));
    // Each key: 3 × 50 ms, in parallel.
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(145) && took < Duration::from_millis(300),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_penalty_seen_by_one_handle_delays_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let a = Budget::open(dir.path(), &key(), Rate(1000.0)).unwrap();
    let b = Budget::open(dir.path(), &key(), Rate(1000.0)).unwrap();
    b.acquire().await.unwrap();
    let t = Instant::now();
    a.penalize(Duration::from_millis(300));
    b.acquire().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(290),
        "{:?}",
        t.elapsed()
    );
    // A smaller penalty never pulls the schedule back.
    let t = Instant::now();
    a.penalize(Duration::from_millis(200));
    a.penalize(Duration::from_millis(10));
    b.acquire().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn a_damaged_state_file_is_treated_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let b = Budget::open(dir.path(), &key(), Rate(1000.0)).unwrap();
    std::fs::write(b.path(), "garbage\n").unwrap();
    let t = Instant::now();
    b.acquire().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(100));
    // A schedule years ahead (clock jump, bad write) is ignored, not waited for.
    std::fs::write(
        b.path(),
        format!("{}\n", now_ns() + 10 * 365 * 86_400 * 1_000_000_000),
    )
    .unwrap();
    let t = Instant::now();
    b.acquire().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(100));
}

/// Runs this test binary again in a child mode, with `envs`.
fn child(mode: &str, envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// The child side of the multi-process tests; a no-op in a normal test run.
#[test]
fn child_entry() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("acquire") => {
            let dir = std::env::var("CHILD_DIR").unwrap();
            let start: u128 = std::env::var("CHILD_START_NS").unwrap().parse().unwrap();
            let n: usize = std::env::var("CHILD_N").unwrap().parse().unwrap();
            let rate: Rate = std::env::var("CHILD_RATE").unwrap().parse().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async {
                let b = Budget::open(Path::new(&dir), &key(), rate).unwrap();
                // Start together with the other process, so the two contend.
                let wait = start.saturating_sub(now_ns());
                tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
                for _ in 0..n {
                    b.acquire().await.unwrap();
                    println!("ACQ {}", now_ns());
                }
            });
        }
        Ok("state_dir") => println!("DIR {}", default_state_dir().display()),
        _ => {}
    }
}

#[test]
fn processes_sharing_a_key_stay_within_the_rate_together() {
    let dir = tempfile::tempdir().unwrap();
    let (n, interval_ms) = (8usize, 25u128);
    let start = now_ns() + 400_000_000;
    let envs = [
        ("CHILD_DIR", dir.path().display().to_string()),
        ("CHILD_START_NS", start.to_string()),
        ("CHILD_N", n.to_string()),
        ("CHILD_RATE", "40/s".to_string()),
    ];
    let procs: Vec<_> = (0..2)
        .map(|_| {
            child("acquire", &envs)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut times: Vec<u128> = Vec::new();
    let mut per_proc = Vec::new();
    for p in procs {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mine: Vec<u128> = text
            .lines()
            .filter_map(|l| l.split_once("ACQ ").map(|(_, t)| t))
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(mine.len(), n, "{text}");
        per_proc.push(mine.clone());
        times.extend(mine);
    }
    times.sort();
    let ms = |ns: u128| ns / 1_000_000;
    // Together, 2n acquisitions at 40/s span at least (2n − 1) × 25 ms ...
    assert!(
        ms(times[2 * n - 1] - times[0]) + 20 >= (2 * n as u128 - 1) * interval_ms,
        "{times:?}"
    );
    // ... and no window of k slots is shorter than (k − 1) × 25 ms (minus wake-up jitter).
    for i in 0..times.len() {
        for j in i + 2..times.len() {
            let span = ms(times[j] - times[i]);
            assert!(
                span + 20 >= (j - i) as u128 * interval_ms,
                "slots {i}..{j} only {span} ms apart"
            );
        }
    }
    // They really ran at the same time (interleaved), not one after the other.
    assert!(per_proc[0][0] < per_proc[1][n - 1] && per_proc[1][0] < per_proc[0][n - 1]);
}

#[test]
fn default_state_dir_follows_the_environment() {
    let run = |envs: &[(&str, &str)]| {
        let mut cmd = child("state_dir", &[]);
        for v in ["BARSMITH_STATE_DIR", "XDG_STATE_HOME", "HOME"] {
            cmd.env_remove(v);
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
        out.lines()
            .find_map(|l| l.split_once("DIR ").map(|(_, d)| d))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        run(&[
            ("BARSMITH_STATE_DIR", "/s"),
            ("XDG_STATE_HOME", "/x"),
            ("HOME", "/h")
        ]),
        "/s"
    );
    assert_eq!(
        run(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]),
        "/x/barsmith"
    );
    assert_eq!(
        run(&[("BARSMITH_STATE_DIR", ""), ("HOME", "/h")]),
        "/h/.local/state/barsmith"
    );
}
