//! The webhook's metrics: requests by outcome and review version, their latency, the requests in
//! flight, certificate reloads and the served certificate's expiry; and the probes, as the
//! domain's `readiness` decides them.

use std::sync::Arc;
use std::time::Duration;

use domain::webhook::outcome::ReviewVersion;
use domain::webhook::outcome::{OutcomeKind, ReviewReport};
use domain::webhook::readiness::{NotAfter, Readiness};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use super::Exposition;
use crate::rfc3339::rfc3339;

/// 25 µs to 10 s: a review takes tens of microseconds, a slow client's body up to the 10 s read
/// timeout. Round steps (1, 2.5, 5) so that `le` labels read well on a dashboard.
const LATENCY_BUCKETS: [f64; 18] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

const OUTCOMES: usize = OutcomeKind::ALL.len();
const VERSIONS: usize = ReviewVersion::ALL.len();

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    outcome: &'static str,
    version: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Metrics of the admission route and the serving certificate. Always collected (a few atomic
/// adds per request); exposed only with `--metrics-bind-address`.
#[derive(Debug)]
pub struct WebhookMetrics {
    registry: Registry,
    /// Every (outcome, version) counter, indexed by their discriminants: counting a request is
    /// one atomic add, with no label hashing and no lock.
    requests: [[Counter; VERSIONS]; OUTCOMES],
    duration: Histogram,
    in_flight: Gauge,
    reloads_ok: Counter,
    reloads_failed: Counter,
    /// Unix seconds; 0 until the first certificate is loaded.
    expiration: Gauge,
    /// Fed the certificate here; read by the probes when asked, and by the server.
    readiness: Arc<Readiness>,
}

impl WebhookMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("apiserver_proxy_webhook");
        super::build_info::register(&mut registry);
        let requests = Family::<RequestLabels, Counter>::default();
        let reloads = Family::<ResultLabels, Counter>::default();
        let duration = Histogram::new(LATENCY_BUCKETS);
        let in_flight = Gauge::default();
        let expiration = Gauge::default();
        registry.register(
            "requests",
            "Requests on the TLS port except probes, by outcome (patched, unchanged, opted_out, \
             not_a_pod_create, pod_unreadable, bad_request, mirror_pod, too_large) and \
             AdmissionReview version (v1, v1beta1, unknown)",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's head to its answer",
            duration.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being read or answered now",
            in_flight.clone(),
        );
        registry.register(
            "certificate_reloads",
            "Changes of the serving certificate files, by result: ok (served from then on) or \
             failed (refused, the last good pair still served)",
            reloads.clone(),
        );
        registry.register(
            "certificate_expiration_timestamp_seconds",
            "NotAfter of the serving certificate, as a Unix time",
            expiration.clone(),
        );
        // Every series exists from the start, at 0, so that rate() and alerts work before the
        // first request of a kind.
        let requests = std::array::from_fn(|outcome| {
            std::array::from_fn(|version| {
                let labels = RequestLabels {
                    outcome: OutcomeKind::ALL[outcome].as_str(),
                    version: ReviewVersion::ALL[version].as_str(),
                };
                requests.get_or_create(&labels).clone()
            })
        });
        let reloads_ok = reloads
            .get_or_create(&ResultLabels { result: "ok" })
            .clone();
        let reloads_failed = reloads
            .get_or_create(&ResultLabels { result: "failed" })
            .clone();
        Self {
            registry,
            requests,
            duration,
            in_flight,
            reloads_ok,
            reloads_failed,
            expiration,
            readiness: Arc::default(),
        }
    }

    /// Counts one answered request, and how long it took.
    pub fn request_answered(&self, report: ReviewReport, took: Duration) {
        self.requests[report.outcome as usize][report.version as usize].inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Counts a request as in flight until the guard is dropped: answered, or abandoned by a
    /// client that went away (hyper then drops the handler).
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// The certificate served from start-up.
    pub fn certificate_loaded(&self, not_after: OffsetDateTime) {
        self.expiration.set(not_after.unix_timestamp());
        self.readiness.served(NotAfter {
            unix: not_after.unix_timestamp(),
            shown: rfc3339(not_after),
        });
    }

    /// A changed certificate is served from now on.
    pub fn certificate_reloaded(&self, not_after: OffsetDateTime) {
        self.reloads_ok.inc();
        self.certificate_loaded(not_after);
    }

    /// A changed certificate was refused; the last good one is still served.
    pub fn certificate_refused(&self) {
        self.reloads_failed.inc();
    }

    /// What the probes answer from: the certificate fed here, and the shutdown phase, which
    /// the server's shutdown moves and its answers read.
    pub fn readiness(&self) -> &Arc<Readiness> {
        &self.readiness
    }
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A request in flight; see [`WebhookMetrics::in_flight`].
#[derive(Debug)]
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Exposition for WebhookMetrics {
    fn metrics(&self) -> String {
        super::encode(&self.registry)
    }

    /// See [`domain::webhook::readiness`].
    fn healthy(&self) -> Result<(), String> {
        Ok(())
    }

    /// See [`domain::webhook::readiness`].
    fn ready(&self) -> Result<(), String> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.readiness.ready(now).map_err(|why| why.to_string())
    }
}

#[cfg(test)]
mod tests;
