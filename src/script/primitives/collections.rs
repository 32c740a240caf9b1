//! Array helpers that keep backfill scripts short: batching, set operations and
//! sorting rows (a priority CSV) by a column.
//!
//! Set operations compare elements by type and printed value, so `"AAPL"` matches
//! `"AAPL"` and `1` matches `1`, and they keep the order of their first argument.

use std::cmp::Ordering;
use std::collections::HashSet;

use rhai::{Array, Dynamic, Map};

use crate::script::value::{Fallible, error};

/// The identity of an element for set operations.
fn key(v: &Dynamic) -> (String, String) {
    (v.type_name().to_string(), v.to_string())
}

fn keys(items: &[Dynamic]) -> HashSet<(String, String)> {
    items.iter().map(key).collect()
}

/// A cell as a sort key: numbers (and strings that read as numbers, as CSV cells do)
/// by value, then other strings; a missing or empty cell is `None`.
fn sort_key(v: Option<&Dynamic>) -> Option<Result<f64, String>> {
    let v = v?;
    if let Ok(i) = v.as_int() {
        return Some(Ok(i as f64));
    }
    if let Ok(f) = v.as_float() {
        return Some(Ok(f));
    }
    let s = v.to_string();
    let t = s.trim();
    if v.is_unit() || t.is_empty() {
        return None;
    }
    Some(t.parse::<f64>().map_err(|_| t.to_string()))
}

/// Orders two keys: numbers before text, each in natural order.
fn compare(a: &Option<Result<f64, String>>, b: &Option<Result<f64, String>>) -> Ordering {
    match (a, b) {
        (Some(Ok(x)), Some(Ok(y))) => x.total_cmp(y),
        (Some(Ok(_)), Some(Err(_))) => Ordering::Less,
        (Some(Err(_)), Some(Ok(_))) => Ordering::Greater,
        (Some(Err(x)), Some(Err(y))) => x.cmp(y),
        _ => Ordering::Equal, // missing cells are placed by the caller
    }
}

/// `rows` (maps) sorted by `column`, stably; rows missing the column (or with an empty
/// cell) go last in either direction.
pub(crate) fn sort_rows(rows: Array, column: &str, descending: bool) -> Fallible<Array> {
    let mut keyed = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let key = match row.read_lock::<Map>() {
            Some(m) => sort_key(m.get(column)),
            None => {
                return Err(error(format!(
                    "sort_by: rows[{i}] is {}, not a map (rows from read_csv are maps)",
                    row.type_name()
                )));
            }
        };
        keyed.push((key, row));
    }
    keyed.sort_by(|(a, _), (b, _)| match (a.is_some(), b.is_some()) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ if descending => compare(b, a),
        _ => compare(a, b),
    });
    Ok(keyed.into_iter().map(|(_, row)| row).collect())
}

/// Arrays as a plugin module.
#[rhai::plugin::export_module]
pub mod collections_fns {
    use rhai::{Array, Dynamic};

    use crate::script::value::{Fallible, error};

    /// `rows` (maps, e.g. from `read_csv`) sorted by `column`, smallest first: numbers
    /// and numeric text by value ("10" after "9"), then other text; equal rows keep
    /// their order and rows without the column go last.
    ///
    /// Errors when an element of `rows` is not a map.
    ///
    /// Example: `let rows = sort_by(read_csv("priority.csv"), "rank");`
    #[rhai_fn(return_raw)]
    pub fn sort_by(rows: Array, column: &str) -> Fallible<Array> {
        super::sort_rows(rows, column, false)
    }

    /// `sort_by(rows, column)` in the order `"asc"` or `"desc"` (rows without the
    /// column still go last).
    ///
    /// Errors on another order, or as `sort_by(rows, column)`.
    ///
    /// Example: `let rows = sort_by(read_csv("universe.csv"), "market_cap", "desc");`
    #[rhai_fn(name = "sort_by", return_raw)]
    pub fn sort_by_order(rows: Array, column: &str, order: &str) -> Fallible<Array> {
        match order {
            "asc" => super::sort_rows(rows, column, false),
            "desc" => super::sort_rows(rows, column, true),
            other => Err(error(format!(
                "sort_by: the order must be \"asc\" or \"desc\", got \"{other}\""
            ))),
        }
    }

