//! The write lease of one ticker: the object `prefix.barsmith/locks/T.json`, changed
//! only by conditional PUTs, so that at most one writer holds it at a time.
//!
//! - **Take** a free ticker by creating the object (`If-None-Match: *`): of writers
//!   racing, exactly one succeeds.
//! - **Renew** it every `ttl / 3` (a background task) with `If-Match` on the ETag of
//!   the holder's last write. Every write carries a fresh `seq` and timestamp, so its
//!   ETag (the body's MD5) is new: a rewrite of identical bytes would keep the ETag
//!   and let a stale `If-Match` pass.
//! - **Hold** it while the last renewal *sent* less than `ttl` ago: the holder measures
//!   from before its request left, so it stops writing before anyone may take over.
//! - **Take over** a lease that is released, or whose `expires_at_ms` plus
//!   [`LeaseConfig::clock_skew`] has passed on this machine's clock, or whose ETag this
//!   contender has seen unchanged for the holder's `ttl` on its own monotonic clock
//!   (needs no agreement between clocks). The takeover is an `If-Match` on the ETag
//!   seen, so of contenders for a dead writer's lease exactly one wins, and a holder
//!   that renewed in time keeps it.
//! - **Release** by a conditional PUT marking it released, not by a DELETE: S3's DELETE
//!   here is unconditional and, arriving late, could remove the next holder's lease.
//!
//! A conditional PUT whose answer was lost may be retried and then fail its
//! precondition although it landed: every writer therefore recognises its own lease by
//! owner and a per-acquisition token, never by the answer alone.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::s3::{Bucket, S3ErrorKind};
use crate::store::error::StoreError;

/// Timing of the write leases of a dataset on S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// How long a lease lasts without renewal: a dead writer's tickers are free this
    /// long after its last renewal.
    pub ttl: Duration,
    /// How long [`super::S3Dataset::lease`] waits for another writer's lease.
    pub wait: Duration,
    /// How often a waiting writer looks at the lease again (with up to 50 % jitter).
    pub poll: Duration,
    /// How far apart the writers' wall clocks may be: a lease whose recorded expiry
    /// is older than this on the local clock is taken over at once.
    pub clock_skew: Duration,
}

impl Default for LeaseConfig {
    /// 60 s leases, a 15-minute wait polled every 2 s, clocks within 60 s.
    fn default() -> LeaseConfig {
        LeaseConfig {
            ttl: Duration::from_secs(60),
            wait: Duration::from_secs(15 * 60),
            poll: Duration::from_secs(2),
            clock_skew: Duration::from_secs(60),
        }
    }
}

impl LeaseConfig {
    /// Refuses timings that cannot work: a ttl under 300 ms (renewals every ttl / 3
    /// must fit a request in), a zero poll (a busy loop against the server), or a
    /// wait or skew so large it overflows the clock arithmetic.
    pub fn check(&self) -> Result<(), StoreError> {
        let day = Duration::from_secs(86_400);
        let bad = |what: &str| {
            Err(StoreError::Invalid(format!(
                "invalid lease timing: {what} (ttl {:?}, wait {:?}, poll {:?}, clock skew {:?})",
                self.ttl, self.wait, self.poll, self.clock_skew
            )))
        };
        if self.ttl < Duration::from_millis(300) || self.ttl > day {
            return bad("the ttl must be between 300 ms and a day");
        }
        if self.poll.is_zero() || self.poll > self.ttl {
            return bad("the poll interval must be above zero and at most the ttl");
        }
        if self.wait > 30 * day || self.clock_skew > day {
            return bad("the wait must be at most 30 days and the clock skew at most a day");
        }
        Ok(())
    }
}

/// The lease object's content.
#[derive(Debug, Serialize, Deserialize)]
struct LeaseBody {
    ticker: String,
    /// `host/pid/random` of the writing process.
    owner: String,
    /// Random per acquisition: tells this acquisition from another of the same process.
    token: String,
    /// Increases with every write by this acquisition (keeps each body, so its ETag,
    /// unique).
    seq: u64,
    written_at: String,
    expires_at_ms: i64,
    ttl_ms: u64,
    released: bool,
}

/// What the holder knows of its lease.
#[derive(Debug)]
struct Held {
    etag: String,
    seq: u64,
    /// The last confirmed write's send instant plus the ttl.
    valid_until: Instant,
    /// Why the lease ended, once it has.
    lost: Option<String>,
}

/// Who writes and how: the fixed part of every lease write.
#[derive(Debug, Clone)]
struct Writer {
    bucket: Bucket,
    key: String,
    ticker: String,
    owner: String,
    token: String,
    ttl: Duration,
}

/// A held write lease; renewed in the background until released or dropped. Dropping
/// it stops the renewals, so the lease ends after its ttl, as after a crash.
#[derive(Debug)]
pub(crate) struct Lease {
    writer: Writer,
    state: Arc<Mutex<Held>>,
    renewer: tokio::task::JoinHandle<()>,
}

