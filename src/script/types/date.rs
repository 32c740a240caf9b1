//! `Date`: a New York calendar day, for strategies that split ranges into months,
//! quarters or years without hand-written month-end tables.
//!
//! Prints as `YYYY-MM-DD`, so it interpolates into strings and goes anywhere a date
//! string goes (`spawn_batch` options, job maps). `+`/`-` an integer moves by days;
//! `d1 - d2` is the days between. Trading days follow NYSE's calendar
//! ([`crate::calendar::nyse`]): weekdays without a holiday or closure.

use jiff::Span;
use jiff::civil::Date;
use rhai::plugin::*;

use crate::calendar::nyse;

/// A calendar day, as scripts see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScriptDate(pub Date);

impl std::fmt::Display for ScriptDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl ScriptDate {
    /// `self` moved by `days` (negative: back), or an error out of jiff's range.
    pub fn plus_days(self, days: i64) -> Result<ScriptDate, String> {
        let moved = Span::new()
            .try_days(days)
            .ok()
            .and_then(|s| self.0.checked_add(s).ok());
        moved
            .map(ScriptDate)
            .ok_or_else(|| format!("{self} + {days} days is outside the dates barsmith handles"))
    }

    /// The first day of the quarter holding `self`.
    pub fn quarter_start(self) -> ScriptDate {
        let month = (self.0.month() - 1) / 3 * 3 + 1;
        ScriptDate(Date::new(self.0.year(), month, 1).unwrap_or(self.0))
    }

    /// The nearest NYSE trading day from `self` in direction `step` (+1 or -1), `self`
    /// excluded.
    fn next_trading_day(self, step: i64) -> Result<ScriptDate, String> {
        let mut d = self.plus_days(step)?;
        while !nyse::is_trading_day(d.0) {
            d = d.plus_days(step)?;
        }
        Ok(d)
    }
}

/// Methods and operators of `Date` as a plugin module.
#[export_module]
pub mod date_fns {
    use jiff::ToSpan;
    use rhai::EvalAltResult;

    use super::ScriptDate;
    use crate::script::value::{Fallible, error};

    /// The day as `YYYY-MM-DD`.
    ///
    /// Example: `log(`from ${date("2024-01-31") + 1}`);   // from 2024-02-01`
    #[rhai_fn(global, name = "to_string", name = "to_debug", pure)]
    pub fn to_string(d: &mut ScriptDate) -> String {
        d.to_string()
    }

    /// The day formatted with strftime codes: `%Y` year, `%m` month, `%d` day, `%b`
    /// month name, `%a` weekday, `%j` day of the year, ...
    ///
    /// Errors on an unknown code, naming it.
    ///
    /// Example: `log(date("2024-03-05").format("%b %Y"));   // Mar 2024`
    #[rhai_fn(global, pure, return_raw)]
    pub fn format(d: &mut ScriptDate, fmt: &str) -> Fallible<String> {
        jiff::fmt::strtime::format(fmt, d.0).map_err(|e| error(format!("format: {e}")))
    }

    /// The day `days` later (earlier when negative).
    ///
    /// Errors outside the years -9999..9999.
    ///
    /// Example: `let next = date("2024-02-28") + 1;   // 2024-02-29`
    #[rhai_fn(global, name = "+", return_raw)]
    pub fn add(d: ScriptDate, days: i64) -> Fallible<ScriptDate> {
        d.plus_days(days).map_err(error)
    }

    /// The day `days` earlier (later when negative).
    ///
    /// Errors outside the years -9999..9999.
    ///
    /// Example: `let eve = date("2025-01-01") - 1;   // 2024-12-31`
    #[rhai_fn(global, name = "-", return_raw)]
    pub fn sub(d: ScriptDate, days: i64) -> Fallible<ScriptDate> {
        d.plus_days(days.saturating_neg()).map_err(error)
    }

    /// The number of days from `b` to `a` (negative when `a` is earlier).
    ///
    /// Example: `let days = date("2024-03-01") - date("2024-02-01");   // 29`
    #[rhai_fn(global, name = "-")]
    pub fn days_between(a: ScriptDate, b: ScriptDate) -> i64 {
        (a.0 - b.0).get_days() as i64
    }

