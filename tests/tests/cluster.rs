//! Cluster tier: deploy/ applied to a real two-node Kubernetes v1.24 on this machine (nodes are
//! network namespaces; `scripts/cluster/cluster.py`, docs/testing.md), and both programs checked
//! doing their job there, from the outside: kubectl against the API server, the nodes' addresses
//! and rules read over netlink.
//!
//! A custom harness (libtest-mimic, `harness = false`): `main` starts ONE cluster behind a drop
//! guard, runs every case below as a named test, one at a time in the order of [`CASES`], prints
//! the usual `test result:` line, then tears the cluster down (also when a case failed or
//! panicked) and exits with the verdict. Without root, the Kubernetes binaries or the images,
//! every case is a loud skip, a failure with `REQUIRE_PRIVILEGED=1`. `cargo test -p
//! blackbox-tests --test cluster -- NAME` runs the cases whose name contains NAME (on a fresh
//! cluster); `-- --list` lists them without starting one.
//!
//! To add a case: write `fn my_case(cluster: &Cluster) -> Result<(), Failed>` (call
//! `cluster.deployed()?` first if it needs the project installed; name its Pods and namespaces
//! after the case; leave the cluster as the next case expects it: both programs installed and
//! Ready), and put it into [`CASES`] before the uninstall, which must stay last. A case that
//! takes minutes the tier's budget has no room for also goes into [`OPT_IN`], with the variable
//! that selects it.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use blackbox_tests::cluster::{
    base64_encode, last_seq, pause_ms, stdout_or_error, Cluster, PathCounts, StartError, APISERVER,
    FQDN, IMAGES, INSTALLED, NAMESPACE, NEW_PROXY_ADDRESS, PAUSE_IMAGE, PROXY_ADDRESS,
    STARTUP_TAINT, WEBHOOK_SAN,
};
use blackbox_tests::skip;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::{json, Value};

type Case = fn(&Cluster) -> Result<(), Failed>;

/// Every case, in the order they run: each leaves the cluster as the next expects it.
const CASES: &[(&str, Case)] = &[
    (
        "startup_taint_keeps_pods_off_node2_until_its_address",
        startup_taint_keeps_pods_off_until_the_address,
    ),
    // Right after the first: node 2's client started there once the startup taint went.
    ("data_path_e_node_start", data_path_node_start),
    // Before the outage case: its restart of the API server resets the metrics the figures
    // read, and so do this case's two.
    ("data_path_f_address_change", data_path_address_change),
    // Early: the API server's restart resets its metrics, which the figures read at the end.
    (
        "startup_taint_removed_after_an_api_server_outage",
        startup_taint_after_an_outage,
    ),
    (
        "startup_taint_without_rbac_names_verb_and_resource",
        startup_taint_without_rbac,
    ),
    ("dry_run_then_apply_deploy_and_examples", dry_run_then_apply),
    (
        "sidecar_ready_on_both_nodes_after_its_address",
        sidecar_ready_after_its_address,
    ),
    ("data_path_a_steady_state", data_path_steady_state),
    ("data_path_b_repairs", data_path_repairs),
    (
        "webhook_two_ready_replicas_on_two_nodes",
        webhook_two_replicas_on_two_nodes,
    ),
    ("pods_through_the_api_server", pods_through_the_api_server),
    (
        "reinvocation_patches_a_container_added_later",
        reinvocation_patches_a_container_added_later,
    ),
    ("fail_open_with_the_webhook_scaled_to_zero", fail_open),
    (
        "daemonset_rollout_keeps_the_address",
        daemonset_rollout_keeps_the_address,
    ),
    (
        "webhook_rollout_misses_no_pod",
        webhook_rollout_misses_no_pod,
    ),
    (
        "certificate_rotation_through_the_secret",
        certificate_rotation,
    ),
    (
        "webhook_under_a_body_flood_stays_up_and_patches_pods",
        webhook_under_a_body_flood,
    ),
    (IDLE_RACE, webhook_idle_keep_alive_misses_no_pod),
    ("uninstall_leaves_nothing_of_ours", uninstall),
];

/// Cases that run only when their environment variable is `1`: minutes the tier's 5-minute
/// budget has no room for. Without it such a case is reported `ignored`, with the variable to
/// set, and never starts a cluster: not a pass, and not a skip either (the machine could run it;
/// nobody asked), so `REQUIRE_PRIVILEGED=1` does not turn it into a failure.
const OPT_IN: &[(&str, &str)] = &[
    ("data_path_f_address_change", "CLUSTER_ADDRESS_CHANGE"),
    (IDLE_RACE, "CLUSTER_IDLE_RACE"),
];

const SIDECAR: &str = "app.kubernetes.io/name=apiserver-proxy";
const WEBHOOK: &str = "app.kubernetes.io/name=apiserver-proxy-pod-webhook";
const WEBHOOK_NAME: &str = "apiserver-proxy.networking.gardener.cloud";
const OPT_OUT: &str = "apiserver-proxy.networking.gardener.cloud/inject";

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // One cluster, one case at a time: they share it.
    args.test_threads = Some(1);
    let selected = CASES.iter().any(|(name, _)| {
        not_opted_in(name).is_none() && !args.is_filtered_out(&Trial::test(*name, || Ok(())))
    });
    if args.list || !selected {
        // Nothing to run: the filter left no case, or only opt-in ones without their variable.
        let listed = CASES
            .iter()
            .map(|(name, _)| trial(name, || Ok(())))
            .collect();
        return libtest_mimic::run(&args, listed).exit_code();
    }
    #[allow(clippy::disallowed_types)] // The tier's own time, a figure for README.
    let started = std::time::Instant::now();
    let client = std::path::Path::new(env!("CARGO_BIN_EXE_datapath-client"));
    let cluster = match Cluster::start(client) {
        Ok(cluster) => Arc::new(cluster),
        Err(error) => return without_a_cluster(&args, error),
    };
    let trials = CASES
        .iter()
        .map(|&(name, case)| {
            let cluster = Arc::clone(&cluster);
            trial(name, move || case(&cluster))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    figures(&cluster);
    let start_seconds = cluster.start_seconds;
    // The last handle: tears the cluster down before the verdict.
    drop(cluster);
    eprintln!(
        "cluster figures: cluster start {start_seconds:.1} s, tier {:.1} s (teardown included)",
        started.elapsed().as_secs_f64()
    );
    conclusion.exit_code()
}

/// Why `name` is not to run: it is opt-in ([`OPT_IN`]) and its variable is not `1`.
fn not_opted_in(name: &str) -> Option<String> {
    let (_, variable) = OPT_IN.iter().find(|(case, _)| *case == name)?;
    (std::env::var(variable).as_deref() != Ok("1"))
        .then(|| format!("not selected: opt-in, set {variable}=1 to run it, docs/testing.md"))
}

/// The trial of case `name`: `run`, or reported ignored with why when it is not opted in.
fn trial(name: &str, run: impl FnOnce() -> Result<(), Failed> + Send + 'static) -> Trial {
    match not_opted_in(name) {
        Some(why) => Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why))),
        None => Trial::test(name, run),
    }
}

/// Every selected case reports why there is no cluster: a loud skip where the machine cannot
/// run the tier (a failure with `REQUIRE_PRIVILEGED=1`), a failure where it should have.
fn without_a_cluster(args: &Arguments, error: StartError) -> ExitCode {
    let trials = CASES
        .iter()
        .map(|&(name, _)| match &error {
            _ if not_opted_in(name).is_some() => trial(name, || Ok(())),
            StartError::CannotRun(why) => {
                let why = why.clone();
                Trial::ignorable_test(name, move || {
                    skip(name, &why);
                    Ok(Completion::ignored_with(why))
                })
            }
            StartError::Failed(why) => {
                let why = why.clone();
                Trial::test(name, move || Err(why.into()))
            }
        })
        .collect();
    libtest_mimic::run(args, trials).exit_code()
}

// --- 1 -------------------------------------------------------------------------------------------

/// Server-side dry runs of deploy/ as it is, of every example overlay and of the test overlay;
/// then the test overlay applied. cert-manager's kinds (docs/examples/overlay's Issuer and
/// Certificate) are absent from this cluster: those objects are left out of its dry run, and
/// said so. docs/examples/overlay is a dry run only (its images, registry.example.com, are on no
/// node); docs/examples/iptables is applied, with the tier's component, by the uninstall case.
fn dry_run_then_apply(cluster: &Cluster) -> Result<(), Failed> {
    let root = cluster.root();
    let base = root.join("deploy");
    cluster.kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-k",
        &base.display().to_string(),
    ])?;
    for example in ["docs/examples/overlay", "docs/examples/iptables"] {
        let rendered =
            cluster.kubectl(&["kustomize", &root.join(example).display().to_string()])?;
        let (kept, left_out) = without_cert_manager(&rendered);
        if left_out > 0 {
            eprintln!(
                "{example}: {left_out} cert-manager object(s) left out of the dry run: \
                 cert-manager's kinds are not installed in this cluster"
            );
        }
        cluster
            .kubectl_with_input(
                &["apply", "--server-side", "--dry-run=server", "-f", "-"],
                Some(&kept),
            )
            .map_err(|e| format!("{example}: {e}"))?;
    }
    let overlay = cluster.overlay("deploy", INSTALLED)?;
    cluster.kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-k",
        &overlay.display().to_string(),
    ])?;
    cluster.deployed()?;
    let webhook = cluster.json(&["get", "mutatingwebhookconfiguration", WEBHOOK_NAME])?;
    check(
        webhook["webhooks"][0]["clientConfig"]["caBundle"]
            .as_str()
            .is_some_and(|bundle| !bundle.is_empty()),
        "the applied webhook configuration has the test CA's caBundle",
    )
}

/// The rendered multi-document YAML without cert-manager's objects, and how many were left out.
fn without_cert_manager(rendered: &str) -> (String, usize) {
    let documents: Vec<&str> = rendered.split("\n---\n").collect();
    let kept: Vec<&str> = documents
        .iter()
        .copied()
        .filter(|doc| {
            !doc.lines()
                .any(|l| l.starts_with("apiVersion: cert-manager.io/"))
        })
        .collect();
    (kept.join("\n---\n"), documents.len() - kept.len())
}

// --- 2 -------------------------------------------------------------------------------------------

/// The DaemonSet is Ready on both nodes, each node holds the address with our mark; and a Pod
/// turns Ready only once its address is in place: node 2 loses its link and its sidecar Pod, the
/// new Pod's setup cannot add the address (no link, no dummy type here) and stays not Ready;
/// the link comes back, and the Pod turns Ready. At every sample, a Ready Pod has its address.
fn sidecar_ready_after_its_address(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    daemonset_ready(cluster)?;
    for node in [1, 2] {
        marked_address_on(cluster, node)?;
    }
    let old = sidecar_pod_on(cluster, "node2")?;
    ip(cluster, 2, &["link", "delete", "apiserver-proxy"])?;
    cluster.kubectl(&[
        "delete",
        "pod",
        "-n",
        NAMESPACE,
        old["metadata"]["name"].as_str().unwrap_or_default(),
        "--wait=false",
    ])?;
    let old_uid = old["metadata"]["uid"].clone();
    let mut samples = 0;
    // Without the link: the new Pod's setup fails at least once, and the Pod is never Ready.
    cluster.wait_for("node 2's new sidecar Pod failed its setup", 120, || {
        let pod = sidecar_pod_on(cluster, "node2").ok()?;
        if pod["metadata"]["uid"] == old_uid {
            return None;
        }
        samples += 1;
        if ready(&pod) {
            return Some(Err(format!(
                "node 2's sidecar is Ready without its link: {pod}"
            )));
        }
        let setup = &pod["status"]["initContainerStatuses"][0];
        let failed = setup["restartCount"].as_u64().unwrap_or(0) > 0
            || setup["state"]["terminated"]["exitCode"]
                .as_i64()
                .unwrap_or(0)
                != 0;
        failed.then_some(Ok(()))
    })??;
    ip(
        cluster,
        2,
        &[
            "link",
            "add",
            "apiserver-proxy",
            "type",
            "veth",
            "peer",
            "name",
            "apc-peer",
        ],
    )?;
    ip(cluster, 2, &["link", "set", "apc-peer", "up"])?;
    cluster.wait_for("node 2's sidecar Ready again", 120, || {
        let pod = sidecar_pod_on(cluster, "node2").ok()?;
        samples += 1;
        if !ready(&pod) {
            return None;
        }
        // Ready was seen first, the address after: it must be there already.
        Some(if address_on(cluster, 2) {
            Ok(())
        } else {
            Err("node 2's sidecar is Ready, its address is not in place".to_owned())
        })
    })??;
    eprintln!("node 2's sidecar: Ready only with its address, {samples} samples");
    marked_address_on(cluster, 2)?;
    daemonset_ready(cluster)
}

