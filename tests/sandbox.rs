//! The sandbox seen from outside: a real HTTP client against `Sandbox::start_background`
//! (and `Sandbox::start`), on 127.0.0.1 only, every request bounded by a timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use barsmith::bars::{Bar, Bars};
use barsmith::calendar::{DateRange, ny_date_of_ms, ny_day_start_ms};
use barsmith::sandbox::synth::{bars_between, bars_for};
use barsmith::sandbox::{FaultPlan, SANDBOX_API_KEY, Sandbox, SandboxConfig, SandboxStats};
use jiff::civil::date;
use serde_json::Value;

const TICKERS: [&str; 6] = ["AAPL", "MSFT", "IBM", "XOM", "GE", "KO"];

/// The one fixture: a fixed "today" and always-listed common tickers, plus `tweak`.
fn start(tweak: impl FnOnce(&mut SandboxConfig)) -> Sandbox {
    let mut cfg = SandboxConfig {
        today: date(2024, 6, 28),
        ..SandboxConfig::default()
    };
    for t in TICKERS {
        cfg.listings.insert(t.to_string(), (None, None));
    }
    tweak(&mut cfg);
    Sandbox::start_background(cfg).expect("sandbox starts")
}

fn client(timeout: Duration) -> reqwest::Client {
    // reqwest is built with `rustls-no-provider`: a provider must exist even for http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("client builds")
}

fn aggs_url(sb: &Sandbox, ticker: &str, from: &str, to: &str, query: &str) -> String {
    format!(
        "{}/v2/aggs/ticker/{ticker}/range/1/minute/{from}/{to}?{query}",
        sb.base_url()
    )
}

async fn get(url: &str) -> reqwest::Response {
    client(Duration::from_secs(20))
        .get(url)
        .bearer_auth(SANDBOX_API_KEY)
        .send()
        .await
        .expect("request answered")
}

async fn get_json(url: &str) -> (u16, Value) {
    let resp = get(url).await;
    let status = resp.status().as_u16();
    (status, json_of(resp).await)
}

/// The body as JSON (reqwest is built without its `json` feature).
async fn json_of<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> T {
    let body = resp.bytes().await.expect("body read");
    serde_json::from_slice(&body).expect("JSON body")
}

fn to_bars(results: &[Value]) -> Bars {
    let mut b = Bars::default();
    for r in results {
        let f = |k: &str| r[k].as_f64().expect("number");
        b.push(Bar {
            timestamp: r["t"].as_i64().expect("t"),
            open: f("o"),
            high: f("h"),
            low: f("l"),
            close: f("c"),
            volume: f("v"),
            vwap: r["vw"].as_f64(),
            transactions: r["n"].as_i64(),
            otc: r["otc"].as_bool().unwrap_or(false),
        });
    }
    b
}

/// Follows `next_url` to the end; returns all bars and the page sizes.
async fn fetch_all(first_url: &str) -> (Bars, Vec<usize>) {
    let mut url = first_url.to_string();
    let mut all = Bars::default();
    let mut pages = Vec::new();
    for _ in 0..1000 {
        let (status, v) = get_json(&url).await;
        assert_eq!(status, 200, "{v}");
        let results = v["results"].as_array().cloned().unwrap_or_default();
        pages.push(results.len());
        all.extend(&to_bars(&results));
        match v["next_url"].as_str() {
            Some(next) => {
                assert!(
                    !next.contains("apiKey") && !next.contains(SANDBOX_API_KEY),
                    "{next}"
                );
                url = next.to_string();
            }
            None => return (all, pages),
        }
    }
    panic!("pagination did not end");
}

async fn status_of(sb: &Sandbox, ticker: &str) -> u16 {
    get(&aggs_url(
        sb,
        ticker,
        "2024-01-02",
        "2024-01-02",
        "limit=50000",
    ))
    .await
    .status()
    .as_u16()
}

// ---------------------------------------------------------------------------------
// Shape, pagination, parameters

