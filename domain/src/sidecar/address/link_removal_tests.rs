//! A removed link matters when it is ours by name or by index, either one alone.

use super::*;
use crate::sidecar::testing::FakeNet;
use futures::executor::block_on;
use rstest::rstest;

#[rstest]
#[case::our_link_renamed_then_removed(1, "lo2", true)]
#[case::another_link_with_our_name(9, "lo", true)]
#[case::another_link(7, "eth0", false)]
fn a_removed_link_is_relevant_by_our_name_or_our_index(
    #[case] index: u32,
    #[case] name: &str,
    #[case] relevant: bool,
) {
    let desired = DesiredAddress {
        addresses: "10.96.0.2".parse().unwrap(),
        interface: "lo".parse().unwrap(),
    };
    let mut reconciler = AddressReconciler::new(FakeNet::with_lo(), desired);
    block_on(reconciler.sync()).unwrap();
    let removed = NetEvent::LinkRemoved {
        index,
        name: name.into(),
    };
    assert_eq!(reconciler.is_relevant(&removed), relevant);
}
