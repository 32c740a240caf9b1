//! "Did you mean …?": the closest known name to a misspelled one, by edit distance
//! (Damerau–Levenshtein: a swap of two neighbours counts as one edit). Used for
//! unknown functions, methods, option keys and script flags alike.

/// The closest candidate to `word`, when it is close enough to be a typo: at most
/// two edits (more for long names), or the same stem with a different ending
/// (`retry` / `retries`). Ties go to the first candidate.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|&c| c != word)
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= 2.max(c.len() / 4) || shares_stem(word, c))
        // Closest first; on a tie, the one sharing the longer start (`uniq` → `unique`,
        // not `union`).
        .min_by_key(|&(d, c)| (d, usize::MAX - common_prefix(word, c)))
        .map(|(_, c)| c)
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// True when the two words differ only after a common stem (`retry` / `retries`).
fn shares_stem(a: &str, b: &str) -> bool {
    let common = common_prefix(a, b);
    let shorter = a.chars().count().min(b.chars().count());
    common >= 3 && common + 1 >= shorter
}

/// The number of single-character insertions, deletions, substitutions and swaps of
/// neighbours that turn `a` into `b` (optimal string alignment distance).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j]; three rows are enough.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_inserts_deletes_substitutions_and_swaps() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "ab"), 2);
        assert_eq!(edit_distance("uniq", "unique"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("form", "from"), 1, "a swap is one edit");
        assert_eq!(edit_distance("wiat_any", "wait_any"), 1);
        assert_eq!(edit_distance("chunk", "chunk"), 0);
    }

    #[test]
    fn suggestion_is_the_closest_plausible_name() {
        let names = ["union", "unique", "chunk", "from", "to"];
        assert_eq!(
            did_you_mean("uniq", names),
            Some("unique"),
            "tie: longer start"
        );
        assert_eq!(did_you_mean("form", names), Some("from"));
        assert_eq!(did_you_mean("chunks", names), Some("chunk"));
        assert_eq!(did_you_mean("spawn_batch", names), None, "nothing close");
        assert_eq!(
            did_you_mean("retry", ["retries", "backoff"]),
            Some("retries")
        );
        assert_eq!(
            did_you_mean("x", ["y"]),
            Some("y"),
            "short names: two edits"
        );
        assert_eq!(
            did_you_mean("to", ["to"]),
            None,
            "the word itself is no hint"
        );
    }
}
