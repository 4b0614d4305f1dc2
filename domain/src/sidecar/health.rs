//! Whether the sidecar is live and ready, as its probes report it. Decided from the sync reports
//! on the `Clock`'s time, so the rules are tested without waiting.
//!
//! - Live: the loop reported a sync within twice `--sync-interval`. A refusal by the kernel never
//!   fails liveness: restarting would not change the kernel's mind, and the loop keeps retrying.
//! - Ready: the last sync succeeded and left every desired address on its interface.

use std::time::Duration;

use crate::duration::format_go_duration;
use crate::sidecar::report::SyncReport;

/// Why a probe fails; the probe's body says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    #[error(
        "no sync for {}, more than twice --sync-interval ({}): the sync loop is stuck",
        format_go_duration(*since),
        format_go_duration(*interval)
    )]
    Stale { since: Duration, interval: Duration },
    #[error("no sync has finished yet")]
    NotSyncedYet,
    #[error("the last sync failed: the log says why")]
    LastSyncFailed,
    #[error("address {address} is not on its interface after the last sync")]
    AddressMissing { address: String },
}

/// The probes' view of the sync loop.
#[derive(Debug, Clone)]
pub struct Health {
    interval: Duration,
    /// Clock time of the last report, or of the start until the first one.
    last_report_at: Duration,
    readiness: Result<(), Unhealthy>,
}

impl Health {
    /// `interval` is `--sync-interval`; `now` is the `Clock`'s time at start, from which the
    /// first sync gets the same grace as every later one.
    pub fn new(interval: Duration, now: Duration) -> Self {
        Self {
            interval,
            last_report_at: now,
            readiness: Err(Unhealthy::NotSyncedYet),
        }
    }

    pub fn record(&mut self, report: &SyncReport<'_>, now: Duration) {
        self.last_report_at = now;
        self.readiness = if !report.outcome.succeeded() {
            Err(Unhealthy::LastSyncFailed)
        } else if let Some((missing, _)) = report.addresses.iter().find(|(_, present)| !present) {
            Err(Unhealthy::AddressMissing {
                address: missing.to_string(),
            })
        } else {
            Ok(())
        };
    }

    pub fn live(&self, now: Duration) -> Result<(), Unhealthy> {
        let since = now.saturating_sub(self.last_report_at);
        if since <= self.interval.saturating_mul(2) {
            Ok(())
        } else {
            Err(Unhealthy::Stale {
                since,
                interval: self.interval,
            })
        }
    }

    pub fn ready(&self) -> Result<(), Unhealthy> {
        self.readiness.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar::model::RuleCommandError;
    use crate::sidecar::report::{RuleSyncError, SyncError, SyncOutcome, Trigger};
    use rstest::rstest;

    const MINUTE: Duration = Duration::from_secs(60);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn failed() -> SyncOutcome {
        SyncOutcome {
            repairs: vec![],
            errors: vec![SyncError::Rules(RuleSyncError {
                step: "list",
                cause: RuleCommandError::BinaryMissing {
                    binary: "iptables-save".into(),
                },
            })],
            ..Default::default()
        }
    }

    fn record(health: &mut Health, outcome: &SyncOutcome, address_present: bool, now: Duration) {
        let addresses = [("10.96.0.2".parse().unwrap(), address_present)];
        let report = SyncReport {
            trigger: Trigger::Interval,
            outcome,
            duration: Duration::from_micros(300),
            addresses: &addresses,
        };
        health.record(&report, now);
    }

    #[test]
    fn at_start_it_is_live_but_not_ready() {
        let health = Health::new(MINUTE, secs(5));
        assert_eq!(health.live(secs(5)), Ok(()));
        assert_eq!(health.ready(), Err(Unhealthy::NotSyncedYet));
    }

    #[rstest]
    #[case::succeeded(SyncOutcome::default(), true, Ok(()))]
    #[case::failed(failed(), true, Err(Unhealthy::LastSyncFailed))]
    #[case::failed_without_address(failed(), false, Err(Unhealthy::LastSyncFailed))]
    #[case::address_missing(SyncOutcome::default(), false, Err(Unhealthy::AddressMissing { address: "10.96.0.2/32".into() }))]
    fn readiness_follows_the_last_sync(
        #[case] outcome: SyncOutcome,
        #[case] address_present: bool,
        #[case] expected: Result<(), Unhealthy>,
    ) {
        let mut health = Health::new(MINUTE, secs(0));
        record(&mut health, &SyncOutcome::default(), true, secs(1));
        record(&mut health, &outcome, address_present, secs(2));
        assert_eq!(health.ready(), expected);
    }

    #[test]
    fn a_failed_sync_never_fails_liveness() {
        let mut health = Health::new(MINUTE, secs(0));
        record(&mut health, &failed(), false, secs(1));
        assert_eq!(health.live(secs(1)), Ok(()));
    }

    #[rstest]
    #[case::just_reported(0, Ok(()))]
    #[case::one_interval(60, Ok(()))]
    #[case::exactly_twice(120, Ok(()))]
    #[case::beyond_twice(121, Err(Unhealthy::Stale { since: secs(121), interval: MINUTE }))]
    fn liveness_allows_twice_the_interval_since_the_last_report(
        #[case] since: u64,
        #[case] expected: Result<(), Unhealthy>,
    ) {
        let mut health = Health::new(MINUTE, secs(0));
        record(&mut health, &SyncOutcome::default(), true, secs(1000));
        assert_eq!(health.live(secs(1000 + since)), expected);
    }

    #[test]
    fn a_loop_that_never_reports_goes_stale_from_the_start() {
        let health = Health::new(MINUTE, secs(10));
        assert_eq!(health.live(secs(130)), Ok(()));
        assert!(health.live(secs(131)).is_err());
    }

    #[test]
    fn the_stale_message_names_both_durations_as_go_does() {
        let stale = Unhealthy::Stale {
            since: secs(150),
            interval: MINUTE,
        };
        assert_eq!(
            stale.to_string(),
            "no sync for 2m30s, more than twice --sync-interval (1m0s): the sync loop is stuck"
        );
    }
}
