use super::*;
use crate::sidecar::desired::DesiredAddress;
use crate::sidecar::testing::{FakeNet, FakeRules};
use futures::executor::block_on;
use rstest::rstest;

fn address(net: FakeNet) -> AddressReconciler<FakeNet> {
    let desired = DesiredAddress {
        addresses: "10.96.0.2".parse().unwrap(),
        interface: "lo".parse().unwrap(),
    };
    AddressReconciler::new(net, desired)
}

fn address_removed(address: &str) -> NetEvent {
    NetEvent::AddressRemoved {
        index: 1,
        address: address.parse().unwrap(),
    }
}

/// The loop syncs on what either part finds relevant, and on nothing else: a change to the rules
/// matters only to a sidecar that keeps them, drift of the address always does.
#[rstest]
#[case::our_address_without_rules(false, address_removed("10.96.0.2"), true)]
#[case::our_address_with_rules(true, address_removed("10.96.0.2"), true)]
#[case::rules_changed_with_rules(true, NetEvent::RulesChanged, true)]
#[case::rules_changed_without_rules(false, NetEvent::RulesChanged, false)]
#[case::another_address_with_rules(true, address_removed("10.0.0.9"), false)]
#[case::another_address_without_rules(false, address_removed("10.0.0.9"), false)]
fn either_part_makes_an_event_relevant(
    #[case] keeps_rules: bool,
    #[case] event: NetEvent,
    #[case] relevant: bool,
) {
    let rules = keeps_rules
        .then(|| RuleReconciler::new(FakeRules::default(), &"10.96.0.2".parse().unwrap(), 443));
    let mut node = NodeReconciler::new(address(FakeNet::with_lo()), rules);
    assert!(block_on(node.sync()).succeeded());
    assert_eq!(node.is_relevant(&event), relevant);
}

#[test]
fn the_addresses_present_are_those_of_the_last_sync() {
    let net = FakeNet::with_lo();
    let mut node: NodeReconciler<_, NoRules> = NodeReconciler::new(address(net.clone()), None);
    let ours: ProxyAddress = "10.96.0.2".parse().unwrap();
    assert_eq!(
        node.addresses_present(),
        &[(ours, false)],
        "before any sync"
    );
    assert!(block_on(node.sync()).succeeded());
    assert_eq!(node.addresses_present(), &[(ours, true)]);
}
