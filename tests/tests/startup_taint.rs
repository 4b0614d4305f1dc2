//! Black-box tier of `--startup-taint`: the built sidecar in a network namespace of its own,
//! `--kubeconfig` pointing at a fake API server on loopback there (`blackbox_tests::apiserver`),
//! and, unless a test is about its absence, a stand-in proxy listening on 10.96.0.2:443. No
//! cluster: the cluster tier runs the same feature against a real API server.

// The webhook's harness, shared with tests/webhook.rs: its binary is the TLS server here.
#[allow(dead_code)]
#[path = "webhook/harness.rs"]
mod harness;

use std::time::Duration;

use blackbox_tests::apiserver::{node, Answer, FakeApiServer, StandInProxy, PROXY_ADDRESS};
use blackbox_tests::netns::in_netns;
use blackbox_tests::sidecar::{
    finish, log_so_far, on_lo, sidecar, spawn, start, stderr, terminate,
};
use blackbox_tests::{wait_until, wait_until_within};
use serde_json::{json, Value};

const KEY: &str = "apiserver-proxy.networking.gardener.cloud/not-ready";

/// Another controller's taints around ours, one of them with a value and a time.
fn taints() -> Value {
    json!([
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        {"key": KEY, "effect": "NoSchedule"},
        {"key": "example.com/dedicated", "value": "db", "effect": "NoExecute", "timeAdded": "2026-12-03T15:00:00Z"},
    ])
}

fn others() -> Value {
    json!([
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        {"key": "example.com/dedicated", "value": "db", "effect": "NoExecute", "timeAdded": "2026-12-03T15:00:00Z"},
    ])
}

/// `--kubeconfig=` a file pointing at `api`, in a directory of this test's own.
fn kubeconfig_flag(api: &FakeApiServer, test: &str) -> String {
    let dir = std::env::temp_dir().join(format!("taint-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    format!("--kubeconfig={}", api.kubeconfig(&dir).display())
}

fn args<'a>(kubeconfig: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--ip-address=10.96.0.2",
        "--sync-interval=1m0s",
        "--startup-taint=apiserver-proxy.networking.gardener.cloud/not-ready",
        "--node-name=node-2",
        kubeconfig,
    ];
    args.extend_from_slice(extra);
    args
}

fn lines_with<'a>(log: &'a str, text: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(text)).collect()
}

#[test]
fn the_daemon_removes_only_its_taint_with_a_guarded_patch_once_the_address_is_in_place() {
    in_netns("taint_daemon_removes", || async {
        let api = FakeApiServer::start(node("node-2", taints()), Answer::Allow);
        let proxy = StandInProxy::start();
        let flag = kubeconfig_flag(&api, "daemon");
        let sidecar = start(&args(&flag, &[]));
        wait_until("the sidecar says the taint is removed", || {
            log_so_far(&sidecar).contains("removed the startup taint")
        });
        let requests = api.requests();
        assert!(
            requests.iter().all(|request| request.address_in_place),
            "the Node was read or patched before the address was on lo"
        );
        assert!(proxy.accepted() >= 1, "the proxy was probed");
        let patch = &api.patches()[0];
        assert_eq!(patch.target, "/api/v1/nodes/node-2", "no stray '?'");
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/json-patch+json")
        );
        let body: Value = serde_json::from_slice(&patch.body).expect("JSON");
        assert_eq!(
            body,
            json!([
                {"op": "test", "path": "/spec/taints/1", "value": {"key": KEY, "effect": "NoSchedule"}},
                {"op": "remove", "path": "/spec/taints/1"},
            ])
        );
        assert_eq!(api.taints(), others());
        let output = terminate(sidecar);
        let log = stderr(&output);
        assert_eq!(
            lines_with(&log, "removed the startup taint").len(),
            1,
            "{log}"
        );
        // Read once and patched once: nothing more while the daemon ran on.
        assert_eq!(api.requests().len(), 2, "{:?}", api.requests());
    });
}

#[test]
fn the_one_shot_removes_it_and_exits_zero() {
    in_netns("taint_one_shot", || async {
        let api = FakeApiServer::start(node("node-2", taints()), Answer::Allow);
        StandInProxy::start();
        let flag = kubeconfig_flag(&api, "one-shot");
        let output = finish(start(&args(&flag, &["--daemon=false"])));
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(api.taints(), others());
        assert!(on_lo(PROXY_ADDRESS));
    });
}

