//! `--setup-iptables` beside kube-proxy in iptables mode (issue 24 d), in network namespaces: a
//! "node" (the test's own namespace) with the built sidecar, a stand-in proxy on 10.96.0.2:443
//! and a DNAT rule as kube-proxy writes it, from a Service's cluster IP (10.32.0.1:443) to the
//! address; and a "Pod" namespace routed to the node over a veth pair. It shows the mechanism
//! docs/iptables.md describes: the Pod's SYN to the cluster IP is tracked and DNATed, but the
//! proxy's reply is NOTRACKed by the sidecar's `-s 10.96.0.2 --sport 443` rule, so it is never
//! translated back and the Pod's connection to the cluster IP gets no answer. To the address
//! itself the Pod connects either way.

use blackbox_tests::apiserver::StandInProxy;
use blackbox_tests::netns::{in_netns, sh, try_sh};
use blackbox_tests::sidecar::{
    has_iptables, log_so_far, on_lo, our_rules, start, stderr, terminate,
};
use blackbox_tests::wait_until;

const CLUSTER_IP: &str = "10.32.0.1";
const NODE_SIDE: &str = "10.244.0.1";
const POD_SIDE: &str = "10.244.0.2";
const WARNING: &str = "kube-proxy runs in iptables mode here";

/// The "Pod": a namespace of its own, its veth's other end in the node's namespace, its default
/// route through the node. Deleted when dropped.
struct Pod {
    name: String,
}

impl Pod {
    fn create() -> Self {
        let name = format!("apc-kube-proxy-pod-{}", std::process::id());
        sh(&format!("ip netns add {name}"));
        let pod = Self { name };
        sh(&format!(
            "ip link add veth-node type veth peer name veth-pod netns {}",
            pod.name
        ));
        sh(&format!("ip addr add {NODE_SIDE}/24 dev veth-node"));
        sh("ip link set veth-node up");
        pod.run(&format!("ip addr add {POD_SIDE}/24 dev veth-pod"));
        pod.run("ip link set veth-pod up");
        pod.run("ip link set lo up");
        pod.run(&format!("ip route add default via {NODE_SIDE}"));
        pod
    }

    fn run(&self, command: &str) -> String {
        sh(&format!("ip netns exec {} {command}", self.name))
    }

    /// Whether a TCP connection from the Pod to `ip`:443 is answered within 2 s.
    fn connects(&self, ip: &str) -> bool {
        try_sh(&format!(
            "ip netns exec {} timeout 2 bash -c 'exec 3<>/dev/tcp/{ip}/443'",
            self.name
        ))
        .0
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = try_sh(&format!("ip netns del {}", self.name));
    }
}

/// kube-proxy's chains for one Service in iptables mode, cut to what the path needs:
/// PREROUTING (Pods) and OUTPUT (host network) jump to KUBE-SERVICES, which sends the cluster IP
/// to the Service's chain, which DNATs to its one endpoint, the proxy's address.
fn kube_proxy_iptables_mode() {
    for command in [
        "iptables -t nat -N KUBE-SERVICES",
        "iptables -t nat -N KUBE-SVC-NPX46M4PTMTKRN6Y",
        "iptables -t nat -N KUBE-SEP-APISERVERPROXY",
        "iptables -t nat -A PREROUTING -j KUBE-SERVICES",
        "iptables -t nat -A OUTPUT -j KUBE-SERVICES",
        &format!("iptables -t nat -A KUBE-SERVICES -d {CLUSTER_IP}/32 -p tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y"),
        "iptables -t nat -A KUBE-SVC-NPX46M4PTMTKRN6Y -j KUBE-SEP-APISERVERPROXY",
        "iptables -t nat -A KUBE-SEP-APISERVERPROXY -p tcp -j DNAT --to-destination 10.96.0.2:443",
    ] {
        sh(command);
    }
}

#[test]
fn under_kube_proxys_iptables_mode_the_rules_leave_cluster_ip_connections_unanswered_and_a_warning()
{
    in_netns("kube_proxy_iptables_mode", || async {
        if !has_iptables("kube_proxy_iptables_mode") {
            return;
        }
        let pod = Pod::create();
        StandInProxy::start();

        // Without kube-proxy's chains, the rules are kept without a warning.
        let sidecar = start(&["--ip-address=10.96.0.2", "--setup-iptables", "--cleanup"]);
        wait_until("the five rules", || our_rules("iptables-save") == 5);
        let log = stderr(&terminate(sidecar));
        assert!(!log.contains(WARNING), "{log}");

        kube_proxy_iptables_mode();

        // Without the rules: both paths answer.
        let sidecar = start(&["--ip-address=10.96.0.2", "--cleanup"]);
        wait_until("the address", || on_lo("10.96.0.2"));
        assert!(pod.connects("10.96.0.2"), "to the address");
        assert!(pod.connects(CLUSTER_IP), "through the cluster IP, DNATed");
        let log = stderr(&terminate(sidecar));
        assert!(!log.contains(WARNING), "no rules, no warning: {log}");

        // With them: the address still answers, the cluster IP does not, and the start said so.
        let sidecar = start(&["--ip-address=10.96.0.2", "--setup-iptables", "--cleanup"]);
        wait_until("the five rules", || our_rules("iptables-save") == 5);
        wait_until("the address", || on_lo("10.96.0.2"));
        assert!(pod.connects("10.96.0.2"), "to the address");
        assert!(
            !pod.connects(CLUSTER_IP),
            "the reply skipped conntrack, so the DNAT was not undone"
        );
        let warned = log_so_far(&sidecar);
        assert_eq!(
            warned.lines().filter(|line| line.contains(WARNING)).count(),
            1,
            "{warned}"
        );
        assert!(warned.contains("drop --setup-iptables"), "{warned}");
        terminate(sidecar);
    });
}
