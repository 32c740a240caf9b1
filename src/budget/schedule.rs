//! The schedule of one key, as the budget file (or Redis) holds it, and the pure rules
//! that move it: GCRA slots, the burst, AIMD caution after 429s, and dispatch spacing.
//! Every rule takes `now` (ns since the Unix epoch), so all of it is tested without
//! clocks or files.
//!
//! **Slots.** `reserve` hands out slots 1/rate apart (GCRA; `tat` is the next free
//! one), with a tolerance of `burst - 1` intervals after an idle spell.
//!
//! **Dispatch.** A slot is reserved ahead and its sleep may end late (timers, a loaded
//! machine). A request let go late makes the next one, on time, look early to a server
//! that tolerates no burst, so when no burst is allowed, or none is earned yet (the
//! pair's own request apart), a request also goes only a whole interval after the one
//! let go before it, by the clock when it goes ([`Schedule::dispatch`]).
//!
//! **A burst is earned.** Until a request that went in a burst has been answered
//! (not refused), a burst is a pair ([`PROBE_BURST`]): a server that tolerates no
//! burst refuses one request at start-up, not a whole burst's worth. The answer opens
//! the whole tolerance (its credit was kept meanwhile: the paced requests went on
//! from the schedule); a refused burst request closes it again. A whole burst keeps
//! [`ARRIVAL_JITTER_NS`] of its tolerance back.
//!
//! **Caution (AIMD on the rate).** A counted 429 drops the burst to 1 at once (it
//! comes back after [`BURST_QUIET_NS`] without one) and cuts the rate's share by 3%
//! (multiplicative decrease); every request let go gives back [`GAIN_PPM`] of the
//! configured rate (additive increase). So the share settles where about
//! `GAIN / 3%` ≈ 3% of requests are refused: close to the configured rate when the
//! only 429s are arrival jitter against a strict server, and down to the server's
//! real limit (at most [`MIN_RATE_SHARE`] slower) when the rate is set too high.
//! One flight of requests is one signal: a 429 to a request whose slot was taken
//! before the last counted 429 counts for nothing (the requests in flight when the
//! server starts refusing all see it, like the rest of a start-up burst a strict
//! server refused). Dense 429s at the slowest share pause the key (see
//! [`Schedule::note_429`]).

/// 429s within this long of the last counted one are `recent` (for [`DENSE_429S`]).
pub(super) const SAME_429_NS: u64 = 1_000_000_000;
/// Recent 429s that, at the slowest share, mean a rate far above the plan's: pause.
pub(super) const DENSE_429S: u32 = 5;
/// Slowest share of the configured rate caution reaches.
pub(super) const MIN_RATE_SHARE: f64 = 0.75;
/// The multiplicative decrease: a counted 429 keeps this share of the rate.
const CUT: f64 = 0.97;
/// The additive increase: each request let go takes back this much of the configured
/// rate, in millionths (a 3% cut is undone in 30 requests: 0.3 s at 100 req/s). With
/// [`CUT`] it sets the share of requests a strict server refuses at equilibrium,
/// `GAIN / (1 - CUT)` ≈ 3%: each refusal costs one slot, so a share of the rate a few
/// percent higher is worth them (measured: 1% left the key near 80% of its rate).
pub(super) const GAIN_PPM: u32 = 1000;
/// Requests that go at once before a burst has been answered: a pair, the least that
/// tells a server's tolerance.
const PROBE_BURST: u32 = 2;
/// How much of a whole burst's tolerance is kept back: a request reaches the server up
/// to a few ms later or sooner than it left (a new connection, a loaded machine, other
/// machines on the same key), and a server whose tolerance is the budget's own counts
/// from when the first of a burst arrived, so one that arrives sooner than that one did
/// would be refused at the edge. It shifts the schedule once per idle spell: 20 ms.
pub(super) const ARRIVAL_JITTER_NS: u64 = 20_000_000;
/// The burst comes back after this long without a counted 429.
pub(super) const BURST_QUIET_NS: u64 = 10_000_000_000;
/// Times of the past (a 429, a dispatch) further ahead of `now` than this are a damaged
/// file or a clock jump; closer, they are two clocks read a moment apart.
pub(super) const MAX_SKEW_NS: u64 = 1_000_000_000;
/// Without a burst, a request goes at least an interval and this margin after the
/// last: a server counting to the microsecond must never see two requests closer than
/// its limit because one took a little longer to reach it. A fortieth of the
/// interval, at most 20 ms: 250 µs at 100 req/s, 20 ms at 1 req/s and at `5/min`.
/// Each refusal by such a server costs its slot and a cut of the rate (~1.5 slots in
/// all), so a wider margin pays for itself while it keeps refusals away: against a
/// strict server at 100 req/s on a loaded machine, a hundredth (100 µs) gave 44-77
/// × 429 in 1,500 requests and 87-90% of the budget, a fortieth 27-42 × 429 and
/// 89-91%, a thousandth 89-99 × 429 and 86-88% (BENCHMARKS.md, sixth round).
fn margin(interval: u64) -> u64 {
    (interval / 40).min(20 * 1_000_000)
}
/// A TAT further ahead than this is a damaged file or a clock jump, not a schedule.
pub(super) const MAX_AHEAD_NS: u64 = 24 * 3600 * 1_000_000_000;

