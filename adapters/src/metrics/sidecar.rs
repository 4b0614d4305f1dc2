//! The sidecar's metrics and health, fed by every sync report and every probe of the proxy.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::ports::{Clock as _, SyncObserver};
use domain::sidecar::health::Health;
use domain::sidecar::proxy::{ProbeError, ProbeObserver};
use domain::sidecar::repair::RepairKind;
use domain::sidecar::report::{SyncError, SyncReport, Trigger};
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
struct AddressLabels {
    address: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    /// As in `address_present`, so that the two join on it.
    address: String,
    port: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
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
    address_present: Family<AddressLabels, Gauge>,
    stale_removed: Family<KindLabels, Counter>,
    yields: Family<KindLabels, Counter>,
    proxy_reachable: Family<TargetLabels, Gauge>,
    proxy_probes: Family<ResultLabels, Counter>,
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
        let address_present = Family::<AddressLabels, Gauge>::default();
        let stale_removed = Family::<KindLabels, Counter>::default();
        let yields = Family::<KindLabels, Counter>::default();
        let proxy_reachable = Family::<TargetLabels, Gauge>::default();
        let proxy_probes = Family::<ResultLabels, Counter>::default();
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
            "1 when the address was on its interface after the last sync, by address",
            address_present.clone(),
        );
        registry.register(
            "stale_removed",
            "Entries carrying our mark that this instance did not want, removed by stale collection, by kind",
            stale_removed.clone(),
        );
        registry.register(
            "yields",
            "Stale entries that came back after removal (another instance owns them) and were left alone, by kind",
            yields.clone(),
        );
        registry.register(
            "proxy_reachable",
            "1 when the last TCP connection from the node to the proxy on address:port succeeded, 0 when it did not",
            proxy_reachable.clone(),
        );
        registry.register(
            "proxy_probes",
            "TCP connections from the node to the proxy, by result (answered, refused, timeout, error)",
            proxy_probes.clone(),
        );
        // Pre-set to 0 so that rate() and alerts work before the first failure.
        for result in std::iter::once(ANSWERED).chain(ProbeError::KINDS) {
            drop(proxy_probes.get_or_create(&ResultLabels { result }));
        }
        for kind in RepairKind::ALL {
            let labels = KindLabels {
                kind: kind.as_str(),
            };
            for family in [&repairs, &stale_removed, &yields] {
                drop(family.get_or_create(&labels));
            }
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
            stale_removed,
            yields,
            proxy_reachable,
            proxy_probes,
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
        for owned in &report.outcome.stale_removed {
            self.stale_removed
                .get_or_create(&KindLabels {
                    kind: owned.kind().as_str(),
                })
                .inc();
        }
        for owned in &report.outcome.yields {
            self.yields
                .get_or_create(&KindLabels {
                    kind: owned.kind().as_str(),
                })
                .inc();
        }
        for (address, present) in report.addresses {
            self.address_present
                .get_or_create(&AddressLabels {
                    address: address.ip().to_string(),
                })
                .set(i64::from(*present));
        }
        self.health().record(report, self.clock.now());
    }
}

/// The `result` of a probe the proxy answered.
const ANSWERED: &str = "answered";

impl ProbeObserver for SidecarMetrics {
    fn probed(&self, target: SocketAddr, result: &Result<(), ProbeError>) {
        let (reachable, label) = match result {
            Ok(()) => (1, ANSWERED),
            Err(error) => (0, error.kind()),
        };
        self.proxy_probes
            .get_or_create(&ResultLabels { result: label })
            .inc();
        self.proxy_reachable
            .get_or_create(&TargetLabels {
                address: target.ip().to_string(),
                port: target.port(),
            })
            .set(reachable);
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