#[tokio::test]
async fn response_has_the_real_api_shape() {
    let sb = start(|_| {});
    let (status, v) = get_json(&aggs_url(
        &sb,
        "AAPL",
        "2024-01-02",
        "2024-01-02",
        "adjusted=true&sort=asc&limit=50000",
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["ticker"], "AAPL");
    assert_eq!(v["status"], "OK");
    assert_eq!(v["adjusted"], true);
    let results = v["results"].as_array().unwrap();
    assert!(results.len() > 300, "{}", results.len());
    assert_eq!(v["resultsCount"].as_u64(), Some(results.len() as u64));
    assert_eq!(v["queryCount"].as_u64(), Some(results.len() as u64));
    assert_eq!(v["count"].as_u64(), Some(results.len() as u64));
    assert_eq!(v["request_id"].as_str().unwrap().len(), 32);
    assert!(v.get("next_url").is_none());
    for bar in results {
        let keys: Vec<&str> = bar
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 8, "{bar}");
        for k in ["v", "vw", "o", "c", "h", "l", "t", "n"] {
            assert!(bar.get(k).is_some(), "{k} missing in {bar}");
        }
        assert_eq!(ny_date_of_ms(bar["t"].as_i64().unwrap()), date(2024, 1, 2));
    }
}

#[tokio::test]
async fn pagination_end_to_end_equals_bars_for() {
    let sb = start(|_| {});
    let range = DateRange::parse("2024-03-04", "2024-03-15").unwrap();
    let (got, pages) = fetch_all(&aggs_url(
        &sb,
        "MSFT",
        "2024-03-04",
        "2024-03-15",
        "adjusted=true&sort=asc&limit=1000",
    ))
    .await;
    assert_eq!(got, bars_for("MSFT", range, sb.config()));
    assert!(pages.len() > 3, "{pages:?}");
    assert!(
        pages[..pages.len() - 1].iter().all(|&n| n == 1000),
        "{pages:?}"
    );
    assert!(*pages.last().unwrap() <= 1000);
}

#[tokio::test]
async fn default_limit_is_5000_and_limit_is_capped_at_50000() {
    let sb = start(|_| {});
    let (_, v) = get_json(&aggs_url(&sb, "IBM", "2024-01-01", "2024-03-31", "")).await;
    assert_eq!(v["resultsCount"], 5000);
    assert!(v["next_url"].is_string());
    let (_, v) = get_json(&aggs_url(
        &sb,
        "IBM",
        "2023-01-01",
        "2023-12-31",
        "limit=90000",
    ))
    .await;
    assert_eq!(v["resultsCount"], 50_000);
    let (_, v) = get_json(&aggs_url(&sb, "IBM", "2024-01-02", "2024-01-31", "limit=7")).await;
    assert_eq!(v["resultsCount"], 7);
}

#[tokio::test]
async fn unix_millisecond_bounds_are_inclusive() {
    let sb = start(|_| {});
    let from = ny_day_start_ms(date(2024, 2, 6)) + 10 * 3_600_000; // 10:00 New York
    let to = from + 30 * 60_000;
    let (_, v) = get_json(&aggs_url(
        &sb,
        "KO",
        &from.to_string(),
        &to.to_string(),
        "limit=50000",
    ))
    .await;
    let got = to_bars(v["results"].as_array().unwrap());
    assert_eq!(got, bars_between("KO", from, to, sb.config()));
    assert!(got.len() > 20 && got.timestamp[0] >= from && *got.timestamp.last().unwrap() <= to);
}

