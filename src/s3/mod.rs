//! An S3 client for Polygon/Massive flat files and for datasets on S3
//! ([`crate::store::remote`], which needs its conditional writes: create-only and
//! replace-only-if-ETag PUTs, [`Bucket::put_if_absent`] and [`Bucket::put_if_match`]).
//!
//! A thin layer over [`object_store`]'s S3 store that keeps the project's rules:
//! credentials come from the environment (or code) and never print; `http://` goes
//! only to loopback unless asked; requests are path-style; every failure is one
//! [`S3Error`] whose [`S3ErrorKind`] says who should act and whose message names the
//! fix.
//!
//! What is retried (by object_store's retry loop, `client/retry.rs` in 0.14.2, with
//! exponential backoff and jitter from 100 ms up to 15 s, at most
//! [`S3Config::retries`] times and within a window of every attempt's timeout plus
//! backoff, capped at 10 minutes): any 5xx (S3's `503 SlowDown` included), 429, 408,
//! connection errors, and timeouts of GET/HEAD/LIST (safe methods) and of PUT
//! (object_store marks plain PUTs idempotent). A body that breaks mid-download is
//! resumed with a range request while retries remain (`client/get.rs`). Other 4xx
//! are not retried. [`S3Config::timeout`] bounds each attempt, body included.

mod bucket;
mod endpoint;
mod error;
mod probe;

use std::fmt;
use std::time::Duration;

pub use bucket::Bucket;
pub use error::{S3Error, S3ErrorKind};
pub use probe::PROBE_TIMEOUT;

/// Massive's S3-compatible endpoint for flat files.
pub const FLATFILES_ENDPOINT: &str = "https://files.massive.com";

/// The bucket holding the flat files.
pub const FLATFILES_BUCKET: &str = "flatfiles";

/// Environment variable pairs (access key id, secret) read for flat-file credentials,
/// in order: the first pair that is set wins.
pub const FLATFILES_CREDENTIAL_VARS: [(&str, &str); 2] = [
    ("MASSIVE_S3_ACCESS_KEY_ID", "MASSIVE_S3_SECRET_ACCESS_KEY"),
    ("POLYGON_S3_ACCESS_KEY_ID", "POLYGON_S3_SECRET_ACCESS_KEY"),
];

/// The variables read for a dataset's key pair: the standard AWS ones.
pub const DATASET_CREDENTIAL_VARS: [(&str, &str); 1] =
    [("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")];

/// An access key id and its secret. `Debug` redacts both and there is no `Display`,
/// so they cannot reach a log line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    access_key_id: String,
    secret_access_key: String,
    /// The variables they were read from, so errors can name what to fix.
    vars: Option<(String, String)>,
}

impl S3Credentials {
    /// Wraps a key pair given by code (errors then say "the access key id/secret").
    pub fn new(access_key_id: String, secret_access_key: String) -> S3Credentials {
        S3Credentials {
            access_key_id,
            secret_access_key,
            vars: None,
        }
    }

    /// The first pair of variables that is set (both non-empty), e.g.
    /// [`FLATFILES_CREDENTIAL_VARS`]. A pair with only one half set is an error naming
    /// the missing variable (a typo should not silently fall through to the next pair);
    /// no pair set is an error naming every variable that would do.
    pub fn from_env(pairs: &[(&str, &str)]) -> Result<S3Credentials, S3Error> {
        S3Credentials::from_lookup(pairs, |name| std::env::var(name).ok())
    }

    /// [`S3Credentials::from_env`] with variables read through `lookup`.
    fn from_lookup(
        pairs: &[(&str, &str)],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Credentials, S3Error> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        for (id_var, secret_var) in pairs {
            match (get(id_var), get(secret_var)) {
                (Some(id), Some(secret)) => {
                    return Ok(S3Credentials {
                        access_key_id: id,
                        secret_access_key: secret,
                        vars: Some((id_var.to_string(), secret_var.to_string())),
                    });
                }
                (Some(_), None) => return Err(half_set(id_var, secret_var)),
                (None, Some(_)) => return Err(half_set(secret_var, id_var)),
                (None, None) => {}
            }
        }
        let wanted: Vec<String> = pairs.iter().map(|(a, b)| format!("{a} and {b}")).collect();
        let message = match wanted.split_first() {
            None => "no S3 credentials: no environment variables named to read them from".into(),
            Some((first, [])) => format!("no S3 credentials: set {first}"),
            Some((first, rest)) => {
                format!("no S3 credentials: set {first} (or {})", rest.join(", or "))
            }
        };
        Err(S3Error::new(S3ErrorKind::Config, None, message))
    }

    /// True when either half is blank.
    pub(crate) fn is_empty(&self) -> bool {
        self.access_key_id.trim().is_empty() || self.secret_access_key.trim().is_empty()
    }

    /// Both halves, for the signer and nothing else.
    pub(crate) fn pair(&self) -> (&str, &str) {
        (&self.access_key_id, &self.secret_access_key)
    }

