//! The conntrack-bypass rules of the seed, as data, and the reconciler that keeps exactly them.

use crate::ports::RuleManager;
use crate::sidecar::desired::{ProxyAddress, ProxyAddresses};
use crate::sidecar::model::{IpFamily, NetEvent, Rule, RuleCommandError, Table, RULE_COMMENT};
use crate::sidecar::repair::Repair;
use crate::sidecar::report::{Cleaned, Collected, Owned, RuleSyncError};
use crate::sidecar::stale::StaleMemory;

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

/// Decides what to change so that each `desired` rule is in `observed` (our rules as listed)
/// exactly once. Rules of ours that are not desired are left to stale collection, which knows
/// whether another instance owns them. Pure, so every case is a table row in the tests.
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
    steps
}

/// Keeps each desired rule of each family once, collects the rules of ours no longer wanted.
#[derive(Debug)]
pub struct RuleReconciler<R> {
    rules: R,
    /// The five rules of each desired address, by its family.
    desired: Vec<(IpFamily, Vec<Rule>)>,
    /// The rules of ours in the desired families that the last sync listed but does not want:
    /// collection reads them from here rather than listing again.
    unwanted: Vec<(IpFamily, Rule)>,
    stale: StaleMemory<(IpFamily, Rule)>,
}

fn error(step: &'static str) -> impl Fn(RuleCommandError) -> RuleSyncError {
    move |cause| RuleSyncError { step, cause }
}

impl<R: RuleManager> RuleReconciler<R> {
    pub fn new(rules: R, addresses: &ProxyAddresses, port: u16) -> Self {
        Self {
            rules,
            desired: addresses
                .iter()
                .map(|address| (IpFamily::of(address), desired_rules(address, port)))
                .collect(),
            unwanted: Vec::new(),
            stale: StaleMemory::default(),
        }
    }

    fn desired_in(&self, family: IpFamily) -> Option<&[Rule]> {
        self.desired
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, rules)| rules.as_slice())
    }

    /// Our rules of `family`; none where the family is not desired and its tools are missing.
    async fn ours(&self, family: IpFamily) -> Result<Vec<Rule>, RuleSyncError> {
        match self.rules.list_ours(family).await {
            Err(RuleCommandError::BinaryMissing { .. }) if self.desired_in(family).is_none() => {
                Ok(Vec::new())
            }
            listed => listed.map_err(error("list")),
        }
    }

    /// Brings each desired rule to exactly one copy and says what it changed. A failed listing
    /// changes nothing: a rule is never inserted on a guess, so it is never duplicated.
    pub async fn sync(&mut self) -> Result<Vec<Repair>, RuleSyncError> {
        let mut repairs = Vec::new();
        self.unwanted.clear();
        for (family, desired) in &self.desired {
            let family = *family;
            let observed = self.rules.list_ours(family).await.map_err(error("list"))?;
            self.unwanted.extend(
                observed
                    .iter()
                    .filter(|rule| !desired.contains(rule))
                    .map(|rule| (family, rule.clone())),
            );
            for step in plan(desired, &observed) {
                match step {
                    RuleStep::Insert(rule) => {
                        self.rules
                            .insert(family, &rule)
                            .await
                            .map_err(error("insert"))?;
                        repairs.push(Repair::RuleInserted {
                            rule: rule.to_string(),
                        });
                    }
                    RuleStep::Delete(rule) => {
                        self.rules
                            .delete(family, &rule)
                            .await
                            .map_err(error("delete"))?;
                        repairs.push(Repair::RuleDeleted {
                            rule: rule.to_string(),
                        });
                    }
                }
            }
        }
        Ok(repairs)
    }

    /// Deletes every copy of each rule of ours that is not desired, in both families, unless it
    /// came back after an earlier pass removed it (another instance keeps it: see
    /// [`StaleMemory`]). Runs right after a sync: the desired families' rules are those the sync
    /// listed; only a family not desired is listed here.
    pub async fn collect_stale(&mut self) -> Result<Collected, RuleSyncError> {
        let mut stale = self.unwanted.clone();
        for family in IpFamily::ALL {
            if self.desired_in(family).is_none() {
                stale.extend(
                    self.ours(family)
                        .await?
                        .into_iter()
                        .map(|rule| (family, rule)),
                );
            }
        }
        let verdict = self.stale.pass(&stale);
        let mut collected = Collected {
            removed: Vec::new(),
            yielded: verdict
                .yielded
                .into_iter()
                .map(|(_, rule)| Owned::Rule {
                    rule: rule.to_string(),
                })
                .collect(),
        };
        for (family, rule) in verdict.remove {
            for _ in stale.iter().filter(|(f, r)| *f == family && *r == rule) {
                self.rules
                    .delete(family, &rule)
                    .await
                    .map_err(error("delete"))?;
            }
            collected.removed.push(Owned::Rule {
                rule: rule.to_string(),
            });
            self.stale.removed((family, rule));
        }
        Ok(collected)
    }

    /// Removes every rule of ours, every copy, in both families, and no other rule. Safe to run
    /// twice. A family whose tools are not installed has no rules of ours to remove.
    pub async fn cleanup(&mut self) -> Result<Vec<Cleaned>, RuleSyncError> {
        let mut cleaned = Vec::new();
        for family in IpFamily::ALL {
            for rule in self.ours(family).await? {
                self.rules
                    .delete(family, &rule)
                    .await
                    .map_err(error("delete"))?;
                let owned = Owned::Rule {
                    rule: rule.to_string(),
                };
                cleaned.push(Cleaned {
                    why: owned.mark(),
                    owned,
                });
            }
        }
        Ok(cleaned)
    }

    pub fn is_relevant(&self, event: &NetEvent) -> bool {
        matches!(event, NetEvent::RulesChanged | NetEvent::EventsLost)
    }
}

#[cfg(test)]
mod missing_tools_tests;
#[cfg(test)]
mod stale_copies_tests;
#[cfg(test)]
mod tests;
