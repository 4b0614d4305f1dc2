use super::*;
use blackbox_tests::metric;
use std::sync::LazyLock;

use domain::sidecar::desired::ProxyAddress;
use domain::sidecar::model::RuleCommandError;
use domain::sidecar::repair::Repair;
use domain::sidecar::report::{Owned, RuleSyncError, SyncOutcome};

/// The address, on its interface or not.
static ADDRESS: LazyLock<[[(ProxyAddress, bool); 1]; 2]> = LazyLock::new(|| {
    let address = "10.96.0.2".parse().expect("an address");
    [[(address, false)], [(address, true)]]
});

fn report<'a>(trigger: Trigger, outcome: &'a SyncOutcome, present: bool) -> SyncReport<'a> {
    SyncReport {
        trigger,
        outcome,
        duration: Duration::from_micros(300),
        addresses: &ADDRESS[usize::from(present)],
    }
}

#[test]
fn counters_start_at_zero_for_every_kind() {
    let text = SidecarMetrics::new(Duration::from_secs(60)).metrics();
    for kind in ["address", "link", "rule"] {
        assert_eq!(
            metric(
                &text,
                &format!("apiserver_proxy_sidecar_repairs_total{{kind=\"{kind}\"}}")
            ),
            Some(0.0),
            "{text}"
        );
    }
    for kind in ["address", "rules"] {
        assert_eq!(
            metric(
                &text,
                &format!("apiserver_proxy_sidecar_errors_total{{kind=\"{kind}\"}}")
            ),
            Some(0.0),
            "{text}"
        );
    }
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
}

#[test]
fn a_repairing_sync_moves_exactly_its_counters() {
    let metrics = SidecarMetrics::new(Duration::from_secs(60));
    let outcome = SyncOutcome {
        repairs: vec![
            Repair::AddressAdded {
                address: "10.96.0.2/32".into(),
                interface: "lo".into(),
            },
            Repair::RuleInserted {
                rule: "-t raw ...".into(),
            },
            Repair::RuleInserted {
                rule: "-t filter ...".into(),
            },
        ],
        errors: vec![],
        ..Default::default()
    };
    metrics.sync_finished(&report(Trigger::Event, &outcome, true));
    let text = metrics.metrics();
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_syncs_total{trigger=\"event\",result=\"success\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_repairs_total{kind=\"address\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_repairs_total{kind=\"rule\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_repairs_total{kind=\"link\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_address_present{address=\"10.96.0.2\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "apiserver_proxy_sidecar_sync_duration_seconds_count"),
        Some(1.0)
    );
    assert!(metric(
        &text,
        "apiserver_proxy_sidecar_last_successful_sync_timestamp_seconds"
    )
    .is_some_and(|t| t > 1.7e9));
    assert_eq!(metrics.ready(), Ok(()));
}

#[test]
fn a_failed_sync_counts_its_error_and_makes_the_sidecar_unready() {
    let metrics = SidecarMetrics::new(Duration::from_secs(60));
    let outcome = SyncOutcome {
        repairs: vec![],
        errors: vec![SyncError::Rules(RuleSyncError {
            step: "list",
            cause: RuleCommandError::BinaryMissing {
                binary: "iptables-save".into(),
            },
        })],
        ..Default::default()
    };
    metrics.sync_finished(&report(Trigger::Start, &outcome, true));
    let text = metrics.metrics();
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_errors_total{kind=\"rules\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_syncs_total{trigger=\"start\",result=\"failure\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_last_successful_sync_timestamp_seconds"
        ),
        Some(0.0)
    );
    assert!(metrics.ready().is_err());
    assert_eq!(
        metrics.healthy(),
        Ok(()),
        "a refusal by the kernel never fails liveness"
    );
}

#[test]
fn a_missing_address_makes_the_sidecar_unready() {
    let metrics = SidecarMetrics::new(Duration::from_secs(60));
    metrics.sync_finished(&report(Trigger::Interval, &SyncOutcome::default(), false));
    assert!(metrics.ready().is_err());
}

