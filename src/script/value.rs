//! Conversions and checks shared by the primitives: errors thrown to scripts, JSON
//! values, strictly validated option maps and date ranges.
//!
//! Script input is user input: every option map is checked against the keys the
//! primitive knows, and an unknown key is an error that names the known ones.

use rhai::{Array, Dynamic, EvalAltResult, Map, Position};

use crate::calendar::DateRange;
use crate::script::suggest::did_you_mean;
use crate::script::types::date::ScriptDate;

/// The error type of every primitive.
pub(crate) type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A plain runtime error with a message; the engine adds the call position.
pub(crate) fn error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

/// A structured runtime error (a map) that scripts can inspect with `catch (e)`.
pub(crate) fn error_value(value: Map) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from_map(value),
        Position::NONE,
    ))
}

/// Converts a JSON value into a script value (`null` becomes `()`).
pub(crate) fn from_json(value: serde_json::Value) -> Dynamic {
    match value {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => Dynamic::from_bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Dynamic::from(s),
        serde_json::Value::Array(items) => {
            Dynamic::from_array(items.into_iter().map(from_json).collect())
        }
        serde_json::Value::Object(fields) => Dynamic::from_map(
            fields
                .into_iter()
                .map(|(k, v)| (k.into(), from_json(v)))
                .collect(),
        ),
    }
}

/// Converts a script value into JSON; `()` becomes `null`. Values with no JSON form
/// (functions, handles) are an error naming their type.
pub(crate) fn to_json(value: &Dynamic) -> Fallible<serde_json::Value> {
    use serde_json::Value;
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if value.is_string() || value.is_char() {
        return Ok(Value::String(value.to_string()));
    }
    if let Some(items) = value.read_lock::<Array>() {
        return items
            .iter()
            .map(to_json)
            .collect::<Fallible<_>>()
            .map(Value::Array);
    }
    if let Some(fields) = value.read_lock::<Map>() {
        let mut out = serde_json::Map::new();
        for (k, v) in fields.iter() {
            out.insert(k.to_string(), to_json(v)?);
        }
        return Ok(Value::Object(out));
    }
    Err(error(format!(
        "a value of type {} cannot be written as JSON",
        value.type_name()
    )))
}

/// An option map checked against the keys a primitive knows.
pub(crate) struct Options {
    function: &'static str,
    map: Map,
}

impl Options {
    /// Refuses any key not in `known`, naming the known ones (and the likely typo).
    pub(crate) fn parse(function: &'static str, map: Map, known: &[&str]) -> Fallible<Options> {
        let mut unknown: Vec<&str> = map
            .keys()
            .map(|k| k.as_str())
            .filter(|k| !known.contains(k))
            .collect();
        unknown.sort_unstable();
        if let Some(first) = unknown.first() {
            let hint = did_you_mean(first, known.iter().copied())
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            let plural = if unknown.len() > 1 { "s" } else { "" };
            return Err(error(format!(
                "{function}: unknown option{plural} {}{hint}; known options: {}",
                unknown
                    .iter()
                    .map(|k| format!("'{k}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
                known.join(", ")
            )));
        }
        Ok(Options { function, map })
    }

    fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.get(key).filter(|v| !v.is_unit())
    }

    /// The raw value of an option, when given and not `()`.
    pub(crate) fn get_dynamic(&self, key: &str) -> Option<&Dynamic> {
        self.get(key)
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Dynamic) -> Box<EvalAltResult> {
        error(format!(
            "{}: option '{key}' must be {expected}, got {} ({got})",
            self.function,
            got.type_name()
        ))
    }

    /// A boolean option.
    pub(crate) fn bool(&self, key: &str) -> Fallible<Option<bool>> {
        self.get(key)
            .map(|v| {
                v.as_bool()
                    .map_err(|_| self.wrong_type(key, "true or false", v))
            })
            .transpose()
    }

    /// An integer option.
    pub(crate) fn int(&self, key: &str) -> Fallible<Option<i64>> {
        self.get(key)
            .map(|v| {
                v.as_int()
                    .map_err(|_| self.wrong_type(key, "an integer", v))
            })
            .transpose()
    }

    /// A non-negative number (integer or float), e.g. seconds.
    pub(crate) fn seconds(&self, key: &str) -> Fallible<Option<f64>> {
        self.get(key)
            .map(|v| {
                let n = v
                    .as_float()
                    .or_else(|_| v.as_int().map(|i| i as f64))
                    .map_err(|_| self.wrong_type(key, "a number of seconds", v))?;
                if n.is_finite() && n >= 0.0 {
                    Ok(n)
                } else {
                    Err(self.wrong_type(key, "a non-negative number of seconds", v))
                }
            })
            .transpose()
    }

    /// A string option; a `Date` reads as its `YYYY-MM-DD`.
    pub(crate) fn string(&self, key: &str) -> Fallible<Option<String>> {
        self.get(key)
            .map(|v| {
                if let Some(d) = v.read_lock::<ScriptDate>() {
                    return Ok(d.to_string());
                }
                v.clone()
                    .into_string()
                    .map_err(|_| self.wrong_type(key, "a string", v))
            })
            .transpose()
    }
}

/// Reads an array of strings, naming the primitive and the offending element on error.
pub(crate) fn strings(function: &str, what: &str, items: &Array) -> Fallible<Vec<String>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.clone().into_string().map_err(|_| {
                error(format!(
                    "{function}: {what}[{i}] must be a string, got {} ({v})",
                    v.type_name()
                ))
            })
        })
        .collect()
}

