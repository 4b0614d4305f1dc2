//! Kernel tier: the rtnetlink adapter and the address reconciler against the real kernel, each
//! test in a fresh network namespace.

mod support;

use std::time::Duration;

use adapters::clock::TokioClock;
use adapters::netlink::events::network_events;
use adapters::netlink::Netlink;
use domain::ports::Addresses;
use domain::sidecar::address::AddressReconciler;
use domain::sidecar::desired::DesiredAddress;
use domain::sidecar::model::{Holder, MarkedAddress, NetError, NetEvent, ADDRESS_PROTOCOL};
use domain::sidecar::reconciler::{NoRules, NodeReconciler};
use domain::sidecar::run::{run, Schedule};
use futures::StreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use support::{eventually, in_netns, sh, try_sh};

fn desired(address: &str, interface: &str) -> DesiredAddress {
    DesiredAddress {
        addresses: address.parse().expect("a valid address"),
        interface: interface.parse().expect("a valid interface name"),
    }
}

fn reconciler(address: &str, interface: &str) -> AddressReconciler<Netlink> {
    AddressReconciler::new(
        Netlink::connect().expect("a netlink socket"),
        desired(address, interface),
    )
}

#[test]
fn ipv4_address_is_added_to_lo_with_global_scope() {
    in_netns("ipv4_address_is_added_to_lo_with_global_scope", || async {
        reconciler("10.96.0.2", "lo").sync().await.unwrap();
        let shown = sh("ip -d addr show dev lo");
        assert!(
            shown.contains("inet 10.96.0.2/32 scope global lo"),
            "{shown}"
        );
    });
}

#[test]
fn ipv6_address_is_added_to_lo_with_global_scope() {
    in_netns("ipv6_address_is_added_to_lo_with_global_scope", || async {
        sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
        reconciler("fd00::2", "lo").sync().await.unwrap();
        let shown = sh("ip -d addr show dev lo");
        assert!(shown.contains("inet6 fd00::2/128 scope global"), "{shown}");
    });
}

#[test]
fn adding_twice_is_not_an_error_and_keeps_one_copy() {
    in_netns(
        "adding_twice_is_not_an_error_and_keeps_one_copy",
        || async {
            let net = Netlink::connect().unwrap();
            let address = "10.96.0.2".parse().unwrap();
            net.add_address(1, &address).await.unwrap();
            net.add_address(1, &address).await.unwrap();
            assert_eq!(sh("ip addr show dev lo").matches("10.96.0.2/32").count(), 1);
            assert_eq!(
                net.links_holding(&address).await.unwrap(),
                vec![Holder {
                    index: 1,
                    as_ours: true,
                    global: true,
                }]
            );
        },
    );
}

#[test]
fn missing_interface_is_created_or_the_kernel_refusal_is_explained() {
    in_netns(
        "missing_interface_is_created_or_the_kernel_refusal_is_explained",
        || async {
            // Real nodes have the dummy link type; the CI kernel has not (CONFIG_DUMMY unset).
            let (has_dummy, _, _) = try_sh("ip link add probe0 type dummy && ip link del probe0");
            let result = reconciler("10.96.0.2", "proxy0").sync().await;
            if has_dummy {
                result.unwrap();
                let shown = sh("ip -d addr show dev proxy0");
                assert!(
                    shown.contains("dummy")
                        && shown.contains("UP")
                        && shown.contains("10.96.0.2/32")
                        && shown.contains("alias apiserver-proxy"),
                    "{shown}"
                );
            } else {
                let error = result.unwrap_err();
                assert_eq!(
                    error.cause,
                    NetError::LinkTypeUnsupported {
                        kind: "dummy".into(),
                        name: "proxy0".into()
                    }
                );
                let message = error.to_string();
                assert!(
                    message.contains("proxy0") && message.contains("--interface"),
                    "{message}"
                );
            }
        },
    );
}

#[test]
fn address_is_moved_from_a_veth_to_lo() {
    in_netns("address_is_moved_from_a_veth_to_lo", || async {
        sh("ip link add v0 type veth peer name v1 && ip link set v0 up && ip addr add 10.96.0.2/32 dev v0");
        reconciler("10.96.0.2", "lo").sync().await.unwrap();
        assert!(sh("ip addr show dev lo").contains("10.96.0.2/32"));
        assert!(!sh("ip addr show dev v0").contains("10.96.0.2"));
    });
}

