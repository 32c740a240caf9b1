//! The schedule in Redis, for a key shared by several machines: each machine's budget
//! file only spans its own processes.
//!
//! The read-modify-write of the schedule is the same as on file, done atomically with
//! `WATCH`/`MULTI`/`EXEC` (retried when another process wrote in between), and `now`
//! is Redis's own clock (`TIME`), so machines with drifting clocks still share one
//! timeline. The key is `barsmith:budget:<key fingerprint>` and expires a day after
//! its last use. The URL (which may carry a password) is never logged or shown.

use std::time::Duration;

use super::Schedule;

/// The environment variable naming the shared budget, e.g. `redis://10.0.0.5:6379/0`.
pub const SHARED_BUDGET_ENV: &str = "BARSMITH_BUDGET_REDIS";

/// How long a request to Redis may take before the budget counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the shared schedule of one key.
pub(super) struct RedisSchedule {
    con: redis::Connection,
    key: String,
    /// `host:port` only, for messages.
    shown: String,
}

impl RedisSchedule {
    /// Connects and checks the server answers; the error names the host, never the
    /// password.
    pub(super) fn connect(url: &str, fingerprint: &str) -> Result<RedisSchedule, String> {
        let shown = redact(url);
        let fail = |e: redis::RedisError| {
            format!(
                "cannot reach the shared request budget at {shown}: {e}; start Redis there, \
                 or unset {SHARED_BUDGET_ENV} to use this machine's budget file"
            )
        };
        let client = redis::Client::open(url).map_err(|e| {
            format!("{SHARED_BUDGET_ENV} is not a Redis URL ({e}): use redis://HOST:PORT/DB")
        })?;
        let mut con = client.get_connection_with_timeout(TIMEOUT).map_err(fail)?;
        con.set_read_timeout(Some(TIMEOUT)).map_err(fail)?;
        con.set_write_timeout(Some(TIMEOUT)).map_err(fail)?;
        redis::cmd("PING").exec(&mut con).map_err(fail)?;
        Ok(RedisSchedule {
            con,
            key: format!("barsmith:budget:{fingerprint}"),
            shown,
        })
    }

    /// The server's `host:port[/db]`, for messages.
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// `f(now, schedule) -> (new schedule, result)`, atomically against every other
    /// process on the key.
    pub(super) fn update<R>(
        &mut self,
        mut f: impl FnMut(u64, Schedule) -> (Schedule, R),
    ) -> Result<R, String> {
        let key = self.key.clone();
        redis::transaction(&mut self.con, &[&key], |con, pipe| {
            let (secs, micros): (u64, u64) = redis::cmd("TIME").query(con)?;
            let now = secs * 1_000_000_000 + micros * 1_000;
            let text: Option<String> = redis::cmd("GET").arg(&key).query(con)?;
            let old = Schedule::parse(text.as_deref().unwrap_or(""));
            let (new, out) = f(now, old);
            pipe.cmd("SET")
                .arg(&key)
                .arg(new.text())
                .arg("PX")
                .arg(86_400_000)
                .ignore();
            // None from the pipeline means another writer got in first: try again.
            let done: Option<()> = pipe.query(con)?;
            Ok(done.map(|()| out))
        })
        .map_err(|e| {
            format!(
                "the shared request budget at {} failed: {e}; the run stops rather than \
                 send requests unscheduled",
                self.shown
            )
        })
    }
}

/// `host:port[/db]` of a Redis URL, without user or password.
fn redact(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('?').next().unwrap_or(rest).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("redis://:hunter2@10.0.0.5:6379/0"),
            "10.0.0.5:6379/0"
        );
        assert_eq!(redact("redis://user:pw@host:1"), "host:1");
        let err = RedisSchedule::connect("redis://:hunter2@127.0.0.1:1/0", "f")
            .err()
            .unwrap();
        assert!(
            !err.contains("hunter2") && err.contains("127.0.0.1:1"),
            "{err}"
        );
    }
}
