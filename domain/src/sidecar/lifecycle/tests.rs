use super::*;
use crate::ports::{Addresses, MockNodeTaints};
use crate::sidecar::address::AddressReconciler;
use crate::sidecar::desired::{DesiredAddress, ProxyAddress};
use crate::sidecar::model::{Adoption, Holder, MarkedAddress, NetError};
use crate::sidecar::reconciler::NoRules;
use crate::sidecar::taint::{Taint, TaintError};
use crate::sidecar::testing::{FakeClock, FakeNet, Recorder, Split};
use async_trait::async_trait;
use futures::executor::block_on;
use rstest::rstest;
use std::time::Duration;

fn reconciler<A: Network>(net: A) -> NodeReconciler<A, NoRules> {
    let desired = DesiredAddress {
        addresses: "10.96.0.2".parse().unwrap(),
        interface: "lo".parse().unwrap(),
    };
    NodeReconciler::new(AddressReconciler::new(net, desired), None)
}

/// A clock whose sleeps never end: the daemon's loop waits for a signal or an event.
fn still_clock() -> FakeClock {
    FakeClock {
        sleep_forever: true,
        ..Default::default()
    }
}

fn live_with<A: Network>(net: A, mode: Mode, signals: usize) -> (Exit, Vec<Trigger>) {
    let recorder = Recorder::default();
    let exit = block_on(
        Sidecar {
            reconciler: &mut reconciler(net),
            clock: &still_clock(),
            observer: &recorder,
            schedule: Schedule::new(Duration::from_secs(60)),
        }
        .live(
            mode,
            NO_TAINT,
            futures::stream::pending(),
            futures::stream::iter(vec![(); signals]),
        ),
    );
    (exit, recorder.triggers())
}

fn broken() -> FakeNet {
    let net = FakeNet::with_lo();
    net.0.lock().unwrap().broken = Some(NetError::PermissionDenied {
        operation: "list links".into(),
    });
    net
}

/// `--startup-taint` unset.
const NO_TAINT: Option<StartupTaint<MockNodeTaints>> = None;

const ONE_SHOT: Mode = Mode {
    daemon: false,
    cleanup: false,
};
const ONE_SHOT_CLEANUP: Mode = Mode {
    daemon: false,
    cleanup: true,
};
const DAEMON: Mode = Mode {
    daemon: true,
    cleanup: false,
};
const DAEMON_CLEANUP: Mode = Mode {
    daemon: true,
    cleanup: true,
};

#[rstest]
#[case::one_shot(ONE_SHOT, true, Exit::Success, true)]
#[case::one_shot_with_cleanup(ONE_SHOT_CLEANUP, true, Exit::Success, false)]
#[case::one_shot_failing(ONE_SHOT, false, Exit::Failure, false)]
#[case::one_shot_failing_with_cleanup(ONE_SHOT_CLEANUP, false, Exit::Failure, false)]
#[case::daemon_stopped(DAEMON, true, Exit::Success, true)]
#[case::daemon_stopped_with_cleanup(DAEMON_CLEANUP, true, Exit::Success, false)]
fn the_mode_decides_the_exit_and_what_stays(
    #[case] mode: Mode,
    #[case] working: bool,
    #[case] exit: Exit,
    #[case] address_stays: bool,
) {
    let net = if working {
        FakeNet::with_lo()
    } else {
        broken()
    };
    let (exited, triggers) = live_with(net.clone(), mode, 1);
    assert_eq!(exited, exit);
    assert_eq!(triggers, vec![Trigger::Start]);
    net.0.lock().unwrap().broken = None;
    assert_eq!(net.addresses_of("lo").len(), usize::from(address_stays));
}

#[test]
fn a_daemon_whose_cleanup_fails_exits_with_failure() {
    // The loop retries with a failing network until the signal; then cleanup fails too.
    assert_eq!(live_with(broken(), DAEMON_CLEANUP, 1).0, Exit::Failure);
}

#[test]
fn a_one_shot_ignores_signals_it_never_waits_for() {
    assert_eq!(live_with(FakeNet::with_lo(), ONE_SHOT, 0).0, Exit::Success);
}

/// The fake network's addresses, except that removing one never completes: a cleanup in progress.
#[derive(Debug, Clone)]
struct StuckRemoval(FakeNet);

#[async_trait]
impl Addresses for StuckRemoval {
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<Holder>, NetError> {
        self.0.links_holding(address).await
    }
    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        self.0.add_address(index, address).await
    }
    async fn adopt_address(
        &self,
        index: u32,
        address: &ProxyAddress,
    ) -> Result<Adoption, NetError> {
        self.0.adopt_address(index, address).await
    }
    async fn marked_addresses(&self) -> Result<Vec<MarkedAddress>, NetError> {
        self.0.marked_addresses().await
    }
    async fn delete_bridge(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError> {
        self.0.delete_bridge(index, address).await
    }
    async fn delete_address(&self, _: u32, _: &ProxyAddress) -> Result<(), NetError> {
        futures::future::pending().await
    }
}