    /// Splits `items` into consecutive batches of at most `n` elements, in order.
    /// The last batch may be shorter; an empty array gives no batches.
    /// Errors when `n` is not positive.
    ///
    /// Example: `let batches = chunk(tickers, 25);   // [[..25..], [..25..], [..7..]]`
    #[rhai_fn(return_raw)]
    pub fn chunk(items: Array, n: i64) -> Fallible<Array> {
        if n <= 0 {
            return Err(error(format!(
                "chunk: the batch size must be at least 1, got {n}"
            )));
        }
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        Ok(items
            .chunks(n)
            .map(|c| Dynamic::from_array(c.to_vec()))
            .collect())
    }

    /// The elements of `a` that are not in `b`, in the order of `a` (duplicates of
    /// `a` are kept once). Never fails.
    ///
    /// Example: `let todo = difference(universe, completed_tickers(outdir, from, to));`
    pub fn difference(a: Array, b: Array) -> Array {
        let exclude = super::keys(&b);
        let mut seen = std::collections::HashSet::new();
        a.into_iter()
            .filter(|v| {
                let k = super::key(v);
                !exclude.contains(&k) && seen.insert(k)
            })
            .collect()
    }

    /// The elements of `a` that are also in `b`, in the order of `a`, each once.
    /// Never fails.
    ///
    /// Example: `let retry = intersection(failed, universe);`
    pub fn intersection(a: Array, b: Array) -> Array {
        let keep = super::keys(&b);
        let mut seen = std::collections::HashSet::new();
        a.into_iter()
            .filter(|v| {
                let k = super::key(v);
                keep.contains(&k) && seen.insert(k)
            })
            .collect()
    }

    /// The elements of `a` then those of `b` not already present, each once.
    /// Never fails.
    ///
    /// Example: `let all = union(read_tickers("a.csv"), read_tickers("b.csv"));`
    pub fn union(a: Array, b: Array) -> Array {
        unique(a.into_iter().chain(b).collect())
    }

    /// The elements of `items` without duplicates, keeping the first of each.
    /// Never fails.
    ///
    /// Example: `let tickers = unique(["A", "B", "A"]);   // ["A", "B"]`
    pub fn unique(items: Array) -> Array {
        let mut seen = std::collections::HashSet::new();
        items
            .into_iter()
            .filter(|v| seen.insert(super::key(v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::collections_fns::*;
    use rhai::{Array, Dynamic};

    fn arr(items: &[&str]) -> Array {
        items.iter().map(|s| Dynamic::from(s.to_string())).collect()
    }

    fn strs(a: Array) -> Vec<String> {
        a.into_iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn chunk_keeps_order_and_a_short_tail() {
        let c = chunk(arr(&["a", "b", "c", "d", "e"]), 2).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(strs(c[2].clone().into_array().unwrap()), ["e"]);
        assert!(chunk(arr(&[]), 3).unwrap().is_empty());
        assert!(chunk(arr(&["a"]), 0).is_err());
    }

    #[test]
    fn set_operations_keep_the_order_of_the_first_array() {
        let a = arr(&["C", "A", "B", "A"]);
        let b = arr(&["B", "D"]);
        assert_eq!(strs(difference(a.clone(), b.clone())), ["C", "A"]);
        assert_eq!(strs(intersection(a.clone(), b.clone())), ["B"]);
        assert_eq!(strs(union(a, b)), ["C", "A", "B", "D"]);
    }

    #[test]
    fn set_operations_tell_types_apart() {
        let a: Array = vec![Dynamic::from_int(1), Dynamic::from("1".to_string())];
        let b: Array = vec![Dynamic::from_int(1)];
        assert_eq!(difference(a, b).len(), 1);
    }
}
