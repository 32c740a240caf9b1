//! Where a day's file lives in the flat-file bucket, and which day a key names.
//!
//! Keys look like `us_stocks_sip/minute_aggs_v1/2025/01/2025-01-02.csv.gz`: one per
//! trading day, none for weekends and holidays.

use jiff::civil::Date;

/// The dataset of US stocks' minute bars (SIP), as Massive names it.
pub const MINUTE_AGGS_PREFIX: &str = "us_stocks_sip/minute_aggs_v1";

/// The key of `day`'s file under `prefix`.
pub fn day_key(prefix: &str, day: Date) -> String {
    format!("{prefix}/{:04}/{:02}/{day}.csv.gz", day.year(), day.month())
}

/// The listing prefix of every file of `year`.
pub fn year_prefix(prefix: &str, year: i16) -> String {
    format!("{prefix}/{year:04}/")
}

/// The day a key names, `None` for any other object (a README, a folder marker).
pub fn day_of_key(prefix: &str, key: &str) -> Option<Date> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('/')?;
    let (_, name) = rest.rsplit_once('/')?;
    let day: Date = name.strip_suffix(".csv.gz")?.parse().ok()?;
    (day_key(prefix, day) == key).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_other_objects_are_not_days() {
        let day = Date::constant(2025, 1, 2);
        let key = day_key(MINUTE_AGGS_PREFIX, day);
        assert_eq!(
            key,
            "us_stocks_sip/minute_aggs_v1/2025/01/2025-01-02.csv.gz"
        );
        assert_eq!(day_of_key(MINUTE_AGGS_PREFIX, &key), Some(day));
        for other in [
            "us_stocks_sip/minute_aggs_v1/2025/01/",
            "us_stocks_sip/minute_aggs_v1/2025/02/2025-01-02.csv.gz",
            "us_stocks_sip/minute_aggs_v1/2025/01/2025-01-02.csv",
            "us_stocks_sip/trades_v1/2025/01/2025-01-02.csv.gz",
        ] {
            assert_eq!(day_of_key(MINUTE_AGGS_PREFIX, other), None, "{other}");
        }
        assert_eq!(
            year_prefix(MINUTE_AGGS_PREFIX, 2025),
            "us_stocks_sip/minute_aggs_v1/2025/"
        );
    }
}
