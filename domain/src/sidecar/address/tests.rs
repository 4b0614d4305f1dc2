use super::*;
use crate::ports::Network;
use crate::ports::{MockAddresses, MockLinks};
use crate::sidecar::desired::ProxyAddress;
use crate::sidecar::model::MarkedLink;
use crate::sidecar::testing::{FakeNet, Split};
use futures::executor::block_on;
use mockall::predicate::eq;
use rstest::rstest;

fn desired(interface: &str) -> DesiredAddress {
    DesiredAddress {
        addresses: "10.96.0.2".parse().unwrap(),
        interface: interface.parse().unwrap(),
    }
}

fn link(index: u32, up: bool) -> Option<Link> {
    Some(Link {
        index,
        name: "lo".into(),
        up,
    })
}

fn v4() -> ProxyAddress {
    "10.96.0.2".parse().unwrap()
}

fn v6() -> ProxyAddress {
    "fd00::2".parse().unwrap()
}

fn add() -> Step {
    Step::AddAddress(v4())
}

fn stray(index: u32) -> Step {
    Step::RemoveStray {
        address: v4(),
        index,
    }
}

fn earlier(index: u32) -> Step {
    Step::RemoveEarlier {
        address: ip("10.96.0.9"),
        index,
    }
}

/// Links holding the address: `index` for our copy (marked, global), `-index` for a copy
/// without our mark, as the Go original adds it (global scope).
fn held(indices: &[i64]) -> Vec<Holder> {
    indices
        .iter()
        .map(|&i| Holder {
            index: i.unsigned_abs() as u32,
            as_ours: i > 0,
            global: true,
        })
        .collect()
}

fn observed(link: Option<Link>, holders: &[i64]) -> Observed {
    Observed {
        link,
        holders: vec![(v4(), held(holders))],
        marks: MarkSupport::Unknown,
        earlier: vec![],
    }
}

fn adopt(global: bool) -> Step {
    Step::AdoptAddress {
        address: v4(),
        global,
    }
}

#[rstest]
#[case::all_in_place(link(1, true), &[1], vec![])]
#[case::interface_missing(None, &[], vec![Step::CreateLink, Step::SetLinkUp, add()])]
#[case::interface_down(link(1, false), &[1], vec![Step::SetLinkUp])]
#[case::address_missing(link(1, true), &[], vec![add()])]
#[case::down_and_missing(link(1, false), &[], vec![Step::SetLinkUp, add()])]
#[case::moved_to_another_interface(link(1, true), &[7], vec![add(), stray(7)])]
#[case::also_on_another_interface(link(1, true), &[1, 7], vec![stray(7)])]
#[case::interface_missing_address_elsewhere(None, &[7], vec![Step::CreateLink, Step::SetLinkUp, add(), stray(7)])]
#[case::go_originals_copy_on_ours(link(1, true), &[-1], vec![adopt(true)])]
#[case::go_originals_copy_elsewhere(link(1, true), &[-7], vec![add(), stray(7)])]
#[case::go_originals_copy_on_ours_and_ours_elsewhere(link(1, true), &[-1, 7], vec![adopt(true), stray(7)])]
fn plan_covers_every_observed_case(
    #[case] link: Option<Link>,
    #[case] holders: &[i64],
    #[case] steps: Vec<Step>,
) {
    assert_eq!(plan(&observed(link, holders)), steps);
}

/// Where the kernel keeps no mark, an unmarked copy of global scope is as ours as a copy can be:
/// only host scope is still worth changing.
#[rstest]
#[case::unknown_global(MarkSupport::Unknown, true, vec![adopt(true)])]
#[case::unknown_host_scope(MarkSupport::Unknown, false, vec![adopt(false)])]
#[case::kept_global(MarkSupport::Kept, true, vec![adopt(true)])]
#[case::dropped_global(MarkSupport::Dropped, true, vec![])]
#[case::dropped_host_scope(MarkSupport::Dropped, false, vec![adopt(false)])]
fn plan_adopts_an_unmarked_copy_unless_the_kernel_keeps_no_mark_and_it_is_global(
    #[case] marks: MarkSupport,
    #[case] global: bool,
    #[case] steps: Vec<Step>,
) {
    let mut observed = observed(link(1, true), &[]);
    observed.holders[0].1 = vec![Holder {
        index: 1,
        as_ours: false,
        global,
    }];
    observed.marks = marks;
    assert_eq!(plan(&observed), steps);
}

