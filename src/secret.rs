//! The API key: a secret that never prints; and where secrets may travel in clear.

use std::fmt;

use reqwest::Url;

/// Environment variables read for the key, in order.
pub const KEY_ENV_VARS: [&str; 2] = ["POLYGON_API_KEY", "MASSIVE_API_KEY"];

/// An API key. `Debug` and `Display` print a placeholder, so the key cannot reach a
/// log, an error or a panic message by accident; [`ApiKey::expose`] is the one door.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key string.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// Reads the key from `POLYGON_API_KEY` or `MASSIVE_API_KEY` (first non-empty).
    pub fn from_env() -> Option<ApiKey> {
        KEY_ENV_VARS
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .map(|k| k.trim().to_string())
            .find(|k| !k.is_empty())
            .map(ApiKey)
    }

    /// The key itself, for the Authorization header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short, non-reversible fingerprint, used to name the shared budget file.
    pub fn fingerprint(&self) -> String {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.0.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{:08x}", h >> 32)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Replaces every occurrence of the key in `text` (for bodies and URLs shown to users).
pub fn redact(text: &str, key: &ApiKey) -> String {
    if key.0.is_empty() {
        return text.to_string();
    }
    text.replace(&key.0, "<redacted>")
}

/// True for `localhost` and loopback addresses (127.0.0.0/8, ::1): the only hosts a
/// secret (the API key, S3 credentials) may be sent to without TLS.
pub fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_never_formats() {
        let k = ApiKey::new("s3cr3t-key");
        assert!(!format!("{k} {k:?}").contains("s3cr3t"));
        assert_eq!(redact("apiKey=s3cr3t-key&x", &k), "apiKey=<redacted>&x");
        assert_eq!(k.fingerprint().len(), 8);
        assert!(!k.fingerprint().contains("s3cr3t"));
    }
}