#[tokio::test]
async fn empty_range_has_no_results_key() {
    let sb = start(|_| {});
    let (status, v) = get_json(&aggs_url(
        &sb,
        "AAPL",
        "2024-03-09",
        "2024-03-10",
        "limit=50000",
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["resultsCount"], 0);
    assert!(v.get("results").is_none(), "{v}");
}

#[tokio::test]
async fn other_timespans_get_a_polygon_style_400() {
    let sb = start(|_| {});
    let url = format!(
        "{}/v2/aggs/ticker/AAPL/range/1/day/2024-01-02/2024-01-05",
        sb.base_url()
    );
    let (status, v) = get_json(&url).await;
    assert_eq!(status, 400);
    assert_eq!(v["status"], "ERROR");
    assert!(v["error"].as_str().unwrap().contains("range/1/day"), "{v}");
    assert!(v["request_id"].is_string());
}

#[tokio::test]
async fn same_request_twice_gives_the_same_bytes() {
    let sb = start(|_| {});
    let url = aggs_url(&sb, "XOM", "2024-04-01", "2024-04-30", "limit=3000");
    let a = get(&url).await.bytes().await.unwrap();
    let b = get(&url).await.bytes().await.unwrap();
    assert_eq!(a, b);
    // And another sandbox with the same config serves the same data.
    let other = start(|_| {});
    let (_, va) = get_json(&url).await;
    let (_, vb) = get_json(&aggs_url(
        &other,
        "XOM",
        "2024-04-01",
        "2024-04-30",
        "limit=3000",
    ))
    .await;
    assert_eq!(va["results"], vb["results"]);
}

#[tokio::test]
async fn no_bars_after_today() {
    let sb = start(|c| c.today = date(2024, 6, 26));
    let (_, v) = get_json(&aggs_url(
        &sb,
        "GE",
        "2024-06-24",
        "2024-07-31",
        "limit=50000",
    ))
    .await;
    let bars = to_bars(v["results"].as_array().unwrap());
    assert_eq!(
        ny_date_of_ms(*bars.timestamp.last().unwrap()),
        date(2024, 6, 26)
    );
}

#[tokio::test]
async fn listing_window_is_respected() {
    let sb = start(|c| {
        c.listings
            .insert("NEWCO".into(), (Some(date(2024, 6, 20)), None));
        c.listings
            .insert("GONE".into(), (None, Some(date(2024, 6, 18))));
    });
    let range = DateRange::parse("2024-06-14", "2024-06-28").unwrap();
    let (newco, _) = fetch_all(&aggs_url(
        &sb,
        "NEWCO",
        "2024-06-14",
        "2024-06-28",
        "limit=50000",
    ))
    .await;
    assert_eq!(ny_date_of_ms(newco.timestamp[0]), date(2024, 6, 20));
    assert_eq!(newco, bars_for("NEWCO", range, sb.config()));
    let (gone, _) = fetch_all(&aggs_url(
        &sb,
        "GONE",
        "2024-06-14",
        "2024-06-28",
        "limit=50000",
    ))
    .await;
    assert_eq!(
        ny_date_of_ms(*gone.timestamp.last().unwrap()),
        date(2024, 6, 18)
    );
    let (_, v) = get_json(&aggs_url(
        &sb,
        "GONE",
        "2024-06-19",
        "2024-06-28",
        "limit=50000",
    ))
    .await;
    assert_eq!(v["resultsCount"], 0);
}

// ---------------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn wrong_or_missing_key_gets_401_unknown_api_key() {
    let sb = start(|_| {});
    let url = aggs_url(&sb, "AAPL", "2024-01-02", "2024-01-02", "");
    let c = client(Duration::from_secs(10));
    for req in [c.get(&url), c.get(&url).bearer_auth("wrong")] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let v: Value = json_of(resp).await;
        assert_eq!(
            (v["status"].as_str(), v["error"].as_str()),
            (Some("ERROR"), Some("Unknown API Key"))
        );
    }
    let resp = c
        .get(format!("{url}&apiKey={SANDBOX_API_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn configured_key_replaces_the_default() {
    let sb = start(|c| c.api_key = "other-key".into());
    let url = aggs_url(&sb, "AAPL", "2024-01-02", "2024-01-02", "");
    let c = client(Duration::from_secs(10));
    assert_eq!(
        c.get(&url)
            .bearer_auth(SANDBOX_API_KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        c.get(&url)
            .bearer_auth("other-key")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

// ---------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn counted_fault_clears_after_n_requests() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["AAPL=500:2"]).unwrap());
    let url = aggs_url(&sb, "AAPL", "2024-01-02", "2024-01-02", "");
    let (s1, v1) = get_json(&url).await;
    assert_eq!((s1, v1["status"].as_str()), (500, Some("ERROR")));
    assert_eq!(status_of(&sb, "AAPL").await, 500);
    assert_eq!(status_of(&sb, "AAPL").await, 200);
    assert_eq!(status_of(&sb, "AAPL").await, 200);
    assert_eq!(
        status_of(&sb, "MSFT").await,
        200,
        "other tickers are untouched"
    );
}

#[tokio::test]
async fn status_faults_answer_as_specified() {
    let sb = start(|c| {
        c.faults = FaultPlan::parse(&[
            "A1=429",
            "A2=429-retry-after=3",
            "A3=502",
            "A4=503",
            "A5=504",
            "A6=403",
            "A7=401",
        ])
        .unwrap();
    });
    let url = |t: &str| aggs_url(&sb, t, "2024-01-02", "2024-01-02", "");
    let r = get(&url("A1")).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_none());
    let r = get(&url("A2")).await;
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    for (t, code) in [("A3", 502), ("A4", 503), ("A5", 504)] {
        let (s, v) = get_json(&url(t)).await;
        assert_eq!((s, v["status"].as_str()), (code, Some("ERROR")));
    }
    let (s, v) = get_json(&url("A6")).await;
    assert_eq!((s, v["status"].as_str()), (403, Some("NOT_AUTHORIZED")));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Your plan doesn't include this data timeframe")
    );
    let (s, v) = get_json(&url("A7")).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("Unknown API Key")));
}

