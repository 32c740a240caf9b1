//! The reference of every primitive, read from the engine's metadata (the `///`
//! comments of the plugin modules): `barsmith fns` prints it, `--markdown` renders the
//! checked-in reference, and the REPL uses it for `:fns`, `:doc` and completion.

use std::fmt::Write as _;

use rhai::Engine;
use serde::Deserialize;

use crate::script::primitives::THEMES;

/// One primitive (or method/property of a custom type) as documented for users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimitiveDoc {
    /// The name scripts use, e.g. `chunk` (or `len` for `bars.len()`).
    pub name: String,
    /// The signature in script types, e.g. `chunk(items: array, n: int) -> array`.
    pub signature: String,
    /// The doc comment, without comment markers.
    pub doc: String,
    /// The theme name (see [`THEMES`]).
    pub theme: &'static str,
}

impl PrimitiveDoc {
    /// The first sentence-line of the doc, for one-line listings.
    pub fn summary(&self) -> &str {
        self.doc.lines().next().unwrap_or("")
    }
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    functions: Vec<FnMeta>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FnMeta {
    name: String,
    #[serde(default)]
    params: Vec<Param>,
    #[serde(default)]
    return_type: String,
    #[serde(default)]
    doc_comments: Vec<String>,
}

#[derive(Deserialize)]
struct Param {
    name: Option<String>,
    #[serde(rename = "type")]
    typ: Option<String>,
}

/// A Rust parameter type (or a value's `type_name`) as scripts know it: `int`,
/// `float`, `string`, `array`, `map`, `Bars`, ...
pub fn script_type(rust: &str) -> String {
    let mut t = rust
        .trim()
        .trim_start_matches("&mut ")
        .trim_start_matches('&')
        .trim();
    for wrapper in ["Fallible<", "RhaiResultOf<", "Result<"] {
        if let Some(inner) = t.strip_prefix(wrapper).and_then(|s| s.strip_suffix('>')) {
            t = inner.split(", Box<").next().unwrap_or(inner).trim();
        }
    }
    let last = t.rsplit("::").next().unwrap_or(t);
    match last {
        "i64" | "INT" | "i32" | "u32" | "usize" => "int",
        "f64" | "FLOAT" => "float",
        "bool" => "bool",
        "str" | "String" | "ImmutableString" => "string",
        "Array" => "array",
        "Map" => "map",
        "Dynamic" => "any",
        "()" | "" => "",
        "ScriptBars" => "Bars",
        "ScriptBatchHandle" => "BatchHandle",
        "ScriptDate" => "Date",
        "DateArg" => "Date|string",
        other => other,
    }
    .to_string()
}

fn doc_text(comments: &[String]) -> String {
    comments
        .iter()
        .flat_map(|c| c.lines())
        .map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("///").unwrap_or(l);
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn document(f: &FnMeta, theme: &'static str) -> PrimitiveDoc {
    let params: Vec<(String, String)> = f
        .params
        .iter()
        .map(|p| {
            let name = p.name.clone().unwrap_or_else(|| "_".into());
            (name, p.typ.as_deref().map(script_type).unwrap_or_default())
        })
        .collect();
    let ret = script_type(&f.return_type);
    let arrow = if ret.is_empty() {
        String::new()
    } else {
        format!(" -> {ret}")
    };
    let receiver = params.first().map(|(n, _)| n.clone()).unwrap_or_default();
    let (name, signature) = if let Some(prop) = f.name.strip_prefix("get$") {
        (prop.to_string(), format!("{receiver}.{prop}{arrow}"))
    } else if f.name == "index$get$" {
        let (i, t) = params.get(1).cloned().unwrap_or_default();
        ("[]".to_string(), format!("{receiver}[{i}: {t}]{arrow}"))
    } else {
        let list: Vec<String> = params
            .iter()
            .map(|(n, t)| {
                if t.is_empty() {
                    n.clone()
                } else {
                    format!("{n}: {t}")
                }
            })
            .collect();
        (
            f.name.clone(),
            format!("{}({}){arrow}", f.name, list.join(", ")),
        )
    };
    PrimitiveDoc {
        name,
        signature,
        doc: doc_text(&f.doc_comments),
        theme,
    }
}

/// Every barsmith primitive, theme by theme (in [`THEMES`] order), alphabetically
/// within a theme. Properties read as `bars.len`, indexers as `bars[index: int]`.
pub fn primitives() -> Vec<PrimitiveDoc> {
    let mut out = Vec::new();
    for theme in THEMES {
        let mut engine = Engine::new_raw();
        crate::script::types::register(&mut engine);
        engine.register_global_module((theme.module)().into());
        let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
        let Ok(meta) = serde_json::from_str::<Metadata>(&json) else {
            continue;
        };
        let names: Vec<&str> = meta.functions.iter().map(|f| f.name.as_str()).collect();
        let mut docs: Vec<(bool, PrimitiveDoc)> = Vec::new();
        for f in &meta.functions {
            // `to_debug` repeats `to_string`; a property that is also a method is shown once.
            let is_dup_property = f
                .name
                .strip_prefix("get$")
                .is_some_and(|p| names.contains(&p));
            if f.name == "to_debug" || is_dup_property {
                continue;
            }
            // Methods and properties of the theme's types come after its functions.
            let is_member = f.name.contains('$')
                || f.params
                    .first()
                    .and_then(|p| p.typ.as_deref())
                    .is_some_and(|t| t.starts_with("&mut"));
            docs.push((is_member, document(f, theme.name)));
        }
        // Overloads tie on the name; the signature breaks the tie (metadata order is not stable).
        docs.sort_by(|a, b| {
            (a.0, &a.1.name, &a.1.signature).cmp(&(b.0, &b.1.name, &b.1.signature))
        });
        out.extend(docs.into_iter().map(|(_, d)| d));
    }
    out
}

/// Every method and property callable as `value.name` on `engine` (standard library
/// included), as `(receiver type, name)`: the receiver type as [`script_type`] gives
/// it (`any` for functions that take every type), the name as typed after the dot.
/// Operators, setters and indexers are left out. Sorted, without duplicates.
pub fn methods(engine: &Engine) -> Vec<(String, String)> {
    let json = engine.gen_fn_metadata_to_json(true).unwrap_or_default();
    let Ok(meta) = serde_json::from_str::<Metadata>(&json) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = meta
        .functions
        .iter()
        .filter_map(|f| {
            let receiver = f.params.first()?.typ.as_deref().map(script_type)?;
            let name = f.name.strip_prefix("get$").unwrap_or(&f.name);
            let ident = name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_alphanumeric() || c == '_');
            ident.then(|| (receiver, name.to_string()))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The primitives whose name or theme matches `filter` (a theme name selects the
/// whole theme; otherwise a case-insensitive substring of the name).
pub fn matching(filter: Option<&str>) -> Vec<PrimitiveDoc> {
    let all = primitives();
    let Some(f) = filter
        .map(str::to_ascii_lowercase)
        .filter(|f| !f.is_empty())
    else {
        return all;
    };
    if THEMES.iter().any(|t| t.name == f) {
        return all.into_iter().filter(|d| d.theme == f).collect();
    }
    all.into_iter()
        .filter(|d| d.name.to_ascii_lowercase().contains(&f))
        .collect()
}

fn title(theme: &str) -> &'static str {
    THEMES
        .iter()
        .find(|t| t.name == theme)
        .map_or("", |t| t.title)
}

/// Plain-text reference, grouped by theme: signature, then the doc indented.
pub fn render_text(docs: &[PrimitiveDoc]) -> String {
    let mut out = String::new();
    let mut theme = "";
    for d in docs {
        if d.theme != theme {
            theme = d.theme;
            let _ = writeln!(
                out,
                "{}{} ({theme})",
                if out.is_empty() { "" } else { "\n" },
                title(theme)
            );
        }
        let _ = writeln!(out, "\n  {}", d.signature);
        for line in d.doc.lines() {
            let _ = writeln!(out, "      {line}").map(|_| ());
        }
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The Markdown reference (`barsmith fns --markdown`), checked into the repository.
pub fn render_markdown(docs: &[PrimitiveDoc]) -> String {
    let mut out = String::from(
        "# barsmith script primitives\n\n\
         Generated by `barsmith fns --markdown` from the doc comments of `src/script/primitives/`\n\
         and `src/script/types/`; do not edit by hand.\n\n\
         Scripts also have Rhai's standard library (strings, arrays, maps, math).\n",
    );
    let _ = writeln!(out, "\n## Contents\n");
    for t in THEMES
        .iter()
        .filter(|t| docs.iter().any(|d| d.theme == t.name))
    {
        let _ = writeln!(
            out,
            "- [{}](#{}): {}",
            t.title,
            anchor(t.title),
            names_of(docs, t.name)
        );
    }
    for t in THEMES {
        let items: Vec<&PrimitiveDoc> = docs.iter().filter(|d| d.theme == t.name).collect();
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n## {}\n", t.title);
        for d in items {
            let _ = writeln!(out, "### `{}`\n\n{}\n", d.signature, markdown_doc(&d.doc));
        }
    }
    let mut out = out.trim_end().to_string() + "\n";
    while out.contains("\n\n\n") {
        out = out.replace("\n\n\n", "\n\n");
    }
    out
}

/// A doc comment as Markdown: the `Example:` line becomes a fenced Rhai block (its code
/// often holds template strings, whose backticks would break inline code).
fn markdown_doc(doc: &str) -> String {
    doc.lines()
        .map(|line| {
            match line
                .strip_prefix("Example: `")
                .and_then(|l| l.strip_suffix('`'))
            {
                Some(code) => format!("Example:\n\n```rhai\n{code}\n```"),
                None => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn names_of(docs: &[PrimitiveDoc], theme: &str) -> String {
    let mut names: Vec<&str> = docs
        .iter()
        .filter(|d| d.theme == theme)
        .map(|d| d.name.as_str())
        .collect();
    names.dedup();
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn anchor(title: &str) -> String {
    title
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ' || *c == '-')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_types_read_as_script_types() {
        assert_eq!(script_type("Fallible<Array>"), "array");
        assert_eq!(script_type("&str"), "string");
        assert_eq!(script_type("&mut ScriptBars"), "Bars");
        assert_eq!(script_type("Fallible<()>"), "");
        assert_eq!(script_type("i64"), "int");
    }

    #[test]
    fn every_primitive_has_a_doc_with_an_example() {
        let docs = primitives();
        assert!(docs.len() > 30, "{}", docs.len());
        for d in &docs {
            assert!(!d.doc.is_empty(), "{} has no doc", d.signature);
            assert!(d.doc.contains("Example:"), "{} has no example", d.signature);
            assert!(
                !d.signature.contains("Fallible") && !d.signature.contains("&str"),
                "{}",
                d.signature
            );
        }
    }
}
