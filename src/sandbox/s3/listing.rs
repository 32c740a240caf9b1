//! ListObjectsV2: the query, pagination and the XML body, in the form S3 (and the
//! `object_store` crate's parser) uses.

use std::fmt::Write;

use crate::sandbox::http::Request;

/// Keys per page when the request gives no `max-keys` (also S3's maximum).
pub const DEFAULT_MAX_KEYS: usize = 1000;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Object {
    pub key: String,
    /// Unix seconds.
    pub last_modified: i64,
    /// Quoted.
    pub etag: String,
    pub size: u64,
}

/// A ListObjectsV2 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: usize,
    /// The raw continuation token (echoed back).
    pub token: Option<String>,
    pub start_after: Option<String>,
    /// Entries strictly after this key (from the token, else `start-after`).
    pub after: Option<String>,
}

/// An S3 `InvalidArgument` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct BadListQuery(pub String);

/// Tokens are the last key returned, hex-encoded: opaque to clients, and a token the
/// sandbox did not issue fails to decode.
fn encode_token(key: &str) -> String {
    super::sigv4::hex(key.as_bytes())
}

fn decode_token(token: &str) -> Option<String> {
    String::from_utf8(super::sigv4::unhex(token)?).ok()
}

impl ListQuery {
    /// Reads the ListObjectsV2 parameters of a `GET /bucket?list-type=2...`.
    pub(crate) fn parse(req: &Request) -> Result<ListQuery, BadListQuery> {
        match req.param("list-type") {
            Some("2") => {}
            _ => {
                return Err(BadListQuery(
                    "only ListObjectsV2 is supported: add list-type=2".into(),
                ));
            }
        }
        let max_keys = match req.param("max-keys") {
            None => DEFAULT_MAX_KEYS,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| BadListQuery(format!("max-keys '{v}' is not a number")))?
                .min(DEFAULT_MAX_KEYS),
        };
        let token = req.param("continuation-token").map(str::to_string);
        let start_after = req.param("start-after").map(str::to_string);
        let after = match &token {
            Some(t) => Some(decode_token(t).ok_or_else(|| {
                BadListQuery("The continuation token provided is incorrect".into())
            })?),
            None => start_after.clone(),
        };
        Ok(ListQuery {
            prefix: req.param("prefix").unwrap_or("").to_string(),
            delimiter: req
                .param("delimiter")
                .filter(|d| !d.is_empty())
                .map(str::to_string),
            max_keys,
            token,
            start_after,
            after,
        })
    }
}

/// An entry of a page: an object, or a common prefix when a delimiter folds keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry<T> {
    Object(T),
    Prefix(String),
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page<T> {
    pub entries: Vec<Entry<T>>,
    /// The token for the next page, when there is one.
    pub next: Option<String>,
}

/// Pages through `keys` (ascending): keys under the prefix, folded at the delimiter,
/// strictly after `q.after`, at most `q.max_keys` entries. `object` turns a key into
/// the page's object (called only for the keys returned).
pub(crate) fn page<T>(
    keys: impl Iterator<Item = String>,
    q: &ListQuery,
    mut object: impl FnMut(&str) -> T,
) -> Page<T> {
    let mut entries = Vec::new();
    let mut last: Option<String> = None;
    let mut more = false;
    for key in keys {
        let Some(rest) = key.strip_prefix(q.prefix.as_str()) else {
            continue;
        };
        let name = match q
            .delimiter
            .as_deref()
            .and_then(|d| rest.find(d).map(|i| (i, d)))
        {
            Some((i, d)) => format!("{}{}", q.prefix, &rest[..i + d.len()]),
            None => key.clone(),
        };
        if q.after.as_deref().is_some_and(|a| name.as_str() <= a) || last.as_ref() == Some(&name) {
            continue;
        }
        if entries.len() == q.max_keys {
            more = true;
            break;
        }
        entries.push(if name == key {
            Entry::Object(object(&key))
        } else {
            Entry::Prefix(name.clone())
        });
        last = Some(name);
    }
    Page {
        entries,
        next: last.filter(|_| more).map(|k| encode_token(&k)),
    }
}

/// Escapes text for XML content.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `2025-01-03T10:00:00.000Z`.
pub(crate) fn iso8601(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string(),
        Err(_) => "1970-01-01T00:00:00.000Z".into(),
    }
}

