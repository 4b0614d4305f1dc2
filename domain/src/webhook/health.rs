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

/// The probe's view of the served certificate.
#[derive(Debug, Clone, Default)]
pub struct CertificateHealth {
    served: Option<NotAfter>,
    shutting_down: bool,
}

impl CertificateHealth {
    /// A certificate is served from now on: at start-up, or after a reload.
    pub fn served(&mut self, not_after: NotAfter) {
        self.served = Some(not_after);
    }

    /// The shutdown began: not ready from now on.
    pub fn shutting_down(&mut self) {
        self.shutting_down = true;
    }

    /// `now_unix` is the wall-clock time in seconds since the Unix epoch.
    pub fn ready(&self, now_unix: i64) -> Result<(), Unready> {
        if self.shutting_down {
            return Err(Unready::ShuttingDown);
        }
        match &self.served {
            None => Err(Unready::NoCertificate),
            Some(not_after) if now_unix < not_after.unix => Ok(()),
            Some(not_after) => Err(Unready::Expired(not_after.shown.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// 2001-01-01T00:00:00Z.
    const NOT_AFTER: i64 = 978_307_200;

    fn served() -> CertificateHealth {
        let mut health = CertificateHealth::default();
        health.served(NotAfter {
            unix: NOT_AFTER,
            shown: "2001-01-01T00:00:00Z".to_owned(),
        });
        health
    }

    #[test]
    fn not_ready_before_a_certificate_is_served() {
        assert_eq!(
            CertificateHealth::default().ready(NOT_AFTER - 1),
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

    #[test]
    fn not_ready_once_shutting_down_whatever_the_certificate() {
        let mut health = served();
        health.shutting_down();
        assert_eq!(
            health.ready(NOT_AFTER - 1).map_err(|e| e.to_string()),
            Err(
                "shutting down: the endpoint is leaving, the API server calls the others"
                    .to_owned()
            )
        );
    }

    #[test]
    fn a_reload_replaces_the_certificate() {
        let mut health = served();
        health.served(NotAfter {
            unix: NOT_AFTER + 100,
            shown: "later".to_owned(),
        });
        assert_eq!(health.ready(NOT_AFTER + 50), Ok(()));
    }
}
