use super::*;
use crate::ports::{MockClock, MockNodeTaints, MockProxyProbe};
use crate::sidecar::model::RuleCommandError;
use crate::sidecar::proxy::ProbeError;
use crate::sidecar::report::{RuleSyncError, SyncError, SyncOutcome, Trigger};
use crate::sidecar::testing::FakeClock;
use futures::executor::block_on;
use mockall::predicate::eq;
use rstest::rstest;
use std::sync::{Arc, Mutex};

const KEY: &str = "apiserver-proxy.networking.gardener.cloud/not-ready";

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_owned(),
        value: None,
        effect: effect.to_owned(),
        time_added: None,
    }
}

fn startup(taints: MockNodeTaints) -> StartupTaint<MockNodeTaints> {
    StartupTaint::new(taints, KEY.parse().unwrap(), "node-2".parse().unwrap())
}

/// A proxy on 10.96.0.2:443 (and [fd00::2]:443 when dual-stack) that gives `answers` in turn,
/// then answers.
fn proxy(addresses: &str, answers: Vec<Result<(), ProbeError>>) -> Proxy {
    let mut answers = answers.into_iter();
    let mut probe = MockProxyProbe::new();
    probe
        .expect_connect()
        .returning(move |_| answers.next().unwrap_or(Ok(())));
    Proxy::new(
        Arc::new(probe),
        &addresses.parse().unwrap(),
        443,
        Arc::new(()),
    )
}

fn refused(times: usize) -> Vec<Result<(), ProbeError>> {
    vec![Err(ProbeError::Refused); times]
}

/// A Node that carries our taint and another controller's, and accepts the removal.
fn tainted_node() -> MockNodeTaints {
    let mut taints = MockNodeTaints::new();
    taints
        .expect_taints()
        .times(1)
        .returning(|| Ok(vec![taint("other", "NoSchedule"), taint(KEY, "NoSchedule")]));
    taints
        .expect_remove()
        .with(eq(vec![(1, taint(KEY, "NoSchedule"))]))
        .times(1)
        .returning(|_| Ok(()));
    taints
}

fn unreachable() -> TaintError {
    TaintError::Unreachable {
        reason: "connection refused".into(),
    }
}

fn forbidden() -> TaintError {
    TaintError::Forbidden {
        verb: "patch".into(),
        resource: "nodes".into(),
        message: "nodes \"node-2\" is forbidden".into(),
    }
}

#[test]
fn removes_every_entry_with_its_key_in_one_patch_highest_index_first_and_no_other() {
    let mut taints = MockNodeTaints::new();
    taints.expect_taints().times(1).returning(|| {
        Ok(vec![
            taint("node.kubernetes.io/not-ready", "NoSchedule"),
            taint(KEY, "NoSchedule"),
            taint(&format!("{KEY}-not"), "NoSchedule"),
            taint(KEY, "NoExecute"),
        ])
    });
    taints
        .expect_remove()
        .with(eq(vec![
            (3, taint(KEY, "NoExecute")),
            (1, taint(KEY, "NoSchedule")),
        ]))
        .times(1)
        .returning(|_| Ok(()));
    assert_eq!(block_on(startup(taints).attempt()), Ok(Removal::Removed(2)));
}

#[test]
fn a_node_without_the_taint_is_not_patched() {
    let mut taints = MockNodeTaints::new();
    taints
        .expect_taints()
        .returning(|| Ok(vec![taint("other", "NoSchedule")]));
    taints.expect_remove().never();
    assert_eq!(block_on(startup(taints).attempt()), Ok(Removal::Absent));
}

/// The daemon's task, driven until it has nothing left to do: it either finished or waits (for
/// a sync, or in its 20th sleep).
fn drive(taint: StartupTaint<MockNodeTaints>, verdicts: Vec<bool>) -> (bool, Vec<Duration>) {
    let clock = FakeClock {
        forever_after: Some(19),
        ..Default::default()
    };
    let verdicts = futures::stream::iter(verdicts).chain(futures::stream::pending());
    let finished = taint
        .remove_after(&clock, verdicts)
        .now_or_never()
        .is_some();
    let sleeps = clock.sleeps.lock().unwrap().clone();
    (finished, sleeps)
}

