//! What one sync did, as the loop, logs, metrics and health see it.

use std::fmt;
use std::time::Duration;

use crate::sidecar::desired::ProxyAddress;
use crate::sidecar::model::{
    NetError, RuleCommandError, ADDRESS_PROTOCOL, LINK_ALIAS, RULE_COMMENT,
};
use crate::sidecar::repair::{Repair, RepairKind};

/// Why a sync ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Start,
    Interval,
    Event,
    /// The previous sync failed; this one comes before the interval is over.
    Retry,
}

impl Trigger {
    pub const ALL: [Trigger; 4] = [
        Trigger::Start,
        Trigger::Interval,
        Trigger::Event,
        Trigger::Retry,
    ];

    /// Whether stale entries are collected after this sync: at start and on the interval, never
    /// on events (an event is often another instance's own change) nor on retries. The loop
    /// decides this; the reconciler only offers the two operations.
    pub fn collects_stale(self) -> bool {
        matches!(self, Trigger::Start | Trigger::Interval)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Interval => "interval",
            Trigger::Event => "event",
            Trigger::Retry => "retry",
        }
    }
}

/// What one sync did, as logs and metrics see it.
#[derive(Debug)]
pub struct SyncReport<'a> {
    pub trigger: Trigger,
    pub outcome: &'a SyncOutcome,
    pub duration: Duration,
    /// Each desired address, and whether it was on its interface when the sync ended.
    pub addresses: &'a [(ProxyAddress, bool)],
}

/// Why part of a sync failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Address(#[from] AddressSyncError),
    #[error(transparent)]
    Rules(#[from] RuleSyncError),
}

impl SyncError {
    /// A short name for metrics labels and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncError::Address(_) => "address",
            SyncError::Rules(_) => "rules",
        }
    }

    pub const KINDS: [&'static str; 2] = ["address", "rules"];
}

/// What one sync did: every repair it made and every part that failed. The parts are
/// independent: a failing rule sync does not keep the address from being repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOutcome {
    pub repairs: Vec<Repair>,
    /// Stale entries of ours that collection removed.
    pub stale_removed: Vec<Owned>,
    /// Stale entries that came back after collection removed them: another instance owns them.
    pub yields: Vec<Owned>,
    pub errors: Vec<SyncError>,
}

impl SyncOutcome {
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn collected<E: Into<SyncError>>(&mut self, result: Result<Collected, E>) {
        match result {
            Ok(collected) => {
                self.stale_removed.extend(collected.removed);
                self.yields.extend(collected.yielded);
            }
            Err(error) => self.errors.push(error.into()),
        }
    }

    pub(crate) fn record<E: Into<SyncError>>(&mut self, result: Result<Vec<Repair>, E>) {
        match result {
            Ok(repairs) => self.repairs.extend(repairs),
            Err(error) => self.errors.push(error.into()),
        }
    }
}

/// Why the address could not be kept or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not {step} {address} on {interface}: {cause}")]
pub struct AddressSyncError {
    pub step: &'static str,
    pub address: String,
    pub interface: String,
    pub cause: NetError,
}

/// Why the rules could not be kept or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not {step} the conntrack-bypass rules: {cause}")]
pub struct RuleSyncError {
    pub step: &'static str,
    pub cause: RuleCommandError,
}

/// Something that carries our mark: an address, a link or a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owned {
    Address { address: String, interface: String },
    Link { interface: String },
    Rule { rule: String },
}

impl Owned {
    pub fn kind(&self) -> RepairKind {
        match self {
            Owned::Address { .. } => RepairKind::Address,
            Owned::Link { .. } => RepairKind::Link,
            Owned::Rule { .. } => RepairKind::Rule,
        }
    }

    /// Why it is ours, as a log line says it.
    pub fn mark(&self) -> String {
        match self {
            Owned::Address { .. } => {
                format!("it carries the address protocol {ADDRESS_PROTOCOL} of apiserver-proxy")
            }
            Owned::Link { .. } => format!("its alias is {LINK_ALIAS:?}"),
            Owned::Rule { .. } => format!("it carries the comment {RULE_COMMENT:?}"),
        }
    }
}

impl fmt::Display for Owned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owned::Address { address, interface } => write!(f, "address {address} on {interface}"),
            Owned::Link { interface } => write!(f, "interface {interface}"),
            Owned::Rule { rule } => write!(f, "rule {rule}"),
        }
    }
}

/// What one stale collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    pub removed: Vec<Owned>,
    pub yielded: Vec<Owned>,
}

/// Why cleanup removed something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub owned: Owned,
    pub why: String,
}

impl fmt::Display for Cleaned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "removed {}: {}", self.owned, self.why)
    }
}