/// The fake network, except that removing an address never completes.
fn stuck_cleanup(net: &FakeNet) -> Split<StuckRemoval, FakeNet> {
    Split {
        addresses: StuckRemoval(net.clone()),
        links: net.clone(),
    }
}

#[test]
fn a_second_signal_cuts_the_cleanup_short() {
    let net = FakeNet::with_lo();
    let (exit, _) = live_with(stuck_cleanup(&net), DAEMON_CLEANUP, 2);
    assert_eq!(exit, Exit::Interrupted);
    assert_eq!(net.addresses_of("lo").len(), 1);
}

#[test]
fn an_uninstall_job_removes_the_dummy_an_earlier_process_created() {
    let net = FakeNet::with_lo();
    let index = net.add_marked_link("apiserver-proxy");
    net.put_marked_address(index, "10.96.0.2".parse().unwrap());
    let desired = DesiredAddress {
        addresses: "10.96.0.2".parse().unwrap(),
        interface: "apiserver-proxy".parse().unwrap(),
    };
    let mut reconciler: NodeReconciler<_, NoRules> =
        NodeReconciler::new(AddressReconciler::new(net.clone(), desired), None);
    let exit = block_on(
        Sidecar {
            reconciler: &mut reconciler,
            clock: &still_clock(),
            observer: &(),
            schedule: Schedule::new(Duration::from_secs(60)),
        }
        .live(
            ONE_SHOT_CLEANUP,
            NO_TAINT,
            futures::stream::pending(),
            futures::stream::pending(),
        ),
    );
    assert_eq!(exit, Exit::Success);
    assert_eq!(net.link("apiserver-proxy"), None);
}

const KEY: &str = "apiserver-proxy.networking.gardener.cloud/not-ready";

fn ours() -> Taint {
    Taint {
        key: KEY.to_owned(),
        value: None,
        effect: "NoSchedule".to_owned(),
        time_added: None,
    }
}

fn startup(taints: MockNodeTaints) -> Option<StartupTaint<MockNodeTaints>> {
    Some(StartupTaint::new(
        taints,
        KEY.parse().unwrap(),
        "node-2".parse().unwrap(),
    ))
}

/// One stop, after everything else had its turn: the daemon's loop and the taint's task have
/// both run as far as they can before it.
fn a_later_stop() -> impl futures::Stream<Item = ()> {
    let mut polled = false;
    futures::stream::once(std::future::poll_fn(move |context| {
        if std::mem::replace(&mut polled, true) {
            std::task::Poll::Ready(())
        } else {
            context.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }))
}

fn live_tainted<A: Network>(net: A, mode: Mode, taints: MockNodeTaints) -> Exit {
    block_on(
        Sidecar {
            reconciler: &mut reconciler(net),
            clock: &still_clock(),
            observer: &(),
            schedule: Schedule::new(Duration::from_secs(60)),
        }
        .live(
            mode,
            startup(taints),
            futures::stream::pending(),
            a_later_stop(),
        ),
    )
}

#[rstest]
#[case::one_shot(ONE_SHOT)]
#[case::daemon(DAEMON)]
fn the_taint_is_removed_after_a_sync_that_put_the_address_in_place(#[case] mode: Mode) {
    let net = FakeNet::with_lo();
    let mut taints = MockNodeTaints::new();
    let seen = net.clone();
    taints.expect_taints().times(1).returning(move || {
        assert_eq!(seen.addresses_of("lo").len(), 1, "the address comes first");
        Ok(vec![ours()])
    });
    taints
        .expect_remove()
        .withf(|entries| entries == [(0, ours())])
        .times(1)
        .returning(|_| Ok(()));
    assert_eq!(live_tainted(net, mode, taints), Exit::Success);
}

#[rstest]
#[case::one_shot(ONE_SHOT, Exit::Failure)]
#[case::daemon(DAEMON, Exit::Success)]
fn the_taint_stays_while_the_sync_fails(#[case] mode: Mode, #[case] exit: Exit) {
    let mut taints = MockNodeTaints::new();
    taints.expect_taints().never();
    taints.expect_remove().never();
    assert_eq!(live_tainted(broken(), mode, taints), exit);
}

#[rstest]
#[case::unreachable(TaintError::Unreachable { reason: "connection refused".into() }, Exit::Success)]
#[case::forbidden(TaintError::Forbidden { verb: "get".into(), resource: "nodes".into(), message: "no".into() }, Exit::Success)]
#[case::no_credentials(TaintError::Config { reason: "--kubeconfig=/k: No such file or directory".into() }, Exit::Failure)]
fn a_one_shot_fails_on_a_taint_failure_only_when_its_credentials_cannot_be_loaded(
    #[case] error: TaintError,
    #[case] exit: Exit,
) {
    let mut taints = MockNodeTaints::new();
    taints
        .expect_taints()
        .times(1)
        .returning(move || Err(error.clone()));
    assert_eq!(live_tainted(FakeNet::with_lo(), ONE_SHOT, taints), exit);
}
