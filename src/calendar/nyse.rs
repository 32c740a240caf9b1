//! The New York Stock Exchange's trading calendar: which weekdays are holidays, and
//! which sessions close early (13:00 New York).
//!
//! The rules NYSE has followed since 2000, plus its unscheduled closures. Before 2000
//! (and for rules changed since, e.g. Juneteenth from 2022) only the holidays then in
//! force are known; a day outside the rules is a trading day if it is a weekday.

use jiff::civil::{Date, Weekday};

/// Weekdays NYSE closed outside its holiday rules (national mourning, 9/11, Sandy).
const UNSCHEDULED: &[(i16, i8, i8)] = &[
    (2001, 9, 11),
    (2001, 9, 12),
    (2001, 9, 13),
    (2001, 9, 14),
    (2004, 6, 11),
    (2007, 1, 2),
    (2012, 10, 29),
    (2012, 10, 30),
    (2018, 12, 5),
    (2025, 1, 9),
];

/// True when NYSE is open on `d`: a weekday that is no holiday or closure.
pub fn is_trading_day(d: Date) -> bool {
    !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) && holiday(d).is_none()
}

/// True when NYSE closes early (13:00 New York) on `d`: the day after Thanksgiving,
/// and July 3 and December 24 when they are trading days.
pub fn is_early_close(d: Date) -> bool {
    if !is_trading_day(d) {
        return false;
    }
    let (m, day) = (d.month(), d.day());
    (m == 7 && day == 3)
        || (m == 12 && day == 24)
        || d.yesterday()
            .is_ok_and(|y| Some(y) == thanksgiving(d.year()))
}

/// The name of the holiday or closure on weekday `d`, if NYSE is closed.
pub fn holiday(d: Date) -> Option<&'static str> {
    let y = d.year();
    if UNSCHEDULED.contains(&(y, d.month(), d.day())) {
        return Some("unscheduled closure");
    }
    let rules: [(&'static str, Option<Date>); 10] = [
        ("New Year's Day", new_year_observed(y)),
        (
            "Martin Luther King Jr. Day",
            (y >= 1998).then(|| nth(y, 1, Weekday::Monday, 3)).flatten(),
        ),
        ("Washington's Birthday", nth(y, 2, Weekday::Monday, 3)),
        (
            "Good Friday",
            easter(y).and_then(|e| e.checked_sub(jiff::Span::new().days(2)).ok()),
        ),
        ("Memorial Day", last(y, 5, Weekday::Monday)),
        (
            "Juneteenth",
            (y >= 2022).then(|| observed(y, 6, 19)).flatten(),
        ),
        ("Independence Day", observed(y, 7, 4)),
        ("Labor Day", nth(y, 9, Weekday::Monday, 1)),
        ("Thanksgiving Day", thanksgiving(y)),
        ("Christmas Day", observed(y, 12, 25)),
    ];
    rules
        .into_iter()
        .find(|(_, day)| *day == Some(d))
        .map(|(name, _)| name)
}

/// A fixed-date holiday as observed: Saturday moves to Friday, Sunday to Monday.
fn observed(y: i16, m: i8, day: i8) -> Option<Date> {
    let d = Date::new(y, m, day).ok()?;
    match d.weekday() {
        Weekday::Saturday => d.yesterday().ok(),
        Weekday::Sunday => d.tomorrow().ok(),
        _ => Some(d),
    }
}

/// New Year's Day: a Sunday moves to Monday; a Saturday is not made up (NYSE stays open
/// on the Friday before, the last session of the year).
fn new_year_observed(y: i16) -> Option<Date> {
    let d = Date::new(y, 1, 1).ok()?;
    match d.weekday() {
        Weekday::Saturday => None,
        Weekday::Sunday => d.tomorrow().ok(),
        _ => Some(d),
    }
}

/// The fourth Thursday of November.
fn thanksgiving(y: i16) -> Option<Date> {
    nth(y, 11, Weekday::Thursday, 4)
}

/// The `n`th `wd` of month `m`.
fn nth(y: i16, m: i8, wd: Weekday, n: i8) -> Option<Date> {
    let first = Date::new(y, m, 1).ok()?;
    let offset = (7 + wd.to_monday_zero_offset() - first.weekday().to_monday_zero_offset()) % 7;
    Date::new(y, m, 1 + offset + 7 * (n - 1)).ok()
}

/// The last `wd` of month `m`.
fn last(y: i16, m: i8, wd: Weekday) -> Option<Date> {
    let end = Date::new(y, m, 1).ok()?.last_of_month();
    let back = (7 + end.weekday().to_monday_zero_offset() - wd.to_monday_zero_offset()) % 7;
    Date::new(y, m, end.day() - back).ok()
}

/// Easter Sunday (Gregorian, the anonymous algorithm).
fn easter(y: i16) -> Option<Date> {
    let y = i32::from(y);
    let (a, b, c) = (y % 19, y / 100, y % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(i16::try_from(y).ok()?, month as i8, day as i8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn trading_days(y: i16) -> usize {
        let mut n = 0;
        let mut day = Date::new(y, 1, 1).unwrap();
        while day.year() == y {
            n += usize::from(is_trading_day(day));
            day = day.tomorrow().unwrap();
        }
        n
    }

    #[test]
    fn the_2025_holidays_and_closures_are_known() {
        for h in [
            "2025-01-01",
            "2025-01-09",
            "2025-01-20",
            "2025-02-17",
            "2025-04-18",
            "2025-05-26",
            "2025-06-19",
            "2025-07-04",
            "2025-09-01",
            "2025-11-27",
            "2025-12-25",
        ] {
            assert!(!is_trading_day(d(h)), "{h}");
        }
        assert!(is_trading_day(d("2025-01-02")));
        assert_eq!(holiday(d("2025-04-18")), Some("Good Friday"));
        for e in ["2025-07-03", "2025-11-28", "2025-12-24"] {
            assert!(is_early_close(d(e)), "{e}");
        }
        assert!(!is_early_close(d("2025-07-02")));
    }

    #[test]
    fn observed_days_and_year_counts_match_the_exchange() {
        // Christmas 2021 on a Saturday: closed Friday the 24th; 2022 on Sunday: Monday.
        assert!(!is_trading_day(d("2021-12-24")));
        assert!(!is_trading_day(d("2022-12-26")));
        // New Year 2022 on a Saturday: open Friday 2021-12-31.
        assert!(is_trading_day(d("2021-12-31")));
        // Independence Day 2020 on a Saturday: closed Friday July 3, no early close.
        assert!(!is_trading_day(d("2020-07-03")));
        assert_eq!(trading_days(2021), 252);
        assert_eq!(trading_days(2022), 251);
        assert_eq!(trading_days(2023), 250);
        assert_eq!(trading_days(2024), 252);
    }
}