fn daemonset_ready(cluster: &Cluster) -> Result<(), Failed> {
    cluster.wait_for("the sidecar DaemonSet Ready on both nodes", 180, || {
        let ds = cluster
            .json(&["get", "daemonset", "-n", NAMESPACE, "apiserver-proxy"])
            .ok()?;
        let status = &ds["status"];
        let all = |key: &str| status[key].as_u64() == Some(2);
        (all("desiredNumberScheduled")
            && all("numberReady")
            && all("updatedNumberScheduled")
            && status["observedGeneration"] == ds["metadata"]["generation"])
            .then_some(())
    })?;
    Ok(())
}

fn marked_address_on(cluster: &Cluster, node: u8) -> Result<(), Failed> {
    let state = cluster.node_state(node)?;
    let wanted = json!(format!("{PROXY_ADDRESS}/32 on apiserver-proxy"));
    check(
        state["marked"]
            .as_array()
            .is_some_and(|m| m.contains(&wanted)),
        &format!("node {node} holds {wanted} with our mark: {state}"),
    )
}

fn sidecar_pod_on(cluster: &Cluster, node: &str) -> Result<Value, String> {
    let pods = cluster.json(&[
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        SIDECAR,
        "--field-selector",
        &format!("spec.nodeName={node}"),
    ])?;
    pods["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        })
        .cloned()
        .ok_or_else(|| format!("no sidecar Pod on {node}"))
}

fn address_on(cluster: &Cluster, node: u8) -> bool {
    holds(cluster, node, PROXY_ADDRESS)
}

/// Node `node` holds `address` (a /32) on some link.
fn holds(cluster: &Cluster, node: u8, address: &str) -> bool {
    ip(cluster, node, &["-4", "-o", "addr", "show"])
        .is_ok_and(|shown| shown.contains(&format!(" {address}/32 ")))
}

fn ip(cluster: &Cluster, node: u8, args: &[&str]) -> Result<String, String> {
    ip_in(Some(&cluster.netns(node)), args)
}

/// `ip` in the network namespace `netns` (`None`: `ip netns` itself, no namespace entered).
fn ip_in(netns: Option<&str>, args: &[&str]) -> Result<String, String> {
    let mut command = std::process::Command::new("ip");
    if let Some(netns) = netns {
        command.args(["-n", netns]);
    }
    let output = command
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    let place = netns.map_or(String::new(), |netns| format!(" in {netns}"));
    stdout_or_error(&format!("ip {}{place}", args.join(" ")), &output)
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

// --- 3 -------------------------------------------------------------------------------------------

/// Two webhook replicas, Ready (their probes are HTTPS on the serving port), on two nodes; the
/// PodDisruptionBudget allows one disruption.
fn webhook_two_replicas_on_two_nodes(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    let pods = webhook_ready(cluster)?;
    let mut nodes: Vec<&str> = pods
        .iter()
        .filter_map(|pod| pod["spec"]["nodeName"].as_str())
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    check(
        nodes.len() == 2,
        &format!("the replicas run on two nodes: {nodes:?}"),
    )?;
    let probe = &pods[0]["spec"]["containers"][0]["readinessProbe"]["httpGet"];
    check(
        probe["scheme"] == "HTTPS" && probe["path"] == "/readyz",
        &format!("Ready through the HTTPS probe: {probe}"),
    )?;
    cluster.wait_for("the PodDisruptionBudget allows one disruption", 60, || {
        let pdb = cluster
            .json(&["get", "pdb", "-n", NAMESPACE, "apiserver-proxy-pod-webhook"])
            .ok()?;
        (pdb["status"]["disruptionsAllowed"] == 1 && pdb["status"]["currentHealthy"] == 2)
            .then_some(())
    })?;
    Ok(())
}

/// Waits until the Deployment's rollout is done with 2 Ready replicas; returns their Pods.
fn webhook_ready(cluster: &Cluster) -> Result<Vec<Value>, String> {
    cluster
        .wait_for("the webhook's 2 replicas Ready", 180, || {
            let deployment = cluster
                .json(&[
                    "get",
                    "deployment",
                    "-n",
                    NAMESPACE,
                    "apiserver-proxy-pod-webhook",
                ])
                .ok()?;
            let status = &deployment["status"];
            let settled = status["observedGeneration"] == deployment["metadata"]["generation"]
                && status["readyReplicas"] == 2
                && status["updatedReplicas"] == 2
                && status["replicas"] == 2;
            if !settled {
                return None;
            }
            let pods = cluster
                .json(&["get", "pods", "-n", NAMESPACE, "-l", WEBHOOK])
                .ok()?;
            let live: Vec<Value> = pods["items"]
                .as_array()?
                .iter()
                .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null() && ready(pod))
                .cloned()
                .collect();
            (live.len() == 2).then_some(live)
        })
        .map_err(|timeout| {
            // What a timeout needs to be understood after the run (the cluster goes with it).
            let pods = cluster
                .kubectl(&["get", "pods", "-n", NAMESPACE, "-o", "wide"])
                .unwrap_or_else(|e| e);
            let events = cluster
                .kubectl(&["get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"])
                .unwrap_or_else(|e| e);
            format!("{timeout}\n{pods}\n{events}")
        })
}

// --- 4 -------------------------------------------------------------------------------------------

/// Pods created through the API server: every container and init container patched; an
/// opted-out Pod and a Pod in an opted-out namespace left alone; a preset value kept; a
/// server-side dry run patched; a static Pod's mirror left alone; an ephemeral container added
/// by `kubectl debug` left alone.
fn pods_through_the_api_server(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    webhook_ready(cluster)?;
    namespace(cluster, "apc-pods", false)?;
    namespace(cluster, "apc-opted-out", true)?;

    let created = create(cluster, "apc-pods", &pod("patched", json!({})))?;
    for kind in ["initContainers", "containers"] {
        for container in created["spec"][kind].as_array().into_iter().flatten() {
            check(
                env(container) == Some(FQDN),
                &format!("{kind} {} patched: {container}", container["name"]),
            )?;
        }
    }

    let opted_out = create(
        cluster,
        "apc-pods",
        &pod("opted-out", json!({OPT_OUT: "false"})),
    )?;
    unpatched(&opted_out, "a Pod labelled inject=false")?;
    let in_opted_out = create(cluster, "apc-opted-out", &pod("plain", json!({})))?;
    unpatched(&in_opted_out, "a Pod in a namespace labelled inject=false")?;

    let mut preset = pod("preset", json!({}));
    preset["spec"]["containers"][0]["env"] =
        json!([{"name": "KUBERNETES_SERVICE_HOST", "value": "preset.example"}]);
    let preset = create(cluster, "apc-pods", &preset)?;
    check(
        env(&preset["spec"]["containers"][0]) == Some("preset.example")
            && env(&preset["spec"]["containers"][1]) == Some(FQDN),
        &format!(
            "the preset value kept, the other container patched: {}",
            preset["spec"]
        ),
    )?;

    let dry: Value = serde_json::from_str(&cluster.kubectl_with_input(
        &[
            "create",
            "-n",
            "apc-pods",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&pod("dry-run", json!({})).to_string()),
    )?)?;
    check(
        env(&dry["spec"]["containers"][0]) == Some(FQDN),
        "a server-side dry run patched",
    )?;

    mirror_pod_left_alone(cluster)?;

    cluster.kubectl(&[
        "debug",
        "-n",
        "apc-pods",
        "pod/patched",
        "--image",
        PAUSE_IMAGE,
        "--container",
        "debugger",
    ])?;
    let debugged = cluster.json(&["get", "pod", "-n", "apc-pods", "patched"])?;
    let ephemeral = &debugged["spec"]["ephemeralContainers"][0];
    check(
        ephemeral["name"] == "debugger" && env(ephemeral).is_none(),
        &format!("the ephemeral container left alone: {ephemeral}"),
    )
}

fn mirror_pod_left_alone(cluster: &Cluster) -> Result<(), Failed> {
    let manifest = cluster.dir().join("n1/manifests/static.json");
    let mut static_pod = pod("static", json!({}));
    static_pod["metadata"]["namespace"] = json!("apc-pods");
    static_pod["spec"]
        .as_object_mut()
        .map(|spec| spec.remove("nodeName"));
    static_pod["spec"]
        .as_object_mut()
        .map(|spec| spec.remove("initContainers"));
    std::fs::write(&manifest, static_pod.to_string())?;
    let mirror = cluster.wait_for("the static Pod's mirror Pod", 120, || {
        cluster
            .json(&["get", "pod", "-n", "apc-pods", "static-node1"])
            .ok()
    });
    std::fs::remove_file(&manifest)?;
    let mirror = mirror?;
    check(
        !mirror["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_null(),
        "a mirror Pod",
    )?;
    unpatched(&mirror, "the static Pod's mirror Pod")
}

// --- 5 -------------------------------------------------------------------------------------------

/// `reinvocationPolicy: IfNeeded` (docs/webhook.md says why): a test-only webhook whose
/// configuration sorts after ours (`scripts/cluster/adder.py`, run in node 1 beside the API
/// server, registered by URL, only for Pods labelled `apc-adder`) appends a container after our
/// call; the API server calls ours again, and that container comes back patched too.
fn reinvocation_patches_a_container_added_later(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    webhook_ready(cluster)?;
    namespace(cluster, "apc-reinvocation", false)?;
    let (cert, key) = cluster.webhook_certificate("adder", "IP:127.0.0.1")?;
    let mut adder = cluster
        .in_node(1, "python3")
        .arg(cluster.root().join("scripts/cluster/adder.py"))
        .args([cert.as_os_str(), key.as_os_str()])
        .args([ADDER_PORT, PAUSE_IMAGE])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let result = with_the_adder(cluster, &mut adder);
    // Stopped whatever happened; its configuration goes with it.
    let _ = adder.kill();
    let _ = adder.wait();
    let _ = cluster.kubectl(&[
        "delete",
        "mutatingwebhookconfiguration",
        ADDER,
        "--ignore-not-found",
    ]);
    result
}

const ADDER: &str = "zz-adder.apiserver-proxy.test";
const ADDER_PORT: &str = "18443";

fn with_the_adder(cluster: &Cluster, adder: &mut std::process::Child) -> Result<(), Failed> {
    use std::io::BufRead;
    let mut line = String::new();
    if let Some(stdout) = adder.stdout.take() {
        std::io::BufReader::new(stdout).read_line(&mut line)?;
    }
    check(
        line.trim() == "ready",
        &format!("the adder webhook listens: {line:?}"),
    )?;
    let ca = std::fs::read(cluster.dir().join("webhook-ca.crt"))?;
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": ADDER},
        "webhooks": [{
            "name": ADDER,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {
                "url": format!("https://127.0.0.1:{ADDER_PORT}/"),
                "caBundle": base64_encode(&ca),
            },
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "reinvocationPolicy": "Never",
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["pods"]}],
            "objectSelector": {"matchLabels": {"apc-adder": "yes"}},
        }],
    });
    cluster.kubectl_with_input(&["apply", "-f", "-"], Some(&configuration.to_string()))?;
    let created = create(
        cluster,
        "apc-reinvocation",
        &pod("reinvoked", json!({"apc-adder": "yes"})),
    )?;
    let containers = created["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    check(
        containers.len() == 3 && containers[2]["name"] == "added",
        &format!("the adder appended its container: {containers:?}"),
    )?;
    check(
        containers
            .iter()
            .all(|container| env(container) == Some(FQDN)),
        &format!("every container patched, the added one too: {containers:?}"),
    )?;
    let ours = cluster.json(&["get", "mutatingwebhookconfiguration", WEBHOOK_NAME])?;
    check(
        ours["webhooks"][0]["reinvocationPolicy"] == "IfNeeded",
        &format!("deploy/ registers IfNeeded: {}", ours["webhooks"][0]),
    )
}