#[test]
fn a_one_shot_that_cannot_reach_the_api_server_exits_zero_and_promises_no_retry() {
    in_netns("taint_one_shot_unreachable", || async {
        // Taken then closed: nothing listens there.
        let api = FakeApiServer::start_after(
            node("node-2", taints()),
            Answer::Allow,
            Duration::from_secs(3600),
        );
        StandInProxy::start();
        let flag = kubeconfig_flag(&api, "one-shot-unreachable");
        let output = finish(start(&args(&flag, &["--daemon=false"])));
        let log = stderr(&output);
        assert!(output.status.success(), "{log}");
        let failed = lines_with(&log, "cannot remove the startup taint");
        assert_eq!(failed.len(), 1, "{log}");
        assert!(failed[0].contains("cannot reach the API server"), "{log}");
        assert!(failed[0].contains("a one-shot does not retry"), "{log}");
        assert!(on_lo(PROXY_ADDRESS));
    });
}

#[test]
fn missing_rbac_is_logged_once_naming_the_verb_and_resource_and_the_address_stays() {
    in_netns("taint_forbidden", || async {
        let api = FakeApiServer::start(node("node-2", taints()), Answer::ForbidPatch);
        StandInProxy::start();
        let flag = kubeconfig_flag(&api, "forbidden");
        let sidecar = start(&args(&flag, &[]));
        // Two refusals: the retry came, and did not log again.
        wait_until("a retry was refused", || api.patches().len() >= 2);
        assert!(on_lo(PROXY_ADDRESS));
        let log = stderr(&terminate(sidecar));
        let refused = lines_with(&log, "cannot remove the startup taint");
        assert_eq!(refused.len(), 1, "{log}");
        assert!(
            refused[0].contains("forbidden: cannot patch resource \\\"nodes\\\"")
                || refused[0].contains("forbidden: cannot patch resource \"nodes\""),
            "{log}"
        );
        assert_eq!(api.taints(), taints());
    });
}

#[test]
fn an_api_server_down_for_10_s_is_retried_quietly_and_the_taint_removed_once_it_is_back() {
    in_netns("taint_outage", || async {
        let api = FakeApiServer::start_after(
            node("node-2", taints()),
            Answer::Allow,
            Duration::from_secs(10),
        );
        StandInProxy::start();
        let flag = kubeconfig_flag(&api, "outage");
        let sidecar = start(&args(&flag, &[]));
        // Retries back off to 1, 2, 4, 8 s: the one after the outage comes by about 15 s.
        wait_until_within(
            "the sidecar says the taint is removed",
            Duration::from_secs(60),
            || log_so_far(&sidecar).contains("removed the startup taint"),
        );
        assert_eq!(api.taints(), others());
        let log = stderr(&terminate(sidecar));
        let failing = lines_with(&log, "cannot remove the startup taint");
        assert_eq!(failing.len(), 1, "one line when failing starts:\n{log}");
        // Nor does the client log each try (kube's own ERROR lines are filtered below -v=4).
        let warnings = log.lines().filter(|line| line.starts_with(['W', 'E']));
        assert_eq!(warnings.count(), 1, "{log}");
        assert!(failing[0].contains("cannot reach the API server"), "{log}");
        assert_eq!(
            lines_with(&log, "the API server answers again").len(),
            1,
            "one line when it recovers:\n{log}"
        );
        assert_eq!(
            lines_with(&log, "removed the startup taint").len(),
            1,
            "{log}"
        );
    });
}

#[test]
fn the_daemon_keeps_the_taint_while_nothing_listens_and_removes_it_once_the_proxy_answers() {
    in_netns("taint_waits_for_proxy", || async {
        let api = FakeApiServer::start(node("node-2", taints()), Answer::Allow);
        let flag = kubeconfig_flag(&api, "waits-for-proxy");
        let sidecar = start(&args(&flag, &[]));
        wait_until("the sidecar says it waits for the proxy", || {
            log_so_far(&sidecar).contains("the proxy does not answer on 10.96.0.2:443")
        });
        // The Node is read only after a probe that was answered, and nothing listens yet.
        assert!(on_lo(PROXY_ADDRESS));
        assert_eq!(api.requests().len(), 0, "{:?}", api.requests());
        assert_eq!(api.taints(), taints());
        let proxy = StandInProxy::start();
        wait_until("the sidecar says the taint is removed", || {
            log_so_far(&sidecar).contains("removed the startup taint")
        });
        assert!(
            proxy.accepted() >= 1,
            "the taint went after a probe was answered"
        );
        assert_eq!(api.taints(), others());
        let log = stderr(&terminate(sidecar));
        assert_eq!(
            lines_with(&log, "the proxy does not answer").len(),
            1,
            "one line when the wait starts:\n{log}"
        );
        assert_eq!(
            lines_with(&log, "the proxy answers on 10.96.0.2:443").len(),
            1,
            "one line when it ends:\n{log}"
        );
    });
}