    /// Dates compare in calendar order.
    ///
    /// Example: `if d == date("2024-01-01") { ... }`
    #[rhai_fn(global, name = "==")]
    pub fn eq(a: ScriptDate, b: ScriptDate) -> bool {
        a == b
    }
    /// Dates compare in calendar order.
    ///
    /// Example: `while d != end { d += 1; }`
    #[rhai_fn(global, name = "!=")]
    pub fn ne(a: ScriptDate, b: ScriptDate) -> bool {
        a != b
    }
    /// Dates compare in calendar order.
    ///
    /// Example: `while d < end { d += 1; }`
    #[rhai_fn(global, name = "<")]
    pub fn lt(a: ScriptDate, b: ScriptDate) -> bool {
        a < b
    }
    /// Dates compare in calendar order.
    ///
    /// Example: `while d <= end { d += 1; }`
    #[rhai_fn(global, name = "<=")]
    pub fn le(a: ScriptDate, b: ScriptDate) -> bool {
        a <= b
    }
    /// Dates compare in calendar order.
    ///
    /// Example: `if d > cutoff { ... }`
    #[rhai_fn(global, name = ">")]
    pub fn gt(a: ScriptDate, b: ScriptDate) -> bool {
        a > b
    }
    /// Dates compare in calendar order.
    ///
    /// Example: `if d >= cutoff { ... }`
    #[rhai_fn(global, name = ">=")]
    pub fn ge(a: ScriptDate, b: ScriptDate) -> bool {
        a >= b
    }

    /// The year, e.g. 2024.
    ///
    /// Example: `let y = date("2024-05-06").year;`
    #[rhai_fn(global, get = "year", pure)]
    pub fn year(d: &mut ScriptDate) -> i64 {
        i64::from(d.0.year())
    }

    /// The month, 1 to 12.
    ///
    /// Example: `if d.month == 12 { ... }`
    #[rhai_fn(global, get = "month", pure)]
    pub fn month(d: &mut ScriptDate) -> i64 {
        i64::from(d.0.month())
    }

    /// The day of the month, 1 to 31.
    ///
    /// Example: `if d.day == 1 { ... }`
    #[rhai_fn(global, get = "day", pure)]
    pub fn day(d: &mut ScriptDate) -> i64 {
        i64::from(d.0.day())
    }

    /// The quarter, 1 to 4.
    ///
    /// Example: `log(`Q${d.quarter} ${d.year}`);`
    #[rhai_fn(global, get = "quarter", pure)]
    pub fn quarter(d: &mut ScriptDate) -> i64 {
        i64::from((d.0.month() - 1) / 3 + 1)
    }

    /// The day of the week in English, `Monday` to `Sunday`.
    ///
    /// Example: `if d.weekday == "Friday" { ... }`
    #[rhai_fn(global, get = "weekday", pure)]
    pub fn weekday(d: &mut ScriptDate) -> String {
        format!("{:?}", d.0.weekday())
    }

    /// The first day of the month.
    ///
    /// Example: `date("2024-02-17").month_start()   // 2024-02-01`
    #[rhai_fn(global, pure)]
    pub fn month_start(d: &mut ScriptDate) -> ScriptDate {
        ScriptDate(d.0.first_of_month())
    }

    /// The last day of the month (leap years included).
    ///
    /// Example: `date("2024-02-17").month_end()   // 2024-02-29`
    #[rhai_fn(global, pure)]
    pub fn month_end(d: &mut ScriptDate) -> ScriptDate {
        ScriptDate(d.0.last_of_month())
    }

    /// The first day of the quarter.
    ///
    /// Example: `date("2024-05-17").quarter_start()   // 2024-04-01`
    #[rhai_fn(global, pure)]
    pub fn quarter_start(d: &mut ScriptDate) -> ScriptDate {
        d.quarter_start()
    }

    /// The last day of the quarter.
    ///
    /// Example: `date("2024-05-17").quarter_end()   // 2024-06-30`
    #[rhai_fn(global, pure)]
    pub fn quarter_end(d: &mut ScriptDate) -> ScriptDate {
        let start = d.quarter_start().0;
        ScriptDate(
            start
                .checked_add(2.months())
                .map_or(start, |m| m.last_of_month()),
        )
    }

    /// January 1 of the year.
    ///
    /// Example: `date("2024-05-17").year_start()   // 2024-01-01`
    #[rhai_fn(global, pure)]
    pub fn year_start(d: &mut ScriptDate) -> ScriptDate {
        ScriptDate(d.0.first_of_year())
    }

    /// December 31 of the year.
    ///
    /// Example: `date("2024-05-17").year_end()   // 2024-12-31`
    #[rhai_fn(global, pure)]
    pub fn year_end(d: &mut ScriptDate) -> ScriptDate {
        ScriptDate(d.0.last_of_year())
    }

