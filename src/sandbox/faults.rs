//! Injectable faults: what can go wrong with a real API, on demand and reproducibly.
//!
//! A plan has per-ticker rules from spec strings `TICKER=FAULT[:N]` (the first N
//! matching requests of that ticker fault, then the rule clears; without `:N` it never
//! clears; `*` matches every ticker, with a separate count per ticker) and optionally
//! random faults drawn with a probability from a seed. Rules of one ticker are used in
//! order: `A=429:2` then `A=500:1` gives 429, 429, 500, then clean answers.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use super::synth::{fnv1a, mix2, unit};

/// The faults the sandbox can inject, as named in spec strings.
pub const VALID_FAULTS: &str = "429, 429-retry-after=S, 500, 502, 503, 504, 502-html, hang, \
     drop, truncated, status-error, 403, 401, cursor-loop, repeat-page, disorder, conflict";

/// One kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// `429`: too many requests, no `Retry-After`.
    RateLimited,
    /// `429-retry-after=S`: too many requests with `Retry-After: S` (seconds).
    RateLimitedRetryAfter(u32),
    /// `500`, `502`, `503`, `504` with a JSON error body.
    ServerError(u16),
    /// `502-html`: a 502 with an HTML body, as a proxy in front of the API sends.
    BadGatewayHtml,
    /// `hang`: read the request and never answer (until `hang_for` or shutdown).
    Hang,
    /// `drop`: headers with the full Content-Length, half the body, then close.
    Drop,
    /// `truncated`: a 200 whose Content-Length matches a JSON body cut in half.
    Truncated,
    /// `status-error`: a 200 with `{"status":"ERROR","error":...}`.
    StatusError,
    /// `403`: not entitled to this data ("Your plan doesn't include...").
    NotEntitled,
    /// `401`: unknown API key.
    Unauthorized,
    /// `cursor-loop`: a paginated page's `next_url` repeats the cursor just used.
    CursorLoop,
    /// `repeat-page`: a paginated page starts with the last bars of the previous page.
    RepeatPage,
    /// `disorder`: the page's bars come in reverse order, the earliest one twice.
    Disorder,
    /// `conflict`: the page holds two different bars for its first minute.
    Conflict,
}

impl Fault {
    /// True for faults that only apply to requests following a `next_url` cursor.
    pub fn is_paging(self) -> bool {
        matches!(self, Fault::CursorLoop | Fault::RepeatPage)
    }

    /// The faults `--fault-rate` draws from when no kinds are given: the transient ones
    /// a robust client must ride out.
    pub fn default_random_kinds() -> Vec<Fault> {
        vec![
            Fault::RateLimited,
            Fault::ServerError(500),
            Fault::ServerError(502),
            Fault::ServerError(503),
            Fault::ServerError(504),
            Fault::BadGatewayHtml,
            Fault::Drop,
            Fault::Truncated,
            Fault::StatusError,
        ]
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::RateLimited => f.write_str("429"),
            Fault::RateLimitedRetryAfter(s) => write!(f, "429-retry-after={s}"),
            Fault::ServerError(code) => write!(f, "{code}"),
            Fault::BadGatewayHtml => f.write_str("502-html"),
            Fault::Hang => f.write_str("hang"),
            Fault::Drop => f.write_str("drop"),
            Fault::Truncated => f.write_str("truncated"),
            Fault::StatusError => f.write_str("status-error"),
            Fault::NotEntitled => f.write_str("403"),
            Fault::Unauthorized => f.write_str("401"),
            Fault::CursorLoop => f.write_str("cursor-loop"),
            Fault::RepeatPage => f.write_str("repeat-page"),
            Fault::Disorder => f.write_str("disorder"),
            Fault::Conflict => f.write_str("conflict"),
        }
    }
}

impl FromStr for Fault {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Fault, FaultSpecError> {
        let t = s.trim();
        let fault = match t {
            "429" => Fault::RateLimited,
            "500" | "502" | "503" | "504" => Fault::ServerError(t.parse().unwrap_or(500)),
            "502-html" => Fault::BadGatewayHtml,
            "hang" => Fault::Hang,
            "drop" => Fault::Drop,
            "truncated" => Fault::Truncated,
            "status-error" => Fault::StatusError,
            "403" => Fault::NotEntitled,
            "401" => Fault::Unauthorized,
            "cursor-loop" => Fault::CursorLoop,
            "repeat-page" => Fault::RepeatPage,
            "disorder" => Fault::Disorder,
            "conflict" => Fault::Conflict,
            _ => match t.strip_prefix("429-retry-after=") {
                Some(secs) => Fault::RateLimitedRetryAfter(secs.parse().map_err(|_| {
                    FaultSpecError(format!(
                        "unknown fault '{t}': Retry-After must be whole seconds, \
                         e.g. 429-retry-after=2"
                    ))
                })?),
                None => {
                    return Err(FaultSpecError(format!(
                        "unknown fault '{t}'; valid faults: {VALID_FAULTS}"
                    )));
                }
            },
        };
        Ok(fault)
    }
}

