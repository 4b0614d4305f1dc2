//! The sidecar's metrics and health, fed by every sync report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::ports::SyncObserver;
use domain::sidecar::reconciler::SyncError;
use domain::sidecar::repair::RepairKind;
use domain::sidecar::run::{SyncReport, Trigger};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use super::Exposition;

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
    /// Liveness: the loop must report within this long.
    stale_after: Duration,
    last_report: Mutex<Instant>,
    last_succeeded: AtomicBool,
}

impl SidecarMetrics {
    /// `interval` is `--sync-interval`: liveness fails when no sync ran for twice that long.
    pub fn new(interval: Duration) -> Self {
        let mut registry = Registry::with_prefix("apiserver_proxy_sidecar");
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
            stale_after: interval.saturating_mul(2),
            last_report: Mutex::new(Instant::now()),
            last_succeeded: AtomicBool::new(false),
        }
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
        self.last_succeeded
            .store(succeeded && report.address_present, Ordering::Relaxed);
        *self
            .last_report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }
}

impl Exposition for SidecarMetrics {
    fn metrics(&self) -> String {
        super::encode(&self.registry)
    }

    fn healthy(&self) -> Result<(), String> {
        let since = self
            .last_report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .elapsed();
        if since <= self.stale_after {
            Ok(())
        } else {
            Err(format!(
                "no sync for {since:?}, more than twice --sync-interval"
            ))
        }
    }

    fn ready(&self) -> Result<(), String> {
        if self.last_succeeded.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err("the last sync failed or the address is not on its interface".into())
        }
    }
}

#[cfg(test)]
mod tests;
