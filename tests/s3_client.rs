//! The S3 client (`barsmith::s3`) against moto's S3 server on loopback: paging,
//! bodies, ETags, error kinds, and credentials that never print.
//!
//! moto comes from a venv under the target folder (`tests/s3/requirements.txt`),
//! installed on the first run; it needs `python3` with its venv module.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use barsmith::s3::{
    Bucket, FLATFILES_CREDENTIAL_VARS, S3Config, S3Credentials, S3Error, S3ErrorKind,
};
use bytes::Bytes;
use common::moto::MotoServer;
use futures_util::{StreamExt, TryStreamExt};

const KEY_ID: &str = "AKIDBARSMITHTEST";
const SECRET: &str = "barsmith-test-secret-0123456789";

fn config(endpoint: &str, bucket: &str) -> S3Config {
    let mut cfg = S3Config::new(
        endpoint,
        bucket,
        S3Credentials::new(KEY_ID.into(), SECRET.into()),
    );
    cfg.timeout = Duration::from_secs(30);
    cfg.retries = 2;
    cfg
}

fn bucket(moto: &MotoServer) -> Bucket {
    Bucket::new(config(&moto.endpoint(), &moto.bucket)).expect("client for moto")
}

/// Neither half of the key pair in an error's Display or Debug.
fn assert_clean(e: &S3Error) {
    let shown = format!("{e} | {e:?}");
    assert!(!shown.contains(SECRET), "secret in {shown}");
    assert!(!shown.contains(KEY_ID), "key id in {shown}");
    assert!(!e.message.contains('\n'), "not one line: {e}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn lists_2500_objects_across_pages() {
    let moto = MotoServer::start();
    eprintln!("moto answered {:?} after start", moto.startup);
    let b = bucket(&moto);
    runtime().block_on(async {
        let t0 = Instant::now();
        // Sizes vary so a size mixed up between keys shows; bodies differ so ETags do.
        let puts = (0..2500usize).map(|i| {
            let b = b.clone();
            async move {
                let key = format!("p/{i:05}.csv");
                let body = Bytes::from(format!("{i},").repeat(i % 7 + 1));
                b.put(&key, body).await
            }
        });
        let mut put: Vec<_> = futures_util::stream::iter(puts)
            .buffer_unordered(16)
            .try_collect()
            .await
            .expect("puts");
        put.sort_by(|a, b| a.key.cmp(&b.key));
        eprintln!("2,500 puts in {:?}", t0.elapsed());
        b.put("q/other.csv", Bytes::from_static(b"x"))
            .await
            .unwrap();
        b.put("p0.csv", Bytes::from_static(b"x")).await.unwrap();

        let t0 = Instant::now();
        let listed = b.list("p/").await.expect("list");
        eprintln!("list of 2,500 in {:?}", t0.elapsed());
        assert_eq!(listed.len(), 2500);
        for (l, p) in listed.iter().zip(&put) {
            assert_eq!(l.key, p.key);
            assert_eq!(l.size, p.size, "{}", l.key);
            assert!(l.etag.is_some(), "{}", l.key);
            assert_eq!(l.etag, p.etag, "{}", l.key);
            assert!(!l.etag.as_deref().unwrap().contains('"'), "{:?}", l.etag);
        }
        // A plain string prefix: no `/` added, so `p/0000` is ten keys.
        let ten = b.list("p/0000").await.unwrap();
        let keys: Vec<_> = ten.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys.len(), 10, "{keys:?}");
        assert_eq!(keys[0], "p/00000.csv");
        assert_eq!(b.list("").await.unwrap().len(), 2502);
        assert!(b.list("nothing/").await.unwrap().is_empty());
    });
}