/// Takes the lease of `ticker` at `key` for `owner`, waiting up to `cfg.wait` for
/// another holder to release it or let it expire.
pub(crate) async fn acquire(
    bucket: &Bucket,
    key: String,
    ticker: &str,
    owner: &str,
    cfg: &LeaseConfig,
) -> Result<Lease, StoreError> {
    let w = Writer {
        bucket: bucket.clone(),
        key,
        ticker: ticker.to_string(),
        owner: owner.to_string(),
        token: format!("{:016x}", fastrand::u64(..)),
        ttl: cfg.ttl,
    };
    let t0 = Instant::now();
    let mut seq = 0;
    // The ETag last seen and since when, for the observation rule.
    let mut seen: Option<(String, Instant)> = None;
    loop {
        seq += 1;
        let sent = Instant::now();
        match w.bucket.put_if_absent(&w.key, w.body(seq, false)?).await {
            Ok(info) => return Ok(w.start(info.etag, seq, sent)),
            Err(e) if e.kind == S3ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        let Some((etag, lease)) = w.read().await? else {
            continue; // gone meanwhile: create it again
        };
        let since = match &seen {
            Some((e, at)) if *e == etag => *at,
            _ => {
                let now = Instant::now();
                seen = Some((etag.clone(), now));
                now
            }
        };
        let ours = lease.as_ref().is_some_and(|l| w.is_ours(l));
        if ours || is_free(lease.as_ref(), since, cfg) {
            // Ours means an earlier PUT landed with its answer lost: renewing it now
            // gives a send instant to count from.
            seq += 1;
            let sent = Instant::now();
            match w
                .bucket
                .put_if_match(&w.key, w.body(seq, false)?, &etag)
                .await
            {
                Ok(info) => {
                    match lease {
                        // A released lease is the normal hand-over between writers.
                        Some(l) if !ours && !l.released => {
                            tracing::info!(ticker, holder = %l.owner, "took over a stale write lease");
                        }
                        None if !ours => {
                            tracing::info!(ticker, "replaced an unreadable write lease")
                        }
                        _ => {}
                    }
                    return Ok(w.start(info.etag, seq, sent));
                }
                Err(e) if e.kind == S3ErrorKind::PreconditionFailed => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if t0.elapsed() >= cfg.wait {
            return Err(StoreError::LeaseHeld {
                ticker: w.ticker.clone(),
                owner: lease.map_or_else(|| "an unreadable lease".into(), |l| l.owner),
                key: w.url(),
                waited: t0.elapsed(),
            });
        }
        let poll = cfg.poll.as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(poll + fastrand::u64(0..=poll / 2))).await;
    }
}

/// True when a contender may take the lease over (see the module comment). An
/// unreadable lease is judged by the observation rule alone.
fn is_free(lease: Option<&LeaseBody>, since: Instant, cfg: &LeaseConfig) -> bool {
    let Some(l) = lease else {
        return since.elapsed() >= cfg.ttl;
    };
    let skew = cfg.clock_skew.as_millis() as i64;
    l.released
        || now_ms() > l.expires_at_ms.saturating_add(skew)
        || since.elapsed() >= Duration::from_millis(l.ttl_ms)
}

impl Writer {
    fn body(&self, seq: u64, released: bool) -> Result<Bytes, StoreError> {
        let body = LeaseBody {
            ticker: self.ticker.clone(),
            owner: self.owner.clone(),
            token: self.token.clone(),
            seq,
            written_at: jiff::Timestamp::now().to_string(),
            expires_at_ms: now_ms().saturating_add(self.ttl.as_millis() as i64),
            ttl_ms: self.ttl.as_millis() as u64,
            released,
        };
        let json = serde_json::to_vec_pretty(&body)
            .map_err(|e| StoreError::Invalid(format!("cannot encode a lease: {e}")))?;
        Ok(Bytes::from(json))
    }

    /// The lease's ETag and content (`None` content when unreadable), or `None` when
    /// there is no lease object.
    async fn read(&self) -> Result<Option<(String, Option<LeaseBody>)>, StoreError> {
        match self.bucket.get(&self.key).await {
            Ok(obj) => Ok(Some((
                obj.info.etag.unwrap_or_default(),
                serde_json::from_slice(&obj.body).ok(),
            ))),
            Err(e) if e.kind == S3ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// True when `l` was written by this acquisition and not released.
    fn is_ours(&self, l: &LeaseBody) -> bool {
        l.owner == self.owner && l.token == self.token && !l.released
    }

    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket.name(), self.key)
    }

    fn start(self, etag: Option<String>, seq: u64, sent: Instant) -> Lease {
        let state = Arc::new(Mutex::new(Held {
            etag: etag.unwrap_or_default(),
            seq,
            valid_until: sent + self.ttl,
            lost: None,
        }));
        tracing::debug!(ticker = %self.ticker, owner = %self.owner, "write lease taken");
        let renewer = tokio::spawn(renew(self.clone(), state.clone()));
        Lease {
            writer: self,
            state,
            renewer,
        }
    }
}

/// Renews the lease every `ttl / 3` until it is lost. A failed request is tried again
/// at the next tick; if failures last, the lease simply runs out.
async fn renew(w: Writer, state: Arc<Mutex<Held>>) {
    loop {
        tokio::time::sleep(w.ttl / 3).await;
        let (etag, seq) = {
            let h = lock(&state);
            (h.etag.clone(), h.seq + 1)
        };
        let sent = Instant::now();
        let Ok(body) = w.body(seq, false) else { return };
        match w.bucket.put_if_match(&w.key, body, &etag).await {
            Ok(info) => {
                let mut h = lock(&state);
                h.etag = info.etag.unwrap_or_default();
                h.seq = seq;
                h.valid_until = sent + w.ttl;
            }
            Err(e) if e.kind == S3ErrorKind::PreconditionFailed => match w.read().await {
                // The renewal landed with its answer lost: adopt it (validity stays
                // counted from the last confirmed write).
                Ok(Some((etag, Some(l)))) if w.is_ours(&l) => {
                    let mut h = lock(&state);
                    h.etag = etag;
                    h.seq = l.seq;
                }
                _ => {
                    tracing::warn!(ticker = %w.ticker, "write lease taken over by another writer");
                    lock(&state).lost = Some("another writer took it over".into());
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(ticker = %w.ticker, error = %e, "cannot renew the write lease; trying again")
            }
        }
    }
}

impl Lease {
    /// Ok while the lease is held with at least a quarter of its ttl left: long enough
    /// for the write about to be sent.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        let h = lock(&self.state);
        let lost = |reason: String| StoreError::LeaseLost {
            ticker: self.writer.ticker.clone(),
            reason,
        };
        if let Some(reason) = &h.lost {
            return Err(lost(reason.clone()));
        }
        if h.valid_until.saturating_duration_since(Instant::now()) < self.writer.ttl / 4 {
            return Err(lost(format!(
                "not renewed within its ttl of {:?}",
                self.writer.ttl
            )));
        }
        Ok(())
    }

    /// The owner id written in the lease.
    pub(crate) fn owner(&self) -> &str {
        &self.writer.owner
    }

    /// Marks the lease released (conditionally: a lease already taken over is left to
    /// its new holder), so the next writer takes it without waiting.
    pub(crate) async fn release(mut self) -> Result<(), StoreError> {
        self.renewer.abort();
        let _ = (&mut self.renewer).await;
        for _ in 0..4 {
            let (etag, seq) = {
                let h = lock(&self.state);
                (h.etag.clone(), h.seq + 1)
            };
            let w = &self.writer;
            match w
                .bucket
                .put_if_match(&w.key, w.body(seq, true)?, &etag)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.kind == S3ErrorKind::PreconditionFailed => match w.read().await? {
                    Some((etag, Some(l))) if w.is_ours(&l) => {
                        let mut h = lock(&self.state);
                        h.etag = etag;
                        h.seq = l.seq;
                    }
                    _ => return Ok(()), // no longer ours: nothing to release
                },
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Contended {
            key: self.writer.url(),
            attempts: 4,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// The state, even if a thread panicked while holding it (it holds plain values).
fn lock(state: &Mutex<Held>) -> MutexGuard<'_, Held> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(released: bool, expires_at_ms: i64, ttl_ms: u64) -> LeaseBody {
        LeaseBody {
            ticker: "AAPL".into(),
            owner: "h/1/x".into(),
            token: "t".into(),
            seq: 1,
            written_at: String::new(),
            expires_at_ms,
            ttl_ms,
            released,
        }
    }

    #[test]
    fn lease_timings_that_cannot_work_are_refused() {
        assert!(LeaseConfig::default().check().is_ok());
        let ms = Duration::from_millis;
        for bad in [
            LeaseConfig {
                ttl: ms(0),
                ..LeaseConfig::default()
            },
            LeaseConfig {
                poll: ms(0),
                ..LeaseConfig::default()
            },
            LeaseConfig {
                wait: Duration::MAX,
                ..LeaseConfig::default()
            },
        ] {
            let e = bad.check().unwrap_err();
            assert!(e.to_string().starts_with("invalid lease timing"), "{e}");
        }
    }

    #[test]
    fn a_lease_is_free_when_released_expired_or_seen_unchanged_for_its_ttl() {
        let cfg = LeaseConfig {
            clock_skew: Duration::from_secs(10),
            ..LeaseConfig::default()
        };
        let now = now_ms();
        let just_seen = Instant::now();
        let live = body(false, now + 60_000, 60_000);
        assert!(!is_free(Some(&live), just_seen, &cfg));
        assert!(is_free(
            Some(&body(true, now + 60_000, 60_000)),
            just_seen,
            &cfg
        ));
        // Expired, but within the allowed clock skew: not yet.
        assert!(!is_free(
            Some(&body(false, now - 5_000, 60_000)),
            just_seen,
            &cfg
        ));
        assert!(is_free(
            Some(&body(false, now - 11_000, 60_000)),
            just_seen,
            &cfg
        ));
        // Unchanged for its ttl whatever its clock says.
        let long_ago = Instant::now() - Duration::from_millis(1_500);
        assert!(is_free(
            Some(&body(false, now + 60_000, 1_000)),
            long_ago,
            &cfg
        ));
        assert!(!is_free(None, long_ago, &cfg));
    }
}
