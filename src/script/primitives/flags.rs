//! Script flags: a script declares its own command-line flags with `args(defaults)`.
//!
//! `batch_size: 25` declares `--batch-size 25`; a boolean declares a switch
//! (`--resume` / `--no-resume`); `()` declares a required flag; an array declares a
//! comma-separated list. Two keys are not flags: `description` (usage text; otherwise
//! the script's `//!` doc is used) and `help` (a map from flag key to a one-line help).

use std::collections::HashMap;
use std::fmt::Write as _;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use crate::script::suggest::did_you_mean;

/// Keys of the defaults map that describe the script instead of declaring flags.
const RESERVED: [&str; 2] = ["description", "help"];

/// The value type of one flag, taken from its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Switch,
    Int,
    Float,
    Text,
    List,
    /// Required: the default is `()`; the value is kept as text.
    Required,
}

impl Kind {
    fn of(default: &Dynamic) -> Result<Kind, String> {
        Ok(if default.is_unit() {
            Kind::Required
        } else if default.is_bool() {
            Kind::Switch
        } else if default.is_int() {
            Kind::Int
        } else if default.is_float() {
            Kind::Float
        } else if default.is_string() || default.is_char() {
            Kind::Text
        } else if default.is_array() {
            Kind::List
        } else {
            return Err(format!(
                "a default of type {} is not supported; use a bool, integer, float, string, array or () for a required flag",
                default.type_name()
            ));
        })
    }

    fn placeholder(self) -> &'static str {
        match self {
            Kind::Switch => "",
            Kind::Int => "<INT>",
            Kind::Float => "<NUM>",
            Kind::Text | Kind::Required => "<TEXT>",
            Kind::List => "<A,B,..>",
        }
    }
}

/// One declared flag.
#[derive(Debug, Clone)]
struct Flag {
    key: String,
    name: String,
    kind: Kind,
    default: Dynamic,
    help: String,
}

/// The flags a script declared, plus its usage text.
#[derive(Debug, Clone)]
pub(crate) struct FlagSet {
    flags: Vec<Flag>,
    description: String,
}

/// What parsing the command line gave.
#[derive(Debug, Clone)]
pub(crate) enum Parsed {
    /// The flag values, by the keys of the defaults map.
    Values(Map),
    /// `--help` or `-h` was given.
    Help,
}

/// The trailing comment of each `key: value, // comment` line of `source`, by key (the
/// first commented occurrence wins): `args(#{ batch_size: 25, // tickers per batch })`
/// needs no separate `help` map.
pub(crate) fn flag_comments(source: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in source.lines() {
        let t = line.trim_start();
        let key_len = t
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if key_len == 0 || !t[key_len..].trim_start().starts_with(':') {
            continue;
        }
        // A `//` inside a string (a URL default) is not a comment: count quotes before it.
        let Some(at) = t.match_indices("//").map(|(i, _)| i).find(|&i| {
            t[..i].matches('"').count() % 2 == 0 && t[..i].matches('`').count() % 2 == 0
        }) else {
            continue;
        };
        let comment = t[at + 2..].trim();
        if !comment.is_empty() {
            out.entry(t[..key_len].to_string())
                .or_insert_with(|| comment.to_string());
        }
    }
    out
}

impl FlagSet {
    /// Reads the declarations; `doc` is the script's `//!` doc (used when there is no
    /// `description` key).
    pub(crate) fn declare(
        defaults: &Map,
        doc: &str,
        comments: &HashMap<String, String>,
    ) -> Result<FlagSet, String> {
        let help = match defaults.get("help") {
            None => Map::new(),
            Some(h) => h
                .read_lock::<Map>()
                .map(|m| m.clone())
                .ok_or("args: the 'help' key must be a map from flag key to help text")?,
        };
        let description = match defaults.get("description") {
            Some(d) => d
                .clone()
                .into_string()
                .map_err(|_| "args: the 'description' key must be a string".to_string())?,
            None => doc.trim().to_string(),
        };
        let mut flags = Vec::new();
        for (key, default) in defaults
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        {
            let kind = Kind::of(default).map_err(|e| format!("args: flag '{key}': {e}"))?;
            flags.push(Flag {
                key: key.to_string(),
                name: key.replace('_', "-"),
                kind,
                default: default.clone(),
                help: help
                    .get(key.as_str())
                    .map(|h| h.to_string())
                    .or_else(|| comments.get(key.as_str()).cloned())
                    .unwrap_or_default(),
            });
        }
        if let Some(k) = help.keys().find(|k| !defaults.contains_key(k.as_str())) {
            return Err(format!(
                "args: help given for '{k}', which is not a declared flag"
            ));
        }
        Ok(FlagSet { flags, description })
    }

