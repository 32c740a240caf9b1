//! Keeps worker secrets (the API key) out of argv, logs and run records.

use std::borrow::Cow;

/// Secret values taken from the workers' environment.
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<String>);

/// Shorter values are not treated as secrets (redacting "1" would mangle every log).
const MIN_SECRET_LEN: usize = 4;

impl Secrets {
    /// Values of variables whose name contains `KEY`, `TOKEN`, `SECRET` or `PASSWORD`.
    pub fn from_env(env: &[(String, String)]) -> Secrets {
        let secret_name = |name: &str| {
            let upper = name.to_ascii_uppercase();
            ["KEY", "TOKEN", "SECRET", "PASSWORD"]
                .iter()
                .any(|w| upper.contains(w))
        };
        Secrets(
            env.iter()
                .filter(|(k, v)| secret_name(k) && v.len() >= MIN_SECRET_LEN)
                .map(|(_, v)| v.clone())
                .collect(),
        )
    }

    /// True if `text` contains a secret.
    pub fn found_in(&self, text: &str) -> bool {
        self.0.iter().any(|s| text.contains(s.as_str()))
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.found_in(text) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for s in &self.0 {
            out = out.replace(s.as_str(), "<redacted>");
        }
        Cow::Owned(out)
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }
}