#[test]
fn a_link_that_is_down_is_set_up() {
    in_netns("a_link_that_is_down_is_set_up", || async {
        sh("ip link add v0 type veth peer name v1");
        reconciler("10.96.0.2", "v0").sync().await.unwrap();
        assert!(
            sh("ip link show dev v0").contains(",UP"),
            "{}",
            sh("ip link show dev v0")
        );
    });
}

#[test]
fn cleanup_leaves_lo_and_foreign_addresses_alone_and_runs_twice() {
    in_netns(
        "cleanup_leaves_lo_and_foreign_addresses_alone_and_runs_twice",
        || async {
            sh("ip addr add 10.0.0.9/32 dev lo");
            let mut reconciler = reconciler("10.96.0.2", "lo");
            reconciler.sync().await.unwrap();
            reconciler.cleanup().await.unwrap();
            reconciler.cleanup().await.unwrap();
            let shown = sh("ip addr show dev lo");
            assert!(
                shown.contains("10.0.0.9/32") && !shown.contains("10.96.0.2"),
                "{shown}"
            );
            assert!(shown.contains("127.0.0.1/8"), "{shown}");
        },
    );
}

#[test]
fn events_report_removal_of_the_address() {
    in_netns("events_report_removal_of_the_address", || async {
        sh("ip addr add 10.96.0.2/32 dev lo");
        let mut events = Box::pin(network_events().unwrap());
        sh("ip addr del 10.96.0.2/32 dev lo");
        let removed = NetEvent::AddressRemoved {
            index: 1,
            address: "10.96.0.2".parse().unwrap(),
        };
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
            if event.expect("an event within 5 s") == Some(removed.clone()) {
                break;
            }
        }
    });
}

#[test]
fn the_loop_repairs_deletion_and_link_down_without_waiting_for_the_interval() {
    in_netns(
        "the_loop_repairs_deletion_and_link_down_without_waiting_for_the_interval",
        || async {
            // No rules in this tier: the rule reconciler is off.
            let mut sidecar: NodeReconciler<Netlink, NoRules> =
                NodeReconciler::new(reconciler("10.96.0.2", "lo"), None);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let events = network_events().unwrap();
            let test = async {
                let on_lo = || async { try_sh("ip addr show dev lo").1.contains("10.96.0.2/32") };
                eventually("the start sync added the address", on_lo).await;
                for _ in 0..5 {
                    sh("ip addr del 10.96.0.2/32 dev lo");
                    eventually("the address is back", on_lo).await;
                }
                sh("ip link set lo down");
                eventually("lo is up again", || async {
                    try_sh("ip link show dev lo").1.contains(",UP")
                })
                .await;
                stop.send(()).unwrap();
            };
            // An hour-long interval: only events can explain a repair within the test's bounds.
            let schedule = Schedule::new(Duration::from_secs(3600));
            let shutdown = async {
                let _ = stopped.await;
            };
            let clock = TokioClock::default();
            let looping = run(&mut sidecar, &clock, &(), schedule, events, shutdown);
            tokio::join!(looping, test);
        },
    );
}

fn marked(addresses: &[MarkedAddress]) -> Vec<String> {
    addresses
        .iter()
        .map(|m| format!("{} on {}", m.shown(), m.interface))
        .collect()
}

#[test]
fn added_addresses_carry_our_protocol_and_ipv6_is_usable_at_once() {
    in_netns(
        "added_addresses_carry_our_protocol_and_ipv6_is_usable_at_once",
        || async {
            sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
            sh("ip addr add 10.0.0.9/32 dev lo");
            let mut reconciler = reconciler("10.96.0.2,fd00::2", "lo");
            reconciler.sync().await.unwrap();
            let net = Netlink::connect().unwrap();
            // This kernel has IFA_PROTO (5.18+): both come back marked, the foreign one not.
            assert_eq!(
                marked(&net.marked_addresses().await.unwrap()),
                vec!["10.96.0.2/32 on lo", "fd00::2/128 on lo"]
            );
            let shown = sh("ip -6 addr show dev lo");
            assert!(
                shown.contains("fd00::2/128") && !shown.contains("tentative"),
                "{shown}"
            );
        },
    );
}

