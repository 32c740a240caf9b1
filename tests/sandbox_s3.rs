//! The sandbox's flat-file endpoint, through the real `object_store` S3 client: SigV4,
//! ListObjectsV2 pagination, day files equal to the REST bars, and each flat fault.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use barsmith::calendar::{DateRange, nyse};
use barsmith::sandbox::s3::{FLAT_BUCKET, flat_key};
use barsmith::sandbox::{
    FlatFaultPlan, SANDBOX_S3_ACCESS_KEY, SANDBOX_S3_SECRET_KEY, Sandbox, SandboxConfig, synth,
};
use futures_util::StreamExt;
use jiff::civil::{Date, date};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, RetryConfig};

const TICKERS: [&str; 3] = ["AAPL", "BRK.A", "MSFT"];

fn config(faults: &[&str]) -> SandboxConfig {
    SandboxConfig {
        today: date(2025, 2, 3),
        flat_tickers: TICKERS.iter().map(|t| t.to_string()).collect(),
        flat_market: 2,
        flat_faults: FlatFaultPlan::parse(faults).expect("valid flat fault specs"),
        ..SandboxConfig::default()
    }
}

fn start(faults: &[&str]) -> Sandbox {
    Sandbox::start_background(config(faults)).expect("sandbox starts on loopback")
}

fn client(sb: &Sandbox, key: &str, secret: &str, bucket: &str) -> AmazonS3 {
    // reqwest is built without a default TLS provider; the client needs one to build.
    let _ = rustls::crypto::ring::default_provider().install_default();
    AmazonS3Builder::new()
        .with_endpoint(sb.base_url())
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        })
        .build()
        .expect("S3 client builds")
}

fn good_client(sb: &Sandbox) -> AmazonS3 {
    client(
        sb,
        SANDBOX_S3_ACCESS_KEY,
        SANDBOX_S3_SECRET_KEY,
        FLAT_BUCKET,
    )
}

/// Sends a raw HTTP/1.1 request (closing the connection) and returns the whole reply.
fn raw(sb: &Sandbox, request: &str) -> String {
    let mut tcp = std::net::TcpStream::connect(sb.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    tcp.read_to_string(&mut reply).unwrap();
    reply
}

fn gunzip(bytes: &[u8]) -> std::io::Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text)?;
    Ok(text)
}

