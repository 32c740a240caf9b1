//! The run report (`report.html`): written by every `barsmith run`, also one that ends
//! with failures, and by `barsmith report`; loaded in headless Chromium, which must run
//! its script without errors, fetch nothing, and draw one timeline row per attempt, one
//! group per failure class and kind, and one heatmap cell per ticker-year.
//!
//! Chromium is `BARSMITH_CHROMIUM` when set, else `chromium` or `chromium-browser` on
//! the PATH; `.ci/run` installs Debian's package. Without it these tests fail, saying so.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, stderr};

/// Longest any subprocess of these tests may take.
const LIMIT: Duration = Duration::from_secs(90);

/// Runs `cmd` to completion, killing it (and failing the test) after `LIMIT`.
fn bounded(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} took more than {LIMIT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The Chromium binary, or a failure naming the fix.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("BARSMITH_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!(
        "no chromium or chromium-browser on the PATH: the report tests need a headless \
         browser; run .ci/run or `apt-get install chromium` (or set BARSMITH_CHROMIUM)"
    );
}

/// Headless Chromium on `page` with `args`, no network (every host unresolvable,
/// background networking off) and a private profile.
fn browse(page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    let out = bounded(cmd);
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    out
}

/// The DOM after the page's script ran.
fn dom(page: &Path) -> String {
    String::from_utf8(browse(page, &["--dump-dom"]).stdout).unwrap()
}

/// The value of `name="..."` on the first tag starting with `tag`.
fn attr(dom: &str, tag: &str, name: &str) -> Option<String> {
    let start = dom.find(tag)?;
    let open = &dom[start..start + dom[start..].find('>')?];
    let at = open.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(open[at..at + open[at..].find('"')?].to_string())
}

/// Every `name="..."` value in `html`, in order.
fn attrs<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!(" {name}=\"");
    html.split(key.as_str())
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect()
}

/// Joblog lines of a run folder.
fn attempts(run_dir: &Path) -> usize {
    std::fs::read_to_string(run_dir.join("joblog.jsonl"))
        .unwrap()
        .lines()
        .count()
}

/// The run every browser check uses: six tickers in batches of two, over two years,
/// with a hung request (the batch times out, its retry succeeds), a ticker not
/// entitled (403), one whose server errors never clear and one rate-limited once.
fn run_with_failures(fx: &Fixture) -> (Output, PathBuf) {
    let csv = fx.universe(&["AAA", "HNG", "BAD", "FLK", "RTY", "ZZZ"]);
    let cmd = fx.wrapper_run(
        "r",
        &[
            "--tickers-csv",
            &csv,
            "--from",
            "2024-12-01",
            "--to",
            "2025-01-31",
            "--batch-size",
            "2",
            "--max-concurrent",
            "3",
            "--passes",
            "1",
            "--batch-timeout",
            "3",
            "--request-timeout",
            "60",
            "--max-rps",
            "200/s",
        ],
    );
    (bounded(cmd), fx.run_dir("r"))
}