#[tokio::test]
async fn html_502_looks_like_a_proxy_page() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["AAPL=502-html"]).unwrap());
    let r = get(&aggs_url(&sb, "AAPL", "2024-01-02", "2024-01-02", "")).await;
    assert_eq!(r.status().as_u16(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("<h1>502 Bad Gateway</h1>"));
}

#[tokio::test]
async fn status_error_is_a_200_with_status_error() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["AAPL=status-error"]).unwrap());
    let (s, v) = get_json(&aggs_url(&sb, "AAPL", "2024-01-02", "2024-01-02", "")).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ERROR")));
    assert!(v["error"].is_string() && v.get("results").is_none());
}

#[tokio::test]
async fn truncated_body_matches_its_length_but_is_cut_json() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["AAPL=truncated:1"]).unwrap());
    let url = aggs_url(&sb, "AAPL", "2024-01-02", "2024-01-02", "limit=50000");
    let r = get(&url).await;
    assert_eq!(r.status().as_u16(), 200);
    let declared: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().await.expect("a consistent length reads fine");
    assert_eq!(body.len(), declared);
    assert!(serde_json::from_slice::<Value>(&body).is_err());
    let full = get(&url).await.bytes().await.unwrap();
    assert_eq!(&body[..], &full[..full.len() / 2]);
}

/// Sends one raw request and reads until the server closes (or `limit` passes).
fn raw_exchange(sb: &Sandbox, path: &str, limit: Duration) -> (Vec<u8>, Duration) {
    let mut s = TcpStream::connect(sb.addr()).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SANDBOX_API_KEY}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let t = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, t.elapsed())
}

#[tokio::test]
async fn drop_closes_the_connection_half_way_through_the_body() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["AAPL=drop:2"]).unwrap());
    let path = "/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-02?limit=50000";
    let (raw, elapsed) = raw_exchange(&sb, path, Duration::from_secs(5));
    assert!(
        elapsed < Duration::from_secs(4),
        "closed by the server, not by our timeout"
    );
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"));
    let declared: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), declared / 2);
    // A real client sees a body error.
    let r = get(&format!("{}{path}", sb.base_url())).await;
    assert!(r.bytes().await.is_err());
    assert_eq!(status_of(&sb, "AAPL").await, 200, "cleared after 2");
}

#[tokio::test]
async fn hang_never_answers_and_shutdown_ends_it_promptly() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["AAPL=hang"]).unwrap());
    let url = aggs_url(&sb, "AAPL", "2024-01-02", "2024-01-02", "");
    let err = client(Duration::from_secs(1))
        .get(&url)
        .bearer_auth(SANDBOX_API_KEY)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // A hung connection does not hold up shutdown, and the client sees it close.
    let c = client(Duration::from_secs(20));
    let pending =
        tokio::spawn(async move { c.get(&url).bearer_auth(SANDBOX_API_KEY).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    sb.shutdown();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        t.elapsed()
    );
    let result = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("closed promptly")
        .unwrap();
    assert!(result.is_err());
}

#[tokio::test]
async fn hang_for_bounds_a_hang() {
    let sb = start(|c| {
        c.faults = FaultPlan::parse(&["AAPL=hang"]).unwrap();
        c.hang_for = Duration::from_millis(300);
    });
    let (raw, elapsed) = raw_exchange(
        &sb,
        "/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-02",
        Duration::from_secs(5),
    );
    assert!(raw.is_empty());
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn cursor_loop_repeats_the_first_cursor_forever() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["AAPL=cursor-loop"]).unwrap());
    let (_, p1) = get_json(&aggs_url(
        &sb,
        "AAPL",
        "2024-01-02",
        "2024-01-31",
        "limit=1000",
    ))
    .await;
    let first_next = p1["next_url"].as_str().unwrap().to_string();
    let mut url = first_next.clone();
    for _ in 0..4 {
        let (s, p) = get_json(&url).await;
        assert_eq!(s, 200);
        assert_eq!(p["next_url"].as_str(), Some(first_next.as_str()));
        url = p["next_url"].as_str().unwrap().to_string();
    }
}