#[rstest]
#[case::nowhere(&[], vec![add()])]
#[case::on_ours(&[1], vec![add(), earlier(1)])]
#[case::on_two_links(&[1, 7], vec![add(), earlier(1), earlier(7)])]
fn plan_removes_earlier_addresses_after_adding_the_desired_ones(
    #[case] holding: &[u32],
    #[case] steps: Vec<Step>,
) {
    let mut observed = observed(link(1, true), &[]);
    observed.earlier = vec![(ip("10.96.0.9"), holding.to_vec())];
    assert_eq!(plan(&observed), steps);
}

#[test]
fn plan_adds_both_families_before_removing_any_stray() {
    let observed = Observed {
        link: link(1, true),
        holders: vec![(v4(), held(&[7])), (v6(), vec![])],
        marks: MarkSupport::Unknown,
        earlier: vec![],
    };
    assert_eq!(
        plan(&observed),
        vec![add(), Step::AddAddress(v6()), stray(7)]
    );
}

#[test]
fn sync_adds_missing_address_to_existing_interface() {
    let net = FakeNet::with_lo();
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    let repairs = block_on(reconciler.sync()).unwrap();
    assert_eq!(
        repairs,
        vec![Repair::AddressAdded {
            address: "10.96.0.2/32".into(),
            interface: "lo".into()
        }]
    );
    assert_eq!(
        net.addresses_of("lo"),
        vec!["10.96.0.2".parse::<ProxyAddress>().unwrap()]
    );
}

#[test]
fn second_sync_changes_nothing() {
    let net = FakeNet::with_lo();
    let mut reconciler = AddressReconciler::new(net, desired("lo"));
    block_on(reconciler.sync()).unwrap();
    assert_eq!(block_on(reconciler.sync()).unwrap(), vec![]);
}

#[test]
fn sync_creates_missing_interface_up_with_address() {
    let net = FakeNet::with_lo();
    let mut reconciler = AddressReconciler::new(net.clone(), desired("proxy0"));
    let repairs = block_on(reconciler.sync()).unwrap();
    assert_eq!(repairs.len(), 3, "{repairs:?}");
    assert!(net.link("proxy0").unwrap().up);
    assert_eq!(net.addresses_of("proxy0").len(), 1);
}

#[test]
fn sync_moves_address_from_another_interface() {
    let net = FakeNet::with_lo();
    let eth = net.add_link("eth0", true);
    net.put_address(eth, "10.96.0.2".parse().unwrap());
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    block_on(reconciler.sync()).unwrap();
    assert_eq!(net.addresses_of("lo").len(), 1);
    assert_eq!(net.addresses_of("eth0"), vec![]);
}

fn mocks() -> Split<MockAddresses, MockLinks> {
    Split {
        addresses: MockAddresses::new(),
        links: MockLinks::new(),
    }
}

/// Mocks whose interface is `lo` (index 1, up).
fn mocks_with_lo() -> Split<MockAddresses, MockLinks> {
    let mut net = mocks();
    net.links
        .expect_link_by_name()
        .returning(|_| Ok(link(1, true)));
    net
}

#[test]
fn stray_copy_stays_when_adding_to_ours_fails() {
    let mut net = mocks_with_lo();
    net.addresses
        .expect_links_holding()
        .returning(|_| Ok(held(&[7])));
    net.addresses.expect_add_address().returning(|_, _| {
        Err(NetError::PermissionDenied {
            operation: "add address".into(),
        })
    });
    net.addresses.expect_delete_address().never();
    let mut reconciler = AddressReconciler::new(net, desired("lo"));
    let error = block_on(reconciler.sync()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "could not add 10.96.0.2/32 on lo: add address was refused: permission denied (the sidecar needs CAP_NET_ADMIN)"
    );
}