/// The `ListBucketResult` XML of a page (objects first, then common prefixes, each
/// group contiguous as S3 sends them).
pub(crate) fn xml(bucket: &str, q: &ListQuery, page: &Page<Object>) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    let tag = |x: &mut String, name: &str, value: &str| {
        let _ = write!(x, "<{name}>{}</{name}>", xml_escape(value));
    };
    tag(&mut x, "Name", bucket);
    tag(&mut x, "Prefix", &q.prefix);
    if let Some(d) = &q.delimiter {
        tag(&mut x, "Delimiter", d);
    }
    tag(&mut x, "KeyCount", &page.entries.len().to_string());
    tag(&mut x, "MaxKeys", &q.max_keys.to_string());
    tag(
        &mut x,
        "IsTruncated",
        if page.next.is_some() { "true" } else { "false" },
    );
    if let Some(t) = &q.token {
        tag(&mut x, "ContinuationToken", t);
    }
    if let Some(t) = &page.next {
        tag(&mut x, "NextContinuationToken", t);
    }
    if let Some(s) = &q.start_after {
        tag(&mut x, "StartAfter", s);
    }
    for e in &page.entries {
        if let Entry::Object(o) = e {
            x.push_str("<Contents>");
            tag(&mut x, "Key", &o.key);
            tag(&mut x, "LastModified", &iso8601(o.last_modified));
            tag(&mut x, "ETag", &o.etag);
            tag(&mut x, "Size", &o.size.to_string());
            tag(&mut x, "StorageClass", "STANDARD");
            x.push_str("</Contents>");
        }
    }
    for e in &page.entries {
        if let Entry::Prefix(p) = e {
            x.push_str("<CommonPrefixes>");
            tag(&mut x, "Prefix", p);
            x.push_str("</CommonPrefixes>");
        }
    }
    x.push_str("</ListBucketResult>");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::http::parse_query;

    fn query(q: &str) -> ListQuery {
        let req = Request {
            method: "GET".into(),
            path: "/flatfiles".into(),
            query: parse_query(q),
            headers: Vec::new(),
            body: Vec::new(),
            keep_alive: true,
        };
        ListQuery::parse(&req).unwrap()
    }

    fn keys() -> impl Iterator<Item = String> {
        ["a/1/x", "a/1/y", "a/2/x", "b/1/x"]
            .into_iter()
            .map(String::from)
    }

    fn names(p: &Page<String>) -> Vec<String> {
        p.entries
            .iter()
            .map(|e| match e {
                Entry::Object(k) => k.clone(),
                Entry::Prefix(p) => format!("P:{p}"),
            })
            .collect()
    }

    #[test]
    fn pages_follow_the_token_to_the_end() {
        let mut q = query("list-type=2&prefix=a/&max-keys=2");
        let p1 = page(keys(), &q, str::to_string);
        assert_eq!(names(&p1), ["a/1/x", "a/1/y"]);
        q = query(&format!(
            "list-type=2&prefix=a/&max-keys=2&continuation-token={}",
            p1.next.unwrap()
        ));
        let p2 = page(keys(), &q, str::to_string);
        assert_eq!(names(&p2), ["a/2/x"]);
        assert_eq!(p2.next, None);
        let q = query("list-type=2&start-after=a/1/y");
        assert_eq!(names(&page(keys(), &q, str::to_string)), ["a/2/x", "b/1/x"]);
    }

    #[test]
    fn a_page_that_ends_exactly_at_the_last_key_has_no_token() {
        let q = query("list-type=2&max-keys=4");
        assert_eq!(page(keys(), &q, str::to_string).next, None);
        let q = query("list-type=2&max-keys=0");
        assert!(page(keys(), &q, str::to_string).entries.is_empty());
    }

    #[test]
    fn a_delimiter_folds_keys_into_common_prefixes_across_pages() {
        let q = query("list-type=2&prefix=a/&delimiter=/&max-keys=1");
        let p1 = page(keys(), &q, str::to_string);
        assert_eq!(names(&p1), ["P:a/1/"]);
        let q = query(&format!(
            "list-type=2&prefix=a/&delimiter=/&max-keys=1&continuation-token={}",
            p1.next.unwrap()
        ));
        let p2 = page(keys(), &q, str::to_string);
        assert_eq!(names(&p2), ["P:a/2/"]);
        assert_eq!(p2.next, None);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let parse = |q: &str| {
            ListQuery::parse(&Request {
                method: "GET".into(),
                path: "/b".into(),
                query: parse_query(q),
                headers: Vec::new(),
                body: Vec::new(),
                keep_alive: true,
            })
        };
        assert!(parse("prefix=a").is_err());
        assert!(parse("list-type=2&max-keys=x").is_err());
        assert!(parse("list-type=2&continuation-token=zz").is_err());
        assert_eq!(parse("list-type=2&max-keys=5000").unwrap().max_keys, 1000);
    }

    #[test]
    fn xml_has_the_fields_clients_parse() {
        let q = query("list-type=2&prefix=p/&max-keys=1");
        let page = Page {
            entries: vec![Entry::Object(Object {
                key: "p/k&1".into(),
                last_modified: 0,
                etag: "\"ab\"".into(),
                size: 12,
            })],
            next: Some("7a".into()),
        };
        let x = xml("flatfiles", &q, &page);
        for part in [
            "<Key>p/k&amp;1</Key>",
            "<LastModified>1970-01-01T00:00:00.000Z</LastModified>",
            "<ETag>&quot;ab&quot;</ETag>",
            "<Size>12</Size>",
            "<IsTruncated>true</IsTruncated>",
            "<NextContinuationToken>7a</NextContinuationToken>",
            "<KeyCount>1</KeyCount>",
        ] {
            assert!(x.contains(part), "{part} in {x}");
        }
    }
}