#[test]
fn a_changed_address_is_collected_and_unmarked_ones_stay() {
    in_netns(
        "a_changed_address_is_collected_and_unmarked_ones_stay",
        || async {
            sh("ip addr add 10.0.0.9/32 dev lo");
            sh("ip link add v0 type veth peer name v1 && ip link set v0 up");
            // An earlier run's address, on lo and on another link.
            reconciler("10.96.0.9", "lo").sync().await.unwrap();
            let net = Netlink::connect().unwrap();
            net.add_address(2, &"10.96.0.8".parse().unwrap())
                .await
                .unwrap();
            let mut reconciler = reconciler("10.96.0.2", "lo");
            reconciler.sync().await.unwrap();
            let collected = reconciler.collect_stale().await.unwrap();
            assert_eq!(collected.removed.len(), 2, "{collected:?}");
            let shown = sh("ip addr show");
            assert!(
                shown.contains("10.96.0.2/32")
                    && shown.contains("10.0.0.9/32")
                    && !shown.contains("10.96.0.9")
                    && !shown.contains("10.96.0.8"),
                "{shown}"
            );
        },
    );
}

#[test]
fn only_empty_links_with_our_alias_are_collected() {
    in_netns("only_empty_links_with_our_alias_are_collected", || async {
        // veth stands in for the dummy this kernel lacks; the alias is what makes a link ours.
        sh("ip link add ours type veth peer name ours-peer && ip link set ours alias apiserver-proxy");
        sh("ip link set ours up && ip link set ours-peer up");
        sh("ip link add busy type veth peer name busy-peer && ip link set busy alias apiserver-proxy");
        sh("ip addr add 192.0.2.1/32 dev busy");
        sh("ip link add theirs type veth peer name theirs-peer");
        // The kernel's own IPv6 link-local address does not count as holding an address.
        eventually("ours has its link-local address", || async {
            try_sh("ip -6 addr show dev ours").1.contains("fe80::")
        })
        .await;
        let mut reconciler = reconciler("10.96.0.2", "lo");
        reconciler.sync().await.unwrap();
        let collected = reconciler.collect_stale().await.unwrap();
        assert_eq!(collected.removed.len(), 1, "{collected:?}");
        let (gone, _, _) = try_sh("ip link show dev ours");
        assert!(!gone, "ours should be deleted");
        assert!(sh("ip link show dev busy").contains("alias apiserver-proxy"));
        sh("ip link show dev theirs");
    });
}

#[test]
fn cleanup_removes_the_marked_link_a_previous_process_used_and_says_why() {
    in_netns(
        "cleanup_removes_the_marked_link_a_previous_process_used_and_says_why",
        || async {
            sh("ip link add proxy0 type veth peer name proxy0-peer && ip link set proxy0 alias apiserver-proxy");
            reconciler("10.96.0.2", "proxy0").sync().await.unwrap();
            sh("ip link add plain type veth peer name plain-peer");
            let cleaned = reconciler("10.96.0.2", "proxy0").cleanup().await.unwrap();
            let lines: Vec<String> = cleaned.iter().map(ToString::to_string).collect();
            assert_eq!(
                lines,
                vec![
                    "removed address 10.96.0.2/32 on proxy0: --ip-address names it",
                    "removed interface proxy0: its alias is \"apiserver-proxy\" and it holds no address",
                ]
            );
            assert!(!try_sh("ip link show dev proxy0").0);
            sh("ip link show dev plain");
            assert!(sh("ip addr show dev lo").contains("127.0.0.1/8"));
        },
    );
}

/// The address events of `address` on link 1 (lo), `+` for a new or replaced copy, `-` for a
/// removed one, read until the sentinel 10.0.0.77 appears (added once the action is over, so
/// every event of the action has been read by then).
async fn events_on_lo(
    events: &mut (impl futures::Stream<Item = NetEvent> + Unpin),
    address: &str,
) -> String {
    sh("ip addr add 10.0.0.77/32 dev lo");
    let address: std::net::IpAddr = address.parse().expect("an address");
    let sentinel: std::net::IpAddr = "10.0.0.77".parse().expect("an address");
    let mut seen = String::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("an event within 5 s")
            .expect("the stream goes on");
        match event {
            NetEvent::AddressAdded {
                index: 1,
                address: a,
            } if a == sentinel => return seen,
            NetEvent::AddressAdded {
                index: 1,
                address: a,
            } if a == address => seen.push('+'),
            NetEvent::AddressRemoved {
                index: 1,
                address: a,
            } if a == address => seen.push('-'),
            _ => {}
        }
    }
}

