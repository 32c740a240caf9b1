//! `barsmith demo`, the README's first command: it must work from any folder (with the
//! embedded wrapper), show retries and the automatic second pass, end complete, and a
//! re-run must make no data request.

use std::process::Command;

fn demo(dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_barsmith"))
        .current_dir(dir)
        .env("BARSMITH_STATE_DIR", dir.join("state"))
        .env_remove("POLYGON_API_KEY")
        .env_remove("MASSIVE_API_KEY")
        .args([
            "demo",
            "--plain",
            "--from",
            "2025-01-02",
            "--to",
            "2025-01-31",
        ])
        .output()
        .expect("barsmith demo runs")
}

#[test]
fn demo_runs_keyless_end_to_end_and_a_rerun_fetches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = demo(dir.path());
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(0), "{err}");
    assert!(
        err.contains("pass 2:"),
        "the automatic second pass shows: {err}"
    );
    assert!(err.contains("attempt 2"), "a batch retry shows: {err}");
    assert!(err.contains("complete: 24/24 tickers"), "{err}");
    // "24 ok" counts tickers with no bar in the range: the summary says which and why.
    let summary = String::from_utf8_lossy(&first.stdout);
    assert!(
        summary.contains("No bars in the range: GOOGL (delisted on")
            && summary.contains("XOM (delisted on"),
        "{summary}"
    );
    assert!(
        err.contains("FROM 'demo-data/**/*.parquet'")
            && err.contains("pd.read_parquet('demo-data'"),
        "how to read it: {err}"
    );
    assert!(
        dir.path()
            .join("demo-data/ticker=AAPL/year=2025/AAPL_2025.parquet")
            .is_file()
    );
    let runs: Vec<_> = std::fs::read_dir(dir.path().join("runs"))
        .unwrap()
        .collect();
    assert_eq!(runs.len(), 1, "one run folder with the records");

    let again = demo(dir.path());
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{err}");
    assert!(err.contains("24 of 24 tickers already complete"), "{err}");
    assert!(err.contains("sandbox served 0 requests"), "{err}");
}

#[test]
fn demo_flat_runs_the_flat_file_strategy_and_tops_up_from_rest() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_barsmith"))
        .current_dir(dir.path())
        .env("BARSMITH_STATE_DIR", dir.path().join("state"))
        .env_remove("POLYGON_API_KEY")
        .env_remove("MASSIVE_S3_ACCESS_KEY_ID")
        .env_remove("MASSIVE_S3_SECRET_ACCESS_KEY")
        .args(["demo", "--flat", "--plain"])
        .output()
        .expect("barsmith demo --flat runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // The month whose download is cut short three times fails once and is retried.
    assert!(err.contains("Batch 0001 attempt 2: success"), "{err}");
    // The 403 day, the day after the last file, and the two tickers in no file.
    assert!(
        err.contains("REST top-up: 3 batches over 3 ranges"),
        "{err}"
    );
    assert!(
        err.contains("complete through 2025-03-04: 24/24 tickers"),
        "{err}"
    );
    assert!(err.contains("FROM 'demo-data-flat/**/*.parquet'"), "{err}");
    for t in ["AAPL", "IBM"] {
        let file = format!("demo-data-flat/ticker={t}/year=2025/{t}_2025.parquet");
        assert!(dir.path().join(&file).is_file(), "{file}");
    }
}