    /// True on an NYSE trading day: a weekday without a holiday (New Year, MLK,
    /// Presidents, Good Friday, Memorial, Juneteenth, Independence, Labor, Thanksgiving,
    /// Christmas, as observed) or an unscheduled closure (e.g. 2025-01-09).
    ///
    /// Example: `let days = split_range(from, to, "day").filter(|r| r.from.is_trading_day());`
    #[rhai_fn(global, pure)]
    pub fn is_trading_day(d: &mut ScriptDate) -> bool {
        super::nyse::is_trading_day(d.0)
    }

    /// True when NYSE closes early (13:00 New York): the day after Thanksgiving, and
    /// July 3 and December 24 when they are trading days.
    ///
    /// Example: `if d.is_early_close() { log(`${d}: half day`); }`
    #[rhai_fn(global, pure)]
    pub fn is_early_close(d: &mut ScriptDate) -> bool {
        super::nyse::is_early_close(d.0)
    }

    /// The next NYSE trading day after this one (weekends and holidays skipped).
    ///
    /// Example: `date("2024-05-17").next_trading_day()   // 2024-05-20 (a Monday)`
    #[rhai_fn(global, pure, return_raw)]
    pub fn next_trading_day(d: &mut ScriptDate) -> Result<ScriptDate, Box<EvalAltResult>> {
        d.next_trading_day(1).map_err(error)
    }

    /// The NYSE trading day before this one (weekends and holidays skipped).
    ///
    /// Example: `date("2025-01-21").prev_trading_day()   // 2025-01-17 (MLK Day between)`
    #[rhai_fn(global, pure, return_raw)]
    pub fn prev_trading_day(d: &mut ScriptDate) -> Result<ScriptDate, Box<EvalAltResult>> {
        d.next_trading_day(-1).map_err(error)
    }

    /// The day `n` months later (earlier when negative), clamped to the month's end:
    /// `2024-01-31 + 1 month` is `2024-02-29`.
    ///
    /// Errors outside the years -9999..9999.
    ///
    /// Example: `let next = d.add_months(3);`
    #[rhai_fn(global, pure, return_raw)]
    pub fn add_months(d: &mut ScriptDate, n: i64) -> Fallible<ScriptDate> {
        i32::try_from(n)
            .ok()
            .and_then(|n| d.0.checked_add(n.months()).ok())
            .map(ScriptDate)
            .ok_or_else(|| {
                error(format!(
                    "{d} + {n} months is outside the dates barsmith handles"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> ScriptDate {
        ScriptDate(s.parse().unwrap())
    }

    #[test]
    fn days_move_across_months_years_and_leap_days() {
        assert_eq!(d("2024-01-31").plus_days(1).unwrap(), d("2024-02-01"));
        assert_eq!(d("2024-02-28").plus_days(1).unwrap(), d("2024-02-29"));
        assert_eq!(d("2023-02-28").plus_days(1).unwrap(), d("2023-03-01"));
        assert_eq!(d("2025-01-01").plus_days(-1).unwrap(), d("2024-12-31"));
        assert!(d("9999-12-31").plus_days(1).is_err());
        assert_eq!(date_fns::days_between(d("2024-03-01"), d("2024-02-01")), 29);
    }

    #[test]
    fn period_bounds_and_trading_days() {
        let mut x = d("2024-05-17");
        assert_eq!(date_fns::quarter_start(&mut x), d("2024-04-01"));
        assert_eq!(date_fns::quarter_end(&mut x), d("2024-06-30"));
        assert_eq!(date_fns::month_end(&mut d("2024-02-10")), d("2024-02-29"));
        assert_eq!(date_fns::quarter_end(&mut d("2023-11-02")), d("2023-12-31"));
        assert_eq!(date_fns::next_trading_day(&mut x).unwrap(), d("2024-05-20"));
        assert_eq!(
            date_fns::prev_trading_day(&mut d("2024-05-20")).unwrap(),
            d("2024-05-17")
        );
        // Holidays are skipped: MLK Day 2025, and the Carter closure before it.
        assert_eq!(
            date_fns::prev_trading_day(&mut d("2025-01-21")).unwrap(),
            d("2025-01-17")
        );
        assert_eq!(
            date_fns::next_trading_day(&mut d("2025-01-08")).unwrap(),
            d("2025-01-10")
        );
        assert!(date_fns::is_early_close(&mut d("2025-11-28")));
        assert_eq!(
            date_fns::add_months(&mut d("2024-01-31"), 1).unwrap(),
            d("2024-02-29")
        );
        assert_eq!(date_fns::weekday(&mut x), "Friday");
        assert_eq!(
            date_fns::format(&mut x, "%b %Y, %a %d").unwrap(),
            "May 2024, Fri 17"
        );
    }
}