/// The configured pace of a key: the interval at the full rate and the burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pace {
    /// 1/rate, ns.
    pub interval_ns: u64,
    /// Requests that may go at once after an idle spell (at least 1).
    pub burst: u32,
}

/// What the shared file holds: `tat slow_ppm last_429 recent sent burst_ok` (missing
/// fields read as 0, so a file of an older version reads as no caution).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Schedule {
    /// Theoretical arrival time: the next free slot at the cautious rate, ns.
    pub tat: u64,
    /// How much slower than configured the key goes, in millionths of the rate.
    pub slow_ppm: u32,
    /// When the last counted 429 was seen, ns (0: never).
    pub last_429: u64,
    /// 429s seen within [`SAME_429_NS`] of it, that one included.
    pub recent: u32,
    /// When the last request was let go, ns.
    pub sent: u64,
    /// When a request that went in a burst was first answered since a burst was last
    /// refused, ns (0: not since): the server tolerates bursts.
    pub burst_ok: u64,
}

impl Schedule {
    /// Reads the file's text; anything unreadable is 0.
    pub fn parse(text: &str) -> Schedule {
        let mut it = text.split_whitespace().map(|w| w.parse::<u64>().ok());
        let mut next = || it.next().flatten().unwrap_or(0);
        Schedule {
            tat: next(),
            slow_ppm: next().min(1_000_000) as u32,
            last_429: next(),
            recent: next().min(u64::from(u32::MAX)) as u32,
            sent: next(),
            burst_ok: next(),
        }
    }

    /// The file's text.
    pub fn text(self) -> String {
        let Schedule {
            tat,
            slow_ppm,
            last_429,
            recent,
            sent,
            burst_ok,
        } = self;
        format!("{tat} {slow_ppm} {last_429} {recent} {sent} {burst_ok}\n")
    }

    /// This schedule as read at `now`, or an empty one when it is too far ahead (a
    /// damaged file, a clock jump).
    pub fn sane_at(self, now: u64) -> Schedule {
        let ahead = |t: u64| t > now.saturating_add(MAX_SKEW_NS);
        if self.tat > now.saturating_add(MAX_AHEAD_NS)
            || ahead(self.last_429)
            || ahead(self.sent)
            || ahead(self.burst_ok)
        {
            return Schedule::default();
        }
        self
    }

    /// The share of the configured rate in force.
    pub fn share(self) -> f64 {
        (1.0 - f64::from(self.slow_ppm) / 1e6).max(MIN_RATE_SHARE)
    }

    fn at_floor(self) -> bool {
        self.share() <= MIN_RATE_SHARE + 1e-9
    }

