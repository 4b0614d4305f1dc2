use super::*;
use crate::ports::MockRuleManager;
use crate::sidecar::testing::FakeRules;
use futures::executor::block_on;
use rstest::rstest;
use std::time::Duration;

fn v4() -> ProxyAddress {
    "10.96.0.2".parse().unwrap()
}

fn v6() -> ProxyAddress {
    "fd00::2".parse().unwrap()
}

fn shown(rules: &[Rule]) -> Vec<String> {
    rules.iter().map(Rule::to_string).collect()
}

#[test]
fn the_five_rules_of_the_seed_for_ipv4() {
    let c = "-m comment --comment apiserver-proxy";
    assert_eq!(
        shown(&desired_rules(&v4(), 443)),
        vec![
            format!(
                "-t raw -A PREROUTING -d 10.96.0.2/32 -p tcp -m tcp --dport 443 {c} -j NOTRACK"
            ),
            format!("-t raw -A OUTPUT -d 10.96.0.2/32 -p tcp -m tcp --dport 443 {c} -j NOTRACK"),
            format!("-t raw -A OUTPUT -s 10.96.0.2/32 -p tcp -m tcp --sport 443 {c} -j NOTRACK"),
            format!("-t filter -A INPUT -d 10.96.0.2/32 -p tcp -m tcp --dport 443 {c} -j ACCEPT"),
            format!("-t filter -A OUTPUT -s 10.96.0.2/32 -p tcp -m tcp --sport 443 {c} -j ACCEPT"),
        ]
    );
}

#[rstest]
#[case::ipv6(v6(), 443, "fd00::2/128", "443")]
#[case::other_port(v4(), 6443, "10.96.0.2/32", "6443")]
fn every_rule_names_the_address_and_port(
    #[case] address: ProxyAddress,
    #[case] port: u16,
    #[case] cidr: &str,
    #[case] port_text: &str,
) {
    let rules = desired_rules(&address, port);
    assert_eq!(rules.len(), 5);
    for rule in rules {
        assert!(rule.args.contains(&cidr.to_owned()), "{rule}");
        assert!(rule.args.contains(&port_text.to_owned()), "{rule}");
    }
}

#[test]
fn family_follows_the_address() {
    assert_eq!(IpFamily::of(&v4()), IpFamily::V4);
    assert_eq!(IpFamily::of(&v6()), IpFamily::V6);
}

fn desired() -> Vec<Rule> {
    desired_rules(&v4(), 443)
}

fn stale() -> Rule {
    desired_rules(&"10.96.0.9".parse().unwrap(), 443).remove(0)
}

#[rstest]
#[case::all_present(desired(), vec![])]
#[case::all_missing(vec![], desired().into_iter().rev().map(RuleStep::Insert).collect())]
#[case::one_missing(desired()[1..].to_vec(), vec![RuleStep::Insert(desired()[0].clone())])]
#[case::one_duplicated([desired(), vec![desired()[3].clone(), desired()[3].clone()]].concat(), vec![RuleStep::Delete(desired()[3].clone()), RuleStep::Delete(desired()[3].clone())])]
#[case::stale_rule_left_to_collection([desired(), vec![stale()]].concat(), vec![])]
fn plan_makes_each_desired_rule_present_exactly_once(
    #[case] observed: Vec<Rule>,
    #[case] steps: Vec<RuleStep>,
) {
    assert_eq!(plan(&desired(), &observed), steps);
}

#[test]
fn sync_inserts_all_five_in_seed_order() {
    let rules = FakeRules::default();
    let mut reconciler = RuleReconciler::new(rules.clone(), &v4().into(), 443);
    let repairs = block_on(reconciler.sync()).unwrap();
    assert_eq!(repairs.len(), 5);
    let now: Vec<Rule> = rules.all().into_iter().map(|(_, r)| r).collect();
    assert_eq!(now, desired());
}

#[test]
fn thousand_syncs_leave_exactly_five() {
    let rules = FakeRules::default();
    let mut reconciler = RuleReconciler::new(rules.clone(), &v4().into(), 443);
    for _ in 0..1000 {
        block_on(reconciler.sync()).unwrap();
    }
    assert_eq!(rules.all().len(), 5);
}

#[test]
fn sync_readds_missing_notrack_rule() {
    let rules = FakeRules::default();
    let mut reconciler = RuleReconciler::new(rules.clone(), &v4().into(), 443);
    block_on(reconciler.sync()).unwrap();
    rules
        .0
        .lock()
        .unwrap()
        .rules
        .retain(|(_, r)| r.chain != "PREROUTING");
    let repairs = block_on(reconciler.sync()).unwrap();
    assert_eq!(
        repairs,
        vec![Repair::RuleInserted {
            rule: desired()[0].to_string()
        }]
    );
    assert_eq!(rules.count(IpFamily::V4, &desired()[0]), 1);
}

#[test]
fn failed_listing_inserts_nothing() {
    let mut rules = MockRuleManager::new();
    rules.expect_list_ours().returning(|_| {
        Err(RuleCommandError::LockBusy {
            command: "iptables-save -t raw".into(),
            waited: Duration::from_secs(5),
        })
    });
    rules.expect_insert().never();
    rules.expect_delete().never();
    let mut reconciler = RuleReconciler::new(rules, &v4().into(), 443);
    let error = block_on(reconciler.sync()).unwrap_err().to_string();
    assert_eq!(error, "could not list the conntrack-bypass rules: iptables-save -t raw could not take the xtables lock within 5s: another program holds it");
}

