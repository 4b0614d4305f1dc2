//! [`RuleManager`] over the iptables command-line tools of one backend.

use async_trait::async_trait;
use domain::ports::RuleManager;
use domain::sidecar::model::{IpFamily, Rule, RuleCommandError, Table};

use super::backend::Backend;
use super::command::Tools;
use super::save;

/// The raw and filter rules of the host, through `iptables`/`ip6tables` of one backend.
#[derive(Debug, Clone)]
pub struct IptablesRules {
    backend: Backend,
    tools: Tools,
}

impl IptablesRules {
    pub fn new(backend: Backend, tools: Tools) -> Self {
        Self { backend, tools }
    }

    /// `iptables -w N -t TABLE <operation> CHAIN [position] ARGS...`
    async fn change(
        &self,
        family: IpFamily,
        rule: &Rule,
        operation: &[&str],
    ) -> Result<(), RuleCommandError> {
        let wait = self.tools.lock_wait_seconds().to_string();
        let mut args = vec!["-w", &wait, "-t", rule.table.as_str()];
        args.extend(operation);
        args.extend(rule.args.iter().map(String::as_str));
        self.tools
            .run(self.backend.iptables(family), &args)
            .await
            .map(drop)
    }
}

#[async_trait]
impl RuleManager for IptablesRules {
    /// One `iptables-save -t TABLE` per table rather than one of everything: on a kube-proxy node
    /// the nat table holds most rules, and listing it on every sync would cost far more than a
    /// second, small process.
    async fn list_ours(&self, family: IpFamily) -> Result<Vec<Rule>, RuleCommandError> {
        let mut ours = Vec::new();
        for table in [Table::Raw, Table::Filter] {
            let text = self
                .tools
                .run(self.backend.save(family), &["-t", table.as_str()])
                .await?;
            ours.extend(save::ours(&text));
        }
        Ok(ours)
    }

    async fn insert(&self, family: IpFamily, rule: &Rule) -> Result<(), RuleCommandError> {
        self.change(family, rule, &["-I", &rule.chain, "1"]).await
    }

    async fn delete(&self, family: IpFamily, rule: &Rule) -> Result<(), RuleCommandError> {
        match self.change(family, rule, &["-D", &rule.chain]).await {
            Err(RuleCommandError::CommandFailed { stderr, .. })
                if names_an_absent_rule(&stderr) =>
            {
                Ok(())
            }
            done => done,
        }
    }
}

/// What iptables says (exit 1) when `-D` finds no such rule: "Bad rule (does a matching rule
/// exist in that chain?)", or, when the chain itself is gone (an nft table deleted under us),
/// "No chain/target/match by that name". Either way no copy is left to delete.
fn names_an_absent_rule(stderr: &str) -> bool {
    stderr.contains("Bad rule") || stderr.contains("No chain/target/match by that name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::bad_rule(
        "iptables: Bad rule (does a matching rule exist in that chain?).",
        true
    )]
    #[case::no_chain("iptables: No chain/target/match by that name.", true)]
    #[case::lock("Another app is currently holding the xtables lock.", false)]
    #[case::permission("iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)", false)]
    fn delete_treats_only_absence_as_done(#[case] stderr: &str, #[case] absent: bool) {
        assert_eq!(names_an_absent_rule(stderr), absent);
    }
}