#[test]
fn get_head_put_and_not_found() {
    let moto = MotoServer::start();
    let b = bucket(&moto);
    runtime().block_on(async {
        let key = "us_stocks_sip/minute_aggs_v1/2024/01/2024-01-02.csv.gz";
        let body = Bytes::from((0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        let put = b.put(key, body.clone()).await.expect("put");
        assert_eq!((put.key.as_str(), put.size), (key, 100_000));

        let got = b.get(key).await.expect("get");
        assert_eq!(got.body, body);
        assert_eq!(got.info.size, 100_000);
        assert_eq!(got.info.etag, put.etag);
        let now = put.last_modified;
        assert!((got.info.last_modified - now).abs() < 120_000, "{got:?}");

        let head = b.head(key).await.expect("head");
        assert_eq!(head, got.info);

        let again = b.put(key, Bytes::from_static(b"new")).await.unwrap();
        assert_ne!(again.etag, put.etag, "a new body has a new ETag");
        assert_eq!(b.get(key).await.unwrap().body, Bytes::from_static(b"new"));

        for e in [
            b.get("missing.csv.gz").await.unwrap_err(),
            b.head("missing.csv.gz").await.unwrap_err(),
        ] {
            assert_eq!(e.kind, S3ErrorKind::NotFound, "{e}");
            assert_eq!(e.key.as_deref(), Some("missing.csv.gz"));
            assert!(e.message.contains("s3://barsmith/missing.csv.gz"), "{e}");
            assert_clean(&e);
        }

        let e = b.get("a//b").await.unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::Other, "{e}");

        let other = Bucket::new(config(&moto.endpoint(), "no-such-bucket")).unwrap();
        let e = other.list("x/").await.unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::NotFound, "{e}");
        assert!(e.message.contains("check the bucket name"), "{e}");
        assert_clean(&e);
    });
}

#[test]
fn an_unreachable_endpoint_is_transient_after_retries() {
    // A port nobody listens on: connection refused, retried, then Transient.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config(&format!("http://127.0.0.1:{port}"), "b");
    cfg.retries = 1;
    let b = Bucket::new(cfg).unwrap();
    let t0 = Instant::now();
    let e = runtime().block_on(b.get("k")).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Transient, "{e}");
    assert!(e.message.contains("after 1 retries"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_clean(&e);
}

#[test]
fn plain_http_only_to_loopback() {
    let e = Bucket::new(config("http://files.massive.com", "flatfiles")).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Config);
    assert!(
        e.message
            .contains("refusing plain http to http://files.massive.com"),
        "{e}"
    );
    assert_clean(&e);
    let mut cfg = config("http://files.massive.com", "flatfiles");
    cfg.allow_insecure_http = true;
    Bucket::new(cfg).expect("allowed when asked (with a warning)");
    Bucket::new(config("https://files.massive.com", "flatfiles")).expect("https");
    let e = Bucket::new(config("https://files.massive.com/flatfiles", "flatfiles")).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Config, "{e}");
}

#[test]
fn missing_credentials_name_the_variables_to_set() {
    for (id, secret) in FLATFILES_CREDENTIAL_VARS {
        // SAFETY: no other test in this binary reads these variables.
        unsafe {
            std::env::remove_var(id);
            std::env::remove_var(secret);
        }
    }
    let e = S3Credentials::from_env(&FLATFILES_CREDENTIAL_VARS).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Config);
    assert_eq!(
        e.to_string(),
        "no S3 credentials: set MASSIVE_S3_ACCESS_KEY_ID and MASSIVE_S3_SECRET_ACCESS_KEY \
         (or POLYGON_S3_ACCESS_KEY_ID and POLYGON_S3_SECRET_ACCESS_KEY)"
    );
}

