//! Aggregates pages as the sandbox serves them: generated off the async workers and,
//! when asked ([`PageCache::set_limit`]), kept for the next identical request.
//!
//! A 50,000-bar page is milliseconds of CPU. The benches run the sandbox on the same
//! cores as the workers they measure, so a run that fetches millions of bars would
//! time the sandbox's JSON as much as barsmith; a bench warms the cache with one run
//! and then times a second, whose pages the sandbox sends from the cache as they are,
//! with no copy (as a real API's pages cost the client nothing of its own CPU: a copy
//! of a 4 MB page, and the faults of its fresh buffer, were ~2 ms of the benches'
//! shared cores per page). Faulted pages are never cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::aggs::{self, AggsRequest};
use super::faults::Fault;
use super::server::{Shared, error_json, lock};

/// Generated pages kept by request id (the id hashes the path and query, key aside),
/// up to a byte limit; none by default.
#[derive(Debug, Default)]
pub(crate) struct PageCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    limit: usize,
    bytes: usize,
    pages: HashMap<String, Bytes>,
}

impl PageCache {
    /// Keeps up to `bytes` of pages (0: none, and forgets those kept).
    pub(crate) fn set_limit(&self, bytes: usize) {
        let mut st = lock(&self.state);
        st.limit = bytes;
        if bytes == 0 {
            st.pages.clear();
            st.bytes = 0;
        }
    }

    fn get(&self, id: &str) -> Option<Bytes> {
        lock(&self.state).pages.get(id).cloned()
    }

    /// Keeps `body` if it fits: once full, the cache keeps what it has.
    fn put(&self, id: String, body: &Bytes) {
        let mut st = lock(&self.state);
        if st.bytes + body.len() > st.limit || st.pages.contains_key(&id) {
            return;
        }
        st.bytes += body.len();
        st.pages.insert(id, body.clone());
    }
}

/// The body of the page `req` asks for (`id` is its request id), from the cache or
/// generated on the blocking pool (`fault` alters it, and is never cached). A kept
/// page is shared with the cache, not copied.
pub(crate) async fn page(
    shared: &Arc<Shared>,
    req: AggsRequest,
    id: String,
    fault: Option<Fault>,
) -> Bytes {
    if fault.is_none()
        && let Some(body) = shared.pages.get(&id)
    {
        return body;
    }
    let worker = Arc::clone(shared);
    let key = id.clone();
    let work = move || aggs::page(&req, &worker.cfg, &worker.base_url, &key, fault);
    match tokio::task::spawn_blocking(work).await {
        Ok(body) => {
            let body = Bytes::from(body);
            if fault.is_none() {
                shared.pages.put(id, &body);
            }
            body
        }
        Err(e) => Bytes::from(error_json(
            "ERROR",
            "error",
            "none",
            &format!("sandbox page generation failed: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_kept_up_to_the_limit_and_dropped_when_turned_off() {
        let c = PageCache::default();
        let (a, b) = (Bytes::from_static(b"12345"), Bytes::from_static(b"6789"));
        c.put("a".into(), &a);
        assert!(c.get("a").is_none(), "off by default");
        c.set_limit(8);
        c.put("a".into(), &a);
        c.put("b".into(), &b);
        assert_eq!(c.get("a").as_deref(), Some(&b"12345"[..]));
        assert!(c.get("b").is_none(), "over the limit");
        c.set_limit(0);
        assert!(c.get("a").is_none());
    }
}
