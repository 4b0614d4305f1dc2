//! The values the sidecar's ports exchange: links, addresses' events, rules, and the errors the
//! outside world answers with. Plain data, imported by the ports and the reconcilers alike.

use std::fmt;
use std::time::Duration;

use crate::sidecar::desired::ProxyAddress;

/// The mark every address the sidecar adds carries: its address protocol (`IFA_PROTO`, kept by
/// Linux 5.18 and later). 0 to 3 are the kernel's own (unspec, loopback, router announcement,
/// link-local); 97 is ASCII `a`, for apiserver-proxy. iproute2 6.3 and later shows it as
/// `proto 97` in `ip -d addr` (or by name with `97 apiserver-proxy` in
/// `/etc/iproute2/rt_addrprotos`); older `ip` cannot show it.
pub const ADDRESS_PROTOCOL: u8 = 97;

/// The alias (`IFLA_IFALIAS`) of every link the sidecar creates, shown by `ip link show` as
/// `alias apiserver-proxy`.
pub const LINK_ALIAS: &str = "apiserver-proxy";

/// A network interface as the address reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
}

/// An address that carries [`ADDRESS_PROTOCOL`]: one that a sidecar added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedAddress {
    pub index: u32,
    pub interface: String,
    pub address: ProxyAddress,
    /// At the next shorter prefix (/31, /127) rather than its own: the bridge an adoption holds
    /// the address with for a moment, left behind by a process that died in the middle.
    pub bridge: bool,
}

impl MarkedAddress {
    /// The address with the prefix it sits at, as `ip addr` shows it.
    pub fn shown(&self) -> String {
        let prefix_len = self.address.prefix_len() - u8::from(self.bridge);
        format!("{}/{prefix_len}", self.address.ip())
    }
}

/// A link holding a desired address, and how its copy compares with one the sidecar adds:
/// marked with [`ADDRESS_PROTOCOL`] and of global scope. The Go original added its address
/// without a mark (and its older versions with host scope): such a copy is adopted, not added
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    pub index: u32,
    /// Marked and of global scope.
    pub as_ours: bool,
    /// Of global scope, marked or not.
    pub global: bool,
}

/// What adopting a copy came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// The copy carries our mark now, and global scope.
    Marked,
    /// The kernel keeps no address protocol (Linux before 5.18): a copy it was just given came
    /// back without one. The copy has global scope now, and stays unmarked.
    Unmarked,
}

/// A link whose alias is [`LINK_ALIAS`]: one that a sidecar created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedLink {
    pub link: Link,
    /// Whether it holds any address besides the IPv6 link-local ones the kernel adds by itself.
    pub holds_addresses: bool,
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

/// The comment that marks a rule as ours, so that repair and cleanup touch exactly ours.
pub const RULE_COMMENT: &str = "apiserver-proxy";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    pub fn of(address: &ProxyAddress) -> Self {
        if address.is_ipv6() {
            IpFamily::V6
        } else {
            IpFamily::V4
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Raw,
    Filter,
}

impl Table {
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Raw => "raw",
            Table::Filter => "filter",
        }
    }
}

/// One rule: its table, chain and the match and target arguments, in the order `iptables-save`
/// prints them, so a listed rule compares equal to the desired one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub table: Table,
    pub chain: String,
    pub args: Vec<String>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "-t {} -A {} {}",
            self.table.as_str(),
            self.chain,
            self.args.join(" ")
        )
    }
}

/// Why a rule could not be listed, inserted or deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleCommandError {
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
