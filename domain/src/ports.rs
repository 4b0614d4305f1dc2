//! Every port of the domain, side by side: what the domain needs from the outside world, and the
//! contract each implementation must keep.

use std::time::Duration;

use async_trait::async_trait;
use mockall::automock;

use crate::sidecar::desired::{InterfaceName, ProxyAddress};
use crate::sidecar::rules::{IpFamily, Rule};
use crate::sidecar::run::SyncReport;

/// A network interface as the address reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
}

/// Why the network stack refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// The kernel has no such link type (for `dummy`: `CONFIG_DUMMY` unset and no module).
    #[error("the kernel cannot create a link of type {kind:?} (is the {kind} module available?); create interface {name:?} beforehand or pick an existing one with --interface")]
    LinkTypeUnsupported { kind: String, name: String },
    /// The process lacks `CAP_NET_ADMIN` in the network namespace.
    #[error("{operation} was refused: permission denied (the sidecar needs CAP_NET_ADMIN)")]
    PermissionDenied { operation: String },
    #[error("{operation} failed: {message}")]
    Failed { operation: String, message: String },
}

/// Addresses and links of the host's network namespace.
#[automock]
#[async_trait]
pub trait AddressManager: Send + Sync {
    /// The link named `name`; `Ok(None)` when there is none.
    async fn link_by_name(&self, name: &InterfaceName) -> Result<Option<Link>, NetError>;

    /// Creates a dummy link named `name` and returns it. MUST return
    /// [`NetError::LinkTypeUnsupported`] when the kernel has no dummy link type.
    async fn create_dummy_link(&self, name: &InterfaceName) -> Result<Link, NetError>;

    /// Sets the link up. MUST succeed, changing nothing, if it is up already.
    async fn set_link_up(&self, index: u32) -> Result<(), NetError>;

    /// Deletes the link. MUST succeed, changing nothing, if it is gone already.
    async fn delete_link(&self, index: u32) -> Result<(), NetError>;

    /// The indices of every link that holds `address` with its prefix length, in any order.
    async fn links_holding(&self, address: &ProxyAddress) -> Result<Vec<u32>, NetError>;

    /// Adds `address` with global scope. MUST succeed, changing nothing, if it is present already.
    async fn add_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError>;

    /// Removes `address` from the link. MUST succeed, changing nothing, if it is absent (or the
    /// link is gone).
    async fn delete_address(&self, index: u32, address: &ProxyAddress) -> Result<(), NetError>;
}

/// Something changed in the network stack. Adapters report what they see; the domain decides
/// what is relevant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    AddressAdded {
        index: u32,
        address: std::net::IpAddr,
    },
    AddressRemoved {
        index: u32,
        address: std::net::IpAddr,
    },
    /// A link appeared or changed (name, flags).
    LinkChanged {
        index: u32,
        name: String,
        up: bool,
    },
    LinkRemoved {
        index: u32,
        name: String,
    },
    /// The netfilter ruleset changed (an nftables event), or, where no event source exists, may
    /// have changed.
    RulesChanged,
    /// The event source lost events (socket overrun) or had to resubscribe: anything may have
    /// changed meanwhile.
    EventsLost,
}

/// Time, so that loops are tested without sleeping.
#[automock]
#[async_trait]
pub trait Clock: Send + Sync {
    /// Monotonic time since an arbitrary, fixed origin.
    fn now(&self) -> Duration;

    /// Completes after `duration` has passed.
    async fn sleep(&self, duration: Duration);
}

/// Why a rule could not be listed, inserted or deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Another program held the xtables lock for longer than the adapter waits.
    #[error(
        "{command} could not take the xtables lock within {waited:?}: another program holds it"
    )]
    LockBusy { command: String, waited: Duration },
    #[error("{binary} was not found: install the iptables package (it provides iptables, ip6tables and their -save tools)")]
    BinaryMissing { binary: String },
    #[error("{command} failed: {stderr}")]
    CommandFailed { command: String, stderr: String },
}

/// The netfilter rules of one address family.
#[automock]
#[async_trait]
pub trait RuleManager: Send + Sync {
    /// Every rule that carries our mark, in the raw and filter tables of `family`, one entry per
    /// copy, in chain order. Rules without our mark MUST NOT be listed.
    async fn list_ours(&self, family: IpFamily) -> Result<Vec<Rule>, RuleError>;

    /// Inserts `rule` at the top of its chain.
    async fn insert(&self, family: IpFamily, rule: &Rule) -> Result<(), RuleError>;

    /// Deletes one copy of `rule`. MUST succeed, changing nothing, if there is none.
    async fn delete(&self, family: IpFamily, rule: &Rule) -> Result<(), RuleError>;
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