    /// The interval between requests and the burst tolerance at `now`, in ns.
    pub fn spacing(self, pace: Pace, now: u64) -> (u64, u64) {
        let interval = (pace.interval_ns as f64 / self.share()).round() as u64;
        let burst_off = self.last_429 != 0 && now.saturating_sub(self.last_429) < BURST_QUIET_NS;
        let burst = match (burst_off, self.burst_ok) {
            (true, _) => 1,
            (false, 0) => pace.burst.clamp(1, PROBE_BURST),
            (false, _) => pace.burst.max(1),
        };
        let tolerance = interval * u64::from(burst - 1);
        if burst > PROBE_BURST {
            (interval, tolerance.saturating_sub(ARRIVAL_JITTER_NS))
        } else {
            (interval, tolerance)
        }
    }

    /// Takes the next slot: the new schedule, how long to wait for the slot, and
    /// whether it goes as part of a burst (at once, though the schedule is ahead).
    pub fn reserve(self, pace: Pace, now: u64) -> (Schedule, (u64, bool)) {
        let (interval, tolerance) = self.spacing(pace, now);
        let paced = self.tat.max(now);
        let slot = self.tat.saturating_sub(tolerance).max(now);
        let next = Schedule {
            tat: paced.saturating_add(interval),
            ..self
        };
        (next, (slot - now, slot == now && self.tat > now))
    }

    /// Lets a request go at `now` (recording it and taking back [`GAIN_PPM`] of the
    /// rate), or, when the last request went less than an interval ago and the key is
    /// not known to tolerate a burst, how long to wait first. Not known: no burst is
    /// allowed, or it is not yet earned and this request is a paced one, not the
    /// pair's (`burst`). The pair's tolerance of one interval would otherwise let
    /// every paced request after it go up to an interval early by the clock when a
    /// timer woke the one before late: against a server with no tolerance, 6 batches
    /// at 250 ms, that refused 13 of a run's first ~26 requests (5 with this check).
    pub fn dispatch(self, pace: Pace, now: u64, burst: bool) -> (Schedule, Option<u64>) {
        let (interval, tolerance) = self.spacing(pace, now);
        let due = self.sent.saturating_add(interval + margin(interval));
        // No tolerance holds even a burst's request: a 429 since its slot was taken
        // has dropped the burst it went in.
        let strict = tolerance == 0 || (self.burst_ok == 0 && !burst);
        if strict && due > now {
            return (self, Some(due - now));
        }
        let next = Schedule {
            sent: now,
            slow_ppm: self.slow_ppm.saturating_sub(GAIN_PPM),
            ..self
        };
        (next, None)
    }

    /// Records at `now` the answer (not a 429) to a request whose slot was taken at
    /// `slot`, in a `burst`: the server tolerates bursts, unless a burst was refused
    /// since the slot was taken (the rest of a flight says nothing new).
    pub fn answered(self, now: u64, slot: u64, burst: bool) -> Schedule {
        if !burst || self.burst_ok != 0 || slot < self.last_429 {
            return self;
        }
        Schedule {
            burst_ok: now,
            ..self
        }
    }

    /// True when a request made at `now` would not wait for its slot.
    pub fn has_room(self, pace: Pace, now: u64) -> bool {
        let (_, tolerance) = self.spacing(pace, now);
        self.tat.saturating_sub(tolerance) <= now
    }

