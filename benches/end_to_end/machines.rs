//! Scenario 5: one key's budget across three "machines".
//!
//! Three `barsmith ingest` workers with separate state folders (so no shared budget
//! file, as on separate machines), each a third of 1,500 one-page tickers, all with
//! `--max-rps 100` against a sandbox that answers after 50 ms and limits the key to
//! 100 req/s. With `BARSMITH_BUDGET_REDIS` they share one schedule in Redis (started
//! here, on loopback); without it, each spends the whole rate. Budget use = requests
//! the server accepted / (100 × wall time of the three together).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Row, row, sandbox_with, tickers, worker};

const RPS: f64 = 100.0;
const TICKERS: usize = 1_500;
const MACHINES: usize = 3;

/// Runs the three workers with and without the shared budget.
pub(super) fn budget_across_machines(tmp: &Path, rows: &mut Vec<Row>) {
    let Some(redis) = Redis::start() else {
        row(
            rows,
            "3 machines, shared budget",
            "redis-server not installed".into(),
            "",
            None,
        );
        return;
    };
    let names = tickers("Q", TICKERS);
    for (label, url) in [
        ("shared budget (Redis)", Some(redis.url())),
        ("a budget each", None),
    ] {
        let sb = sandbox_with(&names, Duration::from_millis(50), Some(RPS), 80);
        let t0 = Instant::now();
        let children: Vec<Child> = names
            .chunks(TICKERS / MACHINES)
            .enumerate()
            .map(|(m, part)| {
                let dir = tmp.join(format!("machines-{}-{m}", url.is_some()));
                let mut cmd = worker(&dir, &sb, part, ("2026-06-01", "2026-06-01"), "100");
                if let Some(u) = &url {
                    cmd.env("BARSMITH_BUDGET_REDIS", u);
                }
                cmd.stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("worker")
            })
            .collect();
        for mut c in children {
            let _ = c.wait();
        }
        let wall = t0.elapsed().as_secs_f64();
        let s = sb.stats();
        let accepted = s.data_requests - s.rate_limited;
        let use_ = accepted as f64 / (RPS * wall);
        let text = format!(
            "{:.1} req/s = {:.0}% ({accepted} req, {wall:.1} s, {} × 429)",
            accepted as f64 / wall,
            use_ * 100.0,
            s.rate_limited
        );
        let shared = url.is_some();
        let ok = shared.then_some(s.rate_limited == 0);
        row(
            rows,
            &format!("3 machines, {label}, 50 ms"),
            text,
            if shared { "0 × 429" } else { "(control)" },
            ok,
        );
    }
}

/// `redis-server` on a free loopback port, stopped on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("timeout")
            .args([
                "600",
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let r = Redis { child, port };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // SIGTERM, which `timeout` passes on (a SIGKILL would orphan redis-server).
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