// --- 6 -------------------------------------------------------------------------------------------

/// With the webhook scaled to 0, Pods are still created (failurePolicy Ignore), unpatched; then
/// it is scaled back to 2.
fn fail_open(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    namespace(cluster, "apc-fail-open", false)?;
    scale_webhook(cluster, 0)?;
    cluster.wait_for("no webhook endpoint left", 120, || {
        let endpoints = cluster
            .json(&[
                "get",
                "endpoints",
                "-n",
                NAMESPACE,
                "apiserver-proxy-pod-webhook",
            ])
            .ok()?;
        let pods = cluster
            .json(&["get", "pods", "-n", NAMESPACE, "-l", WEBHOOK])
            .ok()?;
        (endpoints["subsets"].as_array().is_none_or(Vec::is_empty)
            && pods["items"].as_array().is_some_and(Vec::is_empty))
        .then_some(())
    })?;
    let result = create(cluster, "apc-fail-open", &pod("no-webhook", json!({})))
        .and_then(|created| unpatched(&created, "a Pod created without the webhook"));
    scale_webhook(cluster, 2)?;
    webhook_ready(cluster)?;
    result
}

fn scale_webhook(cluster: &Cluster, replicas: u8) -> Result<(), String> {
    cluster
        .kubectl(&[
            "scale",
            "deployment",
            "-n",
            NAMESPACE,
            "apiserver-proxy-pod-webhook",
            &format!("--replicas={replicas}"),
        ])
        .map(drop)
}

// --- 7 -------------------------------------------------------------------------------------------

/// A DaemonSet rolling update (an argument changed): the address is on both nodes at every
/// sample, taken every 10 ms on each node, throughout; and (c.) both nodes' clients see no
/// failed request, from before the update until the old Pods are gone (their proxies drained).
fn daemonset_rollout_keeps_the_address(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    daemonset_ready(cluster)?;
    let window = PathWindow::open(cluster)?;
    let samplers = [
        cluster.sample_address(1, PROXY_ADDRESS)?,
        cluster.sample_address(2, PROXY_ADDRESS)?,
    ];
    let rollout = roll(
        cluster,
        r#"[{"op":"test","path":"/spec/template/spec/containers/0/args/4","value":"--sync-interval=1m0s"},
            {"op":"replace","path":"/spec/template/spec/containers/0/args/4","value":"--sync-interval=30s"}]"#,
    );
    let mut results = Vec::new();
    for sampler in samplers {
        results.push(sampler.finish()?);
    }
    rollout?;
    let counts = window.close(cluster, "c. DaemonSet rollout")?;
    eprintln!(
        "address samples during the DaemonSet rollout: node 1 {}, node 2 {}",
        results[0], results[1]
    );
    for (node, result) in results.iter().enumerate() {
        check(
            result["missing"] == 0 && result["samples"].as_u64().unwrap_or(0) > 0,
            &format!("node {}: the address at every sample: {result}", node + 1),
        )?;
    }
    no_failed_request("c. DaemonSet rollout", &counts)
}

/// Only the DaemonSet's current Pods are left: the old ones have drained and exited.
fn old_sidecar_pods_gone(cluster: &Cluster) -> Result<(), Failed> {
    old_pods_gone(cluster, "sidecar", SIDECAR, 120).map_err(Failed::from)
}

/// Waits until only 2 Pods with the label `selector` are left (both workloads run 2): the old
/// generation's have exited.
fn old_pods_gone(
    cluster: &Cluster,
    what: &str,
    selector: &str,
    seconds: u64,
) -> Result<(), String> {
    cluster.wait_for(&format!("the old {what} Pods gone"), seconds, || {
        let pods = cluster
            .json(&["get", "pods", "-n", NAMESPACE, "-l", selector])
            .ok()?;
        (pods["items"].as_array()?.len() == 2).then_some(())
    })
}

/// A webhook rolling update during a stream of Pod creations: every Pod created is patched.
fn webhook_rollout_misses_no_pod(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    webhook_ready(cluster)?;
    namespace(cluster, "apc-rollout", false)?;
    let stream = during_a_stream(cluster, "apc-rollout", || {
        cluster.kubectl(&[
            "rollout",
            "restart",
            "deployment",
            "-n",
            NAMESPACE,
            "apiserver-proxy-pod-webhook",
        ])?;
        webhook_ready(cluster)?;
        // The old replicas serve on for their shutdown delay (docs/webhook.md#shutdown): the
        // stream goes on until they have exited, so the moment each one stops is inside it.
        old_pods_gone(cluster, "webhook", WEBHOOK, 60)
    })?;
    stream.all_patched("the webhook's rolling update")
}

/// What a stream of Pod creations saw.
#[derive(Debug, Default)]
struct Stream {
    created: usize,
    unpatched: Vec<String>,
    seconds: f64,
    errors: Vec<String>,
}

impl Stream {
    fn all_patched(&self, during: &str) -> Result<(), Failed> {
        let rate = self.created as f64 / self.seconds;
        eprintln!(
            "during {during}: {} Pods created in {:.1} s ({rate:.1}/s), {} unpatched",
            self.created,
            self.seconds,
            self.unpatched.len()
        );
        check(
            self.errors.is_empty(),
            &format!("every creation succeeded: {:?}", self.errors),
        )?;
        check(self.created > 0, "Pods were created")?;
        check(
            self.unpatched.is_empty(),
            &format!("every Pod patched; unpatched: {:?}", self.unpatched),
        )
    }
}

/// Creates Pods without pause (three streams, lists of 10 per kubectl call: one stream alone
/// stays under 10/s on the loaded 2 cores) while `action` runs, and for 2 s after; checks each
/// Pod the API server returned.
fn during_a_stream(
    cluster: &Cluster,
    namespace: &str,
    action: impl FnOnce() -> Result<(), String>,
) -> Result<Stream, Failed> {
    let stop = AtomicBool::new(false);
    let (result, streams) = std::thread::scope(|scope| {
        let streamers: Vec<_> = (0..3)
            .map(|worker| {
                let stop = &stop;
                scope.spawn(move || stream_pods(cluster, namespace, stop, worker))
            })
            .collect();
        let result = action();
        pause_ms(2000);
        stop.store(true, Ordering::SeqCst);
        let streams: Vec<_> = streamers.into_iter().map(|s| s.join()).collect();
        (result, streams)
    });
    result?;
    let mut total = Stream::default();
    for stream in streams {
        let stream = stream.map_err(|_| Failed::from("a Pod stream panicked"))?;
        total.created += stream.created;
        total.unpatched.extend(stream.unpatched);
        total.errors.extend(stream.errors);
        total.seconds = total.seconds.max(stream.seconds);
    }
    Ok(total)
}

fn stream_pods(cluster: &Cluster, namespace: &str, stop: &AtomicBool, worker: usize) -> Stream {
    #[allow(clippy::disallowed_types)] // The stream's rate, a figure printed, not asserted.
    let started = std::time::Instant::now();
    let mut stream = Stream::default();
    let mut batch = 0;
    while !stop.load(Ordering::SeqCst) {
        batch += 1;
        let items: Vec<Value> = (0..10)
            .map(|i| pod(&format!("s{worker}-{batch}-{i}"), json!({})))
            .collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        match cluster.kubectl_with_input(
            &["create", "-n", namespace, "-o", "json", "-f", "-"],
            Some(&list.to_string()),
        ) {
            Ok(text) => {
                // One object per Pod, or one List holding them, depending on kubectl's mood.
                let values: Vec<Value> = serde_json::Deserializer::from_str(&text)
                    .into_iter::<Value>()
                    .filter_map(Result::ok)
                    .collect();
                let pods = values
                    .iter()
                    .flat_map(|value| match value["items"].as_array() {
                        Some(items) => items.iter().collect(),
                        None => vec![value],
                    });
                for pod in pods {
                    stream.created += 1;
                    if env(&pod["spec"]["containers"][0]) != Some(FQDN) {
                        stream
                            .unpatched
                            .push(pod["metadata"]["name"].as_str().unwrap_or("?").to_owned());
                    }
                }
            }
            Err(error) => stream.errors.push(error),
        }
    }
    stream.seconds = started.elapsed().as_secs_f64();
    stream
}

// --- 8 -------------------------------------------------------------------------------------------

/// The Secret replaced by a new certificate from the same CA: both replicas serve it without a
/// restart, and no Pod created meanwhile goes unpatched.
fn certificate_rotation(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    let before = webhook_ready(cluster)?;
    namespace(cluster, "apc-rotation", false)?;
    let (cert, key) = cluster.webhook_certificate("rotated", WEBHOOK_SAN)?;
    let serial = openssl_serial(&std::fs::read_to_string(&cert)?)?;
    let secret = cluster.kubectl(&[
        "create",
        "secret",
        "tls",
        "apiserver-proxy-pod-webhook-tls",
        "-n",
        NAMESPACE,
        "--cert",
        &cert.display().to_string(),
        "--key",
        &key.display().to_string(),
        "--dry-run=client",
        "-o",
        "json",
    ])?;
    let ips: Vec<String> = before
        .iter()
        .filter_map(|pod| pod["status"]["podIP"].as_str().map(str::to_owned))
        .collect();
    let stream = during_a_stream(cluster, "apc-rotation", || {
        cluster.kubectl_with_input(&["replace", "-f", "-"], Some(&secret))?;
        cluster.wait_for("both replicas serve the new certificate", 180, || {
            ips.iter()
                .all(|ip| served_serial(cluster, ip).as_deref() == Some(serial.as_str()))
                .then_some(())
        })
    })?;
    stream.all_patched("the certificate rotation")?;
    let after = webhook_ready(cluster)?;
    let identity = |pods: &[Value]| -> Vec<String> {
        let mut ids: Vec<String> = pods
            .iter()
            .map(|pod| {
                format!(
                    "{} restarts={}",
                    pod["metadata"]["uid"], pod["status"]["containerStatuses"][0]["restartCount"]
                )
            })
            .collect();
        ids.sort();
        ids
    };
    check(
        identity(&before) == identity(&after),
        &format!(
            "the same Pods, no restart: before {:?}, after {:?}",
            identity(&before),
            identity(&after)
        ),
    )
}