#[test]
fn config_and_client_never_print_the_key_pair() {
    let cfg = config("https://files.massive.com", "flatfiles");
    let shown = format!("{cfg:?} {:?}", Bucket::new(cfg.clone()).unwrap());
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains(KEY_ID), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

/// S3 answers 403 both for a wrong key pair and for a refusal; moto with auth on
/// sends the same codes as S3 (`InvalidAccessKeyId`, `SignatureDoesNotMatch`,
/// `AccessDenied`), so the classification is checked against a real server here.
#[test]
fn the_403s_from_a_real_server() {
    let moto = MotoServer::start();
    let (id, secret) = moto.user_without_permissions("reader");
    let key = "us_stocks_sip/minute_aggs_v1/2024/01/2024-01-02.csv.gz";
    let owner = bucket(&moto);
    let rt = runtime();
    rt.block_on(owner.put(key, Bytes::from_static(b"a,b\n")))
        .unwrap();
    moto.enforce_auth();

    let with = |id: &str, secret: &str| {
        let mut cfg = config(&moto.endpoint(), &moto.bucket);
        cfg.credentials = S3Credentials::new(id.into(), secret.into());
        Bucket::new(cfg).unwrap()
    };
    let clean = |e: &S3Error, secret: &str| {
        let shown = format!("{e} | {e:?}");
        assert!(!shown.contains(secret), "secret in {shown}");
    };

    // The right pair, but no permission: Forbidden, for GET and for list.
    let reader = with(&id, &secret);
    for e in [
        rt.block_on(reader.get(key)).unwrap_err(),
        rt.block_on(reader.list("us_stocks_sip/")).unwrap_err(),
    ] {
        assert_eq!(e.kind, S3ErrorKind::Forbidden, "{e}");
        assert!(e.message.contains("AccessDenied"), "{e}");
        clean(&e, &secret);
    }

    // A wrong secret for a known key id.
    let wrong = with(&id, "not-the-secret-at-all");
    for e in [
        rt.block_on(wrong.get(key)).unwrap_err(),
        rt.block_on(wrong.list("us_stocks_sip/")).unwrap_err(),
    ] {
        assert_eq!(e.kind, S3ErrorKind::BadCredentials, "{e}");
        assert!(e.message.contains("SignatureDoesNotMatch"), "{e}");
        assert!(e.message.contains("check the secret access key"), "{e}");
        clean(&e, "not-the-secret-at-all");
    }

    // A key id the server does not know.
    let unknown = with("AKIDUNKNOWN0000000", &secret);
    let e = rt.block_on(unknown.get(key)).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::BadCredentials, "{e}");
    assert!(e.message.contains("InvalidAccessKeyId"), "{e}");
    assert!(e.message.contains("check the access key id"), "{e}");
    clean(&e, &secret);

    // HEAD responses have no body, hence no code: the client asks again with a
    // one-byte GET to learn which 403 it was.
    let e = rt.block_on(wrong.head(key)).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::BadCredentials, "{e}");
    assert!(
        e.message.contains("SignatureDoesNotMatch") && e.message.contains("HEAD"),
        "{e}"
    );
    let e = rt.block_on(reader.head(key)).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Forbidden, "{e}");
    assert!(e.message.contains("AccessDenied"), "{e}");
    let e = rt.block_on(unknown.head(key)).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::BadCredentials, "{e}");
}

/// A loopback HTTP server that answers every request with `respond(request head)`
/// (raw bytes, then it closes the connection; nothing at all when empty) and counts
/// the requests.
fn canned_server(respond: fn(&str) -> Vec<u8>) -> (String, Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            // Read the request head (these requests have no body), then answer.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let answer = respond(&String::from_utf8_lossy(&head));
            if answer.is_empty() {
                // Say nothing, keep the connection open: a server that hangs.
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(30));
                    drop(s);
                });
                continue;
            }
            let _ = s.write_all(&answer);
        }
    });
    (endpoint, count)
}

#[test]
fn slow_down_is_retried_then_transient() {
    const SLOW: &[u8] = b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n\
        Content-Length: 87\r\nConnection: close\r\n\r\n\
        <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
    let (endpoint, count) = canned_server(|_| SLOW.to_vec());
    let mut cfg = config(&endpoint, "flatfiles");
    cfg.retries = 2;
    let e = runtime()
        .block_on(Bucket::new(cfg).unwrap().get("k"))
        .unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Transient, "{e}");
    assert!(e.message.contains("SlowDown, HTTP 503"), "{e}");
    assert_eq!(count.load(Ordering::SeqCst), 3, "first try and two retries");
    assert_clean(&e);
}

