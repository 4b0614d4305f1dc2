//! The sidecar's metrics and health, fed by every sync report.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::ports::{Clock as _, SyncObserver};
use domain::sidecar::health::Health;
use domain::sidecar::reconciler::SyncError;
use domain::sidecar::repair::RepairKind;
use domain::sidecar::run::{SyncReport, Trigger};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::Exposition;
use crate::clock::TokioClock;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncLabels {
    trigger: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Metrics and health of the sync loop.
#[derive(Debug)]
pub struct SidecarMetrics {
    registry: Registry,
    syncs: Family<SyncLabels, Counter>,
    repairs: Family<KindLabels, Counter>,
    errors: Family<KindLabels, Counter>,
    duration: Histogram,
    last_success: Gauge<f64, AtomicU64>,
    address_present: Gauge,
    clock: TokioClock,
    health: Mutex<Health>,
}

impl SidecarMetrics {
    /// `interval` is `--sync-interval`, which liveness allows twice over (see [`Health`]).
    pub fn new(interval: Duration) -> Self {
        let clock = TokioClock::default();
        let mut registry = Registry::with_prefix("apiserver_proxy_sidecar");
        super::build_info::register(&mut registry);
        let syncs = Family::<SyncLabels, Counter>::default();
        let repairs = Family::<KindLabels, Counter>::default();
        let errors = Family::<KindLabels, Counter>::default();
        // 50 µs to about 3 s: a sync is usually well under a millisecond, iptables can take seconds.
        let duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let last_success = Gauge::<f64, AtomicU64>::default();
        let address_present = Gauge::default();
        registry.register(
            "syncs",
            "Syncs by trigger (start, interval, event, retry) and result (success, failure)",
            syncs.clone(),
        );
        registry.register(
            "repairs",
            "Changes a sync made to restore the desired state, by what it touched",
            repairs.clone(),
        );
        registry.register("errors", "Failed parts of syncs, by part", errors.clone());
        registry.register(
            "sync_duration_seconds",
            "How long a sync took",
            duration.clone(),
        );
        registry.register(
            "last_successful_sync_timestamp_seconds",
            "Unix time of the last sync that succeeded",
            last_success.clone(),
        );
        registry.register(
            "address_present",
            "1 when the address was on its interface after the last sync",
            address_present.clone(),
        );
        // Pre-set to 0 so that rate() and alerts work before the first failure.
        for kind in RepairKind::ALL {
            drop(repairs.get_or_create(&KindLabels {
                kind: kind.as_str(),
            }));
        }
        for kind in SyncError::KINDS {
            drop(errors.get_or_create(&KindLabels { kind }));
        }
        for trigger in Trigger::ALL {
            for result in ["success", "failure"] {
                drop(syncs.get_or_create(&SyncLabels {
                    trigger: trigger.as_str(),
                    result,
                }));
            }
        }
        Self {
            registry,
            syncs,
            repairs,
            errors,
            duration,
            last_success,
            address_present,
            health: Mutex::new(Health::new(interval, clock.now())),
            clock,
        }
    }

    fn health(&self) -> MutexGuard<'_, Health> {
        // A panic elsewhere while holding the lock leaves a Health that is still consistent.
        self.health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SyncObserver for SidecarMetrics {
    fn sync_finished(&self, report: &SyncReport<'_>) {
        let succeeded = report.outcome.succeeded();
        let result = if succeeded { "success" } else { "failure" };
        self.syncs
            .get_or_create(&SyncLabels {
                trigger: report.trigger.as_str(),
                result,
            })
            .inc();
        for repair in &report.outcome.repairs {
            self.repairs
                .get_or_create(&KindLabels {
                    kind: repair.kind().as_str(),
                })
                .inc();
        }
        for error in &report.outcome.errors {
            self.errors
                .get_or_create(&KindLabels { kind: error.kind() })
                .inc();
        }
        self.duration.observe(report.duration.as_secs_f64());
        if succeeded {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
        self.address_present.set(i64::from(report.address_present));
        self.health().record(report, self.clock.now());
    }
}

impl Exposition for SidecarMetrics {
    fn metrics(&self) -> String {
        super::encode(&self.registry)
    }

    fn healthy(&self) -> Result<(), String> {
        self.health()
            .live(self.clock.now())
            .map_err(|why| why.to_string())
    }

    fn ready(&self) -> Result<(), String> {
        self.health().ready().map_err(|why| why.to_string())
    }
}

#[cfg(test)]
mod tests;
