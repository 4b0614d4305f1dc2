use super::*;
use async_trait::async_trait;
use futures::FutureExt as _;
use rstest::rstest;
use std::sync::Mutex;

const SECONDS_5: Duration = Duration::from_secs(5);
const MINUTE: Duration = Duration::from_secs(60);

/// A clock on which no time passes: each sleep is recorded with the phase it began in, and ends
/// at once or never, as `ending` says by its index (never past its end).
#[derive(Debug)]
struct Scripted<'a> {
    phase: &'a SharedPhase,
    ending: &'a [bool],
    sleeps: Mutex<Vec<(Duration, Phase)>>,
}

#[async_trait]
impl Clock for Scripted<'_> {
    fn now(&self) -> Duration {
        Duration::ZERO
    }

    async fn sleep(&self, duration: Duration) {
        let index = {
            let mut sleeps = self.sleeps.lock().unwrap();
            sleeps.push((duration, self.phase.get()));
            sleeps.len() - 1
        };
        if !self.ending.get(index).copied().unwrap_or(false) {
            futures::future::pending::<()>().await;
        }
    }
}

/// What a whole shutdown did.
#[derive(Debug, PartialEq, Eq)]
struct Sequence {
    /// Each sleep, and the phase it began in.
    sleeps: Vec<(Duration, Phase)>,
    /// The phase once the listener may close.
    listener_closes_in: Phase,
    ending: Ending,
    /// The phase at the end.
    last: Phase,
}

/// Runs a shutdown with `delay`, `stops` stop signals (no more after them), sleeps that end as
/// `ending` says, and connections that end at once or never.
fn shut_down(delay: Duration, stops: usize, ending: &[bool], finish: bool) -> Sequence {
    let phase = SharedPhase::default();
    let clock = Scripted {
        phase: &phase,
        ending,
        sleeps: Mutex::default(),
    };
    let shutdown = Shutdown::new(
        &clock,
        Timing {
            delay,
            grace: GRACE,
        },
        &phase,
    );
    // Nothing here waits for real: a step either completes at its first poll or hangs, and a
    // test that fails must not hang.
    shutdown
        .until_listener_closes(futures::stream::iter(vec![(); stops]))
        .now_or_never()
        .expect("the listener closes");
    let listener_closes_in = phase.get();
    let finished = if finish {
        futures::future::ready(()).left_future()
    } else {
        futures::future::pending().right_future()
    };
    let ending = shutdown
        .until_connections_finish(finished)
        .now_or_never()
        .expect("the shutdown ends");
    Sequence {
        sleeps: clock.sleeps.into_inner().unwrap(),
        listener_closes_in,
        ending,
        last: phase.get(),
    }
}

#[rstest]
// The Go original's behaviour: the listener closes at the signal.
#[case::no_delay(Duration::ZERO, 1, &[], true, &[], Ending::Finished)]
#[case::no_delay_grace_runs_out(Duration::ZERO, 1, &[true], false, &[(GRACE, Phase::Closing)], Ending::GraceRanOut)]
#[case::the_delay_runs_out(SECONDS_5, 1, &[true], true, &[(SECONDS_5, Phase::Draining)], Ending::Finished)]
#[case::a_second_stop_ends_the_delay(MINUTE, 2, &[], true, &[(MINUTE, Phase::Draining)], Ending::Finished)]
#[case::a_second_stop_then_the_grace_runs_out(MINUTE, 2, &[false, true], false, &[(MINUTE, Phase::Draining), (GRACE, Phase::Closing)], Ending::GraceRanOut)]
#[case::the_grace_runs_out_with_requests_in_flight(SECONDS_5, 1, &[true, true], false, &[(SECONDS_5, Phase::Draining), (GRACE, Phase::Closing)], Ending::GraceRanOut)]
#[case::requests_finish_before_the_grace(SECONDS_5, 1, &[true, false], true, &[(SECONDS_5, Phase::Draining)], Ending::Finished)]
fn a_shutdown_runs_through_its_phases(
    #[case] delay: Duration,
    #[case] stops: usize,
    #[case] ending: &[bool],
    #[case] finish: bool,
    #[case] sleeps: &[(Duration, Phase)],
    #[case] ends: Ending,
) {
    assert_eq!(
        shut_down(delay, stops, ending, finish),
        Sequence {
            sleeps: sleeps.to_vec(),
            listener_closes_in: Phase::Closing,
            ending: ends,
            last: Phase::Stopped,
        }
    );
}

#[rstest]
#[case::no_stop(0)]
// A stop source that ends has no second stop to give: the delay is not cut short.
#[case::one_stop_and_no_more(1)]
fn the_listener_stays_open_until_a_stop_and_the_delay(#[case] stops: usize) {
    let phase = SharedPhase::default();
    let clock = Scripted {
        phase: &phase,
        ending: &[],
        sleeps: Mutex::default(),
    };
    let timing = Timing {
        delay: SECONDS_5,
        grace: GRACE,
    };
    let shutdown = Shutdown::new(&clock, timing, &phase);
    let closes = shutdown.until_listener_closes(futures::stream::iter(vec![(); stops]));
    assert_eq!(closes.now_or_never(), None);
    let serving = if stops == 0 {
        Phase::Serving
    } else {
        Phase::Draining
    };
    assert_eq!(phase.get(), serving);
}

#[test]
fn the_phase_is_shared_as_entered() {
    let phase = SharedPhase::default();
    assert_eq!(phase.get(), Phase::Serving);
    for each in Phase::ALL {
        phase.enter(each);
        assert_eq!(phase.get(), each);
    }
}

#[rstest]
#[case::serving(Phase::Serving, false)]
#[case::draining(Phase::Draining, true)]
#[case::closing(Phase::Closing, true)]
#[case::stopped(Phase::Stopped, true)]
fn only_serving_is_not_leaving(#[case] phase: Phase, #[case] leaving: bool) {
    assert_eq!(phase.is_leaving(), leaving);
}

#[rstest]
#[case::none(Duration::ZERO, Ok(Duration::ZERO))]
#[case::the_longest(MINUTE, Ok(MINUTE))]
#[case::a_millisecond_more(MINUTE + Duration::from_millis(1), Err(DelayTooLong))]
fn a_delay_is_at_most_a_minute(
    #[case] delay: Duration,
    #[case] checked: Result<Duration, DelayTooLong>,
) {
    assert_eq!(check_delay(delay), checked);
}

#[test]
fn a_delay_too_long_says_what_must_fit() {
    assert_eq!(
        DelayTooLong.to_string(),
        "expected a Go duration of at most 1m0s: the delay and the 10s given to requests in \
         flight after it must fit the Pod's terminationGracePeriodSeconds"
    );
}

#[rstest]
#[case::the_default_delay(SECONDS_5, None)]
#[case::filling_the_default(Duration::from_secs(20), None)]
#[case::past_the_default(Duration::from_secs(21), Some(Duration::from_secs(31)))]
fn a_stop_that_outlasts_the_default_termination_grace_is_named(
    #[case] delay: Duration,
    #[case] longest: Option<Duration>,
) {
    let timing = Timing::with_delay(delay);
    assert_eq!(timing.grace, GRACE);
    assert_eq!(timing.outlasting_default_termination_grace(), longest);
}