#[rstest]
#[case::no_sync_yet(vec![])]
#[case::failed_syncs(vec![false, false])]
#[case::in_place_then_broken(vec![true, false])]
fn never_before_the_latest_sync_left_everything_in_place(#[case] verdicts: Vec<bool>) {
    let mut taints = MockNodeTaints::new();
    taints.expect_taints().never();
    taints.expect_remove().never();
    assert_eq!(drive(startup(taints), verdicts), (false, vec![]));
}

#[rstest]
#[case::first_sync(vec![true])]
#[case::after_failed_syncs(vec![false, false, true])]
#[case::after_a_repair(vec![true, false, true])]
fn removed_once_after_a_sync_that_left_everything_in_place(#[case] verdicts: Vec<bool>) {
    // `times(1)` on both: more syncs that followed do not make it read or patch the Node again.
    let (finished, sleeps) = drive(startup(tainted_node()), verdicts);
    assert!(finished);
    assert_eq!(sleeps, vec![]);
}

#[test]
fn once_removed_the_node_is_never_read_again_however_many_syncs_follow() {
    let (sender, verdicts) = mpsc::unbounded();
    sender.unbounded_send(true).unwrap();
    let mut taints = MockNodeTaints::new();
    taints
        .expect_taints()
        .times(1)
        .returning(|| Ok(vec![taint(KEY, "NoSchedule")]));
    // Ten syncs finish while the removal is on its way, and all of them leave everything in
    // place: `times(1)` fails if any of them makes the task read or patch the Node again.
    taints.expect_remove().times(1).returning(move |_| {
        for _ in 0..10 {
            sender.unbounded_send(true).unwrap();
        }
        Ok(())
    });
    let clock = FakeClock::default();
    let task = startup(taints).remove_after(&clock, verdicts);
    assert!(task.now_or_never().is_some(), "done after the removal");
}

#[rstest]
#[case::unreachable(unreachable())]
#[case::forbidden(forbidden())]
#[case::changed(TaintError::Changed)]
#[case::node_not_found(TaintError::NodeNotFound { node: "node-2".into() })]
fn a_failure_is_retried_with_doubling_backoff_up_to_30_seconds(#[case] error: TaintError) {
    let mut taints = MockNodeTaints::new();
    let mut failures = 7;
    taints.expect_taints().times(8).returning(move || {
        if failures == 0 {
            return Ok(vec![taint(KEY, "NoSchedule")]);
        }
        failures -= 1;
        Err(error.clone())
    });
    taints.expect_remove().times(1).returning(|_| Ok(()));
    let (finished, sleeps) = drive(startup(taints), vec![true]);
    assert!(finished);
    let seconds: Vec<u64> = sleeps.iter().map(Duration::as_secs).collect();
    assert_eq!(seconds, vec![1, 2, 4, 8, 16, 30, 30]);
}

#[test]
fn a_refused_patch_is_retried_too() {
    let mut taints = MockNodeTaints::new();
    taints
        .expect_taints()
        .times(2)
        .returning(|| Ok(vec![taint(KEY, "NoSchedule")]));
    let mut refused = true;
    taints.expect_remove().times(2).returning(move |_| {
        if std::mem::take(&mut refused) {
            Err(TaintError::Changed)
        } else {
            Ok(())
        }
    });
    let (finished, sleeps) = drive(startup(taints), vec![true]);
    assert!(finished);
    assert_eq!(sleeps, vec![Duration::from_secs(1)]);
}

#[test]
fn a_retry_waits_again_when_a_sync_broke_the_address_meanwhile() {
    let (sender, verdicts) = mpsc::unbounded();
    sender.unbounded_send(true).unwrap();
    let mut clock = MockClock::new();
    // During the backoff, a sync finds the address gone.
    clock.expect_sleep().times(1).returning(move |_| {
        sender.unbounded_send(false).unwrap();
    });
    let mut taints = MockNodeTaints::new();
    taints
        .expect_taints()
        .times(1)
        .returning(|| Err(unreachable()));
    taints.expect_remove().never();
    let task = startup(taints).remove_after(&clock, verdicts);
    assert!(task.now_or_never().is_none(), "waits for a sync in place");
}