/// A malformed fault spec; the message names the bad part and lists valid faults.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FaultSpecError(pub String);

/// One per-ticker rule: `TICKER=FAULT[:N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// The ticker it applies to; `*` for every ticker.
    pub ticker: String,
    /// What happens.
    pub fault: Fault,
    /// How many matching requests fault before the rule clears; `None` = forever.
    pub times: Option<u32>,
}

impl fmt::Display for FaultRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.ticker, self.fault)?;
        if let Some(n) = self.times {
            write!(f, ":{n}")?;
        }
        Ok(())
    }
}

impl FromStr for FaultRule {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<FaultRule, FaultSpecError> {
        let bad = |why: String| {
            FaultSpecError(format!(
                "bad fault spec '{spec}': {why} (use TICKER=FAULT[:N], e.g. AAPL=429:2 or \
                 *=drop:1; valid faults: {VALID_FAULTS})"
            ))
        };
        let (ticker, rest) = spec
            .trim()
            .split_once('=')
            .ok_or_else(|| bad("no '=' between ticker and fault".into()))?;
        let ticker = ticker.trim();
        if ticker.is_empty() || ticker.chars().any(char::is_whitespace) {
            return Err(bad(format!("ticker '{ticker}' is empty or has spaces")));
        }
        let (fault, times) = match rest.rsplit_once(':') {
            Some((f, n)) => {
                let n: u32 = n
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("count '{n}' is not a whole number")))?;
                if n == 0 {
                    return Err(bad("count ':0' would never fault; drop the rule".into()));
                }
                (f, Some(n))
            }
            None => (rest, None),
        };
        // The fault's own error already lists the valid faults.
        let fault = fault
            .parse::<Fault>()
            .map_err(|e| FaultSpecError(format!("bad fault spec '{spec}': {}", e.0)))?;
        Ok(FaultRule {
            ticker: ticker.to_string(),
            fault,
            times,
        })
    }
}

/// Random faults: each data request of a ticker faults with `probability`, the kind
/// drawn from `kinds`; decisions hash (seed, ticker, request number of that ticker), so
/// a run with the same requests sees the same faults.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomFaults {
    /// Chance that one request faults, 0..=1.
    pub probability: f64,
    /// Seed of the draws.
    pub seed: u64,
    /// Kinds drawn from (uniformly).
    pub kinds: Vec<Fault>,
}

impl RandomFaults {
    /// Checks the probability and kinds.
    pub fn new(
        probability: f64,
        seed: u64,
        kinds: Vec<Fault>,
    ) -> Result<RandomFaults, FaultSpecError> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(FaultSpecError(format!(
                "fault rate {probability} is not a probability: use a number from 0 to 1, e.g. 0.05"
            )));
        }
        if kinds.is_empty() {
            return Err(FaultSpecError(format!(
                "no fault kinds given; valid faults: {VALID_FAULTS}"
            )));
        }
        Ok(RandomFaults {
            probability,
            seed,
            kinds,
        })
    }
}

/// Parses a comma-separated list of faults, e.g. `429,500,drop`.
pub fn parse_kinds(list: &str) -> Result<Vec<Fault>, FaultSpecError> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// Every fault the sandbox injects: per-ticker rules plus optional random faults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Rules, used in order per ticker.
    pub rules: Vec<FaultRule>,
    /// Random faults, applied when no rule fires.
    pub random: Option<RandomFaults>,
}

impl FaultPlan {
    /// A plan from `TICKER=FAULT[:N]` spec strings (no random faults).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<FaultPlan, FaultSpecError> {
        let rules = specs
            .iter()
            .map(|s| s.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(FaultPlan {
            rules,
            random: None,
        })
    }

    /// True when nothing can fault.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.random.as_ref().is_none_or(|r| r.probability == 0.0)
    }

    /// The rules as spec strings.
    pub fn specs(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }
}

/// A plan plus what it has used up so far.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    /// Times rule i fired for a ticker.
    used: HashMap<(usize, String), u32>,
    /// Data requests seen per ticker (numbers the random draws).
    seen: HashMap<String, u64>,
}

impl FaultState {
    pub(crate) fn new(plan: FaultPlan) -> FaultState {
        FaultState {
            plan,
            ..FaultState::default()
        }
    }