/// A date argument of a primitive: a `Date` or a `YYYY-MM-DD` string (shown as
/// `Date|string` by `barsmith fns`).
pub type DateArg = Dynamic;

/// Reads two date arguments into a range, naming the primitive on error.
pub(crate) fn date_args(function: &str, from: &DateArg, to: &DateArg) -> Fallible<DateRange> {
    let from = crate::script::primitives::dates::date_arg(function, "from", from)?;
    let to = crate::script::primitives::dates::date_arg(function, "to", to)?;
    DateRange::new(from.0, to.0).map_err(|e| error(format!("{function}: {e}")))
}

/// Parses two `YYYY-MM-DD` bounds into a range, naming the primitive on error.
pub(crate) fn date_range(function: &str, from: &str, to: &str) -> Fallible<DateRange> {
    DateRange::parse(from, to).map_err(|e| error(format!("{function}: {e}")))
}

/// A date range as a script map `#{from, to}`.
pub(crate) fn range_map(range: DateRange) -> Dynamic {
    let mut m = Map::new();
    m.insert("from".into(), Dynamic::from(range.from.to_string()));
    m.insert("to".into(), Dynamic::from(range.to.to_string()));
    Dynamic::from_map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_option_names_the_known_ones_and_the_typo() {
        let mut m = Map::new();
        m.insert("timout".into(), Dynamic::from_int(3));
        let Err(e) = Options::parse("spawn_batch", m, &["timeout", "retries"]) else {
            panic!("accepted an unknown key");
        };
        let text = e.to_string();
        assert!(text.contains("unknown option 'timout'"), "{text}");
        assert!(text.contains("did you mean 'timeout'"), "{text}");
        assert!(text.contains("known options: timeout, retries"), "{text}");
    }

    #[test]
    fn option_of_the_wrong_type_says_what_was_expected() {
        let mut m = Map::new();
        m.insert("timeout".into(), Dynamic::from("soon"));
        let o = Options::parse("spawn_batch", m, &["timeout"]).unwrap();
        let e = o.seconds("timeout").unwrap_err().to_string();
        assert!(e.contains("'timeout' must be a number of seconds"), "{e}");
    }

    #[test]
    fn json_round_trips_through_script_values() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,2.5,"x",null,true],"b":{"c":-3}}"#).unwrap();
        assert_eq!(to_json(&from_json(v.clone())).unwrap(), v);
    }
}
