//! The sidecar's whole desired state: the address, and the rules when asked for.

use crate::ports::{AddressManager, NetEvent, RuleManager};
use crate::sidecar::address::{AddressError, AddressReconciler};
use crate::sidecar::repair::Repair;
use crate::sidecar::rules::{RuleReconciler, RulesError};

/// Why part of a sync failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error(transparent)]
    Rules(#[from] RulesError),
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

    fn record<E: Into<SyncError>>(&mut self, result: Result<Vec<Repair>, E>) {
        match result {
            Ok(repairs) => self.repairs.extend(repairs),
            Err(error) => self.errors.push(error.into()),
        }
    }
}

#[derive(Debug)]
pub struct Sidecar<A, R> {
    address: AddressReconciler<A>,
    rules: Option<RuleReconciler<R>>,
}

impl<A: AddressManager, R: RuleManager> Sidecar<A, R> {
    /// `rules` is `None` unless `--setup-iptables` asked for them.
    pub fn new(address: AddressReconciler<A>, rules: Option<RuleReconciler<R>>) -> Self {
        Self { address, rules }
    }

    pub async fn sync(&mut self) -> SyncOutcome {
        let mut outcome = SyncOutcome::default();
        outcome.record(self.address.sync().await);
        if let Some(rules) = &mut self.rules {
            outcome.record(rules.sync().await);
        }
        outcome
    }

    /// Undoes what this process added. Both parts are attempted even if one fails.
    pub async fn cleanup(&mut self) -> Result<(), Vec<SyncError>> {
        let mut errors = Vec::new();
        if let Err(error) = self.address.cleanup().await {
            errors.push(error.into());
        }
        if let Some(rules) = &mut self.rules {
            if let Err(error) = rules.cleanup().await {
                errors.push(error.into());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn is_relevant(&self, event: &NetEvent) -> bool {
        self.address.is_relevant(event)
            || self
                .rules
                .as_ref()
                .is_some_and(|rules| rules.is_relevant(event))
    }

    /// Whether the address is on its interface as of the last sync.
    pub fn address_present(&self) -> bool {
        self.address.present()
    }
}
