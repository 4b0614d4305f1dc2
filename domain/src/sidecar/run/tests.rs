use super::*;
use crate::sidecar::address::AddressReconciler;
use crate::sidecar::model::NetError;
use crate::sidecar::reconciler::NoRules;
use crate::sidecar::testing::{FakeClock, FakeNet, Recorder};
use futures::executor::block_on;
use futures::future::poll_fn;
use std::sync::Mutex;
use std::task::Poll;

fn sidecar(net: FakeNet) -> NodeReconciler<FakeNet, NoRules> {
    let desired = crate::sidecar::desired::DesiredAddress {
        addresses: "10.96.0.2".parse().unwrap(),
        interface: "lo".parse().unwrap(),
    };
    NodeReconciler::new(AddressReconciler::new(net, desired), None)
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn syncs_once_at_start_then_every_interval() {
    let (clock, recorder) = (FakeClock::default(), Recorder::default());
    let mut sidecar = sidecar(FakeNet::with_lo());
    let events = futures::stream::pending();
    block_on(run(
        &mut sidecar,
        &clock,
        &recorder,
        Schedule::new(MINUTE),
        events,
        recorder.after(3),
    ));
    assert_eq!(
        recorder.triggers(),
        vec![Trigger::Start, Trigger::Interval, Trigger::Interval]
    );
    assert_eq!(clock.sleeps.lock().unwrap()[..2], [MINUTE, MINUTE]);
}

#[test]
fn failed_syncs_are_retried_sooner_with_backoff_capped_at_the_interval() {
    let (clock, recorder) = (FakeClock::default(), Recorder::default());
    let net = FakeNet::with_lo();
    net.0.lock().unwrap().broken = Some(NetError::PermissionDenied {
        operation: "list links".into(),
    });
    let mut sidecar = sidecar(net);
    let events = futures::stream::pending();
    block_on(run(
        &mut sidecar,
        &clock,
        &recorder,
        Schedule::new(Duration::from_secs(10)),
        events,
        recorder.after(6),
    ));
    assert_eq!(recorder.triggers()[1..], [Trigger::Retry; 5]);
    let secs: Vec<u64> = clock
        .sleeps
        .lock()
        .unwrap()
        .iter()
        .map(Duration::as_secs)
        .collect();
    assert_eq!(secs, [1, 2, 4, 8, 10]);
}

#[test]
fn a_relevant_event_syncs_at_once_and_repairs() {
    let clock = FakeClock {
        sleep_forever: true,
        ..Default::default()
    };
    let recorder = Recorder::default();
    let net = FakeNet::with_lo();
    let mut sidecar = sidecar(net.clone());
    // The event arrives after the first sync, as if someone deleted the address then.
    let deleted = futures::stream::once(async {
        recorder.after(1).await;
        net.0
            .lock()
            .unwrap()
            .links
            .get_mut(&1)
            .unwrap()
            .addresses
            .clear();
        NetEvent::AddressRemoved {
            index: 1,
            address: "10.96.0.2".parse().unwrap(),
        }
    });
    block_on(run(
        &mut sidecar,
        &clock,
        &recorder,
        Schedule::new(MINUTE),
        deleted,
        recorder.after(2),
    ));
    assert_eq!(recorder.triggers(), vec![Trigger::Start, Trigger::Event]);
    assert_eq!(net.addresses_of("lo").len(), 1);
}

#[test]
fn irrelevant_events_do_not_sync() {
    let clock = FakeClock {
        sleep_forever: true,
        ..Default::default()
    };
    let recorder = Recorder::default();
    let mut sidecar = sidecar(FakeNet::with_lo());
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let others = futures::stream::iter(vec![
        NetEvent::AddressRemoved {
            index: 1,
            address: "10.0.0.9".parse().unwrap()
        };
        50
    ])
    .inspect(|_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    // Shut down once the loop has read every event, not before: `run` polls shutdown first, so a
    // stop that is ready after the start sync alone would leave the events unread.
    let all_read = poll_fn(|_| match seen.load(std::sync::atomic::Ordering::SeqCst) {
        50 => Poll::Ready(()),
        _ => Poll::Pending,
    });
    block_on(run(
        &mut sidecar,
        &clock,
        &recorder,
        Schedule::new(MINUTE),
        others,
        all_read,
    ));
    assert_eq!(seen.into_inner(), 50);
    assert_eq!(recorder.triggers(), vec![Trigger::Start]);
}

#[test]
fn a_burst_of_events_causes_one_sync() {
    let clock = FakeClock {
        sleep_forever: true,
        ..Default::default()
    };
    let recorder = Recorder::default();
    let mut sidecar = sidecar(FakeNet::with_lo());
    let burst = futures::stream::iter(vec![NetEvent::EventsLost; 100]);
    let stop = async {
        recorder.after(2).await;
        // Give the loop every chance to sync again on the rest of the burst.
        for _ in 0..10 {
            futures::pending!();
        }
    };
    let waker_spins = poll_fn(|cx| {
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    });
    let stop = futures::future::select(Box::pin(stop), Box::pin(waker_spins)).map(|_| ());
    block_on(run(
        &mut sidecar,
        &clock,
        &recorder,
        Schedule::new(MINUTE),
        burst,
        stop,
    ));
    assert_eq!(recorder.triggers(), vec![Trigger::Start, Trigger::Event]);
}

#[test]
fn an_ended_event_stream_leaves_the_interval_running() {
    let (clock, recorder) = (FakeClock::default(), Recorder::default());
    let mut sidecar = sidecar(FakeNet::with_lo());
    block_on(run(
        &mut sidecar,
        &clock,
        &recorder,
        Schedule::new(MINUTE),
        futures::stream::empty(),
        recorder.after(3),
    ));
    assert_eq!(
        recorder.triggers(),
        vec![Trigger::Start, Trigger::Interval, Trigger::Interval]
    );
}

#[test]
fn the_observer_hears_whether_the_address_is_present() {
    #[derive(Default)]
    struct Presence(Mutex<Vec<bool>>);
    impl SyncObserver for Presence {
        fn sync_finished(&self, report: &SyncReport<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(report.addresses.iter().all(|(_, present)| *present));
        }
    }
    let clock = FakeClock::default();
    let presence = Presence::default();
    let mut sidecar = sidecar(FakeNet::with_lo());
    block_on(sync_once(&mut sidecar, &clock, &presence, Trigger::Start));
    assert_eq!(*presence.0.lock().unwrap(), vec![true]);
}

#[test]
fn schedule_doubles_from_the_first_retry_up_to_the_interval() {
    let schedule = Schedule::new(MINUTE);
    let waits: Vec<u64> = (0..9).map(|f| schedule.wait_after(f).as_secs()).collect();
    assert_eq!(waits, vec![60, 1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(schedule.wait_after(u32::MAX), MINUTE);
}

#[rstest::rstest]
#[case::start(Trigger::Start, true)]
#[case::interval(Trigger::Interval, true)]
#[case::event(Trigger::Event, false)]
#[case::retry(Trigger::Retry, false)]
fn stale_entries_are_collected_at_start_and_on_the_interval_only(
    #[case] trigger: Trigger,
    #[case] collected: bool,
) {
    let net = FakeNet::with_lo();
    net.put_marked_address(1, "10.96.0.9".parse().unwrap());
    let mut reconciler = sidecar(net.clone());
    let outcome = block_on(sync_once(
        &mut reconciler,
        &FakeClock::default(),
        &(),
        trigger,
    ));
    assert_eq!(outcome.stale_removed.len(), usize::from(collected));
    assert_eq!(net.addresses_of("lo").len(), if collected { 1 } else { 2 });
}

#[test]
fn an_event_sync_does_not_postpone_the_interval() {
    let clock = FakeClock {
        sleep_forever: true,
        ..Default::default()
    };
    let recorder = Recorder::default();
    let mut sidecar = sidecar(FakeNet::with_lo());
    let lost = futures::stream::once(async {
        recorder.after(1).await;
        NetEvent::EventsLost
    });
    block_on(run(
        &mut sidecar,
        &clock,
        &recorder,
        Schedule::new(MINUTE),
        lost,
        // Stops once the wait after the event sync began; spins its waker until then.
        poll_fn(|cx| {
            if clock.sleeps.lock().unwrap().len() >= 2 {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }),
    ));
    assert_eq!(recorder.triggers(), vec![Trigger::Start, Trigger::Event]);
    // The fake clock advances 1 ms per sleep: the wait after the event sync ends when the
    // start's interval does, not a whole interval later.
    let sleeps = clock.sleeps.lock().unwrap().clone();
    assert_eq!(sleeps[0], MINUTE);
    assert_eq!(sleeps[1], MINUTE - Duration::from_millis(1));
}
