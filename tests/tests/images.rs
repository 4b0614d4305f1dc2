//! Black-box tier: the real images, as `make docker-images` builds them from the Dockerfile (local
//! bookworm base, host-built static binaries: docs/images.md), run by the local Docker engine
//! through testcontainers (`blackbox_tests::docker`).
//!
//! The sidecar runs as in a Pod: a pause-like container from the base image owns a
//! network-less namespace, and the sidecar joins it with `NET_ADMIN` and `NET_RAW` only (not
//! privileged). The checks run `ip` and `iptables-save` in the pause container, since the
//! sidecar image has neither a shell nor `ip`; the namespace outlives the sidecar, so its cleanup
//! can be seen.

#[path = "webhook/harness.rs"]
#[allow(dead_code)] // Shared with webhook.rs, which uses all of it; these tests use a part.
mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use blackbox_tests::docker::{base_image, images_ready, sidecar_image, webhook_image, Container};
use blackbox_tests::eventually;
use harness::*;
use hyper::StatusCode;
use testcontainers::core::{AccessMode, Mount};
use testcontainers::ImageExt;

/// A field of the container's main process's /proc/PID/status, as the host sees it, with its
/// whitespace collapsed.
async fn proc_status(container: &Container, field: &str) -> String {
    let pid = container.pid().await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

// === the sidecar image ===

/// A Pod's network namespace: a container that only sleeps, with no network but `lo`, and
/// `sysctls` set in it.
async fn pod(sysctls: &[(&str, &str)]) -> Container {
    let request = base_image()
        .with_cap_add("NET_ADMIN")
        .with_cap_add("NET_RAW")
        .with_cmd(["sleep", "infinity"]);
    Container::start("pod", request, "none", sysctls).await
}

/// The sidecar image in `pod`'s namespace, with the rules and cleanup on, and `args`; confined
/// as deploy/ confines it: all capabilities dropped but NET_ADMIN and NET_RAW, a read-only root,
/// and a writable /run for the legacy backend's lock (the node's /run/xtables.lock there).
async fn sidecar(pod: &Container, args: &[&str]) -> Container {
    let flags = ["--setup-iptables", "--cleanup", "--v=2"];
    let request = sidecar_image()
        .with_readonly_rootfs(true)
        .with_mount(Mount::tmpfs_mount("/run"))
        .with_cap_drop("ALL")
        .with_cap_add("NET_ADMIN")
        .with_cap_add("NET_RAW")
        .with_cmd(flags.iter().chain(args).copied());
    Container::start("sidecar", request, &pod.network(), &[]).await
}

async fn on_lo(pod: &Container, shown: &str) -> bool {
    pod.sh(&["ip", "-o", "addr", "show", "dev", "lo"])
        .await
        .contains(shown)
}

/// Our rules as `table -A CHAIN ...` lines, sorted, as `save` (`iptables-nft-save`, ...) lists
/// them in `pod`'s namespace.
async fn our_rules(pod: &Container, save: &str) -> Vec<String> {
    let mut table = String::new();
    let mut rules: Vec<String> = pod
        .sh(&[save])
        .await
        .lines()
        .filter_map(|line| {
            if let Some(name) = line.strip_prefix('*') {
                table = name.to_owned();
            }
            line.contains("--comment apiserver-proxy")
                .then(|| format!("{table} {line}"))
        })
        .collect();
    rules.sort();
    rules
}

/// The five rules of the seed for `address` (with its prefix length) and port 443, sorted.
fn five_rules(address: &str) -> Vec<String> {
    let rule = |table: &str, chain: &str, side: &str, target: &str| {
        let (host, port) = match side {
            "d" => ("-d", "--dport"),
            _ => ("-s", "--sport"),
        };
        format!("{table} -A {chain} {host} {address} -p tcp -m tcp {port} 443 -m comment --comment apiserver-proxy -j {target}")
    };
    let mut rules = vec![
        rule("raw", "PREROUTING", "d", "NOTRACK"),
        rule("raw", "OUTPUT", "d", "NOTRACK"),
        rule("raw", "OUTPUT", "s", "NOTRACK"),
        rule("filter", "INPUT", "d", "ACCEPT"),
        rule("filter", "OUTPUT", "s", "ACCEPT"),
    ];
    rules.sort();
    rules
}

#[tokio::test]
async fn sidecar_image_keeps_the_address_and_the_five_rules_with_only_net_admin_and_net_raw() {
    if !images_ready(
        "sidecar_image_keeps_the_address_and_the_five_rules_with_only_net_admin_and_net_raw",
    )
    .await
    {
        return;
    }
    let pod = pod(&[]).await;
    let sidecar = sidecar(
        &pod,
        &[
            "--ip-address=10.96.0.2",
            "--metrics-bind-address=0.0.0.0:16910",
        ],
    )
    .await;
    eventually("the address is on lo", || {
        on_lo(&pod, "inet 10.96.0.2/32 scope global lo")
    })
    .await;
    eventually("the five rules are in place", || async {
        our_rules(&pod, "iptables-nft-save").await == five_rules("10.96.0.2/32")
    })
    .await;
    assert!(!sidecar.privileged().await);
    // CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13: nothing else is effective.
    assert_eq!(proc_status(&sidecar, "CapEff:").await, "0000000000003000");

    // The DaemonSet's probes, as the kubelet sends them.
    for path in ["/healthz", "/readyz"] {
        let request = format!(
            "exec 3<>/dev/tcp/127.0.0.1/16910 && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        );
        let answer = pod.sh(&["bash", "-c", &request]).await;
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "{path}: {answer}"
        );
    }

    pod.sh(&["ip", "addr", "del", "10.96.0.2/32", "dev", "lo"])
        .await;
    eventually("the deleted address is back", || {
        on_lo(&pod, "inet 10.96.0.2/32 scope global lo")
    })
    .await;
}

#[tokio::test]
async fn sidecar_image_leaves_nothing_of_ours_after_docker_stop() {
    if !images_ready("sidecar_image_leaves_nothing_of_ours_after_docker_stop").await {
        return;
    }
    let pod = pod(&[]).await;
    let sidecar = sidecar(&pod, &["--ip-address=10.96.0.2"]).await;
    eventually("the five rules are in place", || async {
        our_rules(&pod, "iptables-nft-save").await.len() == 5
    })
    .await;
    assert_eq!(sidecar.stop().await, 0);
    assert!(
        !on_lo(&pod, "10.96.0.2").await,
        "cleanup removed the address"
    );
    assert!(
        on_lo(&pod, "inet 127.0.0.1/8").await,
        "lo keeps its own address"
    );
    assert_eq!(
        our_rules(&pod, "iptables-nft-save").await,
        Vec::<String>::new()
    );
    assert_eq!(
        our_rules(&pod, "iptables-legacy-save").await,
        Vec::<String>::new()
    );
}

/// A stand-in proxy: listens on the proxy address and greets every client.
const LISTENER: &str = r#"
my $server = IO::Socket::INET->new(LocalAddr => "10.96.0.2", LocalPort => 443, Listen => 5, ReuseAddr => 1)
    or die "cannot listen on 10.96.0.2:443: $@";
print STDERR "listening\n";
while (my $client = $server->accept) { print $client "hello from the proxy\n"; close $client; }
"#;

#[tokio::test]
async fn a_proxy_in_the_same_namespace_serves_on_the_proxy_address() {
    if !images_ready("a_proxy_in_the_same_namespace_serves_on_the_proxy_address").await {
        return;
    }
    let pod = pod(&[]).await;
    let _sidecar = sidecar(&pod, &["--ip-address=10.96.0.2"]).await;
    eventually("the address is on lo", || on_lo(&pod, "10.96.0.2/32")).await;
    let request = base_image().with_cmd(["perl", "-MIO::Socket::INET", "-e", LISTENER]);
    let proxy = Container::start("proxy", request, &pod.network(), &[]).await;
    eventually("the proxy listens", || async {
        proxy.logs().contains("listening")
    })
    .await;
    let greeting = pod
        .sh(&["bash", "-c", "exec 3<>/dev/tcp/10.96.0.2/443 && cat <&3"])
        .await;
    assert_eq!(greeting, "hello from the proxy\n");
}

#[tokio::test]
async fn sidecar_image_keeps_an_ipv6_address_and_its_ip6tables_rules() {
    if !images_ready("sidecar_image_keeps_an_ipv6_address_and_its_ip6tables_rules").await {
        return;
    }
    let pod = pod(&[("net.ipv6.conf.lo.disable_ipv6", "0")]).await;
    let _sidecar = sidecar(&pod, &["--ip-address=fd00::2"]).await;
    eventually("the address is on lo", || {
        on_lo(&pod, "inet6 fd00::2/128 scope global")
    })
    .await;
    eventually("the five ip6tables rules are in place", || async {
        our_rules(&pod, "ip6tables-nft-save").await == five_rules("fd00::2/128")
    })
    .await;
    assert_eq!(
        our_rules(&pod, "iptables-nft-save").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn sidecar_image_writes_through_the_legacy_backend_when_the_node_uses_it() {
    if !images_ready("sidecar_image_writes_through_the_legacy_backend_when_the_node_uses_it").await
    {
        return;
    }
    let pod = pod(&[]).await;
    // The kubelet's hint that the node's iptables is legacy.
    pod.sh(&[
        "iptables-legacy",
        "-t",
        "mangle",
        "-N",
        "KUBE-IPTABLES-HINT",
    ])
    .await;
    let _sidecar = sidecar(&pod, &["--ip-address=10.96.0.2"]).await;
    eventually("the five legacy rules are in place", || async {
        our_rules(&pod, "iptables-legacy-save").await == five_rules("10.96.0.2/32")
    })
    .await;
    assert_eq!(
        our_rules(&pod, "iptables-nft-save").await,
        Vec::<String>::new()
    );
}

// === the webhook image ===

/// The webhook image, as the image defines its user, with `cert_dir` mounted read-only, a
/// read-only root and no capabilities, on 127.0.0.1:`port` of the host's loopback (this engine
/// has no bridge network to publish a port from).
async fn webhook(cert_dir: &Path, port: u16) -> Container {
    let certs = Mount::bind_mount(cert_dir.display().to_string(), "/certs")
        .with_access_mode(AccessMode::ReadOnly);
    let request = webhook_image()
        .with_readonly_rootfs(true)
        .with_cap_drop("ALL")
        .with_mount(certs)
        .with_cmd([
            "--apiserver-fqdn=foo.bar.".to_owned(),
            "--cert-dir=/certs".to_owned(),
            "--host=127.0.0.1".to_owned(),
            format!("--port={port}"),
        ]);
    let webhook = Container::start("webhook", request, "host", &[]).await;
    eventually("the webhook serves", || async {
        webhook.logs().contains("serving https://")
    })
    .await;
    webhook
}

#[tokio::test]
async fn webhook_image_runs_as_non_root_and_answers_the_seed_sample_with_the_seeds_patch() {
    if !images_ready(
        "webhook_image_runs_as_non_root_and_answers_the_seed_sample_with_the_seeds_patch",
    )
    .await
    {
        return;
    }
    let dir = TempDir::new("image-seed");
    put_pair("server-ecdsa", dir.path());
    let port = free_port();
    let webhook = webhook(dir.path(), port).await;
    assert_eq!(
        proc_status(&webhook, "Uid:").await,
        "65532 65532 65532 65532"
    );
    assert_eq!(
        proc_status(&webhook, "Gid:").await,
        "65532 65532 65532 65532"
    );
    let answer = Client::new(port).post(sample()).await.expect("an answer");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["response"]["allowed"], true);
    assert_eq!(answer.patch(), seed_patch());
    // The Deployment's probes: HTTPS on the serving port.
    let mut connection = Client::new(port).connect().await.expect("a connection");
    for path in ["/healthz", "/readyz"] {
        let (status, body) = connection.get(path).await.expect("an answer");
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

#[tokio::test]
async fn webhook_image_serves_a_rotated_secret_volume_certificate() {
    if !images_ready("webhook_image_serves_a_rotated_secret_volume_certificate").await {
        return;
    }
    let dir = TempDir::new("image-rotation");
    install_first_pair(dir.path(), Layout::SecretVolume);
    let port = free_port();
    let _webhook = webhook(dir.path(), port).await;
    let client = Client::new(port);
    let first = client.connect().await.expect("a connection").server_cert;
    assert_eq!(first, cert_der(&testdata("certs/server-ecdsa/tls.crt")));

    let new_pair = TempDir::new("image-rotation-new");
    issue_server_pair(new_pair.path(), "rsa-pkcs8");
    // A Secret volume's files are world-readable (defaultMode 0644); openssl writes keys 0600.
    std::fs::set_permissions(
        new_pair.path().join("tls.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    rotate_to(new_pair.path(), dir.path(), Layout::SecretVolume);
    let rotated = cert_der(&new_pair.path().join("tls.crt"));
    eventually("the rotated certificate is served", || async {
        client
            .connect()
            .await
            .is_ok_and(|connection| connection.server_cert == rotated)
    })
    .await;
}