/// The Go original's request: `ip addr add 10.96.0.2/32 dev lo scope global` (iproute2, like
/// the original's netlink library, sends no IFA_PROTO).
#[test]
fn the_go_originals_address_is_adopted_in_place_and_marked() {
    in_netns(
        "the_go_originals_address_is_adopted_in_place_and_marked",
        || async {
            sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
            sh("ip addr add 10.96.0.2/32 dev lo scope global && ip addr add fd00::2/128 dev lo nodad");
            let net = Netlink::connect().unwrap();
            assert_eq!(
                marked(&net.marked_addresses().await.unwrap()),
                Vec::<String>::new()
            );
            let mut events = Box::pin(network_events().unwrap());
            let repairs = reconciler("10.96.0.2,fd00::2", "lo").sync().await.unwrap();
            assert_eq!(repairs.len(), 2, "{repairs:?}");
            assert_eq!(
                marked(&net.marked_addresses().await.unwrap()),
                vec!["10.96.0.2/32 on lo", "fd00::2/128 on lo"]
            );
            // This kernel (6.3 or later) updates the protocol in place: one notification of the
            // replaced copy, never a removal; IPv6 (from 5.18) likewise.
            assert_eq!(events_on_lo(&mut events, "10.96.0.2").await, "+");
            sh("ip addr del 10.0.0.77/32 dev lo");
            let mut events = Box::pin(network_events().unwrap());
            sh("ip addr del fd00::2/128 dev lo && ip addr add fd00::2/128 dev lo nodad");
            assert_eq!(
                reconciler("fd00::2", "lo").sync().await.unwrap().len(),
                1,
                "adopted again"
            );
            assert_eq!(events_on_lo(&mut events, "fd00::2").await, "-++");
            let shown = sh("ip addr show dev lo");
            assert!(
                shown.contains("inet 10.96.0.2/32 scope global lo"),
                "{shown}"
            );
        },
    );
}

/// Older Go versions added the address with host scope, which no kernel changes on replace.
#[test]
fn a_host_scope_address_is_adopted_through_a_bridge_never_leaving_lo_without_it() {
    in_netns(
        "a_host_scope_address_is_adopted_through_a_bridge_never_leaving_lo_without_it",
        || async {
            sh("ip addr add 10.96.0.2/32 dev lo scope host");
            let mut events = Box::pin(network_events().unwrap());
            reconciler("10.96.0.2", "lo").sync().await.unwrap();
            let net = Netlink::connect().unwrap();
            assert_eq!(
                marked(&net.marked_addresses().await.unwrap()),
                vec!["10.96.0.2/32 on lo"]
            );
            // The replace (notified, but the scope stays host), the bridge in, the copy out, ours
            // in, the bridge out: one copy or two throughout, never none.
            assert_eq!(events_on_lo(&mut events, "10.96.0.2").await, "++-+-");
            let shown = sh("ip addr show dev lo");
            assert!(
                shown.contains("inet 10.96.0.2/32 scope global lo"),
                "{shown}"
            );
            assert!(
                !shown.contains("10.96.0.2/31"),
                "the bridge is gone: {shown}"
            );
        },
    );
}

#[test]
fn an_earlier_address_named_by_remove_address_goes_from_every_link() {
    in_netns(
        "an_earlier_address_named_by_remove_address_goes_from_every_link",
        || async {
            sh("ip link add v0 type veth peer name v1 && ip link set v0 up");
            sh("ip addr add 10.96.0.2/32 dev lo scope global && ip addr add 10.96.0.2/32 dev v0");
            let mut reconciler =
                reconciler("10.96.0.3", "lo").removing(vec!["10.96.0.2".parse().unwrap()]);
            reconciler.sync().await.unwrap();
            let shown = sh("ip addr show");
            assert!(
                shown.contains("10.96.0.3/32") && !shown.contains("10.96.0.2"),
                "{shown}"
            );
        },
    );
}