#[test]
fn a_body_shorter_than_its_length_is_corrupt() {
    // Promises 100 bytes, sends 10, closes; each retry (a range request for the rest,
    // answered 206 as S3 does) is cut short too.
    let (endpoint, count) = canned_server(|head| {
        let head = head.to_ascii_lowercase();
        let common = "ETag: \"abc\"\r\nLast-Modified: Tue, 02 Jan 2024 00:00:00 GMT\r\n\
                      Connection: close\r\n";
        let answer = match head.find("range: bytes=") {
            None => format!("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n{common}\r\n0123456789"),
            Some(at) => {
                let spec = head[at + 13..]
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let (from, _) = spec.split_once('-').unwrap();
                let from: u64 = from.parse().unwrap();
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-99/100\r\n\
                     Content-Length: {}\r\n{common}\r\n01234",
                    100 - from
                )
            }
        };
        answer.into_bytes()
    });
    let mut cfg = config(&endpoint, "flatfiles");
    cfg.retries = 1;
    let e = runtime()
        .block_on(Bucket::new(cfg).unwrap().get("k"))
        .unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Corrupt, "{e}");
    assert!(
        count.load(Ordering::SeqCst) >= 2,
        "the cut body was retried"
    );
    assert_clean(&e);
}

#[test]
fn a_silent_server_times_out_and_is_retried() {
    let (endpoint, count) = canned_server(|_| Vec::new());
    let mut cfg = config(&endpoint, "flatfiles");
    cfg.timeout = Duration::from_millis(500);
    cfg.retries = 1;
    let b = Bucket::new(cfg).unwrap();
    let t0 = Instant::now();
    let e = runtime().block_on(b.head("k")).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Transient, "{e}");
    assert_eq!(count.load(Ordering::SeqCst), 2, "first try and one retry");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_clean(&e);
    eprintln!("{e}");
}

#[test]
fn https_speaks_tls_with_ring() {
    // A server that answers plain HTTP at once behind an https:// endpoint: rustls
    // (with ring, the process default this client installs) gets a handshake going
    // and then refuses the answer, rather than panicking for want of a provider.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = std::io::Write::write_all(&mut s, b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let mut cfg = config(&endpoint, "flatfiles");
    cfg.retries = 0;
    let t0 = Instant::now();
    let e = runtime()
        .block_on(Bucket::new(cfg).unwrap().head("k"))
        .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "{:?}: {e}",
        t0.elapsed()
    );
    assert_eq!(e.kind, S3ErrorKind::Config, "{e}");
    assert!(e.message.starts_with("TLS with https://127.0.0.1:"), "{e}");
    assert!(e.message.contains("check the endpoint"), "{e}");
    assert_clean(&e);
}