/// Collects what the task logs, one string per line.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(run: impl FnOnce()) -> Vec<String> {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .without_time()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, run);
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    text.lines().map(str::to_owned).collect()
}

#[test]
fn the_log_says_when_failing_starts_when_the_failure_changes_and_when_it_recovers() {
    let mut taints = MockNodeTaints::new();
    let mut answers = vec![
        Err(unreachable()),
        Err(unreachable()),
        Err(unreachable()),
        Err(forbidden()),
        Err(forbidden()),
        Ok(vec![taint(KEY, "NoSchedule")]),
    ]
    .into_iter();
    taints
        .expect_taints()
        .returning(move || answers.next().unwrap());
    taints.expect_remove().returning(|_| Ok(()));
    let lines = logged(|| assert!(drive(startup(taints), vec![true]).0));
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[0].contains("WARN") && lines[0].contains("cannot reach the API server"));
    assert!(lines[0].contains(&format!(
        "cannot remove the startup taint {KEY} from node node-2"
    )));
    assert!(lines[1].contains("still cannot remove"));
    assert!(lines[1].contains("forbidden: cannot patch resource \"nodes\""));
    assert!(
        lines[2].contains("INFO") && lines[2].contains("answers again after 5 failed attempts")
    );
    assert!(lines[3].contains(&format!("removed the startup taint {KEY} from node node-2")));
}

/// The one-shot's attempt, and what it logged.
fn one_shot(taint: StartupTaint<MockNodeTaints>, in_place: bool) -> (OneShot, Vec<String>) {
    let mut result = None;
    let lines = logged(|| result = Some(block_on(taint.remove_once(in_place))));
    (result.expect("the attempt ran"), lines)
}

#[rstest]
#[case::in_place(true, 1, "a one-shot does not retry")]
#[case::not_in_place(false, 0, "the address is not in place")]
fn the_one_shot_tries_once_and_only_when_in_place(
    #[case] in_place: bool,
    #[case] tries: usize,
    #[case] expected: &str,
) {
    let mut taints = MockNodeTaints::new();
    taints
        .expect_taints()
        .times(tries)
        .returning(|| Err(unreachable()));
    let (result, lines) = one_shot(startup(taints), in_place);
    assert_eq!(result, OneShot::Done);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains(expected), "{lines:#?}");
    assert!(!lines[0].contains("the daemon retries"), "{lines:#?}");
}

#[test]
fn a_one_shot_without_credentials_fails_and_says_it_does_not_retry() {
    let mut taints = MockNodeTaints::new();
    taints.expect_taints().times(1).returning(|| {
        Err(TaintError::Config {
            reason: "--kubeconfig=/nowhere: No such file or directory".into(),
        })
    });
    let (result, lines) = one_shot(startup(taints), true);
    assert_eq!(result, OneShot::Failed);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("ERROR"), "{lines:#?}");
    assert!(lines[0].contains("no credentials for the API server"));
    assert!(lines[0].contains("a one-shot does not retry"));
}

#[rstest]
#[case::no_sync_in_place_yet(vec![false], 0)]
#[case::refused_for_ever(vec![true], 1000)]
fn never_before_the_proxy_answers(#[case] verdicts: Vec<bool>, #[case] refusals: usize) {
    let mut taints = MockNodeTaints::new();
    taints.expect_taints().never();
    taints.expect_remove().never();
    let taint = startup(taints).waiting_for(proxy("10.96.0.2", refused(refusals)));
    let (finished, sleeps) = drive(taint, verdicts);
    assert!(!finished);
    if refusals > 0 {
        // Paced, never a busy loop, never only at the sync interval.
        let millis: Vec<u128> = sleeps.iter().take(6).map(Duration::as_millis).collect();
        assert_eq!(millis, vec![250, 500, 1000, 2000, 2000, 2000]);
    }
}