#[tokio::test(start_paused = true)]
async fn liveness_fails_when_no_sync_ran_for_twice_the_interval() {
    let metrics = SidecarMetrics::new(Duration::from_secs(60));
    metrics.sync_finished(&report(Trigger::Start, &SyncOutcome::default(), true));
    tokio::time::advance(Duration::from_secs(119)).await;
    assert_eq!(metrics.healthy(), Ok(()));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(metrics.healthy().is_err());
}

#[test]
fn reports_reach_metrics_shared_with_the_server() {
    let shared = std::sync::Arc::new(SidecarMetrics::new(Duration::from_secs(60)));
    let observer = Some(shared.clone());
    observer.sync_finished(&report(Trigger::Start, &SyncOutcome::default(), true));
    let text = shared.metrics();
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_sidecar_syncs_total{trigger=\"start\",result=\"success\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn stale_removals_and_yields_are_counted_by_kind() {
    let metrics = SidecarMetrics::new(Duration::from_secs(60));
    let outcome = SyncOutcome {
        stale_removed: vec![
            Owned::Address {
                address: "10.96.0.9/32".into(),
                interface: "lo".into(),
            },
            Owned::Link {
                interface: "apiserver-proxy".into(),
            },
        ],
        yields: vec![Owned::Rule {
            rule: "-t raw ...".into(),
        }],
        ..Default::default()
    };
    metrics.sync_finished(&report(Trigger::Interval, &outcome, true));
    let text = metrics.metrics();
    for (series, value) in [
        ("stale_removed_total{kind=\"address\"}", 1.0),
        ("stale_removed_total{kind=\"link\"}", 1.0),
        ("stale_removed_total{kind=\"rule\"}", 0.0),
        ("yields_total{kind=\"rule\"}", 1.0),
        ("yields_total{kind=\"address\"}", 0.0),
        ("repairs_total{kind=\"address\"}", 0.0),
    ] {
        let name = format!("apiserver_proxy_sidecar_{series}");
        assert_eq!(metric(&text, &name), Some(value), "{name} in {text}");
    }
}

#[test]
fn each_probe_sets_its_targets_reachability_and_counts_its_result() {
    let metrics = SidecarMetrics::new(Duration::from_secs(60));
    let v4: SocketAddr = "10.96.0.2:443".parse().expect("a target");
    let v6: SocketAddr = "[fd00::2]:443".parse().expect("a target");
    let text = metrics.metrics();
    for result in ["answered", "refused", "timeout", "error"] {
        let name = format!("apiserver_proxy_sidecar_proxy_probes_total{{result=\"{result}\"}}");
        assert_eq!(metric(&text, &name), Some(0.0), "{name} in {text}");
    }
    metrics.probed(v4, &Err(ProbeError::Refused));
    metrics.probed(v6, &Ok(()));
    metrics.probed(v4, &Err(ProbeError::Refused));
    let text = metrics.metrics();
    for (series, value) in [
        ("proxy_reachable{address=\"10.96.0.2\",port=\"443\"}", 0.0),
        ("proxy_reachable{address=\"fd00::2\",port=\"443\"}", 1.0),
        ("proxy_probes_total{result=\"refused\"}", 2.0),
        ("proxy_probes_total{result=\"answered\"}", 1.0),
        ("proxy_probes_total{result=\"timeout\"}", 0.0),
    ] {
        let name = format!("apiserver_proxy_sidecar_{series}");
        assert_eq!(metric(&text, &name), Some(value), "{name} in {text}");
    }
    metrics.probed(v4, &Ok(()));
    let name = "apiserver_proxy_sidecar_proxy_reachable{address=\"10.96.0.2\",port=\"443\"}";
    assert_eq!(metric(&metrics.metrics(), name), Some(1.0));
}
