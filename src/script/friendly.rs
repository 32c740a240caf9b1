//! Rhai's "function not found" errors in words people use: an operator applied to
//! values it does not take (`- (&str | ImmutableString | String, i64)`) becomes
//! `cannot subtract an integer from a string (string - integer)`; an unknown
//! function gets the closest known name.

use crate::script::suggest::did_you_mean;

/// The message for Rhai's `Function not found: SIGNATURE`, where `signature` is
/// `name (type, type)`; `known` are the functions the engine knows (for the hint).
pub fn function_not_found(signature: &str, known: &[String]) -> String {
    let (name, types) = split_signature(signature);
    let plain: Vec<&str> = types.iter().map(|t| plain_type(t)).collect();
    if !name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
        return operator(name, &plain);
    }
    let args = format!("({})", plain.join(", "));
    if known.iter().any(|k| k == name) {
        return format!("`{name}` does not take these arguments: {args}");
    }
    match did_you_mean(name, known.iter().map(String::as_str)) {
        Some(s) => format!("unknown function `{name}` {args}; did you mean `{s}`?"),
        None => format!("unknown function `{name}` {args}"),
    }
}

/// `name (t1, t2)` → (`name`, [`t1`, `t2`]); types may contain `|`, never commas
/// outside `<…>`.
fn split_signature(signature: &str) -> (&str, Vec<&str>) {
    let Some((name, rest)) = signature.split_once(" (") else {
        return (signature.trim(), Vec::new());
    };
    let inner = rest.strip_suffix(')').unwrap_or(rest);
    let mut types = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                types.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner.trim().is_empty() {
        types.push(inner[start..].trim());
    }
    (name.trim(), types)
}

/// A Rust or Rhai type name as scripts know it: `string`, `integer`, `float`, …
pub fn plain_type(rust: &str) -> &str {
    let t = rust
        .trim()
        .trim_start_matches("&mut ")
        .trim_start_matches('&');
    if t.contains("ImmutableString") || t == "str" || t == "String" || t == "string" {
        return "string";
    }
    match t {
        "i64" | "i32" | "i16" | "i8" | "u64" | "u32" | "u16" | "u8" | "INT" | "int" => "integer",
        "f64" | "f32" | "FLOAT" => "float",
        "Array" | "array" => "array",
        "Map" | "map" => "map",
        "bool" => "bool",
        "()" => "()",
        "char" => "character",
        "Fn" | "FnPtr" => "function pointer",
        _ if t.starts_with("Range") || t == "range" => "range",
        _ => {
            let t = t.split('<').next().unwrap_or(t);
            let t = t.rsplit("::").next().unwrap_or(t);
            t.strip_prefix("Script")
                .filter(|s| !s.is_empty())
                .unwrap_or(t)
        }
    }
}

/// `an integer`, `a string`, `()`.
fn with_article(t: &str) -> String {
    match t {
        "()" => "() (no value)".to_string(),
        _ if t.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

/// The sentence for operator `op` on operands of the plain `types`.
fn operator(op: &str, types: &[&str]) -> String {
    let words: Vec<String> = types.iter().map(|t| with_article(t)).collect();
    let (a, b, ta, tb) = match (types, words.as_slice()) {
        ([ta], [a]) => {
            let verb = match op {
                "-" => "negate",
                "!" => "apply `!` (not) to",
                _ => return format!("cannot apply `{op}` to {a} ({op}{ta})"),
            };
            return format!("cannot {verb} {a} ({op}{ta})");
        }
        ([ta, tb], [a, b]) => (a, b, ta, tb),
        _ => return format!("cannot apply `{op}` to ({})", types.join(", ")),
    };
    // `x -= 1` fails as `-=`: word it as `-`.
    let base = match op.strip_suffix('=') {
        Some(o) if !o.is_empty() && !matches!(op, "==" | "!=" | "<=" | ">=") => o,
        _ => op,
    };
    let sentence = match base {
        "+" => format!("cannot add {b} to {a}"),
        "-" => format!("cannot subtract {b} from {a}"),
        "*" => format!("cannot multiply {a} by {b}"),
        "/" => format!("cannot divide {a} by {b}"),
        "%" => format!("cannot take the remainder of {a} divided by {b}"),
        "**" => format!("cannot raise {a} to the power of {b}"),
        "<" | ">" | "<=" | ">=" | "==" | "!=" => format!("cannot compare {a} with {b}"),
        "<<" | ">>" => format!("cannot shift {a} by {b}"),
        _ => format!("cannot apply `{op}` to {a} and {b}"),
    };
    // A date string moved by days: the Date type does that.
    let hint = if *ta == "string" && *tb == "integer" && (base == "-" || base == "+") {
        "; for dates use date(…): date(\"2023-11-01\") - 1"
    } else {
        ""
    };
    format!("{sentence} ({ta} {op} {tb}){hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["unique", "union", "chunk"].map(String::from).to_vec()
    }

    #[test]
    fn operators_name_the_operand_types_in_words() {
        let s = "&str | ImmutableString | String";
        let cases = [
            (
                format!("- ({s}, i64)"),
                "cannot subtract an integer from a string (string - integer); for dates use date(…): date(\"2023-11-01\") - 1",
            ),
            (
                format!("* ({s}, f64)"),
                "cannot multiply a string by a float (string * float)",
            ),
            (
                "/ (map, i64)".to_string(),
                "cannot divide a map by an integer (map / integer)",
            ),
            (
                "+ (bool, ())".to_string(),
                "cannot add () (no value) to a bool (bool + ())",
            ),
            (format!("- ({s})"), "cannot negate a string (-string)"),
            (
                "< (array, i64)".to_string(),
                "cannot compare an array with an integer (array < integer)",
            ),
            (
                "-= (Time, i64)".to_string(),
                "cannot subtract an integer from a Time (Time -= integer)",
            ),
            (
                "- (barsmith::script::types::bars::ScriptBars, char)".to_string(),
                "cannot subtract a character from a Bars (Bars - character)",
            ),
        ];
        for (signature, expected) in cases {
            assert_eq!(function_not_found(&signature, &known()), expected);
        }
    }

    #[test]
    fn unknown_functions_get_the_closest_name() {
        assert_eq!(
            function_not_found("uniq (array)", &known()),
            "unknown function `uniq` (array); did you mean `unique`?"
        );
        assert_eq!(
            function_not_found("zzz ()", &known()),
            "unknown function `zzz` ()"
        );
        assert_eq!(
            function_not_found("chunk (&str | ImmutableString | String, i64)", &known()),
            "`chunk` does not take these arguments: (string, integer)"
        );
    }
}