#[rstest]
#[case::answers_at_once("10.96.0.2", 0, vec![])]
#[case::answers_after_three_refusals("10.96.0.2", 3, vec![250, 500, 1000])]
// Each round probes both families: the first round's IPv6 probe is refused too.
#[case::dual_stack_waits_for_both("10.96.0.2,fd00::2", 3, vec![250, 500])]
fn removed_once_the_proxy_answers(
    #[case] addresses: &str,
    #[case] refusals: usize,
    #[case] waits: Vec<u128>,
) {
    let taint = startup(tainted_node()).waiting_for(proxy(addresses, refused(refusals)));
    let (finished, sleeps) = drive(taint, vec![true]);
    assert!(finished);
    let millis: Vec<u128> = sleeps.iter().map(Duration::as_millis).collect();
    assert_eq!(millis, waits);
}

#[test]
fn the_log_says_once_that_it_waits_for_the_proxy_and_once_that_it_answers() {
    let taint = startup(tainted_node()).waiting_for(proxy("10.96.0.2", refused(5)));
    let lines = logged(|| assert!(drive(taint, vec![true]).0));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].contains(
        "the proxy does not answer on 10.96.0.2:443: connection refused: nothing listens there: the startup taint"
    ));
    assert!(lines[0].contains("stays on node node-2 until it does"));
    assert!(lines[1].contains("the proxy answers on 10.96.0.2:443"));
    assert!(lines[2].contains("removed the startup taint"));
}

/// "It answers" follows only a "does not answer": a proxy that answers at once is not news.
#[test]
fn a_proxy_that_answers_at_once_is_not_announced() {
    let taint = startup(tainted_node()).waiting_for(proxy("10.96.0.2", refused(0)));
    let lines = logged(|| assert!(drive(taint, vec![true]).0));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("removed the startup taint"), "{lines:#?}");
}

#[rstest]
#[case::refused(1, 0, "a one-shot never waits for the proxy")]
#[case::answers(0, 1, "removed the startup taint")]
fn the_one_shot_probes_the_proxy_once_and_never_waits(
    #[case] refusals: usize,
    #[case] tries: usize,
    #[case] expected: &str,
) {
    let mut taints = MockNodeTaints::new();
    taints
        .expect_taints()
        .times(tries)
        .returning(|| Ok(vec![taint(KEY, "NoSchedule")]));
    taints.expect_remove().times(tries).returning(|_| Ok(()));
    let taint = startup(taints).waiting_for(proxy("10.96.0.2", refused(refusals)));
    let (result, lines) = one_shot(taint, true);
    assert_eq!(result, OneShot::Done);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains(expected), "{lines:#?}");
}

#[rstest]
#[case::succeeded_with_every_address_on(true, &[true, true], true)]
#[case::succeeded_with_an_address_missing(true, &[true, false], false)]
#[case::failed_with_every_address_on(false, &[true, true], false)]
#[case::failed_with_the_address_missing(false, &[false], false)]
fn in_place_needs_a_sync_that_succeeded_and_every_address_on(
    #[case] succeeded: bool,
    #[case] present: &[bool],
    #[case] expected: bool,
) {
    let outcome = SyncOutcome {
        errors: match succeeded {
            true => vec![],
            false => vec![SyncError::Rules(RuleSyncError {
                step: "list",
                cause: RuleCommandError::BinaryMissing {
                    binary: "iptables-save".into(),
                },
            })],
        },
        ..Default::default()
    };
    let addresses: Vec<_> = ["10.96.0.2", "fd00::2"]
        .iter()
        .zip(present)
        .map(|(address, present)| (address.parse().unwrap(), *present))
        .collect();
    let report = SyncReport {
        trigger: Trigger::Interval,
        outcome: &outcome,
        duration: Duration::ZERO,
        addresses: &addresses,
    };
    assert_eq!(in_place(&report), expected);
}
