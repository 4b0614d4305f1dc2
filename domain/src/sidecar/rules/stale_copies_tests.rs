//! Collection deletes each copy of a stale rule once, and nothing more: `iptables -D` of a rule
//! that is not there fails, so one delete too many would fail the pass.

use super::*;
use crate::ports::MockRuleManager;
use futures::executor::block_on;
use mockall::predicate::eq;

#[test]
fn each_copy_of_a_stale_rule_is_deleted_exactly_once() {
    let wanted: ProxyAddress = "10.96.0.2".parse().unwrap();
    let earlier: ProxyAddress = "10.96.0.9".parse().unwrap();
    let twice = desired_rules(&earlier, 443).remove(0);
    let once = desired_rules(&earlier, 443).remove(1);
    let listed = [
        desired_rules(&wanted, 443),
        vec![twice.clone(), twice.clone(), once.clone()],
    ]
    .concat();
    let mut rules = MockRuleManager::new();
    rules
        .expect_list_ours()
        .with(eq(IpFamily::V4))
        .returning(move |_| Ok(listed.clone()));
    rules
        .expect_list_ours()
        .with(eq(IpFamily::V6))
        .returning(|_| Ok(vec![]));
    rules
        .expect_delete()
        .with(eq(IpFamily::V4), eq(twice))
        .times(2)
        .returning(|_, _| Ok(()));
    rules
        .expect_delete()
        .with(eq(IpFamily::V4), eq(once))
        .times(1)
        .returning(|_, _| Ok(()));
    let mut reconciler = RuleReconciler::new(rules, &wanted.into(), 443);
    assert_eq!(block_on(reconciler.sync()).unwrap(), vec![]);
    let collected = block_on(reconciler.collect_stale()).unwrap();
    assert_eq!(collected.removed.len(), 2, "{collected:?}");
}
