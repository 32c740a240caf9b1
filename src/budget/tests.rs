//! The budget's unit tests: scheduling, caution after 429s, damaged files.
use super::*;

fn budget(rate: f64, burst: u32) -> (tempfile::TempDir, Budget) {
    let dir = tempfile::tempdir().unwrap();
    let b = Budget::open_with_burst(dir.path(), &ApiKey::new("k"), Rate(rate), burst).unwrap();
    (dir, b)
}

#[test]
fn an_older_file_with_only_a_tat_reads_as_no_caution() {
    assert_eq!(
        Schedule::parse("123\n"),
        Schedule {
            tat: 123,
            ..Schedule::default()
        }
    );
    assert_eq!(Schedule::parse("garbage"), Schedule::default());
    let s = Schedule {
        tat: 5,
        caution: 2,
        last_429: 7,
        recent: 3,
    };
    assert_eq!(Schedule::parse(&s.text()), s);
}

#[test]
fn caution_halves_the_burst_then_slows_the_rate() {
    let (_d, b) = budget(100.0, 80);
    let i = 10_000_000; // 10 ms at 100/s
    assert_eq!(b.spacing(0), (i, 79 * i));
    assert_eq!(b.spacing(1), (i, 39 * i));
    assert_eq!(b.spacing(6), (i, 0), "80 >> 6 = 1: no burst left");
    let (slower, tolerance) = b.spacing(8);
    assert_eq!(tolerance, 0);
    assert_eq!(slower, (i as f64 / 0.97f64.powi(2)).round() as u64);
    let (slowest, _) = b.spacing(64);
    assert_eq!(slowest, (i as f64 / MIN_RATE_SHARE).round() as u64);
}

#[test]
fn caution_steps_back_after_quiet_spells() {
    let s = Schedule {
        tat: 0,
        caution: 3,
        last_429: 1_000,
        recent: 1,
    };
    assert_eq!(s.caution_at(1_000 + RECOVER_NS - 1), 3);
    assert_eq!(s.caution_at(1_000 + 2 * RECOVER_NS), 1);
    assert_eq!(s.caution_at(1_000 + 10 * RECOVER_NS), 0);
}

#[test]
fn a_burst_goes_at_once_then_requests_are_spaced() {
    let (_d, b) = budget(10.0, 4);
    let waits: Vec<Duration> = (0..6).map(|_| b.reserve()).collect();
    assert!(waits[..4].iter().all(|w| w.is_zero()), "{waits:?}");
    assert!(waits[4] > Duration::from_millis(50), "{waits:?}");
    assert!(waits[5] > waits[4] + Duration::from_millis(50), "{waits:?}");
    assert!(!b.has_room());
}

#[test]
fn a_429_counts_once_for_the_requests_in_flight_and_drops_the_burst() {
    let (_d, b) = budget(10.0, 4);
    assert!(b.has_room());
    for _ in 1..DENSE_429S {
        b.penalize(Duration::ZERO);
    }
    let s = b.update(|_, s| (s, s));
    assert_eq!(
        s.caution, 2,
        "simultaneous 429s are one step, to burst 1 at once"
    );
    let waits: Vec<Duration> = (0..2).map(|_| b.reserve()).collect();
    assert!(waits[0].is_zero(), "{waits:?}");
    assert!(waits[1] > Duration::from_millis(50), "{waits:?}");
}

#[test]
fn a_429_to_a_request_sent_before_the_last_step_counts_for_nothing() {
    let (_d, b) = budget(100.0, 80);
    let before = Reserved(now_ns());
    std::thread::sleep(Duration::from_millis(2));
    b.rate_limited(Reserved(now_ns()), None, Duration::from_secs(1));
    let caution = || b.update(|_, s| (s, s.caution));
    assert_eq!(caution(), 6, "the first 429 drops the burst to 1");
    // The rest of the burst the server refused was sent before: no new steps.
    for _ in 0..50 {
        b.rate_limited(before, None, Duration::from_secs(1));
    }
    assert_eq!(caution(), 6);
    assert!(b.reserve() < Duration::from_millis(20), "and no pause");
}

#[test]
fn dense_429s_step_faster_and_pause_only_at_the_slowest_rate() {
    let (_d, b) = budget(100.0, 1);
    let fresh = || Reserved(now_ns());
    // Sparse: one step per window, however many 429s in flight saw it.
    b.rate_limited(fresh(), None, Duration::from_secs(5));
    assert_eq!(b.update(|_, s| (s, s.caution)), 1);
    // Dense: every DENSE_429S more in the window is another step.
    for _ in 0..(DENSE_429S * 3) {
        b.rate_limited(fresh(), None, Duration::from_secs(5));
    }
    assert_eq!(b.update(|_, s| (s, s.caution)), 4);
    assert!(
        b.reserve() < Duration::from_secs(1),
        "not yet at the floor: no pause"
    );
    for _ in 0..(DENSE_429S * MAX_SLOW_STEPS) {
        b.rate_limited(fresh(), None, Duration::from_secs(5));
    }
    assert!(
        b.reserve() > Duration::from_secs(4),
        "a rate far too high pauses"
    );
}

#[test]
fn the_free_plan_rate_has_no_burst() {
    assert_eq!(Rate::FREE_PLAN.default_burst(), 1);
    assert_eq!(Rate(100.0).default_burst(), 80);
    let (_d, b) = budget(5.0 / 60.0, Rate::FREE_PLAN.default_burst());
    assert!(b.reserve().is_zero());
    assert!(b.reserve() >= Duration::from_secs(11));
}