#[test]
fn a_spurious_listing_failure_never_duplicates() {
    let rules = FakeRules::default();
    let mut reconciler = RuleReconciler::new(rules.clone(), &v4().into(), 443);
    block_on(reconciler.sync()).unwrap();
    rules.0.lock().unwrap().list_error = Some(RuleCommandError::CommandFailed {
        command: "iptables-save".into(),
        stderr: "boom".into(),
    });
    assert!(block_on(reconciler.sync()).is_err());
    rules.0.lock().unwrap().list_error = None;
    block_on(reconciler.sync()).unwrap();
    assert_eq!(rules.all().len(), 5);
}

#[test]
fn cleanup_removes_every_copy_of_ours_in_both_families_and_nothing_else() {
    let foreign = Rule {
        table: Table::Filter,
        chain: "INPUT".into(),
        args: vec!["-j".into(), "ACCEPT".into()],
    };
    let rules = FakeRules::default();
    {
        let mut state = rules.0.lock().unwrap();
        state.rules.push((IpFamily::V4, foreign.clone()));
        state.rules.push((IpFamily::V4, desired()[0].clone()));
        state
            .rules
            .push((IpFamily::V6, desired_rules(&v6(), 443)[2].clone()));
    }
    let mut reconciler = RuleReconciler::new(rules.clone(), &v4().into(), 443);
    block_on(reconciler.sync()).unwrap();
    block_on(reconciler.cleanup()).unwrap();
    assert_eq!(rules.all(), vec![(IpFamily::V4, foreign.clone())]);
    block_on(reconciler.cleanup()).unwrap();
    assert_eq!(rules.all(), vec![(IpFamily::V4, foreign)]);
}

#[test]
fn cleanup_skips_a_family_whose_tools_are_missing() {
    let mut rules = MockRuleManager::new();
    rules.expect_list_ours().returning(|family| match family {
        IpFamily::V4 => Ok(vec![]),
        IpFamily::V6 => Err(RuleCommandError::BinaryMissing {
            binary: "ip6tables-save".into(),
        }),
    });
    let mut reconciler = RuleReconciler::new(rules, &v4().into(), 443);
    block_on(reconciler.cleanup()).unwrap();
}

#[test]
fn only_rule_events_are_relevant() {
    let reconciler = RuleReconciler::new(FakeRules::default(), &v4().into(), 443);
    assert!(reconciler.is_relevant(&NetEvent::RulesChanged));
    assert!(!reconciler.is_relevant(&NetEvent::LinkRemoved {
        index: 1,
        name: "lo".into()
    }));
}

fn rules_of(rules: &FakeRules) -> Vec<Rule> {
    rules.all().into_iter().map(|(_, r)| r).collect()
}

#[test]
fn stale_rules_of_ours_are_left_by_sync_and_removed_by_collection() {
    let rules = FakeRules::default();
    rules.0.lock().unwrap().rules.push((IpFamily::V4, stale()));
    let mut reconciler = RuleReconciler::new(rules.clone(), &v4().into(), 443);
    block_on(reconciler.sync()).unwrap();
    assert_eq!(rules.count(IpFamily::V4, &stale()), 1);
    let collected = block_on(reconciler.collect_stale()).unwrap();
    assert_eq!(rules.count(IpFamily::V4, &stale()), 0);
    assert_eq!(collected.removed.len(), 1);
    assert_eq!(rules_of(&rules), desired());
}

#[test]
fn two_instances_side_by_side_keep_both_rule_sets_and_yield_to_each_other() {
    let rules = FakeRules::default();
    let mut first = RuleReconciler::new(rules.clone(), &v4().into(), 443);
    let mut second = RuleReconciler::new(rules.clone(), &v4().into(), 8443);
    let mut removed = 0;
    let mut yields = 0;
    for round in 0..30 {
        // Each instance syncs on the other's changes (events) and collects on its interval.
        for reconciler in [&mut first, &mut second] {
            block_on(reconciler.sync()).unwrap();
            let collected = block_on(reconciler.collect_stale()).unwrap();
            removed += collected.removed.len();
            yields += collected.yielded.len();
        }
        block_on(first.sync()).unwrap();
        block_on(second.sync()).unwrap();
        assert_eq!(
            rules.all().len(),
            10,
            "round {round}: {:?}",
            rules_of(&rules)
        );
    }
    // At most one removal per rule every ten passes, each answered by one yield.
    assert!(removed <= 10 * 3, "{removed} removals");
    assert!(yields >= 10, "{yields} yields");
}

#[test]
fn dual_stack_keeps_five_rules_per_family() {
    let rules = FakeRules::default();
    let both = "10.96.0.2,fd00::2".parse().unwrap();
    let mut reconciler = RuleReconciler::new(rules.clone(), &both, 443);
    assert_eq!(block_on(reconciler.sync()).unwrap().len(), 10);
    assert_eq!(
        rules
            .all()
            .iter()
            .filter(|(f, _)| *f == IpFamily::V6)
            .count(),
        5
    );
    assert_eq!(
        block_on(reconciler.collect_stale()).unwrap(),
        Collected::default()
    );
}

#[test]
fn rules_of_a_family_no_longer_desired_are_collected() {
    let rules = FakeRules::default();
    let v6_rules = desired_rules(&v6(), 443);
    rules
        .0
        .lock()
        .unwrap()
        .rules
        .push((IpFamily::V6, v6_rules[0].clone()));
    let mut reconciler = RuleReconciler::new(rules.clone(), &v4().into(), 443);
    block_on(reconciler.sync()).unwrap();
    block_on(reconciler.collect_stale()).unwrap();
    assert_eq!(rules.count(IpFamily::V6, &v6_rules[0]), 0);
}