#[tokio::test]
async fn repeat_page_starts_each_page_with_the_previous_tail() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["AAPL=repeat-page"]).unwrap());
    let (_, p1) = get_json(&aggs_url(
        &sb,
        "AAPL",
        "2024-01-02",
        "2024-01-31",
        "limit=1000",
    ))
    .await;
    let (_, p2) = get_json(p1["next_url"].as_str().unwrap()).await;
    let b1 = to_bars(p1["results"].as_array().unwrap());
    let b2 = to_bars(p2["results"].as_array().unwrap());
    let k = 100; // limit/10
    assert_eq!(b2.timestamp[..k], b1.timestamp[b1.len() - k..]);
    assert!(b2.timestamp[k] > *b1.timestamp.last().unwrap());
    assert!(b2.len() <= 1000);
    // Deduplicated, the whole fetch is still exactly the data.
    let (all, _) = fetch_all(&aggs_url(
        &sb,
        "AAPL",
        "2024-01-02",
        "2024-01-31",
        "limit=1000",
    ))
    .await;
    let mut dedup = Bars::default();
    for bar in all.iter() {
        if dedup.timestamp.last().is_none_or(|&t| t < bar.timestamp) {
            dedup.push(bar);
        }
    }
    assert!(all.len() > dedup.len());
    assert_eq!(
        dedup,
        bars_for(
            "AAPL",
            DateRange::parse("2024-01-02", "2024-01-31").unwrap(),
            sb.config()
        )
    );
}

#[tokio::test]
async fn paging_faults_leave_single_page_fetches_alone() {
    let sb =
        start(|c| c.faults = FaultPlan::parse(&["AAPL=cursor-loop", "MSFT=repeat-page"]).unwrap());
    for t in ["AAPL", "MSFT"] {
        let (_, v) = get_json(&aggs_url(&sb, t, "2024-01-02", "2024-01-03", "limit=50000")).await;
        assert!(v.get("next_url").is_none());
        let range = DateRange::parse("2024-01-02", "2024-01-03").unwrap();
        assert_eq!(
            to_bars(v["results"].as_array().unwrap()),
            bars_for(t, range, sb.config())
        );
    }
    assert_eq!(sb.stats().faults_injected, 0);
}

