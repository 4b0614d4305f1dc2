//! Whether the proxy answers: one TCP connection from the node to each `--ip-address:--port`,
//! opened and closed at once. The sidecar keeps the address; the proxy (Envoy, in the same Pod)
//! listens on it. An address in place that nobody answers on is still a broken path to the API
//! server, so the startup taint waits for an answer ([`crate::sidecar::startup_taint`]) and the
//! metrics report it ([`watch`]).
//!
//! An answer says that something accepts connections there, not which process: during a surge
//! rollout the old proxy and the new one share the address (`SO_REUSEPORT`), and either may
//! answer. That is why readiness stays about the address (docs/architecture.md#the-proxy-probe).

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::ports::{Clock, ProxyProbe};
use crate::sidecar::desired::ProxyAddresses;
use crate::sidecar::run::Schedule;

// Its own file, as the port's answer: `ports` imports it, and this module imports `ports`.
pub mod error;
pub use error::ProbeError;

/// The pace of probes while the proxy does not answer: 250 ms, doubling up to 2 s. A proxy that
/// starts is seen within 2 s; a refused connection costs the node next to nothing.
pub const WAITING: Schedule = Schedule {
    interval: Duration::from_secs(2),
    first_retry: Duration::from_millis(250),
};

/// Told about every probe, for metrics. Implementations must be cheap.
pub trait ProbeObserver: Send + Sync {
    fn probed(&self, target: SocketAddr, result: &Result<(), ProbeError>);
}

/// Nobody is listening (metrics are off).
impl ProbeObserver for () {
    fn probed(&self, _: SocketAddr, _: &Result<(), ProbeError>) {}
}

/// Metrics that are on or off.
impl<T: ProbeObserver> ProbeObserver for Option<T> {
    fn probed(&self, target: SocketAddr, result: &Result<(), ProbeError>) {
        if let Some(observer) = self {
            observer.probed(target, result);
        }
    }
}

/// Shared with the metrics server.
impl<T: ProbeObserver + ?Sized> ProbeObserver for Arc<T> {
    fn probed(&self, target: SocketAddr, result: &Result<(), ProbeError>) {
        T::probed(self, target, result);
    }
}

/// The first target that did not answer, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the proxy does not answer on {target}: {cause}")]
pub struct Unanswered {
    pub target: SocketAddr,
    pub cause: ProbeError,
}

/// The proxy on every address: what is probed, through which port, told to whom.
#[derive(Clone)]
pub struct Proxy {
    probe: Arc<dyn ProxyProbe>,
    targets: Vec<SocketAddr>,
    observer: Arc<dyn ProbeObserver>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// The proxy on `port` of each address (one for each family when dual-stack).
    pub fn new(
        probe: Arc<dyn ProxyProbe>,
        addresses: &ProxyAddresses,
        port: u16,
        observer: Arc<dyn ProbeObserver>,
    ) -> Self {
        let targets = addresses
            .iter()
            .map(|address| SocketAddr::new(address.ip(), port))
            .collect();
        Self {
            probe,
            targets,
            observer,
        }
    }

    /// Probes every target, one after the other (each result goes to the observer), and says
    /// whether all answered; else the first that did not.
    pub async fn answers(&self) -> Result<(), Unanswered> {
        let mut first_failure = None;
        for &target in &self.targets {
            let result = self.probe.connect(target).await;
            self.observer.probed(target, &result);
            if let (Err(cause), None) = (result, &first_failure) {
                first_failure = Some(Unanswered { target, cause });
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// The targets, as a log line names them.
    pub fn targets(&self) -> String {
        let targets: Vec<String> = self.targets.iter().map(SocketAddr::to_string).collect();
        targets.join(", ")
    }
}

/// Keeps probing for the metrics, for ever: every `interval` while the proxy answers, at the
/// [`WAITING`] pace while it does not. Only the daemon runs this, and only with metrics on.
pub async fn watch<C: Clock>(proxy: &Proxy, clock: &C, interval: Duration) -> Infallible {
    let mut failures = 0;
    loop {
        failures = match proxy.answers().await {
            Ok(()) => 0,
            Err(_) => failures + 1,
        };
        let wait = match failures {
            0 => interval,
            _ => WAITING.wait_after(failures),
        };
        clock.sleep(wait).await;
    }
}

#[cfg(test)]
mod tests;