    /// The variable to check when the access key id is rejected.
    pub(crate) fn id_hint(&self) -> String {
        match &self.vars {
            Some((id, _)) => id.clone(),
            None => "the access key id".into(),
        }
    }

    /// The variable to check when the signature (the secret) is rejected.
    pub(crate) fn secret_hint(&self) -> String {
        match &self.vars {
            Some((_, secret)) => secret.clone(),
            None => "the secret access key".into(),
        }
    }

    /// Replaces both halves in `text`: error bodies and messages pass through here.
    /// (A one- or two-letter test key would mangle every message, so halves that
    /// short are left alone; real ones are 20 and 40 characters.)
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in [&self.secret_access_key, &self.access_key_id] {
            if s.len() >= 3 {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
        out
    }
}

fn half_set(set: &str, missing: &str) -> S3Error {
    S3Error::new(
        S3ErrorKind::Config,
        None,
        format!("incomplete S3 credentials: {set} is set but {missing} is not; set both"),
    )
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("vars", &self.vars)
            .finish()
    }
}

/// Everything a [`Bucket`] needs.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `https://host[:port]` (path-style requests go to `endpoint/bucket/key`);
    /// `http://` only for loopback unless [`S3Config::allow_insecure_http`].
    pub endpoint: String,
    /// The bucket name.
    pub bucket: String,
    /// The signing region (`us-east-1` for Massive).
    pub region: String,
    /// The key pair that signs every request.
    pub credentials: S3Credentials,
    /// Per-request timeout: connect, headers and the whole body (size it for the
    /// largest object fetched; a day of minute aggregates is tens of MB).
    pub timeout: Duration,
    /// Retries of one request after its first attempt (0: none).
    pub retries: u32,
    /// Allow `http://` to a host other than loopback: signed requests and bodies cross
    /// the network in clear. Off by default; when on, a warning names the host.
    pub allow_insecure_http: bool,
    /// Where the endpoint was set (e.g. `AWS_ENDPOINT_URL`), named when it cannot be
    /// reached ([`Bucket::probe`]).
    pub endpoint_var: Option<String>,
}

impl S3Config {
    /// Defaults: region `us-east-1`, 120 s timeout, 8 retries, https only.
    pub fn new(endpoint: &str, bucket: &str, credentials: S3Credentials) -> S3Config {
        S3Config {
            endpoint: endpoint.to_string(),
            bucket: bucket.to_string(),
            region: "us-east-1".into(),
            credentials,
            timeout: Duration::from_secs(120),
            retries: 8,
            allow_insecure_http: false,
            endpoint_var: None,
        }
    }

    /// A dataset's bucket as the standard AWS variables describe it: the endpoint from
    /// `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (else AWS's own for the region), the
    /// region from `AWS_REGION` or `AWS_DEFAULT_REGION` (else `us-east-1`), the key
    /// pair from [`DATASET_CREDENTIAL_VARS`]. Temporary credentials
    /// (`AWS_SESSION_TOKEN`) are refused with a message saying so, since requests
    /// signed without the token would fail with a confusing error.
    pub fn dataset_from_env(bucket: &str) -> Result<S3Config, S3Error> {
        S3Config::dataset_from_lookup(bucket, |name| std::env::var(name).ok())
    }

    /// [`S3Config::dataset_from_env`] with variables read through `lookup`.
    pub fn dataset_from_lookup(
        bucket: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Config, S3Error> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if get("AWS_SESSION_TOKEN").is_some() {
            return Err(S3Error::new(
                S3ErrorKind::Config,
                None,
                "AWS_SESSION_TOKEN is set, but temporary credentials are not supported yet: \
                 use a long-lived key pair in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        let credentials = S3Credentials::from_lookup(&DATASET_CREDENTIAL_VARS, &lookup)?;
        let region = get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let set = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .into_iter()
            .find_map(|var| Some((get(var)?, var)));
        let (endpoint, var) = match set {
            Some((url, var)) => (url, var.to_string()),
            None => (
                format!("https://s3.{region}.amazonaws.com"),
                "AWS_ENDPOINT_URL (unset: AWS itself, for AWS_REGION)".to_string(),
            ),
        };
        let mut cfg = S3Config::new(&endpoint, bucket, credentials);
        cfg.region = region;
        cfg.endpoint_var = Some(var);
        Ok(cfg)
    }

    /// Massive's flat files ([`FLATFILES_ENDPOINT`], [`FLATFILES_BUCKET`]) with the
    /// defaults of [`S3Config::new`].
    pub fn flatfiles(credentials: S3Credentials) -> S3Config {
        S3Config::new(FLATFILES_ENDPOINT, FLATFILES_BUCKET, credentials)
    }
}

/// What S3 says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's key, exactly as stored.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// The ETag without its surrounding quotes (an MD5 hex for single PUTs).
    pub etag: Option<String>,
    /// Last modification, Unix milliseconds (for [`Bucket::put`], the local clock
    /// when the PUT completed: S3's PUT response carries no Last-Modified).
    pub last_modified: i64,
}

/// A whole object: its metadata and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Metadata from the GET response.
    pub info: ObjectInfo,
    /// The complete body (its length equals `info.size`).
    pub body: bytes::Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets variables only this test reads (names are unique per test, so tests
    /// running in parallel never see each other's).
    fn set(vars: &[(&str, &str)]) {
        for (k, v) in vars {
            // SAFETY: no other thread reads or writes these test-unique variables.
            unsafe { std::env::set_var(k, v) };
        }
    }

    #[test]
    fn credentials_come_from_the_first_pair_set() {
        set(&[("T1_B_ID", "AKIDB"), ("T1_B_SECRET", "sekrit-b")]);
        let pairs = [("T1_A_ID", "T1_A_SECRET"), ("T1_B_ID", "T1_B_SECRET")];
        let c = S3Credentials::from_env(&pairs).unwrap();
        assert_eq!(c.pair(), ("AKIDB", "sekrit-b"));
        assert_eq!(c.secret_hint(), "T1_B_SECRET");
        assert_eq!(c.id_hint(), "T1_B_ID");
        let shown = format!("{c:?} {:?}", S3Config::flatfiles(c.clone()));
        assert!(
            !shown.contains("sekrit-b") && !shown.contains("AKIDB"),
            "{shown}"
        );
    }

    #[test]
    fn missing_credentials_name_the_variables() {
        let pairs = [("T2_A_ID", "T2_A_SECRET"), ("T2_B_ID", "T2_B_SECRET")];
        let e = S3Credentials::from_env(&pairs).unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::Config);
        assert_eq!(
            e.to_string(),
            "no S3 credentials: set T2_A_ID and T2_A_SECRET (or T2_B_ID and T2_B_SECRET)"
        );
        let e = S3Credentials::from_env(&[]).unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::Config);
    }

