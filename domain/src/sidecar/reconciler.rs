//! The sidecar's whole desired state: the address, and the rules when asked for.

use async_trait::async_trait;

use crate::ports::{AddressManager, RuleManager};
use crate::sidecar::address::AddressReconciler;
use crate::sidecar::model::{IpFamily, NetEvent, Rule, RuleCommandError};
use crate::sidecar::report::{SyncError, SyncOutcome};
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

/// Keeps the node's whole desired state: the address, and the rules when asked for.
#[derive(Debug)]
pub struct NodeReconciler<A, R> {
    address: AddressReconciler<A>,
    rules: Option<RuleReconciler<R>>,
}

impl<A: AddressManager, R: RuleManager> NodeReconciler<A, R> {
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