/// The serial of the certificate a webhook replica serves, read from node 1.
fn served_serial(cluster: &Cluster, ip: &str) -> Option<String> {
    let output = cluster
        .in_node(1, "openssl")
        .args([
            "s_client",
            "-connect",
            &format!("{ip}:9443"),
            "-servername",
            "apiserver-proxy-pod-webhook.kube-system.svc",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    openssl_serial(&String::from_utf8_lossy(&output.stdout)).ok()
}

fn openssl_serial(pem: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("openssl: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(pem.as_bytes()).map_err(|e| e.to_string())?;
    }
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .strip_prefix("serial=")
        .map(str::to_owned)
        .ok_or_else(|| format!("no certificate: {text}"))
}

// --- 9 -------------------------------------------------------------------------------------------

/// docs/examples/iptables applied over the installation (the DaemonSet rolls to
/// `--setup-iptables`, so each node holds its five rules too); then `kubectl delete` leaves the
/// address and the rules (the sidecar runs without --cleanup, on purpose: docs/deploy.md); the
/// uninstall docs/deploy.md describes, one cleanup Pod per node
/// (docs/examples/uninstall/pod.yaml), removes them: no marked address, no aliased link and no
/// rule of ours on any node.
fn uninstall(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    let iptables = cluster.overlay("iptables", "docs/examples/iptables")?;
    let iptables = iptables.display().to_string();
    // Earlier cases changed the DaemonSet's args (kubectl patch) and the Secret (kubectl
    // replace): this apply takes those fields back, as a re-install after such edits would.
    cluster.kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-k",
        &iptables,
    ])?;
    daemonset_ready(cluster)?;
    for node in [1, 2] {
        let state = cluster.node_state(node)?;
        check(
            state["rules"]
                .as_array()
                .is_some_and(|rules| rules.len() == 5),
            &format!("node {node} holds the five rules of docs/examples/iptables: {state}"),
        )?;
    }
    data_path_with_the_rules(cluster)?;
    cluster.kubectl(&["delete", "-k", &iptables, "--wait=true"])?;
    // The startup-taint example's RBAC, which the iptables example does not hold.
    let rbac = cluster.root().join("docs/examples/startup-taint/rbac.yaml");
    cluster.kubectl(&["delete", "-f", &rbac.display().to_string()])?;
    cluster.wait_for("the project's Pods gone", 120, || {
        // deploy/'s part-of label is not on the Pod templates: ask by each one's name label.
        let gone = |selector: &str| {
            cluster
                .json(&["get", "pods", "-n", NAMESPACE, "-l", selector])
                .is_ok_and(|pods| pods["items"].as_array().is_some_and(Vec::is_empty))
        };
        (gone(SIDECAR) && gone(WEBHOOK)).then_some(())
    })?;
    for node in [1, 2] {
        marked_address_on(cluster, node)?;
    }
    let template =
        std::fs::read_to_string(cluster.root().join("docs/examples/uninstall/pod.yaml"))?;
    for node in ["node1", "node2"] {
        cluster.kubectl_with_input(
            &["create", "-f", "-"],
            Some(&template.replace("NODE", node)),
        )?;
    }
    for node in ["node1", "node2"] {
        let name = format!("apiserver-proxy-uninstall-{node}");
        let status = cluster.wait_for(&format!("{name} finished"), 120, || {
            let pod = cluster.json(&["get", "pod", "-n", NAMESPACE, &name]).ok()?;
            let phase = pod["status"]["phase"].as_str()?;
            matches!(phase, "Succeeded" | "Failed").then(|| pod["status"].clone())
        })?;
        let logs = cluster
            .kubectl(&["logs", "-n", NAMESPACE, &name])
            .unwrap_or_default();
        // The whole status when it failed: a kubelet's rejection has a reason and no logs.
        check(
            status["phase"] == "Succeeded",
            &format!("{name}: {status}\n{logs}"),
        )?;
        cluster.kubectl(&["delete", "pod", "-n", NAMESPACE, &name, "--wait=false"])?;
    }
    for node in [1, 2] {
        let state = cluster.node_state(node)?;
        let nothing = |key: &str| state[key].as_array().is_some_and(Vec::is_empty);
        check(
            nothing("marked") && nothing("aliased") && nothing("rules"),
            &format!("node {node}: nothing of ours left: {state}"),
        )?;
    }
    Ok(())
}

// --- startup taint -------------------------------------------------------------------------------

const TAINT_NAMESPACE: &str = "apc-taint";

/// Node 2 registered with the startup taint. A Deployment without tolerations, pinned to node 2,
/// created before the project is installed: its Pod is unschedulable for the taint, and node 2
/// holds no address. Then the project is installed (with --startup-taint), and sampled until the
/// Pod runs on node 2: at no sample is the Pod bound to node 2 while the taint is on it, nor the
/// taint gone while the address is missing. Each sample reads the Pod, then the taint, then the
/// address: Pods are only ever bound, taints only removed, the address only added, so a
/// violation between two reads still shows.
fn startup_taint_keeps_pods_off_until_the_address(cluster: &Cluster) -> Result<(), Failed> {
    check(
        tainted(cluster)?,
        "node 2 registered with the startup taint",
    )?;
    namespace(cluster, TAINT_NAMESPACE, false)?;
    let labels = json!({"app": "apc-taint"});
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "apc-taint", "namespace": TAINT_NAMESPACE},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"nodeSelector": {"kubernetes.io/hostname": "node2"},
                                       "containers": [{"name": "pause", "image": PAUSE_IMAGE}]}}}
    });
    cluster.kubectl_with_input(&["apply", "-f", "-"], Some(&deployment.to_string()))?;
    let pending = cluster.wait_for("the Deployment's Pod unschedulable", 60, || {
        let pod = taint_pod(cluster)?;
        let scheduled = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        (scheduled["status"] == "False" && scheduled["reason"] == "Unschedulable")
            .then_some(scheduled)
    })?;
    check(
        pending["message"]
            .as_str()
            .is_some_and(|m| m.contains(STARTUP_TAINT)),
        &format!("unschedulable for the startup taint: {pending}"),
    )?;
    check(
        !address_on(cluster, 2),
        "no address on node 2 before the sidecar ran",
    )?;
    // The data-path clients too (no tolerations either): node 2's starts once the taint is
    // gone, and data_path_e_node_start counts its requests from its first.
    clients_applied(cluster)?;
    cluster.deployed()?;
    let (mut samples, mut tainted_samples) = (0, 0);
    cluster.wait_for("the Deployment's Pod Running on node 2", 180, || {
        let pod = taint_pod(cluster)?;
        let tainted = tainted(cluster).ok()?;
        let address = address_on(cluster, 2);
        samples += 1;
        tainted_samples += u32::from(tainted);
        let bound = pod["spec"]["nodeName"] == "node2";
        if bound && tainted {
            return Some(Err(format!(
                "the Pod is bound to node 2 while the taint is on it: {pod}"
            )));
        }
        if !tainted && !address {
            return Some(Err(
                "the startup taint is gone from node 2, the address is not there".to_owned(),
            ));
        }
        (bound && pod["status"]["phase"] == "Running").then_some(Ok(()))
    })??;
    eprintln!(
        "startup taint: {samples} samples after the install, {tainted_samples} with node 2 tainted"
    );
    // Gone before the next case stops the API server: no Pod of this case is left on node 2.
    cluster.kubectl(&["delete", "namespace", TAINT_NAMESPACE, "--timeout=120s"])?;
    // The webhook's replicas were scheduled while node 2 was tainted, so both usually run on
    // node 1: then one is deleted, and its replacement goes to node 2 (the preferred
    // anti-affinity), as the later cases expect.
    let webhooks = webhook_ready(cluster)?;
    if let [first, second] = &webhooks[..] {
        if first["spec"]["nodeName"] == second["spec"]["nodeName"] {
            let name = first["metadata"]["name"].as_str().unwrap_or_default();
            cluster.kubectl(&["delete", "pod", "-n", NAMESPACE, name, "--wait=false"])?;
        }
    }
    webhook_ready(cluster)?;
    marked_address_on(cluster, 2)
}

/// Both nodes Ready and untainted, as the cluster was before the outage: the node controller
/// may have tainted them (unreachable) while the API server was down.
fn nodes_settled(cluster: &Cluster) -> Result<(), Failed> {
    cluster.wait_for("both nodes Ready and untainted", 120, || {
        let nodes = cluster.json(&["get", "nodes"]).ok()?;
        let items = nodes["items"].as_array()?;
        let settled = items.len() == 2
            && items.iter().all(|node| {
                node["spec"]["taints"].as_array().is_none_or(Vec::is_empty)
                    && node["status"]["conditions"]
                        .as_array()
                        .is_some_and(|conditions| {
                            conditions
                                .iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
            });
        settled.then_some(())
    })?;
    Ok(())
}

fn tainted(cluster: &Cluster) -> Result<bool, String> {
    let node = cluster.json(&["get", "node", "node2"])?;
    Ok(node["spec"]["taints"]
        .as_array()
        .is_some_and(|taints| taints.iter().any(|t| t["key"] == STARTUP_TAINT)))
}

fn taint_pod(cluster: &Cluster) -> Option<Value> {
    let pods = cluster
        .json(&["get", "pods", "-n", TAINT_NAMESPACE, "-l", "app=apc-taint"])
        .ok()?;
    pods["items"]
        .as_array()?
        .iter()
        .find(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .cloned()
}

/// The startup taint put back on node 2; the API server stopped for 10 s, and in that time node
/// 2's sidecar container killed, so that the kubelet restarts it while the API server is down
/// (the daemon removes the taint only from its start). Once the API server is back, the taint
/// goes; the restarted container's log has a failure line only where the failure changed, and
/// one line saying the API server answers again.
fn startup_taint_after_an_outage(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    daemonset_ready(cluster)?;
    let pod = sidecar_pod_on(cluster, "node2")?;
    cluster.kubectl(&[
        "taint",
        "nodes",
        "node2",
        &format!("{STARTUP_TAINT}:NoSchedule"),
    ])?;
    let old = sidecar_daemon_on(cluster, 2)?;
    #[allow(clippy::disallowed_types)] // The outage's length, the case's own pacing.
    let stopped = std::time::Instant::now();
    cluster.stop_apiserver()?;
    let restarted = restart_sidecar(cluster, old);
    // The outage lasts 10 s, however long the restart took (within its bound).
    let outage = std::time::Duration::from_secs(10);
    pause_ms(
        outage
            .saturating_sub(stopped.elapsed())
            .as_millis()
            .try_into()
            .unwrap_or(0),
    );
    let down_seconds = stopped.elapsed().as_secs_f64();
    cluster.start_apiserver()?;
    restarted?;
    cluster.wait_for("the startup taint gone from node 2 again", 120, || {
        (!tainted(cluster).ok()?).then_some(())
    })?;
    let logs = cluster.dir().join(format!(
        "n2/pod-logs/{NAMESPACE}_{}_{}/sidecar",
        pod["metadata"]["name"].as_str().unwrap_or_default(),
        pod["metadata"]["uid"].as_str().unwrap_or_default()
    ));
    let log = cluster.wait_for("the restarted sidecar's removal in its log", 30, || {
        let newest = std::fs::read_dir(&logs)
            .ok()?
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let restart: u32 = path.file_stem()?.to_str()?.parse().ok()?;
                Some((restart, path))
            })
            .max()?;
        let text = std::fs::read_to_string(newest.1).ok()?;
        text.contains("removed the startup taint").then_some(text)
    })?;
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    let (failures, recoveries) = (
        count("cannot remove the startup taint"),
        count("the API server answers again"),
    );
    eprintln!(
        "startup taint: API server down {down_seconds:.1} s; the restarted sidecar logged \
         {failures} failure line(s), {recoveries} recovery line(s)"
    );
    check(
        (1..=3).contains(&failures) && recoveries == 1,
        &format!("retried quietly, then recovered once:\n{log}"),
    )?;
    marked_address_on(cluster, 2)?;
    // The cluster as the next case expects it after the restart: nodes, sidecars, webhook.
    nodes_settled(cluster)?;
    daemonset_ready(cluster)?;
    webhook_ready(cluster).map(drop).map_err(Failed::from)
}

/// The pid of the sidecar's daemon on node `node`: the image's binary in that node's network
/// namespace (the setup container has exited by then).
fn sidecar_daemon_on(cluster: &Cluster, node: u8) -> Result<i32, String> {
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata(format!("/var/run/netns/{}", cluster.netns(node)))
        .map_err(|e| format!("node {node}'s netns: {e}"))?
        .ino();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(|e| e.to_string())? {
        let Some(pid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
        else {
            continue;
        };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.starts_with(b"/apiserver-proxy-sidecar\0"));
        let here = std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == netns);
        if ours && here {
            found.push(pid);
        }
    }
    match found[..] {
        [pid] => Ok(pid),
        _ => Err(format!(
            "one sidecar process on node {node} expected, found {found:?}"
        )),
    }
}

