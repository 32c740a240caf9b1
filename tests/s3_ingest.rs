//! `barsmith ingest --outdir s3://bucket/prefix` end to end: the sandbox's REST API
//! into moto's S3 server on loopback, credentials and endpoint from the standard AWS
//! variables only.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use barsmith::bars::Bars;
use barsmith::calendar::DateRange;
use barsmith::ingest::events::Event;
use barsmith::sandbox::{SandboxConfig, synth};
use barsmith::store::DatasetIdentity;
use barsmith::store::remote::{LeaseConfig, S3Dataset, S3Location};
use common::moto::{KEY_ID, MotoServer, SECRET, runtime, without_aws};
use common::{Fixture, run, stderr, test_config};

const URL: &str = "s3://barsmith/bars/minute";

fn range(a: &str, b: &str) -> DateRange {
    DateRange::parse(a, b).unwrap()
}

/// `barsmith ingest` of `tickers` into `outdir` with the fixture's fast retries, the
/// test's own AWS variables removed.
fn ingest(fx: &Fixture, tickers: &[&str], from: &str, to: &str, outdir: &str) -> Command {
    let mut cmd = fx.ingest_into(tickers, from, to, outdir.as_ref(), "10");
    without_aws(&mut cmd);
    cmd
}

/// [`ingest`] into the dataset on `moto`, with the AWS variables naming it and short
/// leases, so a killed writer's lease goes stale within a test.
fn ingest_s3(fx: &Fixture, moto: &MotoServer, tickers: &[&str], from: &str, to: &str) -> Command {
    let mut cmd = ingest(fx, tickers, from, to, URL);
    moto.env_for(&mut cmd);
    cmd
}

/// The bars and complete ranges of `ticker` in the dataset on S3.
fn on_s3(moto: &MotoServer, ticker: &str, r: DateRange) -> (Bars, Vec<DateRange>) {
    let rt = runtime();
    let ds = moto.dataset(&rt, URL);
    let bars = rt.block_on(ds.read_bars(ticker, r)).unwrap();
    let complete = rt.block_on(ds.coverage(ticker)).unwrap().complete;
    (bars, complete)
}

#[test]
fn ingest_into_s3_stores_what_a_local_folder_gets_and_a_rerun_fetches_nothing() {
    let fx = Fixture::with_config(test_config());
    let moto = MotoServer::start();
    let tickers = ["AAPL", "MSFT", "BRK.A"];
    let (from, to) = ("2023-11-01", "2024-02-29");
    let local = fx.outdir().display().to_string();
    let out = run(ingest(&fx, &tickers, from, to, &local));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = run(ingest_s3(&fx, &moto, &tickers, from, to));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let store = fx.store();
    for t in tickers {
        let (bars, complete) = on_s3(&moto, t, range(from, to));
        assert!(!bars.is_empty(), "{t} has bars");
        assert_eq!(bars, store.read_bars(t, range(from, to)).unwrap(), "{t}");
        assert_eq!(complete, store.coverage(t).unwrap(), "{t}");
    }

    fx.sandbox.reset_stats();
    let out = run(ingest_s3(&fx, &moto, &tickers, from, to));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.sandbox.stats().data_requests, 0, "all complete already");
}

#[test]
fn ingest_into_s3_without_credentials_exits_4_with_one_line_naming_the_variables() {
    let fx = Fixture::with_config(test_config());
    let mut cmd = ingest(&fx, &["AAPL"], "2024-01-02", "2024-01-31", URL);
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(lines[0].contains(var), "{err}");
    }
    assert_eq!(fx.sandbox.stats().data_requests, 0);

    // Half a key pair names the missing half and never prints the secret given.
    let mut cmd = ingest(&fx, &["AAPL"], "2024-01-02", "2024-01-31", URL);
    cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let all = format!("{}{}", common::stdout(&out), stderr(&out));
    assert!(all.contains("AWS_ACCESS_KEY_ID"), "{all}");
    assert!(!all.contains(SECRET), "the secret leaked: {all}");
}

#[test]
fn ingest_into_s3_refuses_plain_http_off_loopback() {
    let fx = Fixture::with_config(test_config());
    let mut cmd = ingest(&fx, &["AAPL"], "2024-01-02", "2024-01-31", URL);
    cmd.env("AWS_ENDPOINT_URL", "http://s3.example.com")
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing plain http"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(SECRET));
}

