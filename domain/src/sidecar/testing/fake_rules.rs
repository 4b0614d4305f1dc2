//! An in-memory rule set for tests that assert state across several syncs.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::RuleManager;
use crate::sidecar::model::{IpFamily, Rule, RuleCommandError, RULE_COMMENT};

#[derive(Debug, Default)]
pub struct State {
    /// Every rule of both families, ours or not, in chain order.
    pub rules: Vec<(IpFamily, Rule)>,
    /// When set, listing fails with this error (a spurious failure).
    pub list_error: Option<RuleCommandError>,
}

#[derive(Debug, Clone, Default)]
pub struct FakeRules(pub Arc<Mutex<State>>);

impl FakeRules {
    pub fn count(&self, family: IpFamily, rule: &Rule) -> usize {
        self.0
            .lock()
            .unwrap()
            .rules
            .iter()
            .filter(|(f, r)| *f == family && r == rule)
            .count()
    }

    pub fn all(&self) -> Vec<(IpFamily, Rule)> {
        self.0.lock().unwrap().rules.clone()
    }
}

#[async_trait]
impl RuleManager for FakeRules {
    async fn list_ours(&self, family: IpFamily) -> Result<Vec<Rule>, RuleCommandError> {
        let state = self.0.lock().unwrap();
        if let Some(error) = &state.list_error {
            return Err(error.clone());
        }
        let ours = |rule: &Rule| rule.args.iter().any(|a| a == RULE_COMMENT);
        Ok(state
            .rules
            .iter()
            .filter(|(f, r)| *f == family && ours(r))
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn insert(&self, family: IpFamily, rule: &Rule) -> Result<(), RuleCommandError> {
        self.0
            .lock()
            .unwrap()
            .rules
            .insert(0, (family, rule.clone()));
        Ok(())
    }

    async fn delete(&self, family: IpFamily, rule: &Rule) -> Result<(), RuleCommandError> {
        let mut state = self.0.lock().unwrap();
        if let Some(at) = state
            .rules
            .iter()
            .position(|(f, r)| *f == family && r == rule)
        {
            state.rules.remove(at);
        }
        Ok(())
    }
}
