//! Dates as the API and the store see them.
//!
//! Polygon reads `YYYY-MM-DD` bounds in US Eastern time and stamps each bar with the
//! UTC millisecond of its minute. barsmith partitions by the exchange-local trading
//! date, so every conversion between the two goes through this module.

pub mod nyse;

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// The exchange's time zone.
pub const EXCHANGE_TZ: &str = "America/New_York";

/// The exchange time zone, loaded from the bundled tz database.
pub fn exchange_tz() -> TimeZone {
    // The bundled database always contains New York; a failure here is a build defect.
    TimeZone::get(EXCHANGE_TZ).expect("bundled tzdb contains America/New_York")
}

/// Today's date in New York.
pub fn today_ny() -> Date {
    ZonedDateTime::now().with_time_zone(exchange_tz()).date()
}

/// The New York date of a Unix-millisecond timestamp.
pub fn ny_date_of_ms(ms: i64) -> Date {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.to_zoned_datetime(exchange_tz()).date(),
        // Out of jiff's range (year ±9999): clamp to the extreme dates.
        Err(_) if ms < 0 => Date::MIN,
        Err(_) => Date::MAX,
    }
}

/// The Unix millisecond at which a New York date starts.
pub fn ny_day_start_ms(date: Date) -> i64 {
    date.to_zoned_datetime(exchange_tz())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(i64::MAX)
}

/// Parses a `YYYY-MM-DD` date, with an error that says what was expected.
pub fn parse_date(s: &str) -> Result<Date, DateError> {
    let t = s.trim();
    let ok_shape = t.len() == 10
        && t.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !ok_shape {
        return Err(DateError(format!(
            "'{s}' is not a date: use YYYY-MM-DD, e.g. 2004-01-02"
        )));
    }
    Date::from_str(t)
        .map_err(|_| DateError(format!("'{s}' is not a valid calendar date (YYYY-MM-DD)")))
}

/// A malformed date or range; the message names the value and the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DateError(pub String);

/// An inclusive range of New York dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateRange {
    /// First day, inclusive.
    pub from: Date,
    /// Last day, inclusive.
    pub to: Date,
}

impl DateRange {
    /// A range from `from` to `to` inclusive; refuses a backwards range.
    pub fn new(from: Date, to: Date) -> Result<DateRange, DateError> {
        if from > to {
            return Err(DateError(format!(
                "--from {from} is after --to {to}: swap them or fix the dates"
            )));
        }
        Ok(DateRange { from, to })
    }

    /// Parses two `YYYY-MM-DD` bounds.
    pub fn parse(from: &str, to: &str) -> Result<DateRange, DateError> {
        DateRange::new(parse_date(from)?, parse_date(to)?)
    }

    /// The whole calendar year `year`; errors outside the dates jiff represents.
    pub fn year(year: i16) -> Result<DateRange, DateError> {
        let day = |m, d| Date::new(year, m, d).map_err(|e| DateError(format!("year {year}: {e}")));
        Ok(DateRange {
            from: day(1, 1)?,
            to: day(12, 31)?,
        })
    }

    /// True when `d` lies inside the range.
    pub fn contains(&self, d: Date) -> bool {
        self.from <= d && d <= self.to
    }

    /// The range split at calendar-year boundaries, oldest first.
    pub fn split_by_year(&self) -> Vec<DateRange> {
        let mut out = Vec::new();
        let mut from = self.from;
        while from <= self.to {
            let year_end = Date::new(from.year(), 12, 31).expect("Dec 31 exists");
            let to = year_end.min(self.to);
            out.push(DateRange { from, to });
            match to.tomorrow() {
                Ok(next) => from = next,
                Err(_) => break,
            }
        }
        out
    }

    /// The part of the range strictly before `day`, if any.
    pub fn before(&self, day: Date) -> Option<DateRange> {
        let last = day.yesterday().ok()?;
        (self.from <= last).then(|| DateRange {
            from: self.from,
            to: self.to.min(last),
        })
    }
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.from, self.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn parse_date_rejects_wrong_shapes_and_impossible_days() {
        assert_eq!(parse_date("2004-01-02").unwrap(), date(2004, 1, 2));
        assert!(parse_date("2004-1-2").unwrap_err().0.contains("YYYY-MM-DD"));
        assert!(
            parse_date("2004-02-30")
                .unwrap_err()
                .0
                .contains("not a valid")
        );
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn backwards_range_is_refused_with_both_dates_named() {
        let err = DateRange::parse("2010-01-01", "2004-01-01").unwrap_err();
        assert!(err.0.contains("2010-01-01") && err.0.contains("2004-01-01"));
    }

    #[test]
    fn split_by_year_cuts_at_december_31() {
        let r = DateRange::parse("2004-06-01", "2006-02-01").unwrap();
        let parts = r.split_by_year();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].to, date(2004, 12, 31));
        assert_eq!(parts[1].from, date(2005, 1, 1));
        assert_eq!(
            parts[2],
            DateRange {
                from: date(2006, 1, 1),
                to: date(2006, 2, 1)
            }
        );
    }

    #[test]
    fn ny_date_uses_exchange_time_not_utc() {
        // 2021-03-02 01:00 UTC is still March 1st in New York.
        let ms = 1_614_646_800_000;
        assert_eq!(ny_date_of_ms(ms), date(2021, 3, 1));
        assert_eq!(
            ny_date_of_ms(ny_day_start_ms(date(2021, 3, 2))),
            date(2021, 3, 2)
        );
    }

    #[test]
    fn before_clips_ranges_reaching_today() {
        let r = DateRange::parse("2020-01-01", "2020-01-10").unwrap();
        assert_eq!(r.before(date(2020, 1, 5)).unwrap().to, date(2020, 1, 4));
        assert!(r.before(date(2020, 1, 1)).is_none());
        assert_eq!(r.before(date(2021, 1, 1)).unwrap(), r);
    }
}
