//! Whether the webhook is ready, as its readiness probe reports it: while the served certificate
//! is valid, and until its shutdown begins. An expired certificate fails every API server call,
//! and an unready Pod shows that in `kubectl get pods` before anyone reads a metric. A shutting
//! down webhook still answers during its shutdown delay, but a load balancer that follows the
//! probe should send new calls elsewhere. Liveness asks nothing more than an answer:
//! nothing the webhook meets (a bad certificate file, bad requests) is cured by a restart.
//!
//! The time is the caller's, as in the sidecar's `health`, so the rule is tested without
//! waiting. It is wall-clock time, not the `Clock` port's monotonic time: a certificate's
//! NotAfter is a date.

use std::sync::{Mutex, MutexGuard};

use crate::webhook::shutdown::SharedPhase;

/// The NotAfter of the served certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAfter {
    /// Seconds since the Unix epoch.
    pub unix: i64,
    /// As the probe's answer shows it (RFC 3339).
    pub shown: String,
}

/// Why the readiness probe fails; its body says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unready {
    #[error("no serving certificate loaded yet")]
    NoCertificate,
    #[error("the serving certificate expired at {0}: rotate the files in --cert-dir")]
    Expired(String),
    #[error("shutting down: the endpoint is leaving, the API server calls the others")]
    ShuttingDown,
}

/// What readiness is decided from: the served certificate's NotAfter and the shutdown phase.
/// Shared by what changes them (the certificate loads, the shutdown sequence) and what reads them
/// (the probes, each answer, the metrics), each behind its own small lock or atomic rather than
/// the metrics'.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Written at start and at each reload, read by the probes.
    served: Mutex<Option<NotAfter>>,
    phase: SharedPhase,
}

impl Readiness {
    /// A certificate is served from now on: at start-up, or after a reload.
    pub fn served(&self, not_after: NotAfter) {
        *self.certificate() = Some(not_after);
    }

    /// The shutdown phase, which [`crate::webhook::shutdown::Shutdown`] moves.
    pub fn phase(&self) -> &SharedPhase {
        &self.phase
    }

    /// `now_unix` is the wall-clock time in seconds since the Unix epoch.
    pub fn ready(&self, now_unix: i64) -> Result<(), Unready> {
        if self.phase.get().is_leaving() {
            return Err(Unready::ShuttingDown);
        }
        match &*self.certificate() {
            None => Err(Unready::NoCertificate),
            Some(not_after) if now_unix < not_after.unix => Ok(()),
            Some(not_after) => Err(Unready::Expired(not_after.shown.clone())),
        }
    }

    fn certificate(&self) -> MutexGuard<'_, Option<NotAfter>> {
        // A panic elsewhere while holding the lock leaves a value that is still whole.
        self.served
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::shutdown::Phase;
    use rstest::rstest;

    /// 2001-01-01T00:00:00Z.
    const NOT_AFTER: i64 = 978_307_200;

    fn served() -> Readiness {
        let readiness = Readiness::default();
        readiness.served(NotAfter {
            unix: NOT_AFTER,
            shown: "2001-01-01T00:00:00Z".to_owned(),
        });
        readiness
    }

    #[test]
    fn not_ready_before_a_certificate_is_served() {
        assert_eq!(
            Readiness::default().ready(NOT_AFTER - 1),
            Err(Unready::NoCertificate)
        );
    }

    #[rstest]
    #[case::long_before(NOT_AFTER - 86_400, true)]
    #[case::the_last_second(NOT_AFTER - 1, true)]
    #[case::at_not_after(NOT_AFTER, false)]
    #[case::after(NOT_AFTER + 1, false)]
    fn ready_while_the_certificate_is_valid(#[case] now: i64, #[case] ready: bool) {
        assert_eq!(served().ready(now).is_ok(), ready);
    }

    #[test]
    fn an_expired_certificate_says_when_and_what_to_do() {
        assert_eq!(
            served().ready(NOT_AFTER).map_err(|e| e.to_string()),
            Err(
                "the serving certificate expired at 2001-01-01T00:00:00Z: rotate the files in \
                 --cert-dir"
                    .to_owned()
            )
        );
    }

    #[rstest]
    #[case::draining(Phase::Draining)]
    #[case::closing(Phase::Closing)]
    #[case::stopped(Phase::Stopped)]
    fn not_ready_once_leaving_whatever_the_certificate(#[case] phase: Phase) {
        let readiness = served();
        readiness.phase().enter(phase);
        assert_eq!(
            readiness.ready(NOT_AFTER - 1).map_err(|e| e.to_string()),
            Err(
                "shutting down: the endpoint is leaving, the API server calls the others"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_reload_replaces_the_certificate() {
        let readiness = served();
        readiness.served(NotAfter {
            unix: NOT_AFTER + 100,
            shown: "later".to_owned(),
        });
        assert_eq!(readiness.ready(NOT_AFTER + 50), Ok(()));
    }
}