/// Kills the sidecar's daemon `old` and waits until the kubelet has started it again.
fn restart_sidecar(cluster: &Cluster, old: i32) -> Result<(), String> {
    use nix::sys::signal::{kill, Signal};
    kill(nix::unistd::Pid::from_raw(old), Signal::SIGKILL)
        .map_err(|e| format!("kill {old}: {e}"))?;
    cluster.wait_for("the kubelet restarted node 2's sidecar", 60, || {
        sidecar_daemon_on(cluster, 2).ok().filter(|&pid| pid != old)
    })?;
    Ok(())
}

/// The address and link of the sidecar run without RBAC, in a network namespace of its own.
const NO_RBAC_ADDRESS: &str = "10.96.0.9";
const NO_RBAC_LINK: &str = "apc-no-rbac";

/// The image's sidecar binary, run against the real API server as a ServiceAccount without the
/// example's ClusterRole, with a link and address of its own: its log names the verb and the
/// resource it may not use, and it keeps its address. It runs in a network namespace of its own
/// ([`OwnNetns`]), not in a node's: a sidecar removes every address with our mark that it does
/// not want (stale collection, domain/src/sidecar/stale.rs), so in node 2 it took the
/// DaemonSet's 10.96.0.2 away, and that sidecar put it back.
fn startup_taint_without_rbac(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    cluster.kubectl(&["create", "serviceaccount", "-n", "default", NO_RBAC_LINK])?;
    let verdict = as_no_rbac(cluster);
    cluster.kubectl(&["delete", "serviceaccount", "-n", "default", NO_RBAC_LINK])?;
    verdict
}

fn as_no_rbac(cluster: &Cluster) -> Result<(), Failed> {
    let token = cluster.kubectl(&["create", "token", "-n", "default", NO_RBAC_LINK])?;
    let ca = std::fs::read(cluster.dir().join("pki/ca.crt"))?;
    let kubeconfig = cluster.dir().join("no-rbac.kubeconfig");
    std::fs::write(
        &kubeconfig,
        json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "no-rbac",
            "clusters": [{"name": "tier", "cluster": {
                "server": format!("https://{APISERVER}"),
                "certificate-authority-data": base64_encode(&ca)}}],
            "users": [{"name": "no-rbac", "user": {"token": token.trim()}}],
            "contexts": [{"name": "no-rbac", "context": {"cluster": "tier", "user": "no-rbac"}}],
        })
        .to_string(),
    )?;
    let binary = image_sidecar(cluster)?;
    // Dropped last: the namespace, its links and the address go when the case ends.
    let netns = OwnNetns::create(cluster)?;
    netns.ip(&[
        "link",
        "add",
        NO_RBAC_LINK,
        "type",
        "veth",
        "peer",
        "name",
        "apc-no-rbac-p",
    ])?;
    let log_path = cluster.dir().join("logs/no-rbac-sidecar.log");
    let log_file = std::fs::File::create(&log_path)?;
    let mut sidecar = std::process::Command::new("nsenter")
        .arg(format!("--net=/var/run/netns/{}", netns.name))
        .arg(&binary)
        .args([
            &format!("--ip-address={NO_RBAC_ADDRESS}"),
            &format!("--interface={NO_RBAC_LINK}"),
            &format!("--startup-taint={STARTUP_TAINT}"),
            // No proxy listens in this namespace: try the removal once the address is there.
            "--wait-for-proxy=false",
            "--node-name=node2",
            &format!("--kubeconfig={}", kubeconfig.display()),
        ])
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()?;
    let verdict = without_rbac(cluster, &netns, &log_path, &mut sidecar);
    let _ = sidecar.kill();
    let _ = sidecar.wait();
    verdict
}

fn without_rbac(
    cluster: &Cluster,
    netns: &OwnNetns,
    log_path: &std::path::Path,
    sidecar: &mut std::process::Child,
) -> Result<(), Failed> {
    let line = cluster.wait_for("the sidecar's forbidden line", 60, || {
        let log = std::fs::read_to_string(log_path).ok()?;
        log.lines()
            .find(|l| l.contains("cannot remove the startup taint"))
            .map(str::to_owned)
    })?;
    eprintln!("startup taint without RBAC: {line}");
    check(
        line.contains("forbidden") && line.contains("get") && line.contains("\"nodes\""),
        &format!("the line names the verb and the resource: {line}"),
    )?;
    check(
        sidecar.try_wait()?.is_none(),
        "the sidecar keeps running without RBAC",
    )?;
    check(
        netns
            .ip(&["-4", "-o", "addr", "show", "dev", NO_RBAC_LINK])?
            .contains(&format!(" {NO_RBAC_ADDRESS}/32 ")),
        "the address kept without RBAC",
    )?;
    // Its start collected stale entries: it found none, so it touched nothing of another
    // instance's (in node 2 it removed the DaemonSet's address here).
    let log = std::fs::read_to_string(log_path)?;
    check(
        !log.contains("removed stale"),
        &format!("the unbound sidecar removed nothing beside its own:\n{log}"),
    )
}

/// A network namespace of the no-RBAC case's own, named after the cluster's, joined to node 1
/// by a veth pair (10.200.9.0/30): the sidecar in it reaches the API server at node 1's
/// address, and touches no node's links or addresses. Dropping it deletes it, and the veth
/// pair with it.
struct OwnNetns {
    name: String,
    node1: String,
}

impl OwnNetns {
    const UPLINK: &'static str = "apc-no-rbac-up";

    fn create(cluster: &Cluster) -> Result<OwnNetns, String> {
        let node1 = cluster.netns(1);
        let name = format!("{node1}-no-rbac");
        ip_in(None, &["netns", "add", &name])?;
        let netns = OwnNetns { name, node1 };
        let node1 = Some(netns.node1.as_str());
        ip_in(
            node1,
            &[
                "link",
                "add",
                Self::UPLINK,
                "type",
                "veth",
                "peer",
                "name",
                "uplink",
                "netns",
                &netns.name,
            ],
        )?;
        ip_in(
            node1,
            &["addr", "add", "10.200.9.1/30", "dev", Self::UPLINK],
        )?;
        ip_in(node1, &["link", "set", Self::UPLINK, "up"])?;
        netns.ip(&["addr", "add", "10.200.9.2/30", "dev", "uplink"])?;
        netns.ip(&["link", "set", "uplink", "up"])?;
        netns.ip(&["link", "set", "lo", "up"])?;
        netns.ip(&["route", "add", "default", "via", "10.200.9.1"])?;
        Ok(netns)
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        ip_in(Some(&self.name), args)
    }
}

impl Drop for OwnNetns {
    fn drop(&mut self) {
        // Node 1's end explicitly: a namespace's devices go asynchronously after its deletion.
        let _ = ip_in(Some(&self.node1), &["link", "delete", Self::UPLINK]);
        let _ = ip_in(None, &["netns", "delete", &self.name]);
    }
}

/// The sidecar binary of the image the DaemonSet runs, copied out of it (once per run).
fn image_sidecar(cluster: &Cluster) -> Result<std::path::PathBuf, String> {
    let binary = cluster.dir().join("apiserver-proxy-sidecar");
    let container = format!("apc-no-rbac-{}", std::process::id());
    let docker = |args: &[&str]| {
        let output = std::process::Command::new("docker")
            .args(args)
            .output()
            .map_err(|e| format!("docker: {e}"))?;
        stdout_or_error(&format!("docker {}", args.join(" ")), &output)
    };
    docker(&["create", "--name", &container, IMAGES[0]])?;
    let copied = docker(&[
        "cp",
        &format!("{container}:/apiserver-proxy-sidecar"),
        &binary.display().to_string(),
    ]);
    docker(&["rm", &container])?;
    copied.map(|_| binary)
}

// --- the data path -------------------------------------------------------------------------------

/// The data-path clients (one per node, through the `kubernetes` Service) and their namespace.
const CLIENTS: &str = "testdata/cluster/datapath/clients.yaml";
const CLIENT_NAMESPACE: &str = "apc-datapath";
/// Per-second lines a window waits for after its end: a request in flight at the end is
/// counted in one of them (a refused connect fails at once, an unanswered one after 2 s).
const SETTLE_LINES: u64 = 3;

/// Applies the clients (again: idempotent).
fn clients_applied(cluster: &Cluster) -> Result<(), String> {
    let clients = cluster.root().join(CLIENTS);
    cluster
        .kubectl(&["apply", "-f", &clients.display().to_string()])
        .map(drop)
}

/// The running client Pod on node `node` and its log, once it has printed a per-second line.
fn client_on(cluster: &Cluster, node: u8) -> Option<(String, String)> {
    let pods = cluster
        .json(&[
            "get",
            "pods",
            "-n",
            CLIENT_NAMESPACE,
            "--field-selector",
            &format!("spec.nodeName=node{node}"),
        ])
        .ok()?;
    let pod = pods["items"].as_array()?.iter().find(|pod| {
        pod["metadata"]["deletionTimestamp"].is_null() && pod["status"]["phase"] == "Running"
    })?;
    let name = pod["metadata"]["name"].as_str()?.to_owned();
    let log = client_log(cluster, &name).ok()?;
    last_seq(&log).map(|_| (name, log))
}

fn client_log(cluster: &Cluster, pod: &str) -> Result<String, String> {
    cluster.kubectl(&["logs", "-n", CLIENT_NAMESPACE, pod])
}

/// A measurement over both nodes' clients: where each client's log stood when it opened
/// (`None`: from the client's first request).
#[derive(Debug)]
struct PathWindow {
    starts: Vec<(u8, String, Option<u64>)>,
}

impl PathWindow {
    /// Opens a window on both nodes, applying the clients first if need be.
    fn open(cluster: &Cluster) -> Result<PathWindow, Failed> {
        PathWindow::open_on(cluster, &[1, 2], false)
    }

    /// Opens a window on `nodes`; `from_start`: from each client's first request.
    fn open_on(cluster: &Cluster, nodes: &[u8], from_start: bool) -> Result<PathWindow, Failed> {
        clients_applied(cluster)?;
        let mut starts = Vec::new();
        for &node in nodes {
            let (pod, log) = cluster.wait_for(
                &format!("the data-path client on node {node} running"),
                120,
                || client_on(cluster, node),
            )?;
            let after = if from_start { None } else { last_seq(&log) };
            starts.push((node, pod, after));
        }
        Ok(PathWindow { starts })
    }