/// Issue 20's walk-through: the Go original's 10.96.0.2 on lo, this sidecar with the same
/// address, then with 10.96.0.3: the adopted 10.96.0.2 is collected like any address of ours.
#[test]
fn the_go_originals_address_once_adopted_is_collected_after_an_address_change() {
    in_netns(
        "the_go_originals_address_once_adopted_is_collected_after_an_address_change",
        || async {
            sh("ip addr add 10.96.0.2/32 dev lo scope global");
            reconciler("10.96.0.2", "lo").sync().await.unwrap();
            let mut changed = reconciler("10.96.0.3", "lo");
            changed.sync().await.unwrap();
            let collected = changed.collect_stale().await.unwrap();
            assert_eq!(collected.removed.len(), 1, "{collected:?}");
            let shown = sh("ip addr show dev lo");
            assert!(
                shown.contains("10.96.0.3/32") && !shown.contains("10.96.0.2"),
                "{shown}"
            );
        },
    );
}

/// Why the adoption never takes a bridge for IPv6: a link holds one copy of an IPv6 address
/// whatever the prefix, so the bridge would be refused and removing "the copy" would leave the
/// link without the address. (IPv4 keeps both.)
#[test]
fn the_kernel_refuses_a_second_copy_of_an_ipv6_address_at_another_prefix() {
    in_netns(
        "the_kernel_refuses_a_second_copy_of_an_ipv6_address_at_another_prefix",
        || async {
            sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
            sh("ip addr add fd00::2/128 dev lo nodad && ip addr add 10.96.0.2/32 dev lo");
            let (added, _, stderr) = try_sh("ip addr add fd00::2/127 dev lo nodad noprefixroute");
            assert!(!added, "a second IPv6 copy was accepted");
            assert!(stderr.contains("already assigned"), "{stderr}");
            sh("ip addr add 10.96.0.2/31 dev lo noprefixroute");
        },
    );
}

/// Adds `ip/prefix_len` to lo with our mark, as an adoption's bridge that a process which died
/// in the middle leaves (bookworm's iproute2 cannot set an address's protocol).
async fn add_marked_to_lo(ip: &str, prefix_len: u8) {
    let (connection, handle, _) = rtnetlink::new_connection().expect("a netlink socket");
    tokio::spawn(connection);
    let mut request = handle
        .address()
        .add(1, ip.parse().expect("an address"), prefix_len);
    request
        .message_mut()
        .attributes
        .push(AddressAttribute::Protocol(ADDRESS_PROTOCOL.into()));
    request
        .execute()
        .await
        .expect("the marked address is added");
}

fn sorted_marked(addresses: &[MarkedAddress]) -> Vec<String> {
    let mut shown = marked(addresses);
    shown.sort();
    shown
}

/// A crash in the middle of an adoption leaves the bridge, marked: a later sidecar's collection
/// removes it (also beside a desired address, whose own copy stays), and so does `--cleanup`.
#[test]
fn an_adoptions_leftover_bridge_is_collected_and_cleaned_up() {
    in_netns(
        "an_adoptions_leftover_bridge_is_collected_and_cleaned_up",
        || async {
            sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=0");
            let mut reconciler = reconciler("10.96.0.2", "lo");
            reconciler.sync().await.unwrap();
            add_marked_to_lo("10.96.0.2", 31).await;
            add_marked_to_lo("fd00::9", 127).await;
            let net = Netlink::connect().unwrap();
            assert_eq!(
                sorted_marked(&net.marked_addresses().await.unwrap()),
                vec![
                    "10.96.0.2/31 on lo",
                    "10.96.0.2/32 on lo",
                    "fd00::9/127 on lo"
                ]
            );
            let collected = reconciler.collect_stale().await.unwrap();
            assert_eq!(collected.removed.len(), 2, "{collected:?}");
            assert_eq!(
                marked(&net.marked_addresses().await.unwrap()),
                vec!["10.96.0.2/32 on lo"]
            );
            add_marked_to_lo("10.96.0.2", 31).await;
            reconciler.cleanup().await.unwrap();
            assert_eq!(
                marked(&net.marked_addresses().await.unwrap()),
                Vec::<String>::new()
            );
        },
    );
}