#[tokio::test]
async fn random_faults_are_reproducible_from_the_seed() {
    let plan = || FaultPlan {
        rules: vec![],
        random: Some(
            barsmith::sandbox::RandomFaults::new(
                0.4,
                5,
                vec![barsmith::sandbox::Fault::ServerError(503)],
            )
            .unwrap(),
        ),
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sb = start(|c| c.faults = plan());
        let mut statuses = Vec::new();
        for i in 0..30 {
            statuses.push(status_of(&sb, TICKERS[i % 3]).await);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    let faulted = runs[0].iter().filter(|&&s| s == 503).count();
    assert!((3..=24).contains(&faulted), "{:?}", runs[0]);
    assert!(runs[0].iter().all(|&s| s == 200 || s == 503));
}

#[tokio::test]
async fn faults_can_be_replaced_at_run_time() {
    let sb = start(|_| {});
    assert_eq!(status_of(&sb, "AAPL").await, 200);
    sb.set_faults(FaultPlan::parse(&["AAPL=503:1"]).unwrap());
    assert_eq!(status_of(&sb, "AAPL").await, 503);
    assert_eq!(status_of(&sb, "AAPL").await, 200);
    let c = client(Duration::from_secs(10));
    let url = format!("{}/_sandbox/faults", sb.base_url());
    let r = c.post(&url).body(r#"["MSFT=504:1"]"#).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(status_of(&sb, "MSFT").await, 504);
    assert_eq!(status_of(&sb, "MSFT").await, 200);
    let r = c
        .post(&url)
        .body(r#"["MSFT=explode"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = json_of(r).await;
    assert!(v["error"].as_str().unwrap().contains("valid faults"), "{v}");
    let v: Value = json_of(c.get(&url).send().await.unwrap()).await;
    assert_eq!(
        v["rules"],
        serde_json::json!(["MSFT=504:1"]),
        "a bad plan changes nothing"
    );
}

// ---------------------------------------------------------------------------------
// Rate limit, latency, stats

#[tokio::test]
async fn rate_limit_answers_429_beyond_the_burst() {
    let sb = start(|c| {
        c.rate_limit = Some(2.0);
        c.rate_burst = 2;
    });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(status_of(&sb, "AAPL").await);
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(limited >= 3, "{statuses:?}");
    assert_eq!(sb.stats().rate_limited, limited as u64);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(status_of(&sb, "AAPL").await, 200, "the budget refills");
}

#[tokio::test]
async fn latency_delays_each_answer() {
    let sb = start(|c| c.latency = Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(status_of(&sb, "AAPL").await, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn stats_count_requests_tickers_statuses_and_peak_rate() {
    let sb = start(|c| c.faults = FaultPlan::parse(&["MSFT=429:1"]).unwrap());
    for t in ["AAPL", "AAPL", "MSFT", "MSFT"] {
        status_of(&sb, t).await;
    }
    let url = format!("{}/nope", sb.base_url());
    assert_eq!(
        client(Duration::from_secs(5))
            .get(&url)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let s = sb.stats();
    assert_eq!(
        (
            s.requests,
            s.data_requests,
            s.rate_limited,
            s.faults_injected
        ),
        (5, 4, 1, 1)
    );
    assert_eq!(s.by_ticker["AAPL"], 2);
    assert_eq!(s.by_ticker["MSFT"], 2);
    assert_eq!(
        (s.by_status[&200], s.by_status[&429], s.by_status[&404]),
        (3, 1, 1)
    );
    assert!((1..=4).contains(&s.max_rps_observed));
    let stats_url = format!("{}/_sandbox/stats", sb.base_url());
    let over_http: SandboxStats = json_of(
        client(Duration::from_secs(5))
            .get(&stats_url)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(over_http, s, "control endpoints are not counted");
    sb.reset_stats();
    assert_eq!(sb.stats(), SandboxStats::default());
}

#[tokio::test]
async fn peak_rate_sees_a_burst_of_parallel_requests() {
    let sb = start(|_| {});
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = aggs_url(&sb, "IBM", "2024-01-02", "2024-01-02", "limit=10");
        tasks.push(tokio::spawn(
            async move { get(&url).await.status().as_u16() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    // All eight arrive well within one second (a loose bound for a loaded machine).
    let peak = sb.stats().max_rps_observed;
    assert!((4..=8).contains(&peak), "{peak}");
}

// ---------------------------------------------------------------------------------
// Connections and lifecycle

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let sb = start(|_| {});
    let mut s = TcpStream::connect(sb.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let path = "/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-02?limit=3";
    for _ in 0..3 {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SANDBOX_API_KEY}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).unwrap();
        // Read the head, then exactly Content-Length bytes.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        s.read_exact(&mut body).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["resultsCount"], 3);
    }
}

#[test]
fn shutdown_frees_the_port() {
    let sb = start(|_| {});
    let addr = sb.addr();
    let t = Instant::now();
    drop(sb);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(
        std::net::TcpListener::bind(addr).is_ok(),
        "port {addr} still held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_runs_on_the_callers_runtime() {
    let cfg = SandboxConfig {
        today: date(2024, 6, 28),
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(cfg).await.unwrap();
    assert!(sb.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(status_of(&sb, "AAPL").await, 200);
    sb.shutdown();
}

#[tokio::test]
async fn the_subcommand_prints_its_url_first_and_stops_on_sigterm() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    // --exit-after bounds the child even if the signal got lost.
    let mut child = Command::new(env!("CARGO_BIN_EXE_barsmith"))
        .args([
            "sandbox",
            "--exit-after",
            "30",
            "--today",
            "2024-06-28",
            "--fault",
            "AAPL=503:1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("barsmith starts");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("barsmith sandbox listening on ")
        .expect("URL line")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{first}");
    let aggs = format!("{url}/v2/aggs/ticker/AAPL/range/1/minute/2024-01-02/2024-01-02");
    assert_eq!(get(&aggs).await.status().as_u16(), 503);
    assert_eq!(get(&aggs).await.status().as_u16(), 200);
    // SAFETY: kill(2) on the pid of a child we own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