    /// Parses `argv` (the arguments after the script path).
    pub(crate) fn parse(&self, argv: &[String]) -> Result<Parsed, String> {
        let mut values: Map = self
            .flags
            .iter()
            .filter(|f| f.kind != Kind::Required)
            .map(|f| (f.key.as_str().into(), f.default.clone()))
            .collect();
        if argv.iter().any(|a| a == "-h" || a == "--help") {
            return Ok(Parsed::Help);
        }
        let mut args = argv.iter();
        while let Some(arg) = args.next() {
            let Some(body) = arg.strip_prefix("--").filter(|b| !b.is_empty()) else {
                return Err(format!(
                    "unexpected argument '{arg}': script flags look like --name value"
                ));
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n.replace('_', "-"), Some(v.to_string())),
                None => (body.replace('_', "-"), None),
            };
            if let Some(flag) = self.flags.iter().find(|f| f.name == name) {
                let value = if flag.kind == Kind::Switch {
                    match inline.as_deref() {
                        None => Dynamic::TRUE,
                        Some(v) => Dynamic::from_bool(parse_bool(&name, v)?),
                    }
                } else {
                    let raw = match inline {
                        Some(v) => v,
                        None => args.next().cloned().ok_or_else(|| {
                            format!("--{name} needs a value ({})", flag.kind.placeholder())
                        })?,
                    };
                    convert(flag, &raw)?
                };
                values.insert(flag.key.as_str().into(), value);
            } else if let Some(flag) = name.strip_prefix("no-").and_then(|n| {
                self.flags
                    .iter()
                    .find(|f| f.name == n && f.kind == Kind::Switch)
            }) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                values.insert(flag.key.as_str().into(), Dynamic::FALSE);
            } else {
                let names = self.flags.iter().map(|f| f.name.as_str());
                let hint = did_you_mean(&name, names)
                    .map(|n| format!(" (did you mean --{n}?)"))
                    .unwrap_or_default();
                return Err(format!("unknown flag --{name}{hint}"));
            }
        }
        let missing: Vec<String> = self
            .flags
            .iter()
            .filter(|f| f.kind == Kind::Required && !values.contains_key(f.key.as_str()))
            .map(|f| format!("--{}", f.name))
            .collect();
        if !missing.is_empty() {
            let s = if missing.len() > 1 { "s" } else { "" };
            return Err(format!("missing required flag{s} {}", missing.join(", ")));
        }
        Ok(Parsed::Values(values))
    }

    /// The usage text: description, synopsis and one line per flag with its default.
    pub(crate) fn usage(&self, script: &str) -> String {
        let mut out = String::new();
        if !self.description.is_empty() {
            out.push_str(&self.description);
            out.push_str("\n\n");
        }
        let _ = writeln!(out, "Usage: barsmith run {script} [FLAGS]\n\nFlags:");
        let lefts: Vec<String> = self
            .flags
            .iter()
            .map(|f| match f.kind {
                Kind::Switch => format!("--[no-]{}", f.name),
                k => format!("--{} {}", f.name, k.placeholder()),
            })
            .collect();
        let width = lefts.iter().map(String::len).max().unwrap_or(0).max(10);
        for (flag, left) in self.flags.iter().zip(&lefts) {
            let default = match flag.kind {
                Kind::Required => "(required)".to_string(),
                Kind::List => format!("[default: {}]", list_text(&flag.default)),
                Kind::Text if flag.default.to_string().is_empty() => String::new(),
                _ => format!("[default: {}]", flag.default),
            };
            let sep = if flag.help.is_empty() || default.is_empty() {
                ""
            } else {
                " "
            };
            let _ = writeln!(out, "  {left:<width$}  {}{sep}{default}", flag.help);
        }
        let _ = writeln!(out, "  {:<width$}  print this help", "-h, --help");
        out.trim_end().to_string()
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(format!("--{name}: '{v}' is not true or false")),
    }
}

