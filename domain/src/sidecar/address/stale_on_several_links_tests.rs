//! A stale address of ours on several links at once: each copy is removed from its own link.

use super::*;
use crate::sidecar::testing::FakeNet;
use futures::executor::block_on;

#[test]
fn a_stale_address_on_two_links_is_removed_from_both() {
    let net = FakeNet::with_lo();
    let eth = net.add_link("eth0", true);
    let stale: ProxyAddress = "10.96.0.9".parse().unwrap();
    net.put_marked_address(1, stale);
    net.put_marked_address(eth, stale);
    let desired = DesiredAddress {
        addresses: "10.96.0.2".parse().unwrap(),
        interface: "lo".parse().unwrap(),
    };
    let mut reconciler = AddressReconciler::new(net.clone(), desired);
    block_on(reconciler.sync()).unwrap();
    let collected = block_on(reconciler.collect_stale()).unwrap();
    assert_eq!(net.addresses_of("lo"), vec!["10.96.0.2".parse().unwrap()]);
    assert_eq!(net.addresses_of("eth0"), vec![]);
    let removed_from: Vec<String> = collected
        .removed
        .iter()
        .map(|owned| match owned {
            Owned::Address { interface, .. } => interface.clone(),
            other => panic!("not an address: {other:?}"),
        })
        .collect();
    assert_eq!(removed_from, ["lo", "eth0"]);
}