    /// Closes the window: waits for [`SETTLE_LINES`] more lines of each client, then prints and
    /// returns each node's counts (node order).
    fn close(self, cluster: &Cluster, case: &str) -> Result<Vec<PathCounts>, Failed> {
        let mut parts = self.close_in_parts(cluster, &[], case)?;
        Ok(parts.pop().unwrap_or_default())
    }

    /// Each node's client's last line now (node order): a boundary between two parts of the
    /// window.
    fn mark(&self, cluster: &Cluster) -> Result<Vec<u64>, Failed> {
        let mut marks = Vec::new();
        for (_, pod, _) in &self.starts {
            marks.push(last_seq(&client_log(cluster, pod)?).unwrap_or(0));
        }
        Ok(marks)
    }

    /// A boundary `lines` lines after `marks`, once each node's client has printed them.
    fn lines_after(
        &self,
        cluster: &Cluster,
        marks: &[u64],
        lines: u64,
    ) -> Result<Vec<u64>, Failed> {
        let mut later = Vec::new();
        for ((node, pod, _), mark) in self.starts.iter().zip(marks) {
            let until = mark + lines;
            cluster.wait_for(
                &format!("{lines} more lines from node {node}'s client {pod}"),
                60,
                || {
                    client_log(cluster, pod)
                        .ok()
                        .and_then(|log| last_seq(&log))
                        .filter(|&seq| seq >= until)
                },
            )?;
            later.push(until);
        }
        Ok(later)
    }

    /// Closes the window in consecutive parts: each of `parts` (a case's name and where it
    /// ends, from [`PathWindow::mark`]) starts where the one before ended, the first at the
    /// window's start; the last, `last`, ends [`SETTLE_LINES`] after now. Prints each part's
    /// line per node; returns each part's counts (node order).
    fn close_in_parts(
        self,
        cluster: &Cluster,
        parts: &[(&str, Vec<u64>)],
        last: &str,
    ) -> Result<Vec<Vec<PathCounts>>, Failed> {
        let ends = self.lines_after(cluster, &self.mark(cluster)?, SETTLE_LINES)?;
        let mut all = vec![Vec::new(); parts.len() + 1];
        for (index, (node, pod, after)) in self.starts.iter().enumerate() {
            let log = client_log(cluster, pod)?;
            let mut from = *after;
            let bounds = parts
                .iter()
                .map(|(case, marks)| (*case, marks[index]))
                .chain(std::iter::once((last, ends[index])));
            for (part, (case, until)) in bounds.enumerate() {
                let counts = PathCounts::from_log(&log, from, until);
                eprintln!("{}", counts.line(case, *node));
                all[part].push(counts);
                from = Some(until);
            }
        }
        Ok(all)
    }
}

/// d. The conntrack-bypass rules (docs/examples/iptables, in place on both nodes) under
/// kube-proxy's iptables mode, for 3 s: the clients' connections through the Service's cluster
/// IP are DNATed to the address by conntrack, and the rule `-t raw -A OUTPUT -s ADDRESS/32
/// --sport PORT -j NOTRACK` takes the proxy's answers out of conntrack, so their source is never
/// rewritten back to the cluster IP: the client's socket does not know them, and no connection
/// through the Service completes (docs/deploy.md says so loudly). Asserted: on each node, every
/// request in the window failed.
fn data_path_with_the_rules(cluster: &Cluster) -> Result<(), Failed> {
    let window = PathWindow::open(cluster)?;
    pause_ms(3000);
    let counts = window.close(
        cluster,
        "d. conntrack-bypass rules, kube-proxy iptables mode",
    )?;
    for counts in counts {
        check(
            counts.requests > 0 && counts.failed == counts.requests,
            &format!("d. every request through the Service failed with the rules: {counts:?}"),
        )?;
    }
    // The sidecars started after kube-proxy had written its rules, so they say so
    // (docs/iptables.md).
    for node in ["node1", "node2"] {
        let pod = sidecar_pod_on(cluster, node)?;
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let log = cluster.kubectl(&["logs", "-n", NAMESPACE, name, "-c", "sidecar"])?;
        check(
            log.contains("kube-proxy runs in iptables mode"),
            &format!("{node}'s sidecar warns about kube-proxy's iptables mode:\n{log}"),
        )?;
    }
    Ok(())
}

/// e. Node start: node 2 registered with the startup taint, and its client (no tolerations,
/// applied with the first case's Deployment) was scheduled there once the sidecar removed the
/// taint, which it does only once a TCP connect to the proxy address and port succeeds
/// (docs/deploy.md#startup-taint): counted from the client's first request, none fails. Run
/// alone (a filtered run), node 2 is untainted already and the client starts on a running node.
fn data_path_node_start(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    let counts = PathWindow::open_on(cluster, &[2], true)?.close(cluster, "e. node start")?;
    no_failed_request("e. node start", &counts)
}

/// Fails when any node's window saw a failed request, or none at all.
fn no_failed_request(case: &str, counts: &[PathCounts]) -> Result<(), Failed> {
    for counts in counts {
        check(
            counts.requests > 0 && counts.failed == 0,
            &format!("{case}: requests and none failed: {counts:?}"),
        )?;
    }
    Ok(())
}

/// a. Steady state: both nodes' clients, through the Service, kube-proxy, the address and the
/// node's proxy, for 3 s: no request fails.
fn data_path_steady_state(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    daemonset_ready(cluster)?;
    let window = PathWindow::open(cluster)?;
    // The window's length: the case's own pacing, not a wait for an event.
    pause_ms(3000);
    let counts = window.close(cluster, "a. steady state")?;
    no_failed_request("a. steady state", &counts)
}

/// b. Repairs on node 2 while both nodes' clients run: the address deleted 20 times, the
/// link set down 5 times, the sidecar's daemon killed (SIGKILL) twice, each time waiting for the
/// repair (the address back, the link up, a new daemon) before the next. No request fails, and
/// the kept-alive connection survives all of it.
fn data_path_repairs(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    daemonset_ready(cluster)?;
    let window = PathWindow::open(cluster)?;
    let repairs = repairs_on_node2(cluster);
    let counts = window.close(cluster, "b. repairs")?;
    repairs?;
    no_failed_request("b. repairs", &counts)?;
    check(
        counts[1].reconnects == 0 && counts[1].kept_failed == 0,
        &format!("the kept-alive connection survived: {:?}", counts[1]),
    )
}

fn repairs_on_node2(cluster: &Cluster) -> Result<(), Failed> {
    let address = format!("{PROXY_ADDRESS}/32");
    for _ in 0..20 {
        ip(
            cluster,
            2,
            &["addr", "del", &address, "dev", "apiserver-proxy"],
        )?;
        cluster.wait_for("the address back on node 2", 30, || {
            address_on(cluster, 2).then_some(())
        })?;
        pause_ms(100);
    }
    for _ in 0..5 {
        ip(cluster, 2, &["link", "set", "apiserver-proxy", "down"])?;
        cluster.wait_for("node 2's link up again, its address on it", 30, || {
            let link = ip(cluster, 2, &["-o", "link", "show", "apiserver-proxy"]).ok()?;
            (link.contains(",UP") && address_on(cluster, 2)).then_some(())
        })?;
        pause_ms(100);
    }
    for _ in 0..2 {
        restart_sidecar(cluster, sidecar_daemon_on(cluster, 2)?)?;
        pause_ms(100);
    }
    Ok(())
}

// --- f. the address change ----------------------------------------------------------------------

/// Lines after the API server's restart that still belong to the restart: a request begun while
/// it was down ends within 4 s (the kept-alive stream's one retry: a 2 s answer timeout, then a
/// new connection's 2 s), so its failure is never counted as the path's.
const RESTART_LINES: u64 = 5;
/// The transition's second sidecar's metrics, readiness and liveness port (the first keeps
/// 16910; a probe must ask the container it belongs to).
const SECOND_SIDECAR_PORT: u16 = 16911;
/// The HAProxy configurations of the two rollouts: listening on both addresses, then on the new
/// one only.
const HAPROXY_BOTH: &str = "apiserver-proxy-haproxy-both-addresses";
const HAPROXY_NEW: &str = "apiserver-proxy-haproxy-new-address";

/// f. The proxy address changed from 10.96.0.2 to 10.96.0.3 while both nodes' clients run, in
/// the operator's order of docs/deploy.md ("Changing the proxy address"):
/// 1. a rollout in which every node holds both addresses (a second sidecar container keeps the
///    new one) and the proxy listens on both (the new one with `transparent`, HAProxy's
///    freebind, as the address may not be there yet when it starts);
/// 2. the `kubernetes` Service's endpoint moved: the API server restarted with
///    `--advertise-address=10.96.0.3`, then kube-proxy's DNAT on both nodes waited for;
/// 3. a rollout to `--ip-address=10.96.0.3 --remove-address=10.96.0.2` (setup and sidecar), the
///    second sidecar gone, the proxy on the new address only; the old address gone from both
///    nodes.
///
/// One window, in three parts: step 1; the API server's restart, from just before its stop to
/// [`RESTART_LINES`] after it answers again (its own downtime, printed, never the path's); the
/// rest of step 2 and step 3. Asserted: no request of the first and third parts failed. Then the
/// tier is put back as installed (not measured): the DaemonSet deleted and applied again, the
/// API server advertising 10.96.0.2.
fn data_path_address_change(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    daemonset_ready(cluster)?;
    old_sidecar_pods_gone(cluster)?;
    let changed = address_change(cluster);
    // Whatever happened, the next cases find 10.96.0.2 as installed.
    let restored = back_to_the_installed_address(cluster);
    let parts = changed?;
    restored?;
    let mut path = Vec::new();
    for (node, (both, moved)) in (1..).zip(parts[0].iter().zip(&parts[2])) {
        let mut counts = both.clone();
        counts += moved;
        eprintln!(
            "{}",
            counts.line("f. address change rolled out (f1 and f3)", node)
        );
        path.push(counts);
    }
    no_failed_request("f. address change rolled out", &path)
}

/// The measured steps of [`data_path_address_change`]: each part's counts (node order).
fn address_change(cluster: &Cluster) -> Result<Vec<Vec<PathCounts>>, Failed> {
    let installed = cluster.json(&["get", "daemonset", "-n", NAMESPACE, "apiserver-proxy"])?;
    let spec = &installed["spec"]["template"]["spec"];
    let config = haproxy_config(cluster, spec)?;
    let bind = format!("bind {PROXY_ADDRESS}:443\n");
    check(
        config.contains(&bind),
        &format!("the proxy's configuration has `{bind}`:\n{config}"),
    )?;
    let window = PathWindow::open(cluster)?;
    #[allow(clippy::disallowed_types)] // The steps' times: figures for docs/deploy.md, printed.
    let clock = std::time::Instant::now();
    let mut steps = Vec::new();
    let mut step =
        |what: &str| steps.push(format!("{what} {:.1} s", clock.elapsed().as_secs_f64()));
    // 1. Both addresses, a proxy listening on both.
    config_map(
        cluster,
        HAPROXY_BOTH,
        &config.replace(
            &bind,
            &format!("{bind}  bind {NEW_PROXY_ADDRESS}:443 transparent\n"),
        ),
    )?;
    roll(cluster, &template_spec(&both_addresses(spec)?))?;
    cluster.wait_for("both addresses on both nodes", 60, || {
        [1, 2]
            .iter()
            .all(|&node| {
                holds(cluster, node, PROXY_ADDRESS) && holds(cluster, node, NEW_PROXY_ADDRESS)
            })
            .then_some(())
    })?;
    step("both addresses on both nodes");
    // 2. The endpoint moved.
    let restart_begins = window.mark(cluster)?;
    cluster.restart_apiserver(NEW_PROXY_ADDRESS)?;
    step("the API server ready again");
    let restart_ends = window.lines_after(cluster, &window.mark(cluster)?, RESTART_LINES)?;
    let mut targets = Vec::new();
    for node in [1, 2] {
        targets.push(format!(
            "node {node} {:?}",
            cluster.service_endpoints(node)?
        ));
    }
    eprintln!(
        "f. kube-proxy's DNAT for the kubernetes Service where the restart's part ended: {}",
        targets.join(", ")
    );
    let moved = vec![format!("{NEW_PROXY_ADDRESS}:443")];
    cluster.wait_for(
        "kube-proxy's DNAT on both nodes to the new address only",
        60,
        || {
            [1, 2]
                .iter()
                .all(|&node| cluster.service_endpoints(node).is_ok_and(|t| t == moved))
                .then_some(())
        },
    )?;
    step("kube-proxy on both nodes");
    // 3. The new address only, the old one removed.
    config_map(
        cluster,
        HAPROXY_NEW,
        &config.replace(&bind, &format!("bind {NEW_PROXY_ADDRESS}:443\n")),
    )?;
    roll(cluster, &template_spec(&new_address_only(spec)?))?;
    step("the new address only rolled out");
    cluster.wait_for("the old address gone from both nodes", 120, || {
        [1, 2]
            .iter()
            .all(|&node| {
                !holds(cluster, node, PROXY_ADDRESS) && holds(cluster, node, NEW_PROXY_ADDRESS)
            })
            .then_some(())
    })?;
    step("the old address gone from both nodes");
    eprintln!(
        "f. the steps, from the window's start: {}",
        steps.join(", ")
    );
    window.close_in_parts(
        cluster,
        &[
            ("f1. both addresses rolled out", restart_begins),
            (
                "f2. API server restarted with --advertise-address=10.96.0.3 (its downtime, not the path's)",
                restart_ends,
            ),
        ],
        "f3. endpoint moved, the new address only, the old removed",
    )
}