fn convert(flag: &Flag, raw: &str) -> Result<Dynamic, String> {
    let name = &flag.name;
    Ok(match flag.kind {
        Kind::Int => Dynamic::from_int(
            raw.trim()
                .replace('_', "")
                .parse::<i64>()
                .map_err(|_| format!("--{name}: '{raw}' is not an integer"))?,
        ),
        Kind::Float => Dynamic::from_float(
            raw.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("--{name}: '{raw}' is not a number"))?,
        ),
        Kind::List => Dynamic::from_array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Dynamic::from(s.to_string()))
                .collect::<Array>(),
        ),
        Kind::Text | Kind::Required => Dynamic::from(raw.to_string()),
        Kind::Switch => Dynamic::from_bool(parse_bool(name, raw)?),
    })
}

fn list_text(v: &Dynamic) -> String {
    v.read_lock::<Array>()
        .map(|a| {
            a.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The script's flags as a plugin module.
#[export_module]
pub mod flags_fns {
    use crate::script::engine::host;
    use crate::script::host::Ending;
    use crate::script::value::Fallible;

    /// Declares the script's command-line flags and returns their values.
    ///
    /// Each key of `defaults` is a flag: `batch_size: 25` is `--batch-size 25` (an
    /// integer), `resume: true` is a switch (`--resume` / `--no-resume`), `outdir: ()` is
    /// a required flag, `tickers: []` takes a comma-separated list. Values are parsed and
    /// type-checked against the defaults. The key `description` (or the script's `//!`
    /// doc) is the usage text, and `help: #{batch_size: "tickers per batch"}` documents
    /// flags; without it, a trailing `// comment` on a `key: value,` line is that flag's
    /// help. `--help` prints the usage and ends the script; an unknown flag, a bad value
    /// or a missing required flag ends it with the usage and exit status 2.
    ///
    /// Example: `let cfg = args(#{ batch_size: 25, resume: true, outdir: () });`
    #[rhai_fn(name = "args", return_raw)]
    pub fn script_args(ctx: NativeCallContext, defaults: Map) -> Fallible<Map> {
        let host = host(&ctx)?;
        let script = host.script();
        let set = FlagSet::declare(&defaults, &script.doc, &script.flag_comments)
            .map_err(crate::script::value::error)?;
        let name = script
            .path
            .as_deref()
            .map_or_else(|| "SCRIPT".to_string(), |p| p.display().to_string());
        let stop = |ending: Ending| {
            host.set_ending(ending);
            Box::new(EvalAltResult::Exit(Dynamic::UNIT, Position::NONE))
        };
        match set.parse(&script.args) {
            Ok(Parsed::Values(values)) => {
                let record = values
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((k.to_string(), crate::script::value::to_json(v).ok()?))
                    })
                    .collect();
                host.set_flags(record);
                Ok(values)
            }
            Ok(Parsed::Help) => {
                host.print(&set.usage(&name));
                Err(stop(Ending::Exit(0)))
            }
            Err(message) => Err(stop(Ending::Usage {
                message,
                usage: set.usage(&name),
            })),
        }
    }

    /// Checks flag values against bounds before anything runs, so that a value no run
    /// can use is refused with the flag named instead of failing later. `rules` maps a
    /// flag key to its smallest value (`1`) or to an inclusive range (`0..=100`).
    /// A value out of bounds ends the script with exit status 2, like a bad flag.
    ///
    /// Errors when a rule names a key that `cfg` lacks, or a value or rule is not a
    /// number or an integer range.
    ///
    /// Example: `check_flags(cfg, #{ batch_size: 1, max_concurrent: 1, max_failed_pct: 0..=100 });`
    #[rhai_fn(return_raw)]
    pub fn check_flags(ctx: NativeCallContext, cfg: Map, rules: Map) -> Fallible<()> {
        let host = host(&ctx)?;
        for (key, rule) in &rules {
            let value = cfg.get(key.as_str()).ok_or_else(|| {
                crate::script::value::error(format!("check_flags: no flag '{key}' in cfg"))
            })?;
            if let Some(message) = out_of_bounds(key, value, rule)? {
                let script = host.script();
                let name = script
                    .path
                    .as_deref()
                    .map_or_else(|| "SCRIPT".to_string(), |p| p.display().to_string());
                host.set_ending(Ending::Usage {
                    message,
                    usage: format!("`barsmith run {name} --help` lists the flags."),
                });
                return Err(Box::new(EvalAltResult::Exit(Dynamic::UNIT, Position::NONE)));
            }
        }
        Ok(())
    }
}

/// The message for a flag value outside its rule (`Ok(None)` when inside).
fn out_of_bounds(
    key: &str,
    value: &Dynamic,
    rule: &Dynamic,
) -> Result<Option<String>, Box<EvalAltResult>> {
    let flag = format!("--{}", key.replace('_', "-"));
    let v = value
        .as_int()
        .map(|i| i as f64)
        .or_else(|_| value.as_float())
        .map_err(|_| {
            crate::script::value::error(format!(
                "check_flags: {flag} is {}, not a number",
                value.type_name()
            ))
        })?;
    let (lo, hi) = if let Ok(min) = rule.as_int() {
        (min, i64::MAX)
    } else if let Some(r) = rule.read_lock::<std::ops::RangeInclusive<i64>>() {
        (*r.start(), *r.end())
    } else if let Some(r) = rule.read_lock::<std::ops::Range<i64>>() {
        (r.start, r.end.saturating_sub(1))
    } else {
        return Err(crate::script::value::error(format!(
            "check_flags: the rule for '{key}' must be a minimum (1) or a range (0..=100), got {}",
            rule.type_name()
        )));
    };
    Ok(if v < lo as f64 {
        Some(format!("{flag} must be at least {lo}, got {value}"))
    } else if v > hi as f64 {
        Some(format!("{flag} must be at most {hi}, got {value}"))
    } else {
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Map {
        let mut m = Map::new();
        m.insert("batch_size".into(), Dynamic::from_int(25));
        m.insert("resume".into(), Dynamic::TRUE);
        m.insert("outdir".into(), Dynamic::UNIT);
        m.insert("rate".into(), Dynamic::from_float(1.5));
        m.insert("tickers".into(), Dynamic::from_array(vec![]));
        m.insert("base".into(), Dynamic::from("x"));
        m
    }

    fn parse(argv: &[&str]) -> Result<Parsed, String> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        FlagSet::declare(&defaults(), "", &HashMap::new())
            .unwrap()
            .parse(&argv)
    }

    fn values(argv: &[&str]) -> Map {
        match parse(argv) {
            Ok(Parsed::Values(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_are_kebab_case_and_typed_by_their_defaults() {
        let v = values(&[
            "--batch-size",
            "10",
            "--outdir=d",
            "--no-resume",
            "--rate",
            "2",
            "--tickers",
            "A, B,",
        ]);
        assert_eq!(v["batch_size"].as_int().unwrap(), 10);
        assert_eq!(v["outdir"].to_string(), "d");
        assert!(!v["resume"].as_bool().unwrap());
        assert_eq!(v["rate"].as_float().unwrap(), 2.0);
        assert_eq!(v["tickers"].to_string(), r#"["A", "B"]"#);
        assert_eq!(v["base"].to_string(), "x");
    }

    #[test]
    fn bad_values_unknown_and_missing_flags_are_explained() {
        assert!(
            parse(&["--outdir", "d", "--batch-size", "ten"])
                .unwrap_err()
                .contains("'ten' is not an integer")
        );
        let e = parse(&["--outdir", "d", "--bach-size", "3"]).unwrap_err();
        assert!(
            e.contains("unknown flag --bach-size (did you mean --batch-size?)"),
            "{e}"
        );
        assert_eq!(parse(&[]).unwrap_err(), "missing required flag --outdir");
        assert!(parse(&["--outdir"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--outdir", "d", "stray"])
                .unwrap_err()
                .contains("unexpected argument 'stray'")
        );
    }

    #[test]
    fn help_wins_and_usage_lists_flags_with_defaults() {
        assert!(matches!(parse(&["--bogus", "--help"]), Ok(Parsed::Help)));
        assert!(matches!(parse(&["-h"]), Ok(Parsed::Help)));
        let u = FlagSet::declare(&defaults(), "Backfills things.", &HashMap::new())
            .unwrap()
            .usage("w.rhai");
        assert!(
            u.starts_with("Backfills things.\n\nUsage: barsmith run w.rhai [FLAGS]"),
            "{u}"
        );
        assert!(u.contains("--batch-size <INT>"), "{u}");
        assert!(u.contains("[default: 25]"), "{u}");
        assert!(u.contains("--[no-]resume"), "{u}");
        assert!(
            u.contains("--outdir <TEXT>") && u.contains("(required)"),
            "{u}"
        );
    }

    #[test]
    fn trailing_comments_of_a_defaults_map_become_flag_help() {
        let src = "let cfg = args(#{\n    batch_size: 25,   // tickers per worker\n    \
                   base: \"http://x\", // the API\n    plain: 1,\n});\nbatch_size: 3, // later\n";
        let c = flag_comments(src);
        assert_eq!(c["batch_size"], "tickers per worker");
        assert_eq!(c["base"], "the API");
        assert!(!c.contains_key("plain"));
    }
}
