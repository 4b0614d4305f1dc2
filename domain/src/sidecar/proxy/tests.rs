use super::*;
use crate::ports::MockProxyProbe;
use crate::sidecar::testing::FakeClock;
use futures::executor::block_on;
use futures::FutureExt;
use std::sync::Mutex;

const V4: &str = "10.96.0.2:443";
const V6: &str = "[fd00::2]:443";

/// Every probe result, in order.
#[derive(Default)]
struct Probed(Mutex<Vec<(SocketAddr, Result<(), ProbeError>)>>);

impl ProbeObserver for Probed {
    fn probed(&self, target: SocketAddr, result: &Result<(), ProbeError>) {
        self.0.lock().unwrap().push((target, result.clone()));
    }
}

/// A probe that gives `answers` in turn, then answers.
fn scripted(answers: Vec<Result<(), ProbeError>>) -> MockProxyProbe {
    let mut answers = answers.into_iter();
    let mut probe = MockProxyProbe::new();
    probe
        .expect_connect()
        .returning(move |_| answers.next().unwrap_or(Ok(())));
    probe
}

fn proxy(probe: MockProxyProbe, addresses: &str, observer: Arc<Probed>) -> Proxy {
    Proxy::new(Arc::new(probe), &addresses.parse().unwrap(), 443, observer)
}

fn target(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn every_address_is_probed_on_the_port_and_each_result_told() {
    let observer = Arc::new(Probed::default());
    let mut probe = MockProxyProbe::new();
    probe
        .expect_connect()
        .withf(|target| *target == self::target(V4))
        .times(1)
        .returning(|_| Err(ProbeError::Refused));
    probe
        .expect_connect()
        .withf(|target| *target == self::target(V6))
        .times(1)
        .returning(|_| Ok(()));
    let proxy = proxy(probe, "10.96.0.2,fd00::2", observer.clone());
    assert_eq!(
        block_on(proxy.answers()),
        Err(Unanswered {
            target: target(V4),
            cause: ProbeError::Refused
        })
    );
    assert_eq!(
        *observer.0.lock().unwrap(),
        vec![(target(V4), Err(ProbeError::Refused)), (target(V6), Ok(()))]
    );
    assert_eq!(proxy.targets(), format!("{V4}, {V6}"));
}

#[test]
fn the_proxy_answers_only_when_every_address_answers() {
    let observer = Arc::new(Probed::default());
    let proxy = proxy(scripted(vec![]), "10.96.0.2,fd00::2", observer.clone());
    assert_eq!(block_on(proxy.answers()), Ok(()));
    assert_eq!(observer.0.lock().unwrap().len(), 2);
}

/// The binary passes its metrics as an `Option` (off without `--metrics-bind-address`).
#[test]
fn metrics_that_are_on_are_told_every_probe_and_metrics_that_are_off_nothing() {
    let on = Arc::new(Probed::default());
    let on_proxy = Proxy::new(
        Arc::new(scripted(vec![Err(ProbeError::Refused)])),
        &"10.96.0.2".parse().unwrap(),
        443,
        Arc::new(Some(on.clone())),
    );
    assert!(block_on(on_proxy.answers()).is_err());
    assert_eq!(
        *on.0.lock().unwrap(),
        vec![(target(V4), Err(ProbeError::Refused))]
    );
    let off = Proxy::new(
        Arc::new(scripted(vec![])),
        &"10.96.0.2".parse().unwrap(),
        443,
        Arc::new(None::<Arc<Probed>>),
    );
    assert_eq!(block_on(off.answers()), Ok(()));
}

/// A log line with `?proxy` names where it probes; the probe and the observer are no reader's
/// business.
#[test]
fn its_debug_form_names_the_targets() {
    let proxy = proxy(scripted(vec![]), "10.96.0.2,fd00::2", Arc::default());
    assert_eq!(
        format!("{proxy:?}"),
        format!("Proxy {{ targets: [{V4}, {V6}], .. }}")
    );
}

#[test]
fn the_message_names_the_target_and_the_cause() {
    let unanswered = Unanswered {
        target: target(V4),
        cause: ProbeError::TimedOut {
            after: Duration::from_secs(1),
        },
    };
    assert_eq!(
        unanswered.to_string(),
        "the proxy does not answer on 10.96.0.2:443: no answer within 1s"
    );
}

/// Each sleep of the clock, in milliseconds.
fn slept(clock: &FakeClock) -> Vec<u128> {
    let sleeps = clock.sleeps.lock().unwrap();
    sleeps.iter().map(Duration::as_millis).collect()
}

/// The watch, run until its clock's sleeps stop returning (after `sleeps` of them).
fn watched(proxy: &Proxy, sleeps: usize) -> FakeClock {
    let clock = FakeClock {
        forever_after: Some(sleeps),
        ..Default::default()
    };
    assert!(watch(proxy, &clock, Duration::from_secs(60))
        .now_or_never()
        .is_none());
    clock
}

#[test]
fn the_watch_paces_unanswered_probes_from_250_ms_to_2_s_then_keeps_the_interval() {
    let observer = Arc::new(Probed::default());
    let refused = vec![Err(ProbeError::Refused); 6];
    let proxy = proxy(scripted(refused), "10.96.0.2", observer.clone());
    let clock = watched(&proxy, 8);
    assert_eq!(
        slept(&clock),
        vec![250, 500, 1000, 2000, 2000, 2000, 60_000, 60_000, 60_000]
    );
    assert_eq!(observer.0.lock().unwrap().len(), 9, "one probe per wait");
}

#[test]
fn a_proxy_that_stops_answering_is_probed_at_the_waiting_pace_again() {
    let answers = vec![Ok(()), Err(ProbeError::Refused), Ok(())];
    let proxy = proxy(scripted(answers), "10.96.0.2", Arc::default());
    let clock = watched(&proxy, 2);
    assert_eq!(slept(&clock), vec![60_000, 250, 60_000]);
}

#[test]
fn kinds_name_each_error_for_metric_labels() {
    let errors = [
        ProbeError::Refused,
        ProbeError::TimedOut {
            after: Duration::from_secs(1),
        },
        ProbeError::Failed {
            reason: "network unreachable".into(),
        },
    ];
    let kinds: Vec<&str> = errors.iter().map(ProbeError::kind).collect();
    assert_eq!(kinds, ProbeError::KINDS);
}
