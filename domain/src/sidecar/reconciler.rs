//! The sidecar's whole desired state: the address, and the rules when asked for.

use async_trait::async_trait;

use crate::ports::{Network, RuleManager};
use crate::sidecar::address::AddressReconciler;
use crate::sidecar::desired::ProxyAddress;
use crate::sidecar::model::{IpFamily, NetEvent, Rule, RuleCommandError};
use crate::sidecar::report::{Cleaned, SyncError, SyncOutcome};
use crate::sidecar::rules::RuleReconciler;

/// The rule manager of a sidecar that keeps no rules (`--setup-iptables=false`). It has no
/// values, so a `NodeReconciler<A, NoRules>` provably never lists, inserts or deletes a rule.
#[derive(Debug, Clone, Copy)]
pub enum NoRules {}

#[async_trait]
impl RuleManager for NoRules {
    async fn list_ours(&self, _: IpFamily) -> Result<Vec<Rule>, RuleCommandError> {
        match *self {}
    }

    async fn insert(&self, _: IpFamily, _: &Rule) -> Result<(), RuleCommandError> {
        match *self {}
    }

    async fn delete(&self, _: IpFamily, _: &Rule) -> Result<(), RuleCommandError> {
        match *self {}
    }
}

/// Keeps the node's whole desired state: the addresses, and the rules when asked for.
#[derive(Debug)]
pub struct NodeReconciler<A, R> {
    address: AddressReconciler<A>,
    rules: Option<RuleReconciler<R>>,
    /// Whether each part's last sync succeeded: stale entries are collected only once the
    /// desired ones are in place.
    address_synced: bool,
    rules_synced: bool,
}

/// What a cleanup removed, and what it could not.
#[derive(Debug, Default)]
pub struct CleanupOutcome {
    pub cleaned: Vec<Cleaned>,
    pub errors: Vec<SyncError>,
}

impl<A: Network, R: RuleManager> NodeReconciler<A, R> {
    /// `rules` is `None` unless `--setup-iptables` asked for them.
    pub fn new(address: AddressReconciler<A>, rules: Option<RuleReconciler<R>>) -> Self {
        Self {
            address,
            rules,
            address_synced: false,
            rules_synced: false,
        }
    }

    pub async fn sync(&mut self) -> SyncOutcome {
        let mut outcome = SyncOutcome::default();
        let address = self.address.sync().await;
        self.address_synced = address.is_ok();
        outcome.record(address);
        if let Some(rules) = &mut self.rules {
            let synced = rules.sync().await;
            self.rules_synced = synced.is_ok();
            outcome.record(synced);
        }
        outcome
    }

    /// Removes stale entries of ours (see `stale`): a separate operation from [`Self::sync`],
    /// which the loop runs only at start and on the interval. Each part collects only after its
    /// last sync succeeded, so the desired entries are in place first.
    pub async fn collect_stale(&mut self) -> SyncOutcome {
        let mut outcome = SyncOutcome::default();
        if self.address_synced {
            outcome.collected(self.address.collect_stale().await);
        }
        if let Some(rules) = self.rules.as_mut().filter(|_| self.rules_synced) {
            outcome.collected(rules.collect_stale().await);
        }
        outcome
    }

    /// Removes what carries our marks, whichever process added it. Both parts are attempted
    /// even if one fails.
    pub async fn cleanup(&mut self) -> CleanupOutcome {
        let mut outcome = CleanupOutcome::default();
        match self.address.cleanup().await {
            Ok(cleaned) => outcome.cleaned.extend(cleaned),
            Err(error) => outcome.errors.push(error.into()),
        }
        if let Some(rules) = &mut self.rules {
            match rules.cleanup().await {
                Ok(cleaned) => outcome.cleaned.extend(cleaned),
                Err(error) => outcome.errors.push(error.into()),
            }
        }
        outcome
    }

    pub fn is_relevant(&self, event: &NetEvent) -> bool {
        self.address.is_relevant(event)
            || self
                .rules
                .as_ref()
                .is_some_and(|rules| rules.is_relevant(event))
    }

    /// Each desired address, and whether it was on its interface as of the last sync.
    pub fn addresses_present(&self) -> &[(ProxyAddress, bool)] {
        self.address.present()
    }
}

#[cfg(test)]
mod tests;