#[test]
fn unsupported_dummy_type_is_reported_with_the_fix() {
    let mut net = mocks();
    net.links.expect_link_by_name().returning(|_| Ok(None));
    net.addresses
        .expect_links_holding()
        .returning(|_| Ok(vec![]));
    net.links.expect_create_dummy_link().returning(|name| {
        Err(NetError::LinkTypeUnsupported {
            kind: "dummy".into(),
            name: name.to_string(),
        })
    });
    let mut reconciler = AddressReconciler::new(net, desired("proxy0"));
    let error = block_on(reconciler.sync()).unwrap_err().to_string();
    assert!(
        error.contains("cannot create a link of type \"dummy\""),
        "{error}"
    );
    assert!(error.contains("--interface"), "{error}");
}

fn marked_link(index: u32, name: &str, holds_addresses: bool) -> MarkedLink {
    MarkedLink {
        link: Link {
            index,
            name: name.into(),
            up: true,
        },
        holds_addresses,
    }
}

#[test]
fn cleanup_deletes_an_empty_link_with_our_alias_but_not_one_that_holds_an_address() {
    let mut net = mocks_with_lo();
    net.addresses
        .expect_links_holding()
        .returning(|_| Ok(vec![]));
    net.addresses
        .expect_marked_addresses()
        .returning(|| Ok(vec![]));
    net.links.expect_marked_links().returning(|| {
        Ok(vec![
            marked_link(5, "proxy0", false),
            marked_link(6, "proxy1", true),
        ])
    });
    net.links
        .expect_delete_link()
        .with(eq(5))
        .times(1)
        .returning(|_| Ok(()));
    net.links.expect_delete_link().with(eq(6)).never();
    let mut reconciler = AddressReconciler::new(net, desired("lo"));
    let cleaned = block_on(reconciler.cleanup()).unwrap();
    assert_eq!(
        cleaned.iter().map(|c| c.owned.clone()).collect::<Vec<_>>(),
        vec![Owned::Link {
            interface: "proxy0".into()
        }]
    );
}

#[test]
fn cleanup_removes_the_desired_address_from_the_interface_only_if_it_sits_there() {
    let mut net = mocks_with_lo();
    // Unmarked, on another link: not ours to remove.
    net.addresses
        .expect_links_holding()
        .returning(|_| Ok(held(&[-7])));
    net.addresses
        .expect_marked_addresses()
        .returning(|| Ok(vec![]));
    net.links.expect_marked_links().returning(|| Ok(vec![]));
    net.addresses.expect_delete_address().never();
    let mut reconciler = AddressReconciler::new(net, desired("lo"));
    assert_eq!(block_on(reconciler.cleanup()).unwrap(), vec![]);
}

#[test]
fn cleanup_removes_the_desired_address_from_lo_and_keeps_lo() {
    let net = FakeNet::with_lo();
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    block_on(reconciler.sync()).unwrap();
    let cleaned = block_on(reconciler.cleanup()).unwrap();
    assert_eq!(net.addresses_of("lo"), vec![]);
    assert!(net.link("lo").is_some());
    assert_eq!(
        cleaned.iter().map(|c| c.owned.clone()).collect::<Vec<_>>(),
        vec![Owned::Address {
            address: "10.96.0.2/32".into(),
            interface: "lo".into()
        }]
    );
}

#[test]
fn cleanup_deletes_the_interface_it_created_and_nothing_else() {
    let net = FakeNet::with_lo();
    let eth = net.add_link("eth0", true);
    let mut reconciler = AddressReconciler::new(net.clone(), desired("proxy0"));
    block_on(reconciler.sync()).unwrap();
    block_on(reconciler.cleanup()).unwrap();
    assert_eq!(net.link("proxy0"), None);
    assert!(net.link("lo").is_some());
    assert_eq!(net.link("eth0").map(|l| l.index), Some(eth));
}

#[test]
fn cleanup_keeps_an_interface_that_existed_before() {
    let net = FakeNet::with_lo();
    net.add_link("proxy0", true);
    let mut reconciler = AddressReconciler::new(net.clone(), desired("proxy0"));
    block_on(reconciler.sync()).unwrap();
    block_on(reconciler.cleanup()).unwrap();
    assert!(net.link("proxy0").is_some());
    assert_eq!(net.addresses_of("proxy0"), vec![]);
}

#[test]
fn cleanup_twice_is_harmless() {
    let net = FakeNet::with_lo();
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    block_on(reconciler.sync()).unwrap();
    block_on(reconciler.cleanup()).unwrap();
    block_on(reconciler.cleanup()).unwrap();
    assert_eq!(net.addresses_of("lo"), vec![]);
}

