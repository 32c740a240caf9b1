//! Request routing of the S3 endpoint: authentication, bucket and key, faults, and
//! the `/_sandbox/flat/*` control endpoints.

use std::sync::Arc;

use bytes::Bytes;
use jiff::civil::Date;
use serde_json::json;

use super::faults::{FlatFault, FlatFaultPlan, SLOW_TOTAL};
use super::listing::{self, ListQuery};
use super::{FLAT_BUCKET, S3_REGION, flat_key, is_published, parse_flat_key, published_days};
use crate::sandbox::http::{Request, Response};
use crate::sandbox::server::{Reply, Shared, lock};

/// True for requests meant for the S3 endpoint: the bucket's path, or any request
/// signed with SigV4 (so other buckets get `NoSuchBucket`, not a Polygon 404).
pub(crate) fn is_s3_request(req: &Request) -> bool {
    req.path == format!("/{FLAT_BUCKET}")
        || req.path.starts_with(&format!("/{FLAT_BUCKET}/"))
        || req
            .header("authorization")
            .is_some_and(|a| a.starts_with("AWS4-"))
}

/// An S3 error reply (no body for HEAD, as S3 does).
fn error(status: u16, code: &str, message: &str, resource: &str, head: bool) -> Reply {
    let body = if head {
        Vec::new()
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{}</Message><Resource>{}</Resource><RequestId>sandbox</RequestId></Error>",
            listing::xml_escape(message),
            listing::xml_escape(resource)
        )
        .into_bytes()
    };
    Reply::Send(Response {
        status,
        content_type: "application/xml",
        headers: Vec::new(),
        body,
    })
}

/// `Thu, 02 Jan 2025 10:00:00 GMT`.
fn http_date(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(t) => t.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string(),
        Err(_) => "Thu, 01 Jan 1970 00:00:00 GMT".into(),
    }
}

/// Answers one S3 request (counted by the caller in `requests` and `by_status`).
pub(crate) async fn answer(shared: &Arc<Shared>, req: Request) -> Reply {
    let head = req.method == "HEAD";
    let cfg = &shared.cfg;
    let reply = match (req.method.as_str(), &req.path) {
        ("GET" | "HEAD", _) => {
            match super::sigv4::verify(&req, &cfg.s3_access_key, &cfg.s3_secret_key, S3_REGION) {
                Err(e) => {
                    let (status, code) = e.code();
                    error(status, code, &e.to_string(), &req.path, head)
                }
                Ok(()) => route(shared, &req, head).await,
            }
        }
        _ => error(
            405,
            "MethodNotAllowed",
            "The sandbox's flat files are read-only: use GET or HEAD",
            &req.path,
            false,
        ),
    };
    if let Reply::Send(r) | Reply::Object { resp: r, .. } = &reply
        && r.status == 403
    {
        lock(&shared.counters).flat_forbidden();
    }
    reply
}

/// After authentication: the bucket, then a listing or an object.
async fn route(shared: &Arc<Shared>, req: &Request, head: bool) -> Reply {
    let path = req.path.trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    if bucket != FLAT_BUCKET {
        let msg = "The specified bucket does not exist";
        return error(404, "NoSuchBucket", msg, &req.path, head);
    }
    let key = crate::sandbox::http::percent_decode(key, false);
    if key.is_empty() {
        lock(&shared.counters).flat_list();
        return list(shared, req, head);
    }
    {
        let mut c = lock(&shared.counters);
        if head { c.flat_head() } else { c.flat_get() }
    }
    match parse_flat_key(&key).filter(|d| is_published(*d, &shared.cfg)) {
        Some(day) => object(shared, req, day, head).await,
        None => {
            let msg = "The specified key does not exist.";
            error(404, "NoSuchKey", msg, &req.path, head)
        }
    }
}

fn list(shared: &Shared, req: &Request, head: bool) -> Reply {
    if head {
        return Reply::Send(Response {
            status: 200,
            content_type: "application/xml",
            headers: Vec::new(),
            body: Vec::new(),
        });
    }
    let q = match ListQuery::parse(req) {
        Ok(q) => q,
        Err(e) => return error(400, "InvalidArgument", &e.0, &req.path, false),
    };
    let flat = &shared.flat;
    let page = listing::page(published_days(&shared.cfg).map(flat_key), &q, |k| {
        // Keys come from published days, so they parse.
        let day = parse_flat_key(k).unwrap_or(super::FLAT_FILES_START);
        flat.object(day)
    });
    Reply::Send(Response {
        status: 200,
        content_type: "application/xml",
        headers: Vec::new(),
        body: listing::xml(FLAT_BUCKET, &q, &page).into_bytes(),
    })
}