#[test]
fn a_worker_killed_mid_run_leaves_an_s3_dataset_a_rerun_completes_exactly() {
    let fx = Fixture::with_config(SandboxConfig {
        latency: Duration::from_millis(30),
        ..test_config()
    });
    let moto = MotoServer::start();
    let tickers = ["AAPL", "MSFT"];
    let (from, to) = ("2019-01-01", "2021-12-31");
    let mut child = ingest_s3(&fx, &moto, &tickers, from, to)
        .arg("--in-flight")
        .arg("1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a ticker is done and another's page is in: that one's lease is held
    // by the dead writer, the first one's coverage recorded.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut done = None;
    for line in stdout.lines().map_while(Result::ok) {
        let Some(event) = barsmith::ingest::events::parse_line(&line) else {
            continue;
        };
        match event {
            Event::TickerDone { ticker, .. } => done = Some(ticker),
            Event::Page { ticker, .. } if done.is_some() && done.as_ref() != Some(&ticker) => {
                break;
            }
            _ => {}
        }
    }
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let done = done.expect("a ticker finished before the kill");
    let (_, before) = on_s3(&moto, &done, range(from, to));
    assert_eq!(
        before,
        vec![range(from, to)],
        "{done} was recorded before the kill"
    );

    // The re-run takes over the dead writer's lease once it is stale, then fetches
    // and writes exactly what coverage lacks.
    let out = run(ingest_s3(&fx, &moto, &tickers, from, to));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for t in tickers {
        let (bars, complete) = on_s3(&moto, t, range(from, to));
        assert_eq!(
            bars,
            synth::bars_for(t, range(from, to), fx.sandbox.config())
        );
        assert_eq!(complete, vec![range(from, to)], "{t}");
    }
}

#[test]
fn the_wrapper_backfills_into_s3_and_a_second_run_finds_everything_complete() {
    let fx = Fixture::with_config(test_config());
    let moto = MotoServer::start();
    let tickers = ["AAPL", "MSFT", "NVDA", "IBM"];
    let (from, to) = ("2024-01-02", "2024-03-29");
    let csv = fx.universe(&tickers);
    let wrapper = |run_name: &str| {
        let mut cmd = fx.barsmith();
        moto.env_for(&mut cmd);
        cmd.arg("run")
            .arg("--run-dir")
            .arg(fx.run_dir(run_name))
            .args(["--progress", "none", "--base-url", &fx.sandbox.base_url()])
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wrapper.rhai"))
            .args([
                "--outdir",
                URL,
                "--tickers-csv",
                &csv,
                "--from",
                from,
                "--to",
                to,
            ])
            .args(["--retry-delay", "0", "--request-retries", "2"]);
        cmd
    };
    let out = run(wrapper("first"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for t in tickers {
        let (bars, complete) = on_s3(&moto, t, range(from, to));
        assert_eq!(
            bars,
            synth::bars_for(t, range(from, to), fx.sandbox.config())
        );
        assert_eq!(complete, vec![range(from, to)], "{t}");
    }
    // The run's report draws the heatmap of the dataset on S3, as `barsmith report`
    // does when pointed at it.
    let heatmap = format!("4 of 4 tickers complete over {from}..{to} in {URL}");
    let page = std::fs::read_to_string(fx.run_dir("first").join("report.html")).unwrap();
    assert!(page.contains(&heatmap), "{page}");
    assert!(page.contains("title=\"NVDA 2024: complete"), "{page}");
    let again = fx.dir.path().join("again.html");
    let mut report = fx.barsmith();
    moto.env_for(&mut report)
        .arg("report")
        .arg(fx.run_dir("first"));
    report.arg("-o").arg(&again).args(["--outdir", URL]);
    let out = run(report);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(std::fs::read_to_string(&again).unwrap().contains(&heatmap));
    fx.sandbox.reset_stats();
    let out = run(wrapper("second"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fx.sandbox.stats().data_requests, 0, "all complete already");
}

#[test]
fn a_ticker_leased_by_a_live_writer_fails_retryable_and_the_others_complete() {
    let fx = Fixture::with_config(test_config());
    let moto = MotoServer::start();
    let (from, to) = ("2024-01-02", "2024-01-31");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bucket = moto.client();
    let leases = LeaseConfig {
        ttl: Duration::from_secs(30),
        ..LeaseConfig::default()
    };
    let location = S3Location::parse(URL).unwrap();
    let identity = DatasetIdentity::minute(true);
    let other = rt
        .block_on(S3Dataset::open(bucket, location, &identity, leases))
        .unwrap();
    // Another writer holds MSFT (renewed in the background) for the whole run.
    let held = rt.block_on(other.lease("MSFT")).unwrap();

    let out = run(ingest_s3(&fx, &moto, &["AAPL", "MSFT"], from, to));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let failed: Vec<_> = common::events(&out)
        .into_iter()
        .filter_map(|e| match e {
            Event::TickerFailed { ticker, error } => Some((ticker, error)),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "MSFT");
    assert!(failed[0].1.is_retryable(), "{:?}", failed[0].1);
    assert!(
        failed[0].1.message.contains("another writer"),
        "{:?}",
        failed[0].1
    );
    assert_eq!(
        on_s3(&moto, "AAPL", range(from, to)).1,
        vec![range(from, to)]
    );
    assert!(on_s3(&moto, "MSFT", range(from, to)).1.is_empty());
    rt.block_on(held.release()).unwrap();
}

#[test]
fn a_resume_fetches_again_the_years_whose_objects_were_deleted_or_cut() {
    let fx = Fixture::with_config(test_config());
    let moto = MotoServer::start();
    let (from, to) = ("2023-11-01", "2024-02-29");
    let out = run(ingest_s3(&fx, &moto, &["AAPL"], from, to));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rt = runtime();
    let client = moto.client();
    let key = |year: i16| format!("bars/minute/ticker=AAPL/year={year}/AAPL_{year}.parquet");
    rt.block_on(client.delete(&key(2023))).unwrap();
    let whole = rt.block_on(client.get(&key(2024))).unwrap().body;
    rt.block_on(client.put(&key(2024), whole.slice(..100)))
        .unwrap();

    fx.sandbox.reset_stats();
    let out = run(ingest_s3(&fx, &moto, &["AAPL"], from, to));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        fx.sandbox.stats().data_requests >= 2,
        "both years fetched again"
    );
    let err = stderr(&out);
    for (year, cause) in [
        (2023, "the file is gone"),
        (2024, "the file cannot be read"),
    ] {
        assert!(err.contains(&format!("AAPL {year}: {cause}")), "{err}");
    }
    let all = range(from, to);
    let (bars, complete) = on_s3(&moto, "AAPL", all);
    assert_eq!(bars, synth::bars_for("AAPL", all, fx.sandbox.config()));
    assert_eq!(complete, vec![all]);
    // The cut object was set aside, not deleted unread.
    let moved = rt
        .block_on(client.list("bars/minute.barsmith/quarantine/ticker=AAPL/year=2024/"))
        .unwrap();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0].size, 100);
}
