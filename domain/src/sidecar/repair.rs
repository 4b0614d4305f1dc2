//! What a sync changed, reported to logs and metrics.

use std::fmt;

/// One change a sync made to bring the node back to the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// The interface was missing: a dummy interface of that name was created.
    LinkCreated { interface: String },
    /// The interface was down: it was set up.
    LinkSetUp { interface: String },
    /// The address was missing on the interface: it was added.
    AddressAdded { address: String, interface: String },
    /// The address was on the interface without our mark or with host scope (as the Go original
    /// adds it): it was given global scope in place, and our mark where the kernel keeps one.
    AddressAdopted {
        address: String,
        interface: String,
        marked: bool,
    },
    /// The address also sat on another interface: it was removed there once it was on ours.
    StrayAddressRemoved { address: String, index: u32 },
    /// An address `--remove-address` names was on an interface: it was removed there.
    EarlierAddressRemoved { address: String, index: u32 },
    /// A rule was missing: it was inserted at the top of its chain.
    RuleInserted { rule: String },
    /// A rule of ours was present more than once, or no longer wanted: one copy was deleted.
    RuleDeleted { rule: String },
}

/// What a repair touched, for metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RepairKind {
    Address,
    Link,
    Rule,
}

impl RepairKind {
    pub const ALL: [RepairKind; 3] = [RepairKind::Address, RepairKind::Link, RepairKind::Rule];

    pub fn as_str(self) -> &'static str {
        match self {
            RepairKind::Address => "address",
            RepairKind::Link => "link",
            RepairKind::Rule => "rule",
        }
    }
}

impl Repair {
    pub fn kind(&self) -> RepairKind {
        match self {
            Repair::LinkCreated { .. } | Repair::LinkSetUp { .. } => RepairKind::Link,
            Repair::AddressAdded { .. }
            | Repair::AddressAdopted { .. }
            | Repair::StrayAddressRemoved { .. }
            | Repair::EarlierAddressRemoved { .. } => RepairKind::Address,
            Repair::RuleInserted { .. } | Repair::RuleDeleted { .. } => RepairKind::Rule,
        }
    }
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::LinkCreated { interface } => {
                write!(
                    f,
                    "interface {interface} was missing: created it as a dummy interface"
                )
            }
            Repair::LinkSetUp { interface } => {
                write!(f, "interface {interface} was down: set it up")
            }
            Repair::AddressAdded { address, interface } => {
                write!(f, "address {address} was missing on {interface}: added it")
            }
            Repair::AddressAdopted {
                address,
                interface,
                marked: true,
            } => write!(
                f,
                "address {address} was on {interface} unmarked or with host scope (as the Go original adds it): marked it, global scope"
            ),
            Repair::AddressAdopted {
                address,
                interface,
                marked: false,
            } => write!(
                f,
                "address {address} was on {interface} with host scope (as older Go originals add it): gave it global scope; it stays unmarked, this kernel keeps no address protocol"
            ),
            Repair::EarlierAddressRemoved { address, index } => write!(
                f,
                "address {address}, named by --remove-address, sat on the interface with index {index}: removed it there"
            ),
            Repair::StrayAddressRemoved { address, index } => write!(
                f,
                "address {address} also sat on the interface with index {index}: removed it there"
            ),
            Repair::RuleInserted { rule } => write!(f, "rule was missing: inserted {rule}"),
            Repair::RuleDeleted { rule } => {
                write!(f, "rule was duplicated or stale: deleted {rule}")
            }
        }
    }
}