    #[test]
    fn half_a_pair_is_an_error_not_a_fall_through() {
        set(&[
            ("T3_A_ID", "AKIDA"),
            ("T3_B_ID", "AKIDB"),
            ("T3_B_SECRET", "s"),
        ]);
        let pairs = [("T3_A_ID", "T3_A_SECRET"), ("T3_B_ID", "T3_B_SECRET")];
        let e = S3Credentials::from_env(&pairs).unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::Config);
        assert!(
            e.message.contains("T3_A_ID is set but T3_A_SECRET is not"),
            "{e}"
        );
        assert!(!e.message.contains("AKIDA"), "{e}");
    }

    #[test]
    fn a_bucket_can_be_shared_between_tasks() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Bucket>();
        shareable::<S3Error>();
    }

    #[test]
    fn a_dataset_bucket_comes_from_the_standard_aws_variables() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let cfg = S3Config::dataset_from_lookup(
            "research",
            env(&[
                ("AWS_ACCESS_KEY_ID", "AKIDX"),
                ("AWS_SECRET_ACCESS_KEY", "sekrit-x"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.endpoint, "http://127.0.0.1:9000");
        assert_eq!(
            (cfg.bucket.as_str(), cfg.region.as_str()),
            ("research", "eu-west-1")
        );
        assert_eq!(cfg.credentials.pair(), ("AKIDX", "sekrit-x"));
        assert_eq!(cfg.credentials.secret_hint(), "AWS_SECRET_ACCESS_KEY");

        let cfg = S3Config::dataset_from_lookup(
            "research",
            env(&[
                ("AWS_ACCESS_KEY_ID", "AKIDX"),
                ("AWS_SECRET_ACCESS_KEY", "sekrit-x"),
                ("AWS_ENDPOINT_URL", "http://ignored:1"),
                ("AWS_ENDPOINT_URL_S3", "https://minio.example:9000"),
                ("AWS_REGION", "us-west-2"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.endpoint, "https://minio.example:9000");
        assert_eq!(cfg.endpoint_var.as_deref(), Some("AWS_ENDPOINT_URL_S3"));
        assert_eq!(cfg.region, "us-west-2");
        let cfg = S3Config::dataset_from_lookup(
            "b",
            env(&[("AWS_ACCESS_KEY_ID", "A"), ("AWS_SECRET_ACCESS_KEY", "S")]),
        )
        .unwrap();
        assert_eq!(cfg.endpoint, "https://s3.us-east-1.amazonaws.com");

        let e = S3Config::dataset_from_lookup("b", env(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        );
        let e = S3Config::dataset_from_lookup(
            "b",
            env(&[
                ("AWS_ACCESS_KEY_ID", "AKIDX"),
                ("AWS_SECRET_ACCESS_KEY", "sekrit-x"),
                ("AWS_SESSION_TOKEN", "tok-secret"),
            ]),
        )
        .unwrap_err();
        assert_eq!(e.kind, S3ErrorKind::Config);
        assert!(e.message.contains("not supported yet"), "{e}");
        assert!(
            !e.message.contains("tok-secret") && !e.message.contains("sekrit"),
            "{e}"
        );
    }

    #[test]
    fn redact_hides_both_halves() {
        let c = S3Credentials::new("AKID".into(), "topsecret".into());
        assert_eq!(c.redact("x AKID topsecret y"), "x <redacted> <redacted> y");
    }
}