    /// Counts a 429 seen at `now` by a request whose slot was taken at `slot` (`None`:
    /// not tied to a request) and went `early` (within the burst), and pushes the
    /// schedule past `pause(new schedule)`.
    /// A counted 429 cuts the rate (and so drops the burst); a stale one (its slot
    /// taken before the last counted 429) only pauses.
    pub fn note_429(
        self,
        pace: Pace,
        now: u64,
        slot: Option<u64>,
        early: bool,
        pause: impl Fn(Schedule) -> Option<u64>,
    ) -> Schedule {
        let mut next = self;
        let stale = slot.is_some_and(|r| r < self.last_429);
        if !stale {
            let share = self.share() * CUT;
            next.slow_ppm = ((1.0 - share) * 1e6).round().clamp(0.0, 1e6) as u32;
            if now.saturating_sub(self.last_429) >= SAME_429_NS {
                next.recent = 1;
            } else {
                next.recent = self.recent.saturating_add(1);
            }
            next.last_429 = now;
            // A burst's slots were handed out ahead of the schedule (GCRA's tolerance).
            // When the server refused one of them it has no such tolerance, and did
            // not count the refused: taking the tolerance away must not make the next
            // request wait for all of them again, so the schedule goes on from the last
            // slot given, as the server's own does. A refused paced request says the
            // server tolerates bursts and the key is at its edge: the tolerance then
            // comes off the schedule as a margin.
            if early {
                let (_, before) = self.spacing(pace, now);
                next.burst_ok = 0;
                let (_, after) = next.spacing(pace, now);
                next.tat = next.tat.saturating_sub(before.saturating_sub(after));
            }
        }
        if let Some(ns) = pause(next) {
            next.tat = next.tat.max(now.saturating_add(ns.min(MAX_AHEAD_NS)));
        }
        next
    }

