//! The conntrack-bypass rules of the seed, as data, and the reconciler that keeps exactly them.

use crate::ports::RuleManager;
use crate::sidecar::desired::ProxyAddress;
use crate::sidecar::model::{IpFamily, NetEvent, Rule, RuleCommandError, Table, RULE_COMMENT};
use crate::sidecar::repair::Repair;
use crate::sidecar::report::RuleSyncError;

/// Which end of the connection the proxy address is on.
#[derive(Debug, Clone, Copy)]
enum End {
    Destination,
    Source,
}

fn rule(
    table: Table,
    chain: &str,
    end: End,
    address: &ProxyAddress,
    port: u16,
    target: &str,
) -> Rule {
    let (address_flag, port_flag) = match end {
        End::Destination => ("-d", "--dport"),
        End::Source => ("-s", "--sport"),
    };
    let args = [
        address_flag,
        &address.to_string(),
        "-p",
        "tcp",
        "-m",
        "tcp",
        port_flag,
        &port.to_string(),
        "-m",
        "comment",
        "--comment",
        RULE_COMMENT,
        "-j",
        target,
    ];
    Rule {
        table,
        chain: chain.to_owned(),
        args: args.map(str::to_owned).into(),
    }
}

/// The five rules of the seed for (address, port), in the seed's order.
pub fn desired_rules(address: &ProxyAddress, port: u16) -> Vec<Rule> {
    use End::{Destination, Source};
    vec![
        rule(
            Table::Raw,
            "PREROUTING",
            Destination,
            address,
            port,
            "NOTRACK",
        ),
        rule(Table::Raw, "OUTPUT", Destination, address, port, "NOTRACK"),
        rule(Table::Raw, "OUTPUT", Source, address, port, "NOTRACK"),
        rule(Table::Filter, "INPUT", Destination, address, port, "ACCEPT"),
        rule(Table::Filter, "OUTPUT", Source, address, port, "ACCEPT"),
    ]
}

/// One change to the rule set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleStep {
    Insert(Rule),
    Delete(Rule),
}

/// Decides what to change so that `observed` (our rules as listed) becomes exactly `desired`,
/// each once. Pure, so every case is a table row in the tests.
fn plan(desired: &[Rule], observed: &[Rule]) -> Vec<RuleStep> {
    let mut steps = Vec::new();
    // Inserting at the top in reverse keeps the seed's order when all are missing.
    for rule in desired.iter().rev() {
        let copies = observed.iter().filter(|o| *o == rule).count();
        if copies == 0 {
            steps.push(RuleStep::Insert(rule.clone()));
        }
        steps.extend((1..copies).map(|_| RuleStep::Delete(rule.clone())));
    }
    // Ours but no longer wanted (an earlier address or port): every copy goes.
    steps.extend(
        observed
            .iter()
            .filter(|o| !desired.contains(o))
            .cloned()
            .map(RuleStep::Delete),
    );
    steps
}

/// Keeps exactly the desired rules of one family, each once.
#[derive(Debug)]
pub struct RuleReconciler<R> {
    rules: R,
    family: IpFamily,
    desired: Vec<Rule>,
}

impl<R: RuleManager> RuleReconciler<R> {
    pub fn new(rules: R, address: &ProxyAddress, port: u16) -> Self {
        Self {
            rules,
            family: IpFamily::of(address),
            desired: desired_rules(address, port),
        }
    }

    /// Brings the rule set to exactly the desired rules and says what it changed. A failed
    /// listing changes nothing: a rule is never inserted on a guess, so it is never duplicated.
    pub async fn sync(&mut self) -> Result<Vec<Repair>, RuleSyncError> {
        let error = |step| move |cause| RuleSyncError { step, cause };
        let observed = self
            .rules
            .list_ours(self.family)
            .await
            .map_err(error("list"))?;
        let mut repairs = Vec::new();
        for step in plan(&self.desired, &observed) {
            match step {
                RuleStep::Insert(rule) => {
                    self.rules
                        .insert(self.family, &rule)
                        .await
                        .map_err(error("insert"))?;
                    repairs.push(Repair::RuleInserted {
                        rule: rule.to_string(),
                    });
                }
                RuleStep::Delete(rule) => {
                    self.rules
                        .delete(self.family, &rule)
                        .await
                        .map_err(error("delete"))?;
                    repairs.push(Repair::RuleDeleted {
                        rule: rule.to_string(),
                    });
                }
            }
        }
        Ok(repairs)
    }

    /// Removes every rule of ours, every copy, in both families, and no other rule. Safe to run
    /// twice. A family whose tools are not installed has no rules of ours to remove.
    pub async fn cleanup(&mut self) -> Result<(), RuleSyncError> {
        let error = |step| move |cause| RuleSyncError { step, cause };
        for family in IpFamily::ALL {
            let ours = match self.rules.list_ours(family).await {
                Err(RuleCommandError::BinaryMissing { .. }) if family != self.family => continue,
                listed => listed.map_err(error("list"))?,
            };
            for rule in ours {
                self.rules
                    .delete(family, &rule)
                    .await
                    .map_err(error("delete"))?;
            }
        }
        Ok(())
    }

    pub fn is_relevant(&self, event: &NetEvent) -> bool {
        matches!(event, NetEvent::RulesChanged | NetEvent::EventsLost)
    }
}

#[cfg(test)]
mod tests;
