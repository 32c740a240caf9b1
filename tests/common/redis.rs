//! A Redis server on loopback for the shared budget's tests: Debian's `redis-server`
//! (installed by .ci/run), with no persistence, stopped on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`; killed on drop.
pub struct RedisServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it answers.
    pub fn start() -> RedisServer {
        let port = super::moto::free_port();
        // `timeout` ends the server even if this test process dies without dropping it.
        let child = Command::new("timeout")
            .args(["600", "redis-server", "--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server: install it (Debian: apt-get install redis-server)");
        let mut server = RedisServer { child, port };
        let t0 = Instant::now();
        while !server.answers() {
            if let Ok(Some(exit)) = server.child.try_wait() {
                panic!(
                    "redis-server exited ({exit}); is it installed? (Debian: apt-get install redis-server)"
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "redis-server did not answer"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn answers(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGTERM, which `timeout` passes on to redis-server (a SIGKILL would orphan it).
        // SAFETY: sends a signal to our own child; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