#[test]
fn cleanup_without_the_interface_leaves_the_address_elsewhere_alone() {
    let net = FakeNet::with_lo();
    net.put_address(1, v4());
    let mut reconciler = AddressReconciler::new(net.clone(), desired("proxy0"));
    assert_eq!(block_on(reconciler.cleanup()).unwrap(), vec![]);
    assert_eq!(net.addresses_of("lo"), vec![v4()]);
}

fn ours() -> std::net::IpAddr {
    "10.96.0.2".parse().unwrap()
}

fn other() -> std::net::IpAddr {
    "10.0.0.9".parse().unwrap()
}

#[rstest]
#[case::our_address_removed(NetEvent::AddressRemoved { index: 1, address: ours() }, true)]
#[case::other_address_removed(NetEvent::AddressRemoved { index: 1, address: other() }, false)]
#[case::our_own_add(NetEvent::AddressAdded { index: 1, address: ours() }, false)]
#[case::our_address_added_elsewhere(NetEvent::AddressAdded { index: 7, address: ours() }, true)]
#[case::our_link_down(NetEvent::LinkChanged { index: 1, name: "lo".into(), up: false }, true)]
#[case::our_link_up(NetEvent::LinkChanged { index: 1, name: "lo".into(), up: true }, false)]
#[case::our_link_renamed(NetEvent::LinkChanged { index: 1, name: "lo2".into(), up: true }, true)]
#[case::new_link_with_our_name(NetEvent::LinkChanged { index: 9, name: "lo".into(), up: true }, true)]
#[case::other_link_down(NetEvent::LinkChanged { index: 7, name: "eth0".into(), up: false }, false)]
#[case::our_link_removed(NetEvent::LinkRemoved { index: 1, name: "lo".into() }, true)]
#[case::other_link_removed(NetEvent::LinkRemoved { index: 7, name: "eth0".into() }, false)]
#[case::events_lost(NetEvent::EventsLost, true)]
fn only_drift_of_our_address_or_interface_is_relevant(
    #[case] event: NetEvent,
    #[case] relevant: bool,
) {
    let mut reconciler = AddressReconciler::new(FakeNet::with_lo(), desired("lo"));
    block_on(reconciler.sync()).unwrap();
    assert_eq!(reconciler.is_relevant(&event), relevant);
}

fn ip(text: &str) -> ProxyAddress {
    text.parse().unwrap()
}

/// A sync and a stale collection, as the loop runs them at start and on the interval.
fn sync_and_collect<A: Network>(reconciler: &mut AddressReconciler<A>) -> Collected {
    block_on(reconciler.sync()).unwrap();
    block_on(reconciler.collect_stale()).unwrap()
}

#[test]
fn a_changed_ip_address_removes_the_earlier_marked_one_at_start() {
    let net = FakeNet::with_lo();
    net.put_marked_address(1, ip("10.96.0.9"));
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    let collected = sync_and_collect(&mut reconciler);
    assert_eq!(net.addresses_of("lo"), vec![ip("10.96.0.2")]);
    assert_eq!(
        collected.removed,
        vec![Owned::Address {
            address: "10.96.0.9/32".into(),
            interface: "lo".into()
        }]
    );
}

#[test]
fn unmarked_addresses_and_links_are_never_collected() {
    let net = FakeNet::with_lo();
    net.put_address(1, ip("10.0.0.9"));
    net.add_link("eth9", true);
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    for _ in 0..3 {
        assert_eq!(sync_and_collect(&mut reconciler), Collected::default());
    }
    assert!(net.addresses_of("lo").contains(&ip("10.0.0.9")));
    assert!(net.link("eth9").is_some());
}

#[test]
fn our_empty_link_is_deleted_when_the_interface_moves_to_lo() {
    let net = FakeNet::with_lo();
    net.add_marked_link("apiserver-proxy");
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    let collected = sync_and_collect(&mut reconciler);
    assert_eq!(net.link("apiserver-proxy"), None);
    assert_eq!(
        collected.removed,
        vec![Owned::Link {
            interface: "apiserver-proxy".into()
        }]
    );
}

