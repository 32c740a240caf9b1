//! Array helpers that keep backfill scripts short: batching and set operations.
//!
//! Set operations compare elements by type and printed value, so `"AAPL"` matches
//! `"AAPL"` and `1` matches `1`, and they keep the order of their first argument.

use std::collections::HashSet;

use rhai::Dynamic;

/// The identity of an element for set operations.
fn key(v: &Dynamic) -> (String, String) {
    (v.type_name().to_string(), v.to_string())
}

fn keys(items: &[Dynamic]) -> HashSet<(String, String)> {
    items.iter().map(key).collect()
}

/// Arrays as a plugin module.
#[rhai::plugin::export_module]
pub mod collections_fns {
    use rhai::{Array, Dynamic};

    use crate::script::value::{Fallible, error};

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