/// The day file's expected text, from the REST bars (minus vwap, volume + generation).
fn expected_csv(sb: &Sandbox, day: Date, generation: u32) -> String {
    let cfg = sb.config();
    let universe = barsmith::sandbox::s3::flat_universe(cfg);
    let mut out = String::from("ticker,volume,open,close,high,low,window_start,transactions\n");
    let mut rows = 0;
    for t in &universe {
        let bars = synth::bars_for(t, DateRange::new(day, day).unwrap(), cfg);
        for i in 0..bars.len() {
            out.push_str(&format!(
                "{t},{},{},{},{},{},{},{}\n",
                bars.volume[i] as i64 + i64::from(generation),
                bars.open[i],
                bars.close[i],
                bars.high[i],
                bars.low[i],
                bars.timestamp[i] * 1_000_000,
                bars.transactions.get(i).unwrap()
            ));
            rows += 1;
        }
    }
    assert!(rows > 1000, "the test day has bars");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_lists_with_continuation_tokens() {
    let sb = start(&[]);
    let s3 = good_client(&sb);
    let prefix = "us_stocks_sip/minute_aggs_v1/2025/01/";
    let (mut keys, mut token, mut pages) = (Vec::new(), None, 0);
    loop {
        let opts = PaginatedListOptions {
            max_keys: Some(6),
            page_token: token.take(),
            ..Default::default()
        };
        let page = s3.list_paginated(Some(prefix), opts).await.unwrap();
        pages += 1;
        keys.extend(page.result.objects.iter().map(|o| o.location.to_string()));
        match page.page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let expected: Vec<String> = (1..=31)
        .map(|d| date(2025, 1, d))
        .filter(|d| nyse::is_trading_day(*d))
        .map(flat_key)
        .collect();
    // New Year, the Carter day of mourning (Jan 9) and MLK day are closed.
    assert_eq!(expected.len(), 20);
    assert_eq!(keys, expected);
    assert_eq!(pages, 4);
    // The streaming list follows the same tokens; days from 2025-02-03 on are absent.
    let all: Vec<_> = s3
        .list(Some(&Path::from("us_stocks_sip/minute_aggs_v1/2025")))
        .collect::<Vec<_>>()
        .await;
    let last = all.last().unwrap().as_ref().unwrap();
    assert_eq!(last.location.to_string(), flat_key(date(2025, 1, 31)));
    assert_eq!(all.len(), 20); // nothing in February before today (Monday the 3rd)
    let stats = sb.stats();
    assert_eq!(stats.flat_lists, 5);
    assert_eq!(stats.flat_forbidden, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_file_holds_exactly_the_rest_bars() {
    let sb = start(&[]);
    let s3 = good_client(&sb);
    let day = date(2025, 1, 3);
    let path = Path::from(flat_key(day));
    let got = s3.get(&path).await.unwrap();
    let meta = got.meta.clone();
    let bytes = got.bytes().await.unwrap();
    assert_eq!(gunzip(&bytes).unwrap(), expected_csv(&sb, day, 0));
    assert_eq!(meta.size, bytes.len() as u64);
    let etag = meta.e_tag.clone().unwrap();
    assert_eq!(etag, sb.flat_etag(day));
    assert_eq!((etag.len(), etag.starts_with('"')), (34, true));
    let head = s3.head(&path).await.unwrap();
    assert_eq!((head.size, head.e_tag), (meta.size, Some(etag.clone())));
    // After a GET the listing's size is exact too.
    let page = s3
        .list_paginated(Some(&flat_key(day)), PaginatedListOptions::default())
        .await
        .unwrap();
    let listed = &page.result.objects[0];
    assert_eq!((listed.size, listed.e_tag.clone()), (meta.size, Some(etag)));
    assert_eq!(listed.last_modified, meta.last_modified);
    // A range is served as 206 with the same bytes.
    let part = s3.get_range(&path, 10..50).await.unwrap();
    assert_eq!(&part[..], &bytes[10..50]);
    let stats = sb.stats();
    assert_eq!((stats.flat_gets, stats.flat_heads), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_missing_keys_and_buckets_are_refused() {
    let sb = start(&[]);
    let path = Path::from(flat_key(date(2025, 1, 3)));
    let bad_secret = client(&sb, SANDBOX_S3_ACCESS_KEY, "nope", FLAT_BUCKET);
    let e = bad_secret.head(&path).await.unwrap_err();
    assert!(
        matches!(e, object_store::Error::PermissionDenied { .. }),
        "{e}"
    );
    let bad_key = client(&sb, "someone", SANDBOX_S3_SECRET_KEY, FLAT_BUCKET);
    let e = bad_key.get(&path).await.unwrap_err();
    assert!(e.to_string().contains("InvalidAccessKeyId"), "{e}");
    let e = good_client(&sb)
        .get(&Path::from(flat_key(date(2025, 1, 4))))
        .await
        .unwrap_err();
    assert!(matches!(e, object_store::Error::NotFound { .. }), "{e}");
    let other = client(&sb, SANDBOX_S3_ACCESS_KEY, SANDBOX_S3_SECRET_KEY, "other");
    let e = other.get(&path).await.unwrap_err();
    assert!(e.to_string().contains("NoSuchBucket"), "{e}");
    // No signature at all.
    let reply = raw(
        &sb,
        "GET /flatfiles?list-type=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("<Code>AccessDenied</Code>"), "{reply}");
    let stats = sb.stats();
    assert_eq!(stats.flat_forbidden, 3);
    assert_eq!(stats.flat_gets + stats.flat_lists, 1); // only the weekend GET got through
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_faults_behave_as_documented() {
    let sb = start(&[
        "2025-01-03=forbidden",
        "2025-01-06=truncated:1",
        "2025-01-07=slowdown:2",
        "2025-01-08=slow",
    ]);
    let s3 = good_client(&sb);
    let get = |d: Date| {
        let s3 = &s3;
        async move { s3.get(&Path::from(flat_key(d))).await }
    };
    let e = get(date(2025, 1, 3)).await.unwrap_err();
    assert!(
        matches!(e, object_store::Error::PermissionDenied { .. }),
        "{e}"
    );

    let short = get(date(2025, 1, 6)).await.unwrap().bytes().await.unwrap();
    assert!(
        gunzip(&short).is_err(),
        "a truncated gzip stream does not decode"
    );
    let whole = get(date(2025, 1, 6)).await.unwrap().bytes().await.unwrap();
    assert_eq!(short.len(), whole.len() / 2);
    assert!(gunzip(&whole).is_ok());

    let before = sb.stats();
    let retried = get(date(2025, 1, 7)).await.unwrap().bytes().await.unwrap();
    assert_eq!(
        gunzip(&retried).unwrap(),
        expected_csv(&sb, date(2025, 1, 7), 0)
    );
    let after = sb.stats();
    assert_eq!(
        after.by_status[&503] - before.by_status.get(&503).unwrap_or(&0),
        2
    );

    let t = Instant::now();
    let slow = get(date(2025, 1, 8)).await.unwrap().bytes().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(15));
    assert!(gunzip(&slow).is_ok());
    assert_eq!(sb.stats().flat_forbidden, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republishing_changes_the_etag_and_the_volumes() {
    let sb = start(&[]);
    let s3 = good_client(&sb);
    let day = date(2025, 1, 10);
    let path = Path::from(flat_key(day));
    let first = s3.head(&path).await.unwrap();
    assert_eq!(sb.republish_flat_day(day), 1);
    let got = s3.get(&path).await.unwrap();
    let meta = got.meta.clone();
    assert_ne!(meta.e_tag, first.e_tag);
    assert!(meta.last_modified > first.last_modified);
    let text = gunzip(&got.bytes().await.unwrap()).unwrap();
    assert_eq!(text, expected_csv(&sb, day, 1));
    // Through the control endpoint as well.
    let reply = raw(
        &sb,
        "POST /_sandbox/flat/republish?day=2025-01-10 HTTP/1.1\r\nHost: x\r\n\
         Connection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(reply.contains("\"generation\":2"), "{reply}");
    let third = s3.head(&path).await.unwrap();
    assert_eq!(third.e_tag, Some(sb.flat_etag(day)));
    assert_ne!(third.e_tag, meta.e_tag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_faults_can_be_set_at_run_time() {
    let sb = start(&[]);
    let s3 = good_client(&sb);
    let path = Path::from(flat_key(date(2025, 1, 13)));
    s3.head(&path).await.unwrap();
    sb.set_flat_faults(FlatFaultPlan::parse(&["*=forbidden:1"]).unwrap());
    assert!(s3.head(&path).await.is_err());
    s3.head(&path).await.unwrap();
    // The control endpoint replaces the plan too.
    let body = r#"["2025-01-13=slowdown"]"#;
    let reply = raw(
        &sb,
        &format!(
            "POST /_sandbox/flat/faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let e = s3.head(&path).await.unwrap_err();
    assert!(e.to_string().contains("503"), "{e}");
    let reply = raw(
        &sb,
        "GET /_sandbox/flat/faults HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.contains("2025-01-13=slowdown"), "{reply}");
    assert_eq!(
        sb.warm_flat_days(DateRange::new(date(2025, 1, 13), date(2025, 1, 19)).unwrap()),
        5
    );
}

/// Measures the generation of one 5,000-ticker day (run in release:
/// `cargo test --release --test sandbox_s3 -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check: run it in release"]
fn generation_time_of_a_5000_ticker_day() {
    let sb = Sandbox::start_background(SandboxConfig {
        flat_market: 5000,
        ..config(&[])
    })
    .unwrap();
    let day = date(2025, 1, 3);
    let t = Instant::now();
    assert_eq!(sb.warm_flat_days(DateRange::new(day, day).unwrap()), 1);
    let took = t.elapsed();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = good_client(&sb);
    let t = Instant::now();
    let bytes = rt.block_on(async {
        let got = s3.get(&Path::from(flat_key(day))).await.unwrap();
        got.bytes().await.unwrap()
    });
    let served = t.elapsed();
    let t = Instant::now();
    let text = gunzip(&bytes).unwrap();
    let gunzipped = t.elapsed();
    eprintln!(
        "5,000-ticker day: generated in {took:.2?} ({} rows, {:.1} MB gzip, {:.1} MB CSV); \
         a cached GET took {served:.2?}; gunzip {gunzipped:.2?}",
        text.lines().count() - 1,
        bytes.len() as f64 / 1e6,
        text.len() as f64 / 1e6
    );
}