#[test]
fn our_link_is_kept_while_it_holds_a_foreign_address() {
    let net = FakeNet::with_lo();
    let index = net.add_marked_link("apiserver-proxy");
    net.put_address(index, ip("192.0.2.1"));
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    sync_and_collect(&mut reconciler);
    sync_and_collect(&mut reconciler);
    assert!(net.link("apiserver-proxy").is_some());
}

#[test]
fn our_old_link_is_deleted_one_pass_after_its_stale_address() {
    let net = FakeNet::with_lo();
    let index = net.add_marked_link("apiserver-proxy");
    net.put_marked_address(index, ip("10.96.0.9"));
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    sync_and_collect(&mut reconciler);
    assert!(
        net.link("apiserver-proxy").is_some(),
        "it held an address when the pass began"
    );
    sync_and_collect(&mut reconciler);
    assert_eq!(net.link("apiserver-proxy"), None);
}

#[test]
fn an_address_that_comes_back_is_left_alone_for_ten_intervals_then_collected() {
    let net = FakeNet::with_lo();
    let other = ip("10.96.0.9");
    net.put_marked_address(1, other);
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    assert_eq!(sync_and_collect(&mut reconciler).removed.len(), 1);
    // Another instance keeps it: it is back before the next pass.
    net.put_marked_address(1, other);
    let collected = sync_and_collect(&mut reconciler);
    assert_eq!((collected.removed.len(), collected.yielded.len()), (0, 1));
    for _ in 0..9 {
        assert_eq!(sync_and_collect(&mut reconciler), Collected::default());
    }
    // That instance is gone now, without cleaning up: the tenth pass collects its address.
    assert_eq!(sync_and_collect(&mut reconciler).removed.len(), 1);
    assert_eq!(net.addresses_of("lo"), vec![ip("10.96.0.2")]);
}

#[test]
fn a_kernel_that_drops_the_mark_is_noticed_once_and_nothing_is_collected() {
    let net = FakeNet::with_lo();
    net.0.lock().unwrap().drops_address_protocol = true;
    net.put_address(1, ip("10.96.0.9"));
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    sync_and_collect(&mut reconciler);
    assert_eq!(reconciler.marks, MarkSupport::Dropped);
    sync_and_collect(&mut reconciler);
    assert_eq!(net.addresses_of("lo").len(), 2);
}

#[test]
fn a_kernel_that_keeps_the_mark_is_noticed() {
    let net = FakeNet::with_lo();
    let mut reconciler = AddressReconciler::new(net, desired("lo"));
    assert_eq!(reconciler.marks, MarkSupport::Unknown);
    sync_and_collect(&mut reconciler);
    assert_eq!(reconciler.marks, MarkSupport::Kept);
}

#[test]
fn cleanup_by_a_later_process_removes_the_marked_link_and_says_why() {
    let net = FakeNet::with_lo();
    block_on(AddressReconciler::new(net.clone(), desired("proxy0")).sync()).unwrap();
    let mut later = AddressReconciler::new(net.clone(), desired("proxy0"));
    let cleaned = block_on(later.cleanup()).unwrap();
    assert_eq!(net.link("proxy0"), None);
    let lines: Vec<String> = cleaned.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "removed address 10.96.0.2/32 on proxy0: --ip-address names it".to_owned(),
            "removed interface proxy0: its alias is \"apiserver-proxy\" and it holds no address"
                .to_owned(),
        ]
    );
}

#[test]
fn cleanup_removes_every_marked_address_but_keeps_a_link_holding_a_foreign_one() {
    let net = FakeNet::with_lo();
    let index = net.add_marked_link("proxy0");
    net.put_address(index, ip("192.0.2.1"));
    net.put_marked_address(1, ip("10.96.0.9"));
    let mut reconciler = AddressReconciler::new(net.clone(), desired("proxy0"));
    block_on(reconciler.sync()).unwrap();
    block_on(reconciler.cleanup()).unwrap();
    assert_eq!(net.addresses_of("proxy0"), vec![ip("192.0.2.1")]);
    assert_eq!(net.addresses_of("lo"), vec![]);
}

