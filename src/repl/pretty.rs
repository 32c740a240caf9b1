//! Values as the REPL prints them: strings as they are, custom types through their
//! own `to_string` (a `Bars` object is its short table), maps and arrays in Rhai
//! literal syntax — on one line when short, else one entry per line, indented, keys
//! sorted, long arrays elided.

use std::fmt::Write as _;

use rhai::{Array, Dynamic, Engine, Map, Scope};

/// Widest container kept on one line.
const INLINE_WIDTH: usize = 72;
/// Arrays longer than this show their head and tail only.
const ARRAY_MAX: usize = 20;
/// Elements shown at the head of an elided array.
const ARRAY_HEAD: usize = 10;
/// Elements shown at the tail of an elided array.
const ARRAY_TAIL: usize = 2;

/// `value` as the REPL shows a result.
pub fn render(engine: &Engine, value: &Dynamic) -> String {
    if value.is_string() {
        return value.to_string();
    }
    let mut out = String::new();
    write_value(engine, value, 0, &mut out);
    out
}

/// `value` on one line of at most `width` characters (for `:vars`).
pub fn one_line(engine: &Engine, value: &Dynamic, width: usize) -> String {
    let text = first_line(&inline(engine, value));
    if text.chars().count() <= width {
        return text;
    }
    let cut: String = text.chars().take(width.saturating_sub(3)).collect();
    format!("{cut}...")
}

fn write_value(engine: &Engine, value: &Dynamic, indent: usize, out: &mut String) {
    let inline = inline(engine, value);
    if inline.len() + indent <= INLINE_WIDTH && !inline.contains('\n') {
        out.push_str(&inline);
        return;
    }
    let pad = "  ".repeat(indent + 1);
    if let Some(items) = value.read_lock::<Array>() {
        out.push_str("[\n");
        for item in shown(&items) {
            out.push_str(&pad);
            match item {
                Some(v) => write_value(engine, v, indent + 1, out),
                None => {
                    let _ = write!(out, "/* ... {} more ... */", elided(&items));
                }
            }
            out.push_str(",\n");
        }
        let _ = write!(out, "{}]", "  ".repeat(indent));
    } else if let Some(fields) = value.read_lock::<Map>() {
        out.push_str("#{\n");
        for (k, v) in fields.iter() {
            let _ = write!(out, "{pad}{}: ", key(k));
            write_value(engine, v, indent + 1, out);
            out.push_str(",\n");
        }
        let _ = write!(out, "{}}}", "  ".repeat(indent));
    } else {
        out.push_str(&inline);
    }
}

/// The elements to show (`None` marks the elided middle).
fn shown(items: &Array) -> Vec<Option<&Dynamic>> {
    if items.len() <= ARRAY_MAX {
        return items.iter().map(Some).collect();
    }
    let head = items[..ARRAY_HEAD].iter().map(Some);
    let tail = items[items.len() - ARRAY_TAIL..].iter().map(Some);
    head.chain(std::iter::once(None)).chain(tail).collect()
}

fn elided(items: &Array) -> usize {
    items.len() - ARRAY_HEAD - ARRAY_TAIL
}

/// A map key as Rhai accepts it back: bare when an identifier, else quoted.
fn key(k: &str) -> String {
    let ident = k
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_alphanumeric() || c == '_');
    if ident {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// The one-line form of `value` (a custom type's first line only when nested).
fn inline(engine: &Engine, value: &Dynamic) -> String {
    if value.is_unit() {
        return "()".to_string();
    }
    if value.is_string() {
        return format!("{:?}", value.to_string());
    }
    if value.is_char() {
        return format!("'{value}'");
    }
    if value.is_int() || value.is_float() || value.is_bool() {
        return value.to_string();
    }
    if value.is_timestamp() || value.is_fnptr() {
        return value.to_string();
    }
    if let Some(items) = value.read_lock::<Array>() {
        let parts: Vec<String> = shown(&items)
            .into_iter()
            .map(|v| match v {
                Some(v) => first_line(&inline(engine, v)),
                None => format!("/* ... {} more ... */", elided(&items)),
            })
            .collect();
        return format!("[{}]", parts.join(", "));
    }
    if let Some(fields) = value.read_lock::<Map>() {
        let parts: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}: {}", key(k), first_line(&inline(engine, v))))
            .collect();
        return format!("#{{{}}}", parts.join(", "));
    }
    custom(engine, value)
}

/// A custom type through the engine's `to_string` (what `print` shows).
fn custom(engine: &Engine, value: &Dynamic) -> String {
    let mut scope = Scope::new();
    scope.push("value", value.clone());
    engine
        .eval_with_scope::<String>(&mut scope, "to_string(value)")
        .unwrap_or_else(|_| value.to_string())
}

fn first_line(text: &str) -> String {
    match text.split_once('\n') {
        Some((first, _)) => format!("{first} ..."),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(text: &str) -> String {
        let engine = Engine::new();
        let v: Dynamic = engine.eval(text).unwrap();
        render(&engine, &v)
    }

    #[test]
    fn short_values_stay_on_one_line() {
        assert_eq!(eval("42"), "42");
        assert_eq!(eval(r#""plain text""#), "plain text");
        assert_eq!(eval(r#"#{b: 2, a: "x"}"#), r#"#{a: "x", b: 2}"#);
        assert_eq!(eval("[1, [2, 3], ()]"), "[1, [2, 3], ()]");
        assert_eq!(eval(r#"#{"odd key": 1}"#), r#"#{"odd key": 1}"#);
    }

    #[test]
    fn long_maps_break_into_indented_lines_with_sorted_keys() {
        let text = eval(
            r#"[#{ticker: "AAPL", message: "HTTP 500 from the server after 2 attempts, giving up", class: "retryable"}]"#,
        );
        assert_eq!(
            text,
            "[\n  #{\n    class: \"retryable\",\n    message: \"HTTP 500 from the server after 2 attempts, giving up\",\n    ticker: \"AAPL\",\n  },\n]"
        );
    }

    #[test]
    fn long_arrays_are_elided_in_the_middle() {
        let text = eval("let a = []; for i in 0..100 { a.push(i * 1000000); } a");
        assert!(text.contains("/* ... 88 more ... */"), "{text}");
        assert!(text.contains("99000000"), "{text}");
        assert!(!text.contains("50000000"), "{text}");
    }
}