    pub(crate) fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// The fault for the next data request of `ticker`, if any, and uses it up.
    /// `paginated` is true for requests that follow a `next_url` cursor.
    pub(crate) fn pick(&mut self, ticker: &str, paginated: bool) -> Option<Fault> {
        let seq = {
            let n = self.seen.entry(ticker.to_string()).or_insert(0);
            *n += 1;
            *n
        };
        for (i, rule) in self.plan.rules.iter().enumerate() {
            if rule.ticker != ticker && rule.ticker != "*" {
                continue;
            }
            if rule.fault.is_paging() && !paginated {
                continue;
            }
            let used = self.used.entry((i, ticker.to_string())).or_insert(0);
            if rule.times.is_some_and(|n| *used >= n) {
                continue;
            }
            *used += 1;
            return Some(rule.fault);
        }
        let random = self.plan.random.as_ref()?;
        let h = mix2(mix2(random.seed, fnv1a(ticker.as_bytes())), seq);
        if unit(h) >= random.probability || random.kinds.is_empty() {
            return None;
        }
        let kind = random.kinds[(mix2(h, 1) % random.kinds.len() as u64) as usize];
        (!kind.is_paging() || paginated).then_some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_fault_parses_and_prints_back() {
        for name in VALID_FAULTS.split(", ") {
            let name = name.replace("=S", "=3");
            let f: Fault = name.parse().unwrap();
            assert_eq!(f.to_string(), name);
        }
    }

    #[test]
    fn spec_errors_name_the_bad_part_and_list_valid_faults() {
        let e = "AAPL=explode".parse::<FaultRule>().unwrap_err().0;
        assert!(e.contains("'explode'") && e.contains("cursor-loop"), "{e}");
        let e = "AAPL".parse::<FaultRule>().unwrap_err().0;
        assert!(e.contains("no '='") && e.contains("TICKER=FAULT"), "{e}");
        let e = "AAPL=500:x".parse::<FaultRule>().unwrap_err().0;
        assert!(e.contains("'x'"), "{e}");
        let e = "AAPL=429-retry-after=soon"
            .parse::<FaultRule>()
            .unwrap_err()
            .0;
        assert!(e.contains("whole seconds"), "{e}");
        assert!(parse_kinds("429,bogus").unwrap_err().0.contains("'bogus'"));
        assert!(RandomFaults::new(1.5, 0, vec![Fault::Drop]).is_err());
    }

    #[test]
    fn spec_with_count_and_retry_after_splits_correctly() {
        let r: FaultRule = "BRK.A=429-retry-after=5:3".parse().unwrap();
        assert_eq!(r.ticker, "BRK.A");
        assert_eq!(r.fault, Fault::RateLimitedRetryAfter(5));
        assert_eq!(r.times, Some(3));
        assert_eq!(r.to_string(), "BRK.A=429-retry-after=5:3");
        let r: FaultRule = "X=hang".parse().unwrap();
        assert_eq!(r.times, None);
    }

    #[test]
    fn counted_rules_clear_and_are_used_in_order_per_ticker() {
        let plan = FaultPlan::parse(&["A=429:2", "A=500:1", "*=drop:1"]).unwrap();
        let mut s = FaultState::new(plan);
        let a: Vec<_> = (0..5).map(|_| s.pick("A", false)).collect();
        assert_eq!(
            a,
            vec![
                Some(Fault::RateLimited),
                Some(Fault::RateLimited),
                Some(Fault::ServerError(500)),
                Some(Fault::Drop),
                None
            ]
        );
        assert_eq!(s.pick("B", false), Some(Fault::Drop));
        assert_eq!(s.pick("B", false), None);
    }

    #[test]
    fn paging_faults_wait_for_a_paginated_request() {
        let mut s = FaultState::new(FaultPlan::parse(&["A=cursor-loop:1"]).unwrap());
        assert_eq!(s.pick("A", false), None);
        assert_eq!(s.pick("A", true), Some(Fault::CursorLoop));
        assert_eq!(s.pick("A", true), None);
    }

    #[test]
    fn random_faults_follow_rate_and_seed() {
        let plan = |seed| FaultPlan {
            rules: vec![],
            random: Some(RandomFaults::new(0.2, seed, vec![Fault::ServerError(503)]).unwrap()),
        };
        let draw = |seed| {
            let mut s = FaultState::new(plan(seed));
            (0..2000)
                .map(|i| s.pick(if i % 2 == 0 { "A" } else { "B" }, false))
                .collect::<Vec<_>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        let hits = a.iter().flatten().count();
        assert!((300..500).contains(&hits), "{hits}");
    }
}
