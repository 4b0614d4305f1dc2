//! Every port of the domain, side by side: what the domain needs from the outside world, and the
//! contract each implementation must keep.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::sidecar::desired::{InterfaceName, ProxyAddress};
use crate::sidecar::model::{
    Holder, IpFamily, Link, MarkedAddress, MarkedLink, NetError, Rule, RuleCommandError,
};
use crate::sidecar::proxy::error::ProbeError;
use crate::sidecar::report::SyncReport;
use crate::sidecar::taint::{Taint, TaintError};

/// The links of the host's network namespace: what the interface is, and which links are ours.
// The mocks exist in test builds only: production code cannot reach for one.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Links: Send + Sync {
    /// The link named `name`; `Ok(None)` when there is none.
    async fn link_by_name(&self, name: &InterfaceName) -> Result<Option<Link>, NetError>;

    /// Creates a dummy link named `name`, with the alias [`crate::sidecar::model::LINK_ALIAS`],
    /// and returns it. MUST return [`NetError::LinkTypeUnsupported`] when the kernel has no
    /// dummy link type.
    async fn create_dummy_link(&self, name: &InterfaceName) -> Result<Link, NetError>;

    /// Sets the link up. MUST succeed, changing nothing, if it is up already.
    async fn set_link_up(&self, index: u32) -> Result<(), NetError>;

    /// Every link whose alias is ours.
    async fn marked_links(&self) -> Result<Vec<MarkedLink>, NetError>;

    /// Deletes the link. MUST succeed, changing nothing, if it is gone already.
    async fn delete_link(&self, index: u32) -> Result<(), NetError>;
}

/// The host addresses (/32, /128) of the host's network namespace, on whichever link.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Addresses: Send + Sync {
    /// Every link that holds `address` with its prefix length, in any order, and whether each
    /// copy is as [`Self::add_address`] adds it (marked, global scope).
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<Holder>, NetError>;

    /// Adds `address` with global scope, marked with the address protocol
    /// [`crate::sidecar::model::ADDRESS_PROTOCOL`] (a kernel older than 5.18 drops the mark), and
    /// an IPv6 address without duplicate address detection, so it is usable at once. MUST
    /// succeed, changing nothing, if it is present already.
    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError>;

    /// Makes the copy of `address` that link `index` already holds as [`Self::add_address`]
    /// would have added it: our mark and global scope. MUST NOT leave the link without the
    /// address for any moment. Returns whether the copy now carries our mark (a kernel may keep
    /// an address's protocol on replace, or drop every protocol).
    async fn adopt_address(&self, index: u32, address: &ProxyAddress) -> Result<bool, NetError>;

    /// Every /32 and /128 address, on any link, that carries our address protocol.
    async fn marked_addresses(&self) -> Result<Vec<MarkedAddress>, NetError>;

    /// Removes `address` from the link. MUST succeed, changing nothing, if it is absent (or the
    /// link is gone).
    async fn delete_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError>;
}

/// Both halves of the network, which the address reconciler looks after together.
pub trait Network: Addresses + Links {}

impl<T: Addresses + Links> Network for T {}

/// Time, so that loops are tested without sleeping.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Clock: Send + Sync {
    /// Monotonic time since an arbitrary, fixed origin.
    fn now(&self) -> Duration;

    /// Completes after `duration` has passed.
    async fn sleep(&self, duration: Duration);
}

/// The netfilter rules of one address family.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RuleManager: Send + Sync {
    /// Every rule that carries our mark, in the raw and filter tables of `family`, one entry per
    /// copy, in chain order. Rules without our mark MUST NOT be listed.
    async fn list_ours(&self, family: IpFamily) -> Result<Vec<Rule>, RuleCommandError>;

    /// Inserts `rule` at the top of its chain.
    async fn insert(&self, family: IpFamily, rule: &Rule) -> Result<(), RuleCommandError>;

    /// Deletes one copy of `rule`. MUST succeed, changing nothing, if there is none.
    async fn delete(&self, family: IpFamily, rule: &Rule) -> Result<(), RuleCommandError>;
}

/// The taints of this node's Node object, for `--startup-taint`. One implementation talks to the
/// API server; it knows which Node is ours.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait NodeTaints: Send + Sync {
    /// The Node's `spec.taints`, in the API server's order, each entry exactly as returned.
    async fn taints(&self) -> Result<Vec<Taint>, TaintError>;

    /// Removes the `entries` (index in the list [`NodeTaints::taints`] returned, and the entry
    /// found there) in one JSON patch: for each, from the highest index down, a `test` of the
    /// exact entry at its index, then its `remove`. MUST change nothing else, and nothing at all
    /// when a `test` fails: it then returns [`TaintError::Changed`].
    async fn remove(&self, entries: &[(usize, Taint)]) -> Result<(), TaintError>;
}

/// A connection to the proxy, from the node.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ProxyProbe: Send + Sync {
    /// Opens a TCP connection to `target` and closes it at once, sending nothing. MUST return
    /// within a short timeout of its own (a few seconds) with [`ProbeError::TimedOut`], so that
    /// no caller hangs on a dropped SYN; [`ProbeError::Refused`] when nothing listens.
    async fn connect(&self, target: SocketAddr) -> Result<(), ProbeError>;
}

/// Told about every sync, for metrics and health. Implementations must be cheap: they run on the
/// sync loop.
pub trait SyncObserver: Send + Sync {
    fn sync_finished(&self, report: &SyncReport<'_>);
}

/// Nobody is listening (metrics are off).
impl SyncObserver for () {
    fn sync_finished(&self, _: &SyncReport<'_>) {}
}

/// Metrics that are on or off.
impl<T: SyncObserver> SyncObserver for Option<T> {
    fn sync_finished(&self, report: &SyncReport<'_>) {
        if let Some(observer) = self {
            observer.sync_finished(report);
        }
    }
}

/// Shared with the metrics server.
impl<T: SyncObserver + ?Sized> SyncObserver for std::sync::Arc<T> {
    fn sync_finished(&self, report: &SyncReport<'_>) {
        T::sync_finished(self, report);
    }
}