#[test]
fn both_families_are_kept_on_the_interface_and_reported_each() {
    let net = FakeNet::with_lo();
    let both = DesiredAddress {
        addresses: "10.96.0.2,fd00::2".parse().unwrap(),
        interface: "lo".parse().unwrap(),
    };
    let mut reconciler = AddressReconciler::new(net.clone(), both);
    block_on(reconciler.sync()).unwrap();
    assert_eq!(net.addresses_of("lo"), vec![ip("10.96.0.2"), ip("fd00::2")]);
    assert_eq!(
        reconciler.present(),
        &[(ip("10.96.0.2"), true), (ip("fd00::2"), true)]
    );
    net.remove_address("lo", ip("fd00::2"));
    let removed = NetEvent::AddressRemoved {
        index: 1,
        address: "fd00::2".parse().unwrap(),
    };
    assert!(reconciler.is_relevant(&removed));
    assert_eq!(block_on(reconciler.sync()).unwrap().len(), 1);
}

/// gardener/gardener#10949's migration, issue 20's walk-through: the Go original had put
/// 10.96.0.2 on lo without a mark; this sidecar takes over, then the address changes.
#[test]
fn the_go_originals_address_is_adopted_and_collected_after_an_address_change() {
    let net = FakeNet::with_lo();
    net.put_address(1, v4());
    let mut first = AddressReconciler::new(net.clone(), desired("lo"));
    let repairs = block_on(first.sync()).unwrap();
    assert_eq!(
        repairs,
        vec![Repair::AddressAdopted {
            address: "10.96.0.2/32".into(),
            interface: "lo".into(),
            marked: true,
        }]
    );
    assert!(net.is_marked("lo", v4()));
    assert_eq!(block_on(first.sync()).unwrap(), vec![], "adopted once");
    let changed = DesiredAddress {
        addresses: "10.96.0.3".parse().unwrap(),
        interface: "lo".parse().unwrap(),
    };
    let mut second = AddressReconciler::new(net.clone(), changed);
    sync_and_collect(&mut second);
    assert_eq!(net.addresses_of("lo"), vec![ip("10.96.0.3")]);
}

/// The Go original's global copy on a kernel before 5.18: the adoption finds out that the kernel
/// keeps no mark; the copy was as ours as it can be there, so nothing changed, nothing is said,
/// and it is not tried again.
#[test]
fn a_global_copy_on_a_kernel_that_keeps_no_mark_is_taken_as_it_is_and_not_tried_again() {
    let net = FakeNet::with_lo();
    net.0.lock().unwrap().drops_address_protocol = true;
    net.put_address(1, v4());
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    assert_eq!(block_on(reconciler.sync()).unwrap(), vec![]);
    assert_eq!(reconciler.marks, MarkSupport::Dropped);
    assert_eq!(block_on(reconciler.sync()).unwrap(), vec![]);
    assert_eq!(net.addresses_of("lo"), vec![v4()], "kept, unmarked");
}

/// Issue 25: Gardener's init container (a one-shot), then the daemon with the same flags, on a
/// kernel before 5.18. The daemon finds the one-shot's copy unmarked, as the kernel keeps it:
/// it reports no repair, no adoption and collects nothing.
#[test]
fn a_daemon_after_the_one_shot_on_a_kernel_that_keeps_no_mark_changes_and_reports_nothing() {
    let net = FakeNet::with_lo();
    net.0.lock().unwrap().drops_address_protocol = true;
    let mut one_shot = AddressReconciler::new(net.clone(), desired("proxy0"));
    assert_eq!(
        block_on(one_shot.sync()).unwrap().len(),
        3,
        "created, up, added"
    );
    block_on(one_shot.collect_stale()).unwrap();
    let mut daemon = AddressReconciler::new(net.clone(), desired("proxy0"));
    assert_eq!(block_on(daemon.sync()).unwrap(), vec![]);
    assert_eq!(
        block_on(daemon.collect_stale()).unwrap(),
        Collected::default()
    );
    assert_eq!(daemon.present(), &[(v4(), true)]);
    assert_eq!(block_on(daemon.sync()).unwrap(), vec![]);
    assert_eq!(net.addresses_of("proxy0"), vec![v4()]);
}