/// The proxy's HAProxy configuration in the DaemonSet Pod template `spec` (the test overlay's
/// generated ConfigMap, mounted as `envoy-config`).
fn haproxy_config(cluster: &Cluster, spec: &Value) -> Result<String, Failed> {
    let name = volume(spec)?["configMap"]["name"]
        .as_str()
        .ok_or("the envoy-config volume names no ConfigMap")?
        .to_owned();
    let map = cluster.json(&["get", "configmap", "-n", NAMESPACE, &name])?;
    map["data"]["haproxy.cfg"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("ConfigMap {name} has no haproxy.cfg").into())
}

fn volume(spec: &Value) -> Result<&Value, Failed> {
    spec["volumes"]
        .as_array()
        .and_then(|volumes| volumes.iter().find(|v| v["name"] == "envoy-config"))
        .ok_or_else(|| "the Pod template has no envoy-config volume".into())
}

/// Creates (or replaces) the ConfigMap `name` holding `haproxy.cfg`.
fn config_map(cluster: &Cluster, name: &str, config: &str) -> Result<(), Failed> {
    let map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {"haproxy.cfg": config},
    });
    cluster.kubectl_with_input(&["apply", "-f", "-"], Some(&map.to_string()))?;
    Ok(())
}

/// Rolls the DaemonSet by the JSON patch `patch` and waits until the rollout is done: both new
/// Pods Ready, both old ones gone (their proxies drained).
fn roll(cluster: &Cluster, patch: &str) -> Result<(), Failed> {
    cluster.kubectl(&[
        "patch",
        "daemonset",
        "-n",
        NAMESPACE,
        "apiserver-proxy",
        "--type=json",
        "-p",
        patch,
    ])?;
    daemonset_ready(cluster)?;
    old_sidecar_pods_gone(cluster)
}

/// A JSON patch that makes `spec` the DaemonSet's Pod template spec.
fn template_spec(spec: &Value) -> String {
    json!([{"op": "replace", "path": "/spec/template/spec", "value": spec}]).to_string()
}

/// The installed Pod template `spec` with a second sidecar container keeping the new address
/// beside the first (its own port, no startup taint: the first one handles that), and the proxy
/// listening on both addresses.
fn both_addresses(spec: &Value) -> Result<Value, Failed> {
    let mut spec = spec.clone();
    let containers = spec["containers"]
        .as_array_mut()
        .ok_or("the Pod template has no containers")?;
    let first = containers
        .iter()
        .position(|c| c["name"] == "sidecar")
        .ok_or("the Pod template has no sidecar container")?;
    let mut second = containers[first].clone();
    second["name"] = json!("sidecar-new-address");
    let args = string_list(&second["args"])?
        .into_iter()
        .filter(|arg| !arg.starts_with("--startup-taint="))
        .map(|arg| {
            if arg.starts_with("--ip-address=") {
                format!("--ip-address={NEW_PROXY_ADDRESS}")
            } else if arg.starts_with("--metrics-bind-address=") {
                format!("--metrics-bind-address=0.0.0.0:{SECOND_SIDECAR_PORT}")
            } else {
                arg
            }
        })
        .collect::<Vec<_>>();
    second["args"] = json!(args);
    if let Some(container) = second.as_object_mut() {
        container.remove("env");
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        second[probe]["httpGet"]["port"] = json!(SECOND_SIDECAR_PORT);
    }
    containers.insert(first + 1, second);
    volume_config(&mut spec, HAPROXY_BOTH)?;
    Ok(spec)
}

/// The installed Pod template `spec` moved to the new address: setup and sidecar with
/// `--ip-address=NEW --remove-address=OLD`, the proxy on the new address only.
fn new_address_only(spec: &Value) -> Result<Value, Failed> {
    let mut spec = spec.clone();
    for (list, name) in [("initContainers", "setup"), ("containers", "sidecar")] {
        let container = spec[list]
            .as_array_mut()
            .and_then(|containers| containers.iter_mut().find(|c| c["name"] == name))
            .ok_or_else(|| format!("the Pod template has no {name} container"))?;
        let mut args = string_list(&container["args"])?
            .into_iter()
            .map(|arg| {
                if arg.starts_with("--ip-address=") {
                    format!("--ip-address={NEW_PROXY_ADDRESS}")
                } else {
                    arg
                }
            })
            .collect::<Vec<_>>();
        args.push(format!("--remove-address={PROXY_ADDRESS}"));
        container["args"] = json!(args);
    }
    let proxy = spec["containers"]
        .as_array_mut()
        .and_then(|containers| containers.iter_mut().find(|c| c["name"] == "proxy"))
        .ok_or("the Pod template has no proxy container")?;
    for probe in ["readinessProbe", "livenessProbe"] {
        proxy[probe]["tcpSocket"]["host"] = json!(NEW_PROXY_ADDRESS);
    }
    volume_config(&mut spec, HAPROXY_NEW)?;
    Ok(spec)
}

fn string_list(value: &Value) -> Result<Vec<String>, Failed> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| format!("expected a list of strings, got {value}").into())
}

/// Points the proxy's configuration volume at the ConfigMap `name`.
fn volume_config(spec: &mut Value, name: &str) -> Result<(), Failed> {
    let volume = spec["volumes"]
        .as_array_mut()
        .and_then(|volumes| volumes.iter_mut().find(|v| v["name"] == "envoy-config"))
        .ok_or("the Pod template has no envoy-config volume")?;
    volume["configMap"]["name"] = json!(name);
    Ok(())
}

/// The tier as installed again, after the address change (not measured): the DaemonSet deleted
/// (a rollout back would start the new Pods beside sidecars that remove 10.96.0.2) and applied
/// again, the two ConfigMaps deleted, the API server advertising 10.96.0.2; done once kube-proxy
/// on both nodes sends the Service there and the nodes hold 10.96.0.2 only (the setup containers
/// collect the marked 10.96.0.3, whose owner is gone).
fn back_to_the_installed_address(cluster: &Cluster) -> Result<(), Failed> {
    cluster.kubectl(&[
        "delete",
        "daemonset",
        "-n",
        NAMESPACE,
        "apiserver-proxy",
        "--ignore-not-found",
        "--wait=true",
    ])?;
    cluster.wait_for("the sidecar Pods gone", 120, || {
        let pods = cluster
            .json(&["get", "pods", "-n", NAMESPACE, "-l", SIDECAR])
            .ok()?;
        pods["items"].as_array()?.is_empty().then_some(())
    })?;
    cluster.kubectl(&[
        "delete",
        "configmap",
        "-n",
        NAMESPACE,
        HAPROXY_BOTH,
        HAPROXY_NEW,
        "--ignore-not-found",
    ])?;
    let installed = vec![format!("{PROXY_ADDRESS}:443")];
    if [1, 2].iter().any(|&node| {
        cluster
            .service_endpoints(node)
            .is_ok_and(|t| t != installed)
    }) {
        cluster.restart_apiserver(PROXY_ADDRESS)?;
    }
    cluster.apply_installed_again()?;
    daemonset_ready(cluster)?;
    cluster.wait_for(
        "kube-proxy's DNAT to 10.96.0.2 only and the nodes holding 10.96.0.2 only",
        120,
        || {
            [1, 2]
                .iter()
                .all(|&node| {
                    cluster
                        .service_endpoints(node)
                        .is_ok_and(|t| t == installed)
                        && holds(cluster, node, PROXY_ADDRESS)
                        && !holds(cluster, node, NEW_PROXY_ADDRESS)
                })
                .then_some(())
        },
    )?;
    // The API server was away for seconds: the node controller may have tainted a node.
    nodes_settled(cluster)
}

// --- shared --------------------------------------------------------------------------------------

/// A Pod the scheduler and the kubelets never touch (bound to a node that does not exist): only
/// admission matters here. Two containers and an init container.
fn pod(name: &str, labels: Value) -> Value {
    let container = |name: &str| json!({"name": name, "image": PAUSE_IMAGE});
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": "nowhere",
            "automountServiceAccountToken": false,
            "initContainers": [container("init")],
            "containers": [container("a"), container("b")],
        },
    })
}

fn create(cluster: &Cluster, namespace: &str, pod: &Value) -> Result<Value, Failed> {
    let text = cluster.kubectl_with_input(
        &["create", "-n", namespace, "-o", "json", "-f", "-"],
        Some(&pod.to_string()),
    )?;
    Ok(serde_json::from_str(&text)?)
}

fn namespace(cluster: &Cluster, name: &str, opted_out: bool) -> Result<(), String> {
    let labels = if opted_out {
        json!({OPT_OUT: "false"})
    } else {
        json!({})
    };
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": name, "labels": labels}});
    cluster
        .kubectl_with_input(&["apply", "-f", "-"], Some(&namespace.to_string()))
        .map(drop)
}

/// The value of KUBERNETES_SERVICE_HOST in a container, if it has one.
fn env(container: &Value) -> Option<&str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|var| var["name"] == "KUBERNETES_SERVICE_HOST")?["value"]
        .as_str()
}

fn unpatched(pod: &Value, what: &str) -> Result<(), Failed> {
    let spec = &pod["spec"];
    let any = ["initContainers", "containers"]
        .iter()
        .flat_map(|kind| spec[kind].as_array().into_iter().flatten())
        .any(|container| env(container).is_some());
    check(!any, &format!("{what} left alone: {spec}"))
}

fn check(holds: bool, what: &str) -> Result<(), Failed> {
    if holds {
        Ok(())
    } else {
        Err(format!("expected: {what}").into())
    }
}