#[test]
fn a_run_with_failures_writes_a_report_the_browser_draws_in_full() {
    chromium(); // fail first, not after the run, when there is no browser
    let fx = Fixture::with_faults(&["HNG=hang:1", "BAD=403", "FLK=500", "RTY=429:1"]);
    let (out, run_dir) = run_with_failures(&fx);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "tickers still missing: {err}");
    let page = run_dir.join("report.html");
    assert!(err.contains("report: "), "{err}");
    assert!(page.is_file(), "every run writes report.html: {err}");

    let dom = dom(&page);
    assert_eq!(
        attr(&dom, "<body", "data-ready").as_deref(),
        Some("1"),
        "{dom}"
    );
    assert_eq!(attr(&dom, "<html", "data-errors"), None, "script errors");
    assert_eq!(attr(&dom, "<body", "data-resources").as_deref(), Some("0"));

    // Timeline: one row per attempt; the hung batch timed out and was retried.
    let n = attempts(&run_dir);
    assert!(n >= 4, "three batches and at least one retry");
    assert_eq!(dom.matches("class=\"attempt ").count(), n);
    assert_eq!(attr(&dom, "<body", "data-attempts"), Some(n.to_string()));
    let outcomes = attrs(&dom, "data-outcome");
    assert!(outcomes.contains(&"timeout"), "{outcomes:?}");
    assert!(outcomes.contains(&"failed"), "{outcomes:?}");
    assert!(dom.contains("TIMEOUT"));
    assert!(
        attrs(&dom, "data-attempt").contains(&"2"),
        "a retry is drawn"
    );

    // Rates against the run's --max-rps.
    assert_eq!(
        attr(&dom, "<svg id=\"requests-rate\"", "data-budget").as_deref(),
        Some("200")
    );
    assert!(dom.contains("budget (--max-rps): 200/s"));

    // Failures: one group per class and kind, linked to existing logs.
    let groups: BTreeSet<(String, String)> = attrs(&dom, "data-class")
        .into_iter()
        .zip(attrs(&dom, "data-kind"))
        .map(|(c, k)| (c.to_string(), k.to_string()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("retryable", "server"),
        ("retryable", "not_run"),
        ("ticker", "not_entitled"),
    ]
    .iter()
    .map(|(c, k)| (c.to_string(), k.to_string()))
    .collect();
    assert_eq!(groups, expected, "{dom}");
    assert_eq!(attr(&dom, "<body", "data-failure-groups"), Some("3".into()));
    let links = attrs(&dom, "href");
    assert!(!links.is_empty());
    for href in &links {
        assert!(!href.contains(':'), "relative links only: {href}");
        assert!(run_dir.join(href).is_file(), "{href} is a log of the run");
    }

    // Heatmap: six tickers by two years; the two that never got data come first.
    assert_eq!(dom.matches("class=\"cell ").count(), 12);
    assert_eq!(attr(&dom, "<body", "data-cells"), Some("12".into()));
    assert_eq!(
        dom.matches("class=\"cell missing\"").count(),
        4,
        "BAD and FLK"
    );
    let rows = attrs(&dom, "class=\"t\" title");
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[..2], ["BAD", "FLK"], "incomplete tickers first");

    // The screenshot: a real PNG of the drawn page.
    let shot = fx.dir.path().join("report.png");
    browse(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600",
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{}",
        png.len()
    );

    // `barsmith report` rewrites it elsewhere, its links still reaching the logs.
    let elsewhere = fx.dir.path().join("out").join("r.html");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    let mut cmd = fx.barsmith();
    cmd.arg("report").arg(&run_dir).arg("-o").arg(&elsewhere);
    let out = bounded(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(&elsewhere).unwrap();
    let links = attrs(&html, "href");
    assert_eq!(links.len(), attrs(&dom, "href").len());
    for href in links {
        assert!(href.starts_with("../runs/r/batch-"), "{href}");
        assert!(elsewhere.parent().unwrap().join(href).is_file(), "{href}");
    }
}

#[test]
fn a_report_that_cannot_be_written_is_a_warning_and_the_exit_status_stays() {
    let fx = Fixture::with_faults(&[]);
    let csv = fx.universe(&["AAA"]);
    // A folder where the page should go: the rename onto it fails.
    std::fs::create_dir_all(fx.run_dir("r").join("report.html").join("x")).unwrap();
    let cmd = fx.wrapper_run(
        "r",
        &[
            "--tickers-csv",
            &csv,
            "--from",
            "2025-01-02",
            "--to",
            "2025-01-03",
        ],
    );
    let out = bounded(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: cannot write the run report"),
        "{err}"
    );
    // The summary is on stdout (progress and warnings on stderr).
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("COMPLETED"), "{summary}");
}

#[test]
fn report_refuses_a_folder_without_a_run() {
    let fx = Fixture::with_faults(&[]);
    let mut cmd = fx.barsmith();
    cmd.arg("report").arg(fx.dir.path());
    let out = bounded(cmd);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("is not a run folder (no joblog.jsonl)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_run_halted_by_a_rejected_key_still_writes_its_report() {
    let fx = Fixture::with_faults(&["*=401"]);
    let csv = fx.universe(&["AAA", "BBB"]);
    let cmd = fx.wrapper_run(
        "r",
        &[
            "--tickers-csv",
            &csv,
            "--from",
            "2025-01-02",
            "--to",
            "2025-01-03",
        ],
    );
    let out = bounded(cmd);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    let html = std::fs::read_to_string(fx.run_dir("r").join("report.html")).expect(&err);
    assert_eq!(
        html.matches("class=\"attempt ").count(),
        attempts(&fx.run_dir("r"))
    );
    assert!(html.contains("data-outcome=\"fatal\""), "{html}");
    assert!(html.contains("data-class=\"run\""), "{html}");
}