    /// Whether 429s without a `Retry-After` call for a pause: the share is as slow as
    /// caution makes it and they keep coming densely (a rate far above the plan's).
    /// Sparse ones are arrival jitter against a strict server: pausing for them would
    /// cost more than they do.
    pub fn wants_pause(self) -> bool {
        self.at_floor() && self.recent >= DENSE_429S
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    /// 100 req/s with the worker's 0.8 s burst.
    const PACE: Pace = Pace {
        interval_ns: 10 * MS,
        burst: 80,
    };
    const T0: u64 = 1_000_000 * MS;

    /// A key whose server has answered a burst's request.
    fn earned() -> Schedule {
        Schedule {
            burst_ok: T0 - 60_000 * MS,
            ..Schedule::default()
        }
    }

    #[test]
    fn the_text_round_trips_and_older_files_read_as_no_caution() {
        let s = Schedule {
            tat: 5,
            slow_ppm: 2,
            last_429: 7,
            recent: 3,
            sent: 9,
            burst_ok: 11,
        };
        assert_eq!(Schedule::parse(&s.text()), s);
        let old = Schedule::parse("123\n");
        assert_eq!((old.tat, old.slow_ppm, old.sent), (123, 0, 0));
        assert_eq!(Schedule::parse("garbage"), Schedule::default());
        let ahead = Schedule::parse(&format!("{}", T0 + 2 * MAX_AHEAD_NS));
        assert_eq!(ahead.sane_at(T0), Schedule::default());
    }

    /// Slots of a whole burst kept back for arrival jitter.
    const KEPT: usize = (ARRIVAL_JITTER_NS / (10 * MS)) as usize;

    #[test]
    fn a_burst_goes_at_once_then_slots_are_an_interval_apart() {
        // 80 less the jitter's 20 ms (2 slots) go at once.
        let at_once = 80 - KEPT;
        let mut s = earned();
        let mut waits = vec![];
        for _ in 0..82 {
            let (n, (w, early)) = s.reserve(PACE, T0);
            s = n;
            waits.push(w);
            assert_eq!(
                early,
                waits.len() > 1 && waits.len() <= at_once,
                "{}",
                waits.len()
            );
        }
        assert!(waits[..at_once].iter().all(|&w| w == 0));
        assert_eq!(waits[at_once], 10 * MS);
        assert_eq!(waits[at_once + 1], 20 * MS);
        assert!(!s.has_room(PACE, T0));
    }

    #[test]
    fn the_first_429_drops_the_burst_and_a_flight_counts_once() {
        let s = earned();
        let at = T0 + 250 * MS;
        let s = s.note_429(PACE, at, Some(T0), false, |_| None);
        assert_eq!(s.spacing(PACE, at + MS).1, 0, "no burst after a 429");
        assert!((s.share() - CUT).abs() < 1e-6);
        // The rest of the start-up burst, refused too, was sent before: nothing more.
        let after = (0..79).fold(s, |s, _| {
            s.note_429(PACE, at + MS, Some(T0), true, |_| None)
        });
        assert_eq!(after.slow_ppm, s.slow_ppm);
        // The burst comes back after a quiet spell.
        let later = at + BURST_QUIET_NS;
        let (interval, tolerance) = s.spacing(PACE, later);
        assert_eq!(tolerance, 79 * interval - ARRIVAL_JITTER_NS);
    }

    #[test]
    fn dropping_the_burst_does_not_charge_its_slots_again() {
        // A start-up burst of 80, then 25 requests at the rate, before the first 429
        // (250 ms of latency later) drops the burst.
        let mut s = earned();
        let mut last = 0;
        for _ in 0..80 + 25 {
            let (n, (wait, _)) = s.reserve(PACE, T0);
            (s, last) = (n, T0 + wait);
        }
        let at = T0 + 250 * MS;
        let refused = s.note_429(PACE, at, Some(T0), true, |_| None);
        let (_, (wait, _)) = refused.reserve(PACE, at);
        assert_eq!(
            at + wait,
            last + 10 * MS,
            "the next slot follows the last one given, not 80 slots later"
        );
        // A refused paced request: the server tolerates bursts; keep the margin.
        let edge = s.note_429(PACE, at, Some(T0), false, |_| None);
        let (_, (wait, _)) = edge.reserve(PACE, at);
        assert!(wait >= 790 * MS, "{} ms", wait / MS);
    }

    #[test]
    fn a_burst_is_a_pair_until_the_server_answers_one() {
        let mut s = Schedule::default();
        let mut waits = vec![];
        for _ in 0..3 {
            let (n, (w, early)) = s.reserve(PACE, T0);
            s = n;
            waits.push((w / MS, early));
        }
        assert_eq!(waits, [(0, false), (0, true), (10, false)]);
        // The paced request's answer says nothing; the burst's opens the tolerance.
        let s = s.answered(T0 + 250 * MS, T0, false);
        assert_eq!(s.burst_ok, 0);
        let s = s.answered(T0 + 250 * MS, T0, true);
        assert_eq!(s.burst_ok, T0 + 250 * MS);
        let at = T0 + 250 * MS;
        let burst = (0..90)
            .scan(s, |s, _| {
                let (n, (w, _)) = s.reserve(PACE, at);
                *s = n;
                Some(w)
            })
            .take_while(|w| *w == 0)
            .count();
        assert_eq!(burst, 80 - KEPT, "the whole burst after an idle spell");
        // A refused burst's request closes it again; one of its flight answered late
        // does not reopen it.
        let refused = s.note_429(PACE, at, Some(at - MS), true, |_| None);
        assert_eq!(refused.burst_ok, 0);
        let late = refused.answered(at + MS, at - 2 * MS, true);
        assert_eq!(late.burst_ok, 0);
        let quiet = at + BURST_QUIET_NS;
        let (interval, tolerance) = late.spacing(PACE, quiet);
        assert_eq!(tolerance, interval, "after a quiet spell, a pair again");
    }

    #[test]
    fn requests_let_go_win_the_rate_back() {
        let s = Schedule::default().note_429(PACE, T0, None, false, |_| None);
        let cut = s.slow_ppm;
        assert!(cut > 29_000 && cut < 31_000, "{cut}");
        let mut s = s;
        let mut now = T0;
        for _ in 0..30 {
            now += 20 * MS;
            s = s.dispatch(PACE, now, false).0;
        }
        assert_eq!(s.slow_ppm, 0, "30 requests undo one cut");
        assert_eq!(s.sent, now);
    }

    #[test]
    fn without_a_burst_a_request_goes_an_interval_after_the_last_one_went() {
        let s = Schedule::default().note_429(PACE, T0, None, false, |_| None);
        assert_eq!(s.spacing(PACE, T0).1, 0, "no burst");
        let (s, wait) = s.dispatch(PACE, T0 + MS, false);
        assert_eq!(wait, None, "nothing went before");
        let (interval, _) = s.spacing(PACE, T0 + MS);
        assert!(
            interval > PACE.interval_ns,
            "still a little slower than configured"
        );
        // The next slot's sleep ended early relative to the last dispatch (that one
        // went late): it waits for the rest of the interval.
        let gap = interval + margin(interval);
        let (same, wait) = s.dispatch(PACE, T0 + MS + gap - 3 * MS, false);
        assert_eq!(wait, Some(3 * MS));
        assert_eq!(same, s);
        assert_eq!(s.dispatch(PACE, T0 + MS + gap, false).1, None);
        // With a burst earned, nothing is held back.
        let (free, _) = earned().dispatch(PACE, T0, false);
        assert_eq!(free.dispatch(PACE, T0, false).1, None);
    }

    #[test]
    fn until_a_burst_is_earned_only_the_pair_goes_early() {
        // A run's start: the pair's second request goes at once, the paced one after
        // it an interval and the margin after it by the clock, even when its slot,
        // one interval on, came up sooner (the pair's tolerance).
        let s = Schedule::default();
        let (s, wait) = s.dispatch(PACE, T0, false);
        assert_eq!(wait, None);
        let (s, wait) = s.dispatch(PACE, T0 + MS, true);
        assert_eq!(wait, None, "the pair's second goes at once");
        let due = T0 + MS + PACE.interval_ns + margin(PACE.interval_ns);
        assert_eq!(s.dispatch(PACE, due - 3 * MS, false).1, Some(3 * MS));
        assert_eq!(s.dispatch(PACE, due, false).1, None);
    }

    #[test]
    fn a_rate_far_too_high_reaches_the_floor_and_then_pauses() {
        let mut s = Schedule::default();
        let mut now = T0;
        // Each 429 is to a request sent after the last counted one: all count.
        for _ in 0..20 {
            now += 50 * MS;
            s = s.note_429(PACE, now, Some(now - MS), false, |_| None);
        }
        assert!((s.share() - MIN_RATE_SHARE).abs() < 1e-9, "{}", s.share());
        assert!(s.wants_pause());
        let paused = s.note_429(PACE, now + MS, Some(now), false, |s| {
            s.wants_pause().then_some(5_000 * MS)
        });
        assert!(paused.tat >= now + 5_000 * MS);
    }

    #[test]
    fn sparse_429s_at_the_floor_do_not_pause() {
        let mut s = Schedule {
            slow_ppm: 300_000,
            ..Schedule::default()
        };
        s = s.note_429(PACE, T0, None, false, |_| None);
        s = s.note_429(PACE, T0 + 2 * SAME_429_NS, None, false, |_| None);
        assert!(s.at_floor());
        assert!(!s.wants_pause(), "one 429 a second is jitter");
    }

    #[test]
    fn a_strict_key_spaces_requests_a_fortieth_of_an_interval_more() {
        // 100 req/s, no burst allowed: the (cut) interval and a fortieth of it after
        // the last request, ~250 µs more than the interval alone.
        let s = Schedule::default().note_429(PACE, T0, None, false, |_| None);
        let (s, _) = s.dispatch(PACE, T0, false);
        let (interval, _) = s.spacing(PACE, T0);
        let due = interval + interval / 40;
        assert_eq!(s.dispatch(PACE, T0 + due - 200_000, false).1, Some(200_000));
        assert_eq!(s.dispatch(PACE, T0 + due, false).1, None);
    }

    #[test]
    fn the_free_plan_is_evenly_spaced() {
        let pace = Pace {
            interval_ns: 12_000 * MS,
            burst: 1,
        };
        let (s, (w0, _)) = Schedule::default().reserve(pace, T0);
        let (_, (w1, _)) = s.reserve(pace, T0);
        assert_eq!((w0, w1), (0, 12_000 * MS));
        let (s, _) = s.dispatch(pace, T0, false);
        assert_eq!(
            s.dispatch(pace, T0 + 11_000 * MS, false).1,
            Some(1_020 * MS),
            "20 ms margin"
        );
    }
}
