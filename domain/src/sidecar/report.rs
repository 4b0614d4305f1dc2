//! What one sync did, as the loop, logs, metrics and health see it.

use std::time::Duration;

use crate::sidecar::model::{NetError, RuleCommandError};
use crate::sidecar::repair::Repair;

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
    pub address_present: bool,
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
    pub errors: Vec<SyncError>,
}

impl SyncOutcome {
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty()
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