#[test]
fn without_waiting_for_the_proxy_the_daemon_removes_it_once_the_address_is_in_place() {
    in_netns("taint_no_wait_for_proxy", || async {
        let api = FakeApiServer::start(node("node-2", taints()), Answer::Allow);
        let flag = kubeconfig_flag(&api, "no-wait-for-proxy");
        let sidecar = start(&args(&flag, &["--wait-for-proxy=false"]));
        wait_until("the sidecar says the taint is removed", || {
            log_so_far(&sidecar).contains("removed the startup taint")
        });
        assert_eq!(api.taints(), others());
        let log = stderr(&terminate(sidecar));
        assert!(!log.contains("the proxy does not answer"), "{log}");
    });
}

#[test]
fn a_one_shot_never_waits_for_the_proxy_and_leaves_the_taint_in_one_line() {
    in_netns("taint_one_shot_no_proxy", || async {
        let api = FakeApiServer::start(node("node-2", taints()), Answer::Allow);
        let flag = kubeconfig_flag(&api, "one-shot-no-proxy");
        let output = finish(start(&args(&flag, &["--daemon=false"])));
        let log = stderr(&output);
        assert!(output.status.success(), "{log}");
        let left = lines_with(&log, "never waits for the proxy");
        assert_eq!(left.len(), 1, "{log}");
        assert!(
            left[0].contains("the proxy does not answer on 10.96.0.2:443"),
            "{log}"
        );
        assert_eq!(api.requests().len(), 0, "{:?}", api.requests());
        assert_eq!(api.taints(), taints());
        assert!(on_lo(PROXY_ADDRESS));
    });
}

#[test]
fn a_one_shot_whose_kubeconfig_cannot_be_read_exits_1_and_promises_no_retry() {
    in_netns("taint_one_shot_no_kubeconfig", || async {
        StandInProxy::start();
        let output = finish(start(&args(
            "--kubeconfig=/nonexistent/kubeconfig",
            &["--daemon=false"],
        )));
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{log}");
        let failed = lines_with(&log, "cannot remove the startup taint");
        assert_eq!(failed.len(), 1, "{log}");
        assert!(
            failed[0].contains("no credentials for the API server"),
            "{log}"
        );
        assert!(failed[0].contains("a one-shot does not retry"), "{log}");
        assert!(!log.contains("the daemon retries"), "{log}");
        assert!(on_lo(PROXY_ADDRESS), "the address stays");
    });
}

/// The one-shot with `kubeconfig`, as in the FROM-scratch image: no system roots anywhere the
/// client looks for them.
fn one_shot_without_system_roots(kubeconfig: &str) -> std::process::Output {
    let mut command = sidecar(&args(kubeconfig, &["--daemon=false"]));
    command
        .env("SSL_CERT_FILE", "/nonexistent/roots.pem")
        .env("SSL_CERT_DIR", "/nonexistent");
    finish(spawn(command))
}

#[test]
fn a_kubeconfig_that_skips_tls_verification_works_without_system_roots() {
    in_netns("taint_insecure_kubeconfig", || async {
        let api = FakeApiServer::start(node("node-2", taints()), Answer::Allow);
        StandInProxy::start();
        let dir = std::env::temp_dir().join(format!("taint-{}-insecure", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let flag = format!("--kubeconfig={}", api.insecure_kubeconfig(&dir).display());
        let output = one_shot_without_system_roots(&flag);
        let log = stderr(&output);
        assert!(output.status.success(), "{log}");
        assert!(!log.contains("root CA"), "{log}");
        assert_eq!(api.taints(), others());
    });
}

#[test]
fn insecure_skip_tls_verify_accepts_a_certificate_no_root_signs() {
    in_netns("taint_insecure_over_tls", || async {
        // A TLS server whose certificate chains to no root the sidecar has: the webhook, which
        // answers 404 to a Node's path, so the handshake's outcome shows in the log.
        let server = harness::Webhook::start(
            "taint-insecure-tls",
            &harness::testdata("certs/server-ecdsa"),
            &[],
        );
        StandInProxy::start();
        let dir = std::env::temp_dir().join(format!("taint-{}-insecure-tls", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: tls\n  cluster:\n    server: https://127.0.0.1:{}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: tls\n  context:\n    cluster: tls\n    user: tls\ncurrent-context: tls\nusers:\n- name: tls\n  user:\n    token: fake-token\n",
                server.port
            ),
        )
        .expect("the kubeconfig is written");
        let flag = format!("--kubeconfig={}", kubeconfig.display());
        let output = one_shot_without_system_roots(&flag);
        let log = stderr(&output);
        assert!(output.status.success(), "{log}");
        let failed = lines_with(&log, "cannot remove the startup taint");
        assert_eq!(failed.len(), 1, "{log}");
        assert!(
            failed[0].contains("node \\\"node-2\\\" not found")
                || failed[0].contains("node \"node-2\" not found"),
            "the request went through the handshake: {log}"
        );
    });
}