/// The byte range of a `Range: bytes=..` header within `len` bytes; `Ok(None)` for no
/// (or an unsupported multi-range) header, `Err` when unsatisfiable.
fn byte_range(header: Option<&str>, len: usize) -> Result<Option<(usize, usize)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: usize = n.parse().map_err(|_| ())?;
            (len.saturating_sub(n), len.saturating_sub(1))
        }
        (a, "") => (a.parse().map_err(|_| ())?, len.saturating_sub(1)),
        (a, b) => {
            let end: usize = b.parse().map_err(|_| ())?;
            (a.parse().map_err(|_| ())?, end.min(len.saturating_sub(1)))
        }
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// GET or HEAD of a day file: faults, conditional headers, ranges.
async fn object(shared: &Arc<Shared>, req: &Request, day: Date, head: bool) -> Reply {
    let fault = shared.flat.pick_fault(day);
    if let Some(f) = fault {
        lock(&shared.counters).fault();
        tracing::debug!(%day, fault = %f, "sandbox flat-file fault");
    }
    match fault {
        Some(FlatFault::Forbidden) => {
            let msg = "Access Denied: the plan does not include this day";
            return error(403, "AccessDenied", msg, &req.path, head);
        }
        Some(FlatFault::SlowDown) => {
            let msg = "Please reduce your request rate.";
            return error(503, "SlowDown", msg, &req.path, head);
        }
        _ => {}
    }
    let file = {
        let shared = Arc::clone(shared);
        match tokio::task::spawn_blocking(move || shared.flat.file(&shared.cfg, day)).await {
            Ok(f) => f,
            Err(e) => return error(500, "InternalError", &e.to_string(), &req.path, head),
        }
    };
    let mut body: Bytes = file.body.clone();
    if fault == Some(FlatFault::Truncated) {
        body = body.slice(..body.len() / 2);
    }
    let mut headers = vec![
        ("ETag", file.etag.clone()),
        ("Last-Modified", http_date(file.last_modified)),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    if req
        .header("if-match")
        .is_some_and(|m| m != "*" && m != file.etag)
    {
        return error(
            412,
            "PreconditionFailed",
            "If-Match failed",
            &req.path,
            head,
        );
    }
    if req
        .header("if-none-match")
        .is_some_and(|m| m == "*" || m == file.etag)
    {
        let resp = Response {
            status: 304,
            content_type: "application/gzip",
            headers,
            body: Vec::new(),
        };
        return Reply::Send(resp);
    }
    let mut status = 200;
    match byte_range(req.header("range"), body.len()) {
        Ok(None) => {}
        Ok(Some((a, b))) => {
            headers.push(("Content-Range", format!("bytes {a}-{b}/{}", body.len())));
            body = body.slice(a..=b);
            status = 206;
        }
        Err(()) => {
            let msg = "The requested range is not satisfiable";
            return error(416, "InvalidRange", msg, &req.path, head);
        }
    }
    let resp = Response {
        status,
        content_type: "application/gzip",
        headers,
        body: Vec::new(),
    };
    let trickle = (fault == Some(FlatFault::Slow)).then_some(SLOW_TOTAL);
    Reply::Object {
        resp,
        body,
        head_only: head,
        trickle,
    }
}

/// `/_sandbox/flat/*`: `GET|POST flat/faults`, `POST flat/republish?day=YYYY-MM-DD`.
/// `None` when `what` is not a flat-file control path.
pub(crate) fn control(shared: &Shared, what: &str, req: &Request) -> Option<Response> {
    let ok = |v: serde_json::Value| Response::json(200, v.to_string().into_bytes());
    let err = |status: u16, msg: String| {
        Response::json(
            status,
            json!({"status": "ERROR", "error": msg})
                .to_string()
                .into_bytes(),
        )
    };
    let flat = &shared.flat;
    Some(match (req.method.as_str(), what.strip_prefix("flat/")?) {
        ("GET", "faults") => ok(json!({ "rules": flat.fault_specs() })),
        ("POST", "faults") => {
            let specs: Result<Vec<String>, _> = serde_json::from_slice(&req.body);
            match specs
                .map_err(|e| e.to_string())
                .and_then(|s| FlatFaultPlan::parse(&s).map_err(|e| e.0))
            {
                Ok(plan) => {
                    let rules = plan.specs();
                    flat.set_faults(plan);
                    ok(json!({ "status": "OK", "rules": rules }))
                }
                Err(e) => err(
                    400,
                    format!("expected a JSON array of DAY=FAULT[:N] specs: {e}"),
                ),
            }
        }
        ("POST", "republish") => match req.param("day").map(crate::calendar::parse_date) {
            Some(Ok(day)) if is_published(day, &shared.cfg) => {
                let generation = flat.republish(day);
                ok(json!({ "status": "OK", "day": day.to_string(),
                               "generation": generation, "etag": flat.etag(day) }))
            }
            Some(Ok(day)) => err(
                404,
                format!("{day} has no flat file (not a published trading day)"),
            ),
            Some(Err(e)) => err(400, e.0),
            None => err(400, "add ?day=YYYY-MM-DD".into()),
        },
        (_, "faults" | "republish") => err(
            405,
            "use GET or POST /_sandbox/flat/faults, POST /_sandbox/flat/republish?day=D".into(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(byte_range(None, 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(byte_range(Some("bytes=4-"), 10), Ok(Some((4, 9))));
        assert_eq!(byte_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(byte_range(Some("bytes=5-100"), 10), Ok(Some((5, 9))));
        assert_eq!(byte_range(Some("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(byte_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(byte_range(Some("bytes=x-"), 10), Err(()));
    }

    #[test]
    fn http_dates_are_rfc_7231() {
        assert_eq!(http_date(1_735_898_400), "Fri, 03 Jan 2025 10:00:00 GMT");
    }
}