#[test]
fn a_repeated_continuation_token_stops_the_listing() {
    let (endpoint, count) = canned_server(|_| {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>\
            <Name>flatfiles</Name><Prefix>p/</Prefix><KeyCount>1</KeyCount>\
            <MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><Contents><Key>p/a</Key>\
            <LastModified>2024-01-02T00:00:00.000Z</LastModified><ETag>\"x\"</ETag>\
            <Size>1</Size></Contents><NextContinuationToken>same</NextContinuationToken>\
            </ListBucketResult>";
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    let b = Bucket::new(config(&endpoint, "flatfiles")).unwrap();
    let e = runtime().block_on(b.list("p/")).unwrap_err();
    assert_eq!(e.kind, S3ErrorKind::Other, "{e}");
    assert!(
        e.message
            .contains("repeated a continuation token after 2 pages"),
        "{e}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn conditional_puts_create_once_and_replace_only_the_version_read() {
    let moto = MotoServer::start_serialized();
    let b = bucket(&moto);
    runtime().block_on(async {
        let key = "state/coverage/AAPL.json";
        let first = b
            .put_if_absent(key, Bytes::from_static(b"one"))
            .await
            .unwrap();
        let e1 = first.etag.clone().expect("an ETag");
        assert!(!e1.contains('"'), "{e1}");

        let e = b
            .put_if_absent(key, Bytes::from_static(b"two"))
            .await
            .unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::AlreadyExists, "{e}");
        assert!(e.message.contains("already exists"), "{e}");
        assert_clean(&e);
        assert_eq!(b.get(key).await.unwrap().body, Bytes::from_static(b"one"));

        let second = b
            .put_if_match(key, Bytes::from_static(b"two"), &e1)
            .await
            .unwrap();
        let e2 = second.etag.clone().expect("an ETag");
        assert_ne!(e1, e2);
        assert_eq!(
            b.head(key).await.unwrap().etag.as_deref(),
            Some(e2.as_str())
        );

        // A writer still holding the first version loses, and changes nothing.
        let e = b
            .put_if_match(key, Bytes::from_static(b"three"), &e1)
            .await
            .unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::PreconditionFailed, "{e}");
        assert!(e.message.contains("changed since it was read"), "{e}");
        assert_clean(&e);
        assert_eq!(b.get(key).await.unwrap().body, Bytes::from_static(b"two"));
        // `put_expecting` is either of the two.
        let e = b
            .put_expecting(key, Bytes::from_static(b"x"), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::AlreadyExists, "{e}");
        b.put_expecting(key, Bytes::from_static(b"four"), Some(&e2))
            .await
            .unwrap();

        // Replacing what is not there fails its precondition too.
        let e = b
            .put_if_match("state/none.json", Bytes::from_static(b"x"), &e1)
            .await
            .unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::PreconditionFailed, "{e}");
        assert_eq!(
            b.get("state/none.json").await.unwrap_err().kind,
            S3ErrorKind::NotFound
        );

        b.delete(key).await.unwrap();
        assert_eq!(b.get(key).await.unwrap_err().kind, S3ErrorKind::NotFound);
        b.delete(key).await.expect("deleting what is gone succeeds");
        b.put_if_absent(key, Bytes::from_static(b"again"))
            .await
            .expect("free again");
        let e = b.delete("a//b").await.unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::Other, "{e}");
    });
}

#[test]
fn of_writers_racing_on_one_key_exactly_one_wins() {
    let moto = MotoServer::start_serialized();
    let b = bucket(&moto);
    runtime().block_on(async {
        let key = "locks/AAPL.json";
        // Bodies differ between rounds: an ETag is the body's MD5, so rewriting the same
        // bytes keeps it, and a second round would then have two winners.
        let attempt = |i: usize, round: usize, etag: Option<String>| {
            let b = b.clone();
            async move {
                let body = Bytes::from(format!("writer {i} round {round}"));
                (i, b.put_expecting(key, body, etag.as_deref()).await)
            }
        };
        for round in 0..2 {
            let etag = match round {
                0 => None,
                _ => b.head(key).await.unwrap().etag,
            };
            let results: Vec<_> = futures_util::stream::iter(0..12)
                .map(|i| attempt(i, round, etag.clone()))
                .buffer_unordered(12)
                .collect()
                .await;
            let winners: Vec<usize> = results
                .iter()
                .filter(|(_, r)| r.is_ok())
                .map(|(i, _)| *i)
                .collect();
            assert_eq!(winners.len(), 1, "round {round}: {results:?}");
            let lost = if round == 0 {
                S3ErrorKind::AlreadyExists
            } else {
                S3ErrorKind::PreconditionFailed
            };
            for (_, r) in &results {
                if let Err(e) = r {
                    assert_eq!(e.kind, lost, "{e}");
                }
            }
            let body = b.get(key).await.unwrap().body;
            let winner = format!("writer {} round {round}", winners[0]);
            assert_eq!(body, Bytes::from(winner));
        }
    });
}
