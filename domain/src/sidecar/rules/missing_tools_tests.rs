//! Missing iptables tools are harmless for a family no address wants (`tests.rs`:
//! `cleanup_skips_a_family_whose_tools_are_missing`), and an error for one that an address wants.

use super::*;
use crate::ports::MockRuleManager;
use futures::executor::block_on;

#[test]
fn cleanup_fails_when_the_tools_of_a_desired_family_are_missing() {
    let mut rules = MockRuleManager::new();
    rules.expect_list_ours().returning(|family| match family {
        IpFamily::V4 => Err(RuleCommandError::BinaryMissing {
            binary: "iptables-save".into(),
        }),
        IpFamily::V6 => Ok(vec![]),
    });
    let address: ProxyAddress = "10.96.0.2".parse().unwrap();
    let mut reconciler = RuleReconciler::new(rules, &address.into(), 443);
    let error = block_on(reconciler.cleanup()).unwrap_err();
    assert_eq!(error.step, "list");
    assert!(
        matches!(error.cause, RuleCommandError::BinaryMissing { .. }),
        "{error:?}"
    );
}