/// The webhook's admission latency as the API server measured it (its own histogram), printed
/// for README.
fn figures(cluster: &Cluster) {
    let Ok(metrics) = cluster.metrics() else {
        return;
    };
    let series = "apiserver_admission_webhook_admission_duration_seconds";
    let ours = |line: &&str| line.contains(&format!("name=\"{WEBHOOK_NAME}\""));
    let value = |line: &str| -> f64 {
        line.rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let lines: Vec<&str> = metrics.lines().filter(ours).collect();
    let total = |suffix: &str| -> f64 {
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("{series}_{suffix}{{")))
            .map(|l| value(l))
            .sum()
    };
    let (sum, count) = (total("sum"), total("count"));
    if count == 0.0 {
        return;
    }
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in lines
        .iter()
        .filter(|l| l.starts_with(&format!("{series}_bucket{{")))
    {
        let le = line
            .split("le=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|le| le.parse::<f64>().ok())
            .unwrap_or(f64::INFINITY);
        match buckets.iter_mut().find(|(bound, _)| *bound == le) {
            Some((_, n)) => *n += value(line),
            None => buckets.push((le, value(line))),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    // p99 by linear interpolation inside its bucket, as Prometheus' histogram_quantile does.
    let rank = 0.99 * count;
    let (mut lower, mut below) = (0.0, 0.0);
    let mut p99 = f64::NAN;
    for &(bound, cumulative) in &buckets {
        if cumulative >= rank {
            p99 = if bound.is_finite() {
                lower + (bound - lower) * (rank - below) / (cumulative - below).max(1.0)
            } else {
                lower
            };
            break;
        }
        (lower, below) = (bound, cumulative);
    }
    eprintln!(
        "cluster figures: webhook admission latency (API server's histogram, {count} calls): \
         mean {:.1} ms, p99 {:.1} ms (buckets {:?})",
        sum / count * 1000.0,
        p99 * 1000.0,
        buckets
    );
}

// --- issue 26 ------------------------------------------------------------------------------------

/// How long the body flood runs against a replica.
const BODY_FLOOD_SECONDS: &str = "30";

/// Issue 26's two attacks at once (`bench/flood.py --attack`: 16 connections each sending all
/// but the last byte of the largest body allowed, then silent, and 520 dripping a byte of body
/// every 100 ms, all reopened when closed), from node 1 at one webhook replica's Pod IP, while
/// Pods are created: the replica runs under the Deployment's own memory limit (64Mi, checked on
/// the live object) and is not restarted (its `restartCount` stays as it was: an OOM kill would
/// raise it), and every Pod created meanwhile is patched.
fn webhook_under_a_body_flood(cluster: &Cluster) -> Result<(), Failed> {
    cluster.deployed()?;
    let replicas = webhook_ready(cluster)?;
    let deployment = cluster.json(&[
        "get",
        "deployment",
        "-n",
        NAMESPACE,
        "apiserver-proxy-pod-webhook",
    ])?;
    let limit =
        &deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"];
    check(
        limit == "64Mi",
        &format!("the Deployment's memory limit is 64Mi: {limit}"),
    )?;
    let target = &replicas[0];
    let name = target["metadata"]["name"]
        .as_str()
        .ok_or("a webhook Pod's name")?
        .to_owned();
    let ip = target["status"]["podIP"]
        .as_str()
        .ok_or("a webhook Pod's IP")?
        .to_owned();
    let restarts = |pod: &Value| pod["status"]["containerStatuses"][0]["restartCount"].as_u64();
    let before = restarts(target);
    namespace(cluster, "apc-body-flood", false)?;
    let flood = cluster.root().join("bench/flood.py");
    let mut attack = cluster
        .in_node(1, "python3")
        .arg(&flood)
        .args(["--attack", &ip, "9443", BODY_FLOOD_SECONDS])
        // A line of JSON at the end; a traceback goes to the tier's own stderr.
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 {}: {e}", flood.display()))?;
    let stream = during_a_stream(cluster, "apc-body-flood", || {
        attack
            .wait()
            .map_err(|e| format!("the attack: {e}"))
            .and_then(|status| {
                status
                    .success()
                    .then_some(())
                    .ok_or_else(|| format!("the attack failed: {status}"))
            })
    });
    let output = attack
        .wait_with_output()
        .map_err(|e| format!("the attack's output: {e}"))?;
    eprintln!(
        "body flood at {name} ({ip}): connections opened {}",
        String::from_utf8_lossy(&output.stdout).trim()
    );
    let stream = stream?;
    let after = cluster.json(&["get", "pod", "-n", NAMESPACE, &name])?;
    check(
        restarts(&after) == before && before.is_some(),
        &format!(
            "{name} not restarted ({before:?} restarts before, {:?} after): {}",
            restarts(&after),
            after["status"]["containerStatuses"][0]["lastState"]
        ),
    )?;
    stream.all_patched("a body flood at one webhook replica")
}

// --- issue 25 §3 ---------------------------------------------------------------------------------

/// The opt-in case of issue 25 §3 ([`OPT_IN`]: `CLUSTER_IDLE_RACE=1`).
const IDLE_RACE: &str = "webhook_idle_keep_alive_misses_no_pod";

/// How many Pods it paces (`CLUSTER_IDLE_RACE_PODS` changes it): about 3 minutes.
const IDLE_RACE_PODS: usize = 18;

/// The gaps between two paced Pods' POSTs, in turn: 10 s and these milliseconds. Before issue
/// 25 the webhook closed a keep-alive connection 10 s after its last answer (to the
/// millisecond), and a call the API server sends on it in the moment it takes to notice that
/// close fails: a window of a millisecond or so, just past 10 s after the previous call (whose
/// answer came a millisecond or two after it). Gaps a second off (9 or 11 s) never land in it: a
/// first run with kubectl started at each gap (its own start-up took 72 to 603 ms, as varied)
/// spread 30 calls over hundreds of milliseconds around it, and none landed. So kubectl is
/// started ahead of its moment ([`paced_create`]), and the gaps step through the window.
const IDLE_RACE_OFFSETS_MS: [i64; 12] = [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, -2, -4];

/// How long before its moment a paced kubectl is started: longer than its start-up takes.
const KUBECTL_LEAD_MS: u64 = 2_000;

/// Issue 25 §3: Pods created one at a time, about 10 s apart, so that each of the API server's
/// calls reuses a keep-alive connection idle for about the 10 s after which the webhook closed
/// one before issue 25 (it keeps one 120 s now, longer than the API server's client does).
/// Every Pod comes back patched: a call lost on a connection closed under it would admit its
/// Pod unpatched (`failurePolicy: Ignore`). Printed: the Pods, the unpatched ones, the
/// connections the webhook closed idle (its log), the calls the API server logged as failed
/// open, and kubectl's latency from its Pod's moment.
fn webhook_idle_keep_alive_misses_no_pod(cluster: &Cluster) -> Result<(), Failed> {
    let pods = idle_race_pods()?;
    cluster.deployed()?;
    webhook_ready(cluster)?;
    namespace(cluster, "apc-idle-race", false)?;
    let closes_before = idle_closes(cluster)?;
    let failed_before = failed_open(cluster)?.len();
    #[allow(clippy::disallowed_types)] // The case's own pace, and kubectl's latency, printed.
    let started = std::time::Instant::now();
    // The API server's connection is open (and idle) when the paced creations start.
    paced_create(cluster, "idle-warm-up", || ())?;
    let mut due = std::time::Duration::ZERO;
    let (mut unpatched, mut latencies_ms) = (Vec::new(), Vec::new());
    for (i, offset) in IDLE_RACE_OFFSETS_MS.iter().cycle().take(pods).enumerate() {
        due += std::time::Duration::from_millis(10_000_u64.saturating_add_signed(*offset));
        let until = |moment: std::time::Duration| {
            pause_ms(moment.saturating_sub(started.elapsed()).as_millis() as u64);
        };
        until(due.saturating_sub(std::time::Duration::from_millis(KUBECTL_LEAD_MS)));
        let name = format!("idle-{i}");
        let created = paced_create(cluster, &name, || until(due))?;
        latencies_ms.push(started.elapsed().saturating_sub(due).as_millis());
        if env(&created["spec"]["containers"][0]) != Some(FQDN) {
            unpatched.push(name);
        }
    }
    let closes = idle_closes(cluster)?.saturating_sub(closes_before);
    let failed: Vec<String> = failed_open(cluster)?.split_off(failed_before);
    latencies_ms.sort_unstable();
    eprintln!(
        "idle keep-alive race: {pods} Pods 10 s {}..{} ms apart, {} unpatched; the webhook closed \
         {closes} connection(s) idle or without a head in time; the API server failed open on {} \
         call(s); kubectl's latency from its Pod's moment min / median / max {} / {} / {} ms",
        IDLE_RACE_OFFSETS_MS.iter().min().unwrap_or(&0),
        IDLE_RACE_OFFSETS_MS.iter().max().unwrap_or(&0),
        unpatched.len(),
        failed.len(),
        latencies_ms.first().unwrap_or(&0),
        latencies_ms.get(latencies_ms.len() / 2).unwrap_or(&0),
        latencies_ms.last().unwrap_or(&0),
    );
    for line in &failed {
        eprintln!("  API server: {line}");
    }
    check(
        unpatched.is_empty(),
        &format!("every Pod patched; unpatched: {unpatched:?}"),
    )
}

/// Creates Pod `name` with `kubectl create --raw` (a POST of the Pod as it is: no discovery, no
/// client-side validation), started at once and sent its Pod only when `wait` returns: kubectl
/// reads the Pod from its stdin, so its start-up is behind it by then; returns the Pod the API
/// server created.
fn paced_create(cluster: &Cluster, name: &str, wait: impl FnOnce()) -> Result<Value, Failed> {
    use std::io::Write;
    let uri = "/api/v1/namespaces/apc-idle-race/pods";
    let mut kubectl = cluster
        .in_node(1, "kubectl")
        .arg(format!(
            "--kubeconfig={}",
            cluster.dir().join("kubeconfig").display()
        ))
        .args(["create", "--raw", uri, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("kubectl: {e}"))?;
    wait();
    // Written whole, then closed (dropped): kubectl sends the Pod at its end of input.
    if let Some(mut stdin) = kubectl.stdin.take() {
        stdin
            .write_all(pod(name, json!({})).to_string().as_bytes())
            .map_err(|e| format!("kubectl's stdin: {e}"))?;
    }
    let output = kubectl
        .wait_with_output()
        .map_err(|e| format!("kubectl: {e}"))?;
    let text = stdout_or_error(&format!("kubectl create --raw {uri}"), &output)?;
    Ok(serde_json::from_str(&text)?)
}

/// `CLUSTER_IDLE_RACE_PODS`, or [`IDLE_RACE_PODS`].
fn idle_race_pods() -> Result<usize, String> {
    let Ok(text) = std::env::var("CLUSTER_IDLE_RACE_PODS") else {
        return Ok(IDLE_RACE_PODS);
    };
    text.parse().ok().filter(|pods| *pods > 0).ok_or_else(|| {
        format!("invalid CLUSTER_IDLE_RACE_PODS {text:?}: expected a number of Pods, such as 18")
    })
}

/// Connections the webhook's replicas have closed for a head not complete in time or for
/// idleness (one info line each in their logs).
fn idle_closes(cluster: &Cluster) -> Result<usize, String> {
    let logs = cluster.kubectl(&["logs", "-n", NAMESPACE, "-l", WEBHOOK, "--tail=-1"])?;
    Ok(logs
        .lines()
        .filter(|line| line.contains("no complete request head in time"))
        .count())
}

/// The API server's log lines of calls to our webhook that failed and were let through
/// (`failurePolicy: Ignore`), oldest first.
fn failed_open(cluster: &Cluster) -> Result<Vec<String>, String> {
    let path = cluster.dir().join("logs/kube-apiserver.log");
    let log = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(log
        .lines()
        .filter(|line| line.contains("failing open") && line.contains(WEBHOOK_NAME))
        .map(str::to_owned)
        .collect())
}
