//! Dates in scripts: `date(...)` makes a [`ScriptDate`], `split_range` cuts a range
//! into calendar periods, so strategies need no month-end or leap-year tables.

use jiff::ToSpan;
use jiff::civil::Date;
use rhai::Dynamic;

use crate::calendar::parse_date;
use crate::script::types::date::ScriptDate;
use crate::script::value::{Fallible, error};

/// A date argument: a `Date` or a `YYYY-MM-DD` string, naming `function` on error.
pub(crate) fn date_arg(function: &str, what: &str, v: &Dynamic) -> Fallible<ScriptDate> {
    if let Some(d) = v.read_lock::<ScriptDate>() {
        return Ok(*d);
    }
    match v.clone().into_string() {
        Ok(s) => parse_date(&s)
            .map(ScriptDate)
            .map_err(|e| error(format!("{function}: {what}: {}", e.0))),
        Err(_) => Err(error(format!(
            "{function}: {what} must be a Date or a \"YYYY-MM-DD\" string, got {}",
            v.type_name()
        ))),
    }
}

/// The calendar periods `split_range` knows.
const UNITS: &[&str] = &["day", "week", "month", "quarter", "year"];

/// The last day of the period of `unit` that holds `d`.
fn period_end(d: Date, unit: &str) -> Date {
    let mut s = ScriptDate(d);
    match unit {
        "day" => d,
        // ISO weeks: Monday to Sunday.
        "week" => d
            .checked_add((6 - i64::from(d.weekday().to_monday_zero_offset())).days())
            .unwrap_or(d),
        "month" => d.last_of_month(),
        "quarter" => crate::script::types::date::date_fns::quarter_end(&mut s).0,
        _ => d.last_of_year(),
    }
}

/// `from..=to` cut at `unit` boundaries, oldest first, as `(from, to)` pairs.
pub(crate) fn split(from: Date, to: Date, unit: &str) -> Vec<(Date, Date)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = period_end(start, unit).min(to);
        out.push((start, end));
        match end.tomorrow() {
            Ok(next) => start = next,
            Err(_) => break,
        }
    }
    out
}

/// Dates as a plugin module.
#[rhai::plugin::export_module]
pub mod dates_fns {
    use rhai::{Array, Dynamic};

    use super::{ScriptDate, UNITS, date_arg, split};
    use crate::script::suggest::did_you_mean;
    use crate::script::value::{Fallible, error};

    /// A `Date` from `"YYYY-MM-DD"` (a New York calendar day). Dates add and subtract
    /// days (`d + 1`), subtract to a number of days, compare, and print as
    /// `YYYY-MM-DD`, so they go wherever a date string goes.
    ///
    /// Errors on anything but a valid `YYYY-MM-DD`, naming the value.
    ///
    /// Example: `let d = date("2024-01-31") + 1;   // 2024-02-01`
    #[rhai_fn(name = "date", return_raw)]
    pub fn date(s: Dynamic) -> Fallible<ScriptDate> {
        date_arg("date", "the argument", &s)
    }

    /// A `Date` from a year, month and day.
    ///
    /// Errors when the day does not exist (e.g. `date(2023, 2, 29)`).
    ///
    /// Example: `let d = date(2024, 2, 29);`
    #[rhai_fn(name = "date", return_raw)]
    pub fn date_ymd(year: i64, month: i64, day: i64) -> Fallible<ScriptDate> {
        let part = |v: i64| i8::try_from(v).ok();
        let made = i16::try_from(year)
            .ok()
            .and_then(|y| jiff::civil::Date::new(y, part(month)?, part(day)?).ok());
        made.map(ScriptDate)
            .ok_or_else(|| error(format!("date: {year}-{month}-{day} is not a day")))
    }

    /// `from`..`to` (inclusive; Dates or `YYYY-MM-DD` strings) cut into calendar
    /// periods: `"day"`, `"week"` (Monday to Sunday), `"month"`, `"quarter"` or
    /// `"year"`. Returns `#{from, to}` maps of Dates, oldest first; the first and last
    /// are clipped to the range.
    ///
    /// Errors on an unknown unit (naming the known ones) or when `from` is after `to`.
    ///
    /// Example: `for q in split_range("2023-11-15", "2024-12-31", "quarter") { log(`${q.from}..${q.to}`); }`
    #[rhai_fn(return_raw)]
    pub fn split_range(from: Dynamic, to: Dynamic, unit: &str) -> Fallible<Array> {
        let from = date_arg("split_range", "from", &from)?.0;
        let to = date_arg("split_range", "to", &to)?.0;
        if !UNITS.contains(&unit) {
            let hint = did_you_mean(unit, UNITS.iter().copied())
                .map_or(String::new(), |s| format!(" (did you mean \"{s}\"?)"));
            return Err(error(format!(
                "split_range: unknown unit \"{unit}\"{hint}: use {}",
                UNITS.join(", ")
            )));
        }
        if from > to {
            return Err(error(format!(
                "split_range: from {from} is after to {to}: swap them"
            )));
        }
        Ok(split(from, to, unit)
            .into_iter()
            .map(|(a, b)| {
                let mut m = rhai::Map::new();
                m.insert("from".into(), Dynamic::from(ScriptDate(a)));
                m.insert("to".into(), Dynamic::from(ScriptDate(b)));
                Dynamic::from_map(m)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_split_at_calendar_boundaries_and_clip_the_ends() {
        assert_eq!(
            split(d("2023-11-15"), d("2024-04-02"), "quarter"),
            [
                (d("2023-11-15"), d("2023-12-31")),
                (d("2024-01-01"), d("2024-03-31")),
                (d("2024-04-01"), d("2024-04-02")),
            ]
        );
        assert_eq!(
            split(d("2024-01-20"), d("2024-03-05"), "month"),
            [
                (d("2024-01-20"), d("2024-01-31")),
                (d("2024-02-01"), d("2024-02-29")),
                (d("2024-03-01"), d("2024-03-05")),
            ]
        );
        assert_eq!(
            split(d("2024-05-15"), d("2024-05-27"), "week"),
            [
                (d("2024-05-15"), d("2024-05-19")),
                (d("2024-05-20"), d("2024-05-26")),
                (d("2024-05-27"), d("2024-05-27")),
            ]
        );
        assert_eq!(split(d("2022-06-01"), d("2024-01-01"), "year").len(), 3);
        assert_eq!(split(d("2024-01-01"), d("2024-01-03"), "day").len(), 3);
    }
}