/// The Go original's older host-scope copy on a kernel before 5.18: given global scope (host
/// scope breaks Cilium's masquerading), and said so without claiming a mark.
#[test]
fn a_host_scope_copy_on_a_kernel_that_keeps_no_mark_gets_global_scope_and_no_claimed_mark() {
    let net = FakeNet::with_lo();
    net.0.lock().unwrap().drops_address_protocol = true;
    net.put_host_scope_address(1, v4());
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    let repairs = block_on(reconciler.sync()).unwrap();
    assert_eq!(
        repairs,
        vec![Repair::AddressAdopted {
            address: "10.96.0.2/32".into(),
            interface: "lo".into(),
            marked: false,
        }]
    );
    assert!(repairs[0]
        .to_string()
        .contains("gave it global scope; it stays unmarked"));
    let copy = net.copy_of("lo", v4()).unwrap();
    assert!(copy.global && !copy.marked, "{copy:?}");
    assert_eq!(block_on(reconciler.sync()).unwrap(), vec![]);
}

/// A process that died in the middle of an adoption leaves its bridge (the address at the next
/// shorter prefix, marked): collection and cleanup remove it, also beside a desired address,
/// and leave the desired copy.
#[test]
fn an_adoptions_leftover_bridge_is_collected_and_cleaned_up() {
    let net = FakeNet::with_lo();
    net.put_marked_address(1, v4());
    net.put_marked_bridge(1, v4());
    net.put_marked_bridge(1, ip("fd00::9"));
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    let collected = sync_and_collect(&mut reconciler);
    let removed: Vec<String> = collected.removed.iter().map(ToString::to_string).collect();
    assert_eq!(
        removed,
        vec!["address 10.96.0.2/31 on lo", "address fd00::9/127 on lo"]
    );
    assert_eq!(net.addresses_of("lo"), vec![v4()]);
    assert!(net.is_marked("lo", v4()));
    net.put_marked_bridge(1, v4());
    let cleaned = block_on(reconciler.cleanup()).unwrap();
    assert_eq!(net.addresses_of("lo"), vec![]);
    assert_eq!(cleaned.len(), 2, "{cleaned:?}");
}

fn removing(earlier: &str) -> AddressReconciler<FakeNet> {
    let net = FakeNet::with_lo();
    let earlier = earlier.split(',').map(ip).collect();
    AddressReconciler::new(net, desired("lo")).removing(earlier)
}

#[test]
fn an_unmarked_earlier_address_stays_unless_remove_address_names_it() {
    let net = FakeNet::with_lo();
    net.put_address(1, ip("10.96.0.9"));
    let mut unnamed = AddressReconciler::new(net.clone(), desired("lo"));
    for _ in 0..3 {
        sync_and_collect(&mut unnamed);
    }
    assert!(net.addresses_of("lo").contains(&ip("10.96.0.9")));
    let mut named =
        AddressReconciler::new(net.clone(), desired("lo")).removing(vec![ip("10.96.0.9")]);
    let repairs = block_on(named.sync()).unwrap();
    assert_eq!(
        repairs,
        vec![Repair::EarlierAddressRemoved {
            address: "10.96.0.9/32".into(),
            index: 1
        }]
    );
    assert_eq!(net.addresses_of("lo"), vec![v4()]);
}

#[test]
fn remove_address_removes_from_every_link_at_every_sync_whoever_put_it_back() {
    let mut reconciler = removing("10.96.0.9,fd00::9");
    let net = reconciler.net.clone();
    let eth = net.add_link("eth0", true);
    net.put_address(eth, ip("10.96.0.9"));
    net.put_marked_address(1, ip("fd00::9"));
    block_on(reconciler.sync()).unwrap();
    assert_eq!(net.addresses_of("eth0"), vec![]);
    assert_eq!(net.addresses_of("lo"), vec![v4()]);
    // The Go original, still running during the rollout, puts it back: the next sync removes it.
    net.put_address(1, ip("10.96.0.9"));
    assert_eq!(block_on(reconciler.sync()).unwrap().len(), 1);
    assert_eq!(net.addresses_of("lo"), vec![v4()]);
    assert_eq!(block_on(reconciler.sync()).unwrap(), vec![]);
}

#[test]
fn on_a_kernel_that_drops_the_mark_our_own_copy_is_not_adopted() {
    let net = FakeNet::with_lo();
    net.0.lock().unwrap().drops_address_protocol = true;
    let mut reconciler = AddressReconciler::new(net.clone(), desired("lo"));
    sync_and_collect(&mut reconciler);
    assert_eq!(block_on(reconciler.sync()).unwrap(), vec![]);
}
