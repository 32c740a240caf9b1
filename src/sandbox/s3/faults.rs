//! Faults of the flat-file endpoint: `DAY=FAULT[:N]` rules, per day file.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;

use crate::calendar::parse_date;

/// The flat-file faults, for `--flat-fault` help and error messages.
pub const VALID_FLAT_FAULTS: &str = "forbidden, truncated, slowdown, slow";

/// One way a day file's GET (or HEAD) can go wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlatFault {
    /// 403 `AccessDenied`, as for a day outside the subscription plan.
    Forbidden,
    /// 200 with the gzip body cut in half; `Content-Length` matches the cut body, so
    /// only the gzip stream is incomplete.
    Truncated,
    /// 503 with the S3 `SlowDown` code (retryable).
    SlowDown,
    /// The body trickles out in small pieces over about [`SLOW_TOTAL`].
    Slow,
}

/// How long a `slow` body takes in total, whatever its size.
pub const SLOW_TOTAL: std::time::Duration = std::time::Duration::from_millis(1500);

impl fmt::Display for FlatFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlatFault::Forbidden => "forbidden",
            FlatFault::Truncated => "truncated",
            FlatFault::SlowDown => "slowdown",
            FlatFault::Slow => "slow",
        })
    }
}

/// A flat fault spec that does not parse; the message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FlatFaultSpecError(pub String);

impl FromStr for FlatFault {
    type Err = FlatFaultSpecError;

    fn from_str(s: &str) -> Result<FlatFault, FlatFaultSpecError> {
        match s.trim() {
            "forbidden" | "403" => Ok(FlatFault::Forbidden),
            "truncated" => Ok(FlatFault::Truncated),
            "slowdown" | "503" => Ok(FlatFault::SlowDown),
            "slow" => Ok(FlatFault::Slow),
            other => Err(FlatFaultSpecError(format!(
                "unknown flat-file fault '{}'; valid: {VALID_FLAT_FAULTS}",
                other.escape_debug()
            ))),
        }
    }
}

/// A rule: a fault for one day's file (or every day's, `day: None`), for the first
/// `count` GET/HEAD requests of that file (`None` = every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlatFaultRule {
    /// The day whose file faults; `None` (`*`) = every day (counted per day).
    pub day: Option<Date>,
    /// The fault.
    pub fault: FlatFault,
    /// How many requests fault before the rule clears; `None` = it stays.
    pub count: Option<u32>,
}

impl FromStr for FlatFaultRule {
    type Err = FlatFaultSpecError;

    /// `YYYY-MM-DD=FAULT[:N]` or `*=FAULT[:N]`.
    fn from_str(spec: &str) -> Result<FlatFaultRule, FlatFaultSpecError> {
        let bad = |why: String| {
            FlatFaultSpecError(format!(
                "bad flat-file fault '{}': {why}; expected DAY=FAULT[:N] with DAY a \
                 YYYY-MM-DD date or *, e.g. 2025-01-03=forbidden or 2025-01-06=slowdown:2",
                spec.escape_debug()
            ))
        };
        let (day, rest) = spec
            .trim()
            .split_once('=')
            .ok_or_else(|| bad("no '='".into()))?;
        let day = match day.trim() {
            "*" => None,
            d => Some(parse_date(d).map_err(|e| bad(e.0))?),
        };
        let (fault, count) = match rest.split_once(':') {
            Some((f, n)) => match n.trim().parse::<u32>() {
                Ok(n) if n > 0 => (f, Some(n)),
                _ => return Err(bad(format!("':{n}' is not a positive count"))),
            },
            None => (rest, None),
        };
        let fault = fault.parse::<FlatFault>().map_err(|e| bad(e.0))?;
        Ok(FlatFaultRule { day, fault, count })
    }
}

impl fmt::Display for FlatFaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.day {
            Some(d) => write!(f, "{d}={}", self.fault)?,
            None => write!(f, "*={}", self.fault)?,
        }
        match self.count {
            Some(n) => write!(f, ":{n}"),
            None => Ok(()),
        }
    }
}

/// The flat-file fault rules of a sandbox, in order (the first matching rule wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlatFaultPlan {
    /// The rules.
    pub rules: Vec<FlatFaultRule>,
}

impl FlatFaultPlan {
    /// Parses `DAY=FAULT[:N]` specs.
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<FlatFaultPlan, FlatFaultSpecError> {
        let rules = specs
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(FlatFaultPlan { rules })
    }

    /// The specs, as they would be parsed back.
    pub fn specs(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }
}

/// A plan plus how many requests each rule has faulted, per day.
#[derive(Debug, Default)]
pub(crate) struct FlatFaultState {
    plan: FlatFaultPlan,
    /// (rule index, day) → requests faulted so far.
    used: std::collections::HashMap<(usize, Date), u32>,
}

impl FlatFaultState {
    pub(crate) fn new(plan: FlatFaultPlan) -> FlatFaultState {
        FlatFaultState {
            plan,
            used: Default::default(),
        }
    }

    pub(crate) fn plan(&self) -> &FlatFaultPlan {
        &self.plan
    }

    /// The fault for a request of `day`'s file, consuming one use of its rule.
    pub(crate) fn pick(&mut self, day: Date) -> Option<FlatFault> {
        for (i, rule) in self.plan.rules.iter().enumerate() {
            if rule.day.is_some_and(|d| d != day) {
                continue;
            }
            let used = self.used.entry((i, day)).or_insert(0);
            if rule.count.is_some_and(|n| *used >= n) {
                continue;
            }
            *used += 1;
            return Some(rule.fault);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn specs_parse_and_print_back() {
        let p = FlatFaultPlan::parse(&[
            "2025-01-03=forbidden",
            "2025-01-06=slowdown:2",
            "*=truncated:1",
            "2025-01-07=slow",
        ])
        .unwrap();
        assert_eq!(
            p.rules[1],
            FlatFaultRule {
                day: Some(date(2025, 1, 6)),
                fault: FlatFault::SlowDown,
                count: Some(2)
            }
        );
        assert_eq!(p.rules[2].day, None);
        assert_eq!(
            p.specs(),
            vec![
                "2025-01-03=forbidden",
                "2025-01-06=slowdown:2",
                "*=truncated:1",
                "2025-01-07=slow"
            ]
        );
    }

    #[test]
    fn bad_specs_say_what_is_accepted() {
        let err = |s: &str| s.parse::<FlatFaultRule>().unwrap_err().0;
        assert!(err("2025-01-03").contains("no '='"));
        assert!(err("2025-01-03=boom").contains("forbidden, truncated"));
        assert!(err("2025-13-03=slow").contains("YYYY-MM-DD"));
        assert!(err("2025-01-03=slowdown:0").contains("positive"));
        assert!(err("2025-01-03=slowdown:x").contains("positive"));
    }

    #[test]
    fn counted_rules_clear_per_day_and_the_first_match_wins() {
        let plan = FlatFaultPlan::parse(&["2025-01-06=slowdown:2", "*=forbidden:1"]).unwrap();
        let mut s = FlatFaultState::new(plan);
        let (d6, d7) = (date(2025, 1, 6), date(2025, 1, 7));
        assert_eq!(s.pick(d6), Some(FlatFault::SlowDown));
        assert_eq!(s.pick(d6), Some(FlatFault::SlowDown));
        assert_eq!(s.pick(d6), Some(FlatFault::Forbidden));
        assert_eq!(s.pick(d6), None);
        assert_eq!(s.pick(d7), Some(FlatFault::Forbidden));
        assert_eq!(s.pick(d7), None);
    }
}
