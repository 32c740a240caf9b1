//! The budget handle's unit tests: the schedule through its file (the rules
//! themselves are tested in `schedule.rs`).
use super::*;

fn budget(rate: f64, burst: u32) -> (tempfile::TempDir, Budget) {
    let dir = tempfile::tempdir().unwrap();
    let b = Budget::open_with_burst(dir.path(), &ApiKey::new("k"), Rate(rate), burst).unwrap();
    (dir, b)
}

fn stored(b: &Budget) -> Schedule {
    b.update(|_, s| (s, s))
}

#[test]
fn a_burst_goes_at_once_once_earned_then_requests_are_spaced() {
    let (_d, b) = budget(10.0, 4);
    // A pair until the server answers a burst's request.
    let pair = b.reserve();
    let (second, early, _) = b.reserve();
    assert!(pair.0.is_zero() && second.is_zero() && early, "{pair:?}");
    assert!(b.reserve().0 > Duration::from_millis(50));
    b.answered(Reserved {
        at: now_ns(),
        burst: true,
        probe: true,
    });
    assert!(stored(&b).burst_ok > 0, "on the file, for every handle");
    // Idle past the three slots taken: the whole burst is there, less the 20 ms kept
    // back for arrival jitter (the 4th slot, 300 ms into the tolerance, goes 20 ms on).
    std::thread::sleep(Duration::from_millis(350));
    let waits: Vec<Duration> = (0..6).map(|_| b.reserve().0).collect();
    assert!(waits[..3].iter().all(|w| w.is_zero()), "{waits:?}");
    let kept = Duration::from_nanos(schedule::ARRIVAL_JITTER_NS);
    assert!(waits[3] > kept / 2 && waits[3] <= kept, "{waits:?}");
    assert!(waits[4] > Duration::from_millis(50), "{waits:?}");
    assert!(waits[5] > waits[4] + Duration::from_millis(50), "{waits:?}");
    assert!(!b.has_room());
}

#[test]
fn a_429_drops_the_burst_for_every_handle_on_the_file() {
    let (d, b) = budget(10.0, 4);
    let other = Budget::open_with_burst(d.path(), &ApiKey::new("k"), Rate(10.0), 4).unwrap();
    b.answered(Reserved {
        at: now_ns(),
        burst: true,
        probe: true,
    });
    assert!(b.has_room());
    b.penalize(Duration::ZERO);
    let waits: Vec<Duration> = (0..2).map(|_| other.reserve().0).collect();
    assert!(waits[0].is_zero(), "{waits:?}");
    assert!(waits[1] > Duration::from_millis(90), "no burst: {waits:?}");
    assert!(stored(&other).slow_ppm > 0, "and a slower rate");
}

#[test]
fn a_429_to_a_request_sent_before_the_last_one_counts_for_nothing() {
    let (_d, b) = budget(100.0, 80);
    let before = Reserved {
        at: now_ns(),
        burst: false,
        probe: false,
    };
    std::thread::sleep(Duration::from_millis(2));
    b.rate_limited(
        Reserved {
            at: now_ns(),
            burst: false,
            probe: false,
        },
        None,
        Duration::from_secs(1),
    );
    let cut = stored(&b).slow_ppm;
    assert!(cut > 0);
    // The rest of the burst the server refused was sent before: no new cuts.
    for _ in 0..50 {
        b.rate_limited(before, None, Duration::from_secs(1));
    }
    assert_eq!(stored(&b).slow_ppm, cut);
    assert!(b.reserve().0 < Duration::from_millis(20), "and no pause");
}

#[test]
fn a_retry_after_pauses_everyone_and_dense_429s_pause_only_at_the_floor() {
    let (_d, b) = budget(100.0, 1);
    let fresh = || Reserved {
        at: now_ns(),
        burst: false,
        probe: false,
    };
    b.rate_limited(fresh(), Some(Duration::from_millis(300)), Duration::ZERO);
    assert!(
        b.reserve().0 > Duration::from_millis(250),
        "Retry-After for all"
    );
    let (_d, b) = budget(100.0, 1);
    for _ in 0..3 {
        b.rate_limited(fresh(), None, Duration::from_secs(5));
    }
    assert!(
        b.reserve().0 < Duration::from_secs(1),
        "above the floor: no pause"
    );
    for _ in 0..20 {
        b.rate_limited(fresh(), None, Duration::from_secs(5));
    }
    assert!(
        b.reserve().0 > Duration::from_secs(4),
        "a rate far too high pauses"
    );
}

#[tokio::test]
async fn acquire_lets_requests_go_an_interval_apart_without_a_burst() {
    let (_d, b) = budget(50.0, 1);
    let mut at = vec![];
    for _ in 0..5 {
        b.acquire().await.unwrap();
        at.push(std::time::Instant::now());
    }
    for w in at.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= Duration::from_millis(20), "{gap:?}");
    }
    assert!(
        stored(&b).sent > 0,
        "the dispatch is recorded for other handles"
    );
}

#[test]
fn the_free_plan_rate_has_no_burst() {
    assert_eq!(Rate::FREE_PLAN.default_burst(), 1);
    assert_eq!(Rate(100.0).default_burst(), 80);
    let (_d, b) = budget(5.0 / 60.0, Rate::FREE_PLAN.default_burst());
    assert!(b.reserve().0.is_zero());
    assert!(b.reserve().0 >= Duration::from_secs(11));
}
