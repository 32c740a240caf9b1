//! moto's S3 server on loopback, for the S3 client's tests: a real S3 protocol
//! (ListObjectsV2 pages, ETags, XML errors) without any cloud account.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barsmith::s3::{Bucket, S3Config, S3Credentials};
use barsmith::store::remote::{S3Dataset, S3Location};

/// Longest wait for a fresh server to answer (its first start imports a lot of Python).
const STARTUP_LIMIT: Duration = Duration::from_secs(90);

/// The key pair the tests sign with (moto accepts any until [`MotoServer::enforce_auth`]).
pub const KEY_ID: &str = "AKIDBARSMITHTEST";
/// The secret of [`KEY_ID`]; tests check it never shows.
pub const SECRET: &str = "barsmith-test-secret-do-not-print";

/// Removes every AWS variable barsmith reads from `cmd`, so the test's own
/// environment cannot leak in.
pub fn without_aws(cmd: &mut Command) -> &mut Command {
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A runtime for the tests' own S3 reads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A running `moto_server` with one empty bucket; killed on drop.
pub struct MotoServer {
    child: Child,
    port: u16,
    /// The `moto_server` script, next to the venv's python.
    moto: PathBuf,
    /// The bucket created at start.
    pub bucket: String,
    /// The server's output (kept for failures).
    pub log: PathBuf,
    /// How long the server took to answer after being started.
    pub startup: Duration,
}

impl MotoServer {
    /// Starts moto on a free loopback port (from the venv of `tests/s3/requirements.txt`,
    /// installed on first use), waits until it answers, and creates bucket `barsmith`.
    pub fn start() -> MotoServer {
        MotoServer::launch(false)
    }

    /// As [`MotoServer::start`], but moto handles one request at a time. moto checks
    /// `If-Match`/`If-None-Match` and then stores the object in two steps, so two
    /// conditional PUTs handled on two of its threads can both pass their check; S3
    /// itself decides them atomically. Tests of races between conditional writers use
    /// this server so that they test barsmith, not moto's threading.
    pub fn start_serialized() -> MotoServer {
        MotoServer::launch(true)
    }

    fn launch(serialized: bool) -> MotoServer {
        let python = super::python_venv(
            "s3",
            "moto's S3 server (moto[server])",
            "the S3 client tests need it",
        );
        let moto = python.with_file_name("moto_server");
        let port = free_port();
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-{port}.log"));
        let out = std::fs::File::create(&log).expect("moto log file");
        let t0 = Instant::now();
        let mut command = Command::new("timeout");
        // `timeout` ends the server even if this test process dies without dropping it.
        command.arg("900");
        if serialized {
            command.arg(&python).args(["-c", SERIALIZED_MOTO]);
        } else {
            command.arg(&moto);
        }
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", moto.display()));
        let mut server = MotoServer {
            child,
            port,
            moto,
            bucket: "barsmith".into(),
            log,
            startup: Duration::ZERO,
        };
        server.wait_and_create_bucket(t0);
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Points `cmd` at this server through the AWS variables only (the test's own
    /// removed), with 1 s leases so a killed writer's lease goes stale within a test.
    pub fn env_for<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        without_aws(cmd)
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("BARSMITH_S3_LEASE_TTL", "1")
    }

    /// A client of the server's bucket, signing with [`KEY_ID`].
    pub fn client(&self) -> Bucket {
        let creds = S3Credentials::new(KEY_ID.into(), SECRET.into());
        let mut cfg = S3Config::new(&self.endpoint(), &self.bucket, creds);
        cfg.timeout = Duration::from_secs(30);
        Bucket::new(cfg).unwrap()
    }

    /// The dataset at `url` on this server, read-only.
    pub fn dataset(&self, rt: &tokio::runtime::Runtime, url: &str) -> S3Dataset {
        let location = S3Location::parse(url).unwrap();
        rt.block_on(S3Dataset::open_read_only(self.client(), location))
            .unwrap()
    }

    /// Polls until `PUT /bucket` succeeds (moto does not check signatures by default),
    /// failing with the server's log if it exits or stays silent too long.
    fn wait_and_create_bucket(&mut self, t0: Instant) {
        loop {
            if let Some(status) = raw_request(self.port, "PUT", &format!("/{}", self.bucket)) {
                assert!(status.contains(" 200 "), "creating the bucket: {status}");
                self.startup = t0.elapsed();
                return;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("moto_server exited ({exit}):\n{}", self.log_text());
            }
            assert!(
                t0.elapsed() < STARTUP_LIMIT,
                "moto_server did not answer within {STARTUP_LIMIT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new IAM user with an access key and no policy (so S3 denies it everything once
    /// auth is on): `(access key id, secret)`, made with boto3 from moto's venv.
    pub fn user_without_permissions(&self, user: &str) -> (String, String) {
        let script = format!(
            "import boto3\n\
             iam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='setup', aws_secret_access_key='setup')\n\
             iam.create_user(UserName='{user}')\n\
             k = iam.create_access_key(UserName='{user}')['AccessKey']\n\
             print(k['AccessKeyId'], k['SecretAccessKey'])\n",
            self.endpoint()
        );
        let python = self
            .moto
            .with_file_name("python")
            .into_os_string()
            .into_string()
            .expect("utf-8 path");
        let out = Command::new(python)
            .args(["-c", &script])
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "creating an IAM user in moto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.split_whitespace();
        let (id, secret) = (parts.next(), parts.next());
        (id.expect("key id").into(), secret.expect("secret").into())
    }

    /// From now on moto checks every request's signature and IAM permissions.
    pub fn enforce_auth(&self) {
        let status = raw_request_with_body(self.port, "POST", "/moto-api/reset-auth", "0");
        let status = status.expect("moto answers reset-auth");
        assert!(status.contains(" 200 "), "reset-auth: {status}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // SIGTERM to `timeout`, which passes it on to moto and exits with it; a plain
        // kill of `timeout` would leave moto running until its 900 s are up.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling our own child process, still unreaped (so the pid is ours).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_file(&self.log);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's own `main` with every request handled under one lock (the body read
/// inside it), so each request, conditional PUTs included, is atomic.
const SERIALIZED_MOTO: &str = r#"
import sys, threading
import moto.server as server
lock = threading.Lock()
inner = server.DomainDispatcherApplication
class Serialized(inner):
    def __call__(self, environ, start_response):
        with lock:
            return list(inner.__call__(self, environ, start_response))
server.DomainDispatcherApplication = Serialized
server.main(sys.argv[1:])
"#;

/// A port that was free a moment ago (the kernel's pick for port 0).
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    l.local_addr().expect("local addr").port()
}

/// One unsigned HTTP/1.1 request; the status line, or `None` if nothing answered.
fn raw_request(port: u16, method: &str, path: &str) -> Option<String> {
    raw_request_with_body(port, method, path, "")
}

/// [`raw_request`] with a body.
fn raw_request_with_body(port: u16, method: &str, path: &str, body: &str) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let line = text.lines().next()?.to_string();
    (!line.is_empty()).then_some(line)
}
