//! The cluster tier's context: one two-node Kubernetes v1.24 cluster (`scripts/cluster/cluster.py`
//! brings it up in network namespaces and tears it down), shared by the named cases of
//! `tests/tests/cluster.rs`, with the helpers they call: kubectl against the API server, commands
//! inside a node, the state the sidecar left on a node (`scripts/cluster/node.py`), the test CA.
//!
//! kubectl, not kube-rs: the cases are what a user types (`apply -k`, `debug`, `rollout`), and
//! the test crate compiles no Kubernetes client (docs/testing.md).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use serde_json::Value;

/// The FQDN the webhook puts into Pods (deploy/'s `--apiserver-fqdn`).
pub const FQDN: &str = "api.example.com";
/// The name the API server checks the webhook's certificate against (its Service's).
pub const WEBHOOK_SAN: &str = "DNS:apiserver-proxy-pod-webhook.kube-system.svc";
/// The proxy address deploy/ keeps on every node.
pub const PROXY_ADDRESS: &str = "10.96.0.2";
/// The address the address-change case moves to and back from (`cluster.py` names it in the API
/// server's certificate and routes it to a blackhole on each node, as [`PROXY_ADDRESS`]).
pub const NEW_PROXY_ADDRESS: &str = "10.96.0.3";
/// The API server's own address and port (node 1's), where the proxies forward to.
pub const APISERVER: &str = "10.200.0.1:443";
/// Where the project's objects live (deploy/'s namespace).
pub const NAMESPACE: &str = "kube-system";
/// The project's images, imported into each node's containerd.
pub const IMAGES: [&str; 2] = ["apiserver-proxy:0.1.0", "apiserver-proxy-pod-webhook:0.1.0"];
/// The startup taint node 2 registers with and the sidecar removes (docs/examples/startup-taint).
pub const STARTUP_TAINT: &str = "apiserver-proxy.networking.gardener.cloud/not-ready";
/// What the tier installs: deploy/ through the startup-taint example, so that example runs too.
pub const INSTALLED: &str = "docs/examples/startup-taint";
/// An image every node holds, for Pods the cases create (`cluster.py` builds it).
pub const PAUSE_IMAGE: &str = "docker.io/library/apiserver-proxy-pause:3.9";

/// The exit status of `cluster.py` when the tier cannot run here (not root, no binaries, a
/// missing tool): a loud skip, a failure with `REQUIRE_PRIVILEGED=1`.
const CANNOT_RUN: i32 = 2;

/// Why the cluster did not come up.
#[derive(Debug)]
pub enum StartError {
    /// This machine cannot run the tier (the reason names what is missing).
    CannotRun(String),
    /// It should have, and failed.
    Failed(String),
}

/// A running cluster. Dropping it stops every process `cluster.py up` started and removes its
/// namespaces, cgroups and mounts, whether the cases passed, failed or panicked.
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    dir: PathBuf,
    prefix: String,
    /// Seconds from nothing to two Ready nodes, as `cluster.py` measured it.
    pub start_seconds: f64,
    deployed: Mutex<bool>,
}

impl Cluster {
    /// Starts the cluster in `target/cluster-<pid>` of the workspace, with the data-path image
    /// built around `client` (the tests crate's `datapath-client`). When `up` fails half-way,
    /// what it started is torn down before this returns.
    pub fn start(client: &Path) -> Result<Cluster, StartError> {
        let root = workspace_root();
        let dir = root
            .join("target")
            .join(format!("cluster-{}", std::process::id()));
        tear_down_on_interrupt(&root, &dir);
        let output = Command::new("python3")
            .arg(root.join("scripts/cluster/cluster.py"))
            .args(["up".as_ref(), dir.as_os_str(), "--images".as_ref()])
            .args(IMAGES)
            .arg("--client")
            .arg(client)
            .current_dir(&root)
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| StartError::CannotRun(format!("python3: {e}")))?;
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        eprintln!("{stderr}");
        match output.status.code() {
            Some(0) => {}
            Some(CANNOT_RUN) => return Err(StartError::CannotRun(stderr)),
            _ => {
                teardown(&root, &dir);
                return Err(StartError::Failed(format!(
                    "the cluster did not come up (logs in {}): {stderr}",
                    dir.join("logs").display()
                )));
            }
        }
        let state: Value = std::fs::read_to_string(dir.join("state.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .ok_or_else(|| StartError::Failed(format!("no state.json in {}", dir.display())))?;
        Ok(Cluster {
            prefix: state["prefix"].as_str().unwrap_or_default().to_owned(),
            start_seconds: state["start_seconds"].as_f64().unwrap_or_default(),
            root,
            dir,
            deployed: Mutex::new(false),
        })
    }

    /// The workspace's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This run's directory (logs, certificates, the generated overlay).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The network namespace of node `node` (1 or 2), as `ip -n` and nsenter name it.
    pub fn netns(&self, node: u8) -> String {
        format!("{}-n{node}", self.prefix)
    }

    /// A command run inside node `node`'s network namespace (nsenter: `ip netns exec` would
    /// remount /sys).
    pub fn in_node(&self, node: u8, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/var/run/netns/{}", self.netns(node)))
            .arg(program);
        command
    }

    /// kubectl against the API server (from node 1, where it listens); `Err` holds stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.kubectl_with_input(args, None)
    }

    /// kubectl with `input` on its stdin (`-f -`).
    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut command = self.in_node(1, "kubectl");
        command
            .arg(format!(
                "--kubeconfig={}",
                self.dir.join("kubeconfig").display()
            ))
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| format!("kubectl: {e}"))?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("kubectl's stdin: {e}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("kubectl: {e}"))?;
        stdout_or_error(&format!("kubectl {}", args.join(" ")), &output)
    }

    /// kubectl with `-o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut args = args.to_vec();
        args.extend(["-o", "json"]);
        let text = self.kubectl(&args)?;
        serde_json::from_str(&text).map_err(|e| format!("kubectl {}: {e}", args.join(" ")))
    }

    /// The ownership state on node `node` (`scripts/cluster/node.py state`): addresses with our
    /// mark, links with our alias, iptables rules of ours.
    pub fn node_state(&self, node: u8) -> Result<Value, String> {
        let output = self
            .in_node(node, "python3")
            .arg(self.root.join("scripts/cluster/node.py"))
            .arg("state")
            .output()
            .map_err(|e| format!("node.py: {e}"))?;
        parse(&output)
    }

    /// Starts sampling, every 10 ms on node `node`, whether `address` is on a link; the result
    /// comes when the returned sampler is finished.
    pub fn sample_address(&self, node: u8, address: &str) -> Result<Sampler, String> {
        let child = self
            .in_node(node, "python3")
            .arg(self.root.join("scripts/cluster/node.py"))
            .args(["sample", address])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("node.py: {e}"))?;
        Ok(Sampler { child })
    }

    /// `base` (a kustomization, relative to the workspace: `deploy` or an example overlay) with
    /// the tier's component on top (testdata/cluster/machine: what this machine forces) and this
    /// run's test CA (the webhook's Secret, the `caBundle`). Returns the directory for
    /// `kubectl apply -k`, `target/cluster-<pid>/NAME`.
    pub fn overlay(&self, name: &str, base: &str) -> Result<PathBuf, String> {
        let overlay = self.dir.join(name);
        std::fs::create_dir_all(&overlay).map_err(|e| e.to_string())?;
        let (cert, key) = self.webhook_certificate(name, WEBHOOK_SAN)?;
        std::fs::copy(cert, overlay.join("tls.crt")).map_err(|e| e.to_string())?;
        std::fs::copy(key, overlay.join("tls.key")).map_err(|e| e.to_string())?;
        let ca = std::fs::read(self.dir.join("webhook-ca.crt")).map_err(|e| e.to_string())?;
        // Relative paths: kustomize refuses absolute ones (this is target/cluster-<pid>/NAME/).
        let kustomization = format!(
            "# Generated by the cluster tier for one run: the test CA's Secret and caBundle.\n\
             apiVersion: kustomize.config.k8s.io/v1beta1\n\
             kind: Kustomization\n\
             resources:\n\
             - ../../../{base}\n\
             components:\n\
             - ../../../testdata/cluster/machine\n\
             secretGenerator:\n\
             - name: apiserver-proxy-pod-webhook-tls\n  namespace: {NAMESPACE}\n  type: kubernetes.io/tls\n  \
               files: [tls.crt, tls.key]\n  options:\n    disableNameSuffixHash: true\n\
             patches:\n\
             - target:\n    kind: MutatingWebhookConfiguration\n  patch: |-\n    \
               - op: add\n      path: /webhooks/0/clientConfig/caBundle\n      value: {bundle}\n",
            bundle = base64_encode(&ca),
        );
        std::fs::write(overlay.join("kustomization.yaml"), kustomization)
            .map_err(|e| e.to_string())?;
        Ok(overlay)
    }

    /// A new serving certificate from this run's test CA (made on first use) for the
    /// subjectAltName `san` (such as [`WEBHOOK_SAN`]): `(certificate, key)` files named after
    /// `name`.
    pub fn webhook_certificate(&self, name: &str, san: &str) -> Result<(PathBuf, PathBuf), String> {
        let ca_cert = self.dir.join("webhook-ca.crt");
        let ca_key = self.dir.join("webhook-ca.key");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        if !ca_cert.exists() {
            openssl(&[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-days",
                    "2",
                    "-subj",
                    "/CN=apiserver-proxy cluster tier webhook CA",
                ],
                &["-keyout", path(&ca_key), "-out", path(&ca_cert)],
            ])?;
        }
        let cert = self.dir.join(format!("webhook-{name}.crt"));
        let key = self.dir.join(format!("webhook-{name}.key"));
        let csr = self.dir.join(format!("webhook-{name}.csr"));
        let ext = self.dir.join(format!("webhook-{name}.ext"));
        openssl(&[
            &["req"],
            &ec[..],
            &["-subj", &format!("/CN={name}")],
            &["-keyout", path(&key), "-out", path(&csr)],
        ])?;
        std::fs::write(&ext, format!("subjectAltName={san}\n")).map_err(|e| e.to_string())?;
        openssl(&[
            &["x509", "-req", "-days", "2", "-CAcreateserial", "-CAserial"],
            &[path(&self.dir.join("webhook-ca.srl"))],
            &[
                "-in",
                path(&csr),
                "-CA",
                path(&ca_cert),
                "-CAkey",
                path(&ca_key),
            ],
            &["-extfile", path(&ext), "-out", path(&cert)],
        ])?;
        Ok((cert, key))
    }

    /// Applies [`INSTALLED`] (deploy/ with the startup taint) through the test overlay once (server-side apply); later calls return at
    /// once. Cases that need the project installed call this first, so a filtered run works.
    pub fn deployed(&self) -> Result<(), String> {
        let mut deployed = self.deployed.lock().map_err(|e| e.to_string())?;
        if !*deployed {
            let overlay = self.overlay("deploy", INSTALLED)?;
            self.kubectl(&["apply", "--server-side", "-k", path(&overlay)])?;
            *deployed = true;
        }
        Ok(())
    }

    /// Polls `check` every 200 ms until it returns `Some`, for at most `seconds`; the bound keeps
    /// a broken case from hanging and asserts nothing about speed.
    pub fn wait_for<T>(
        &self,
        what: &str,
        seconds: u64,
        mut check: impl FnMut() -> Option<T>,
    ) -> Result<T, String> {
        #[allow(clippy::disallowed_types)] // The case's own deadline, not code under test.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            if let Some(value) = check() {
                return Ok(value);
            }
            #[allow(clippy::disallowed_types)]
            if std::time::Instant::now() > deadline {
                return Err(format!("timed out after {seconds} s waiting until {what}"));
            }
            pause_ms(200);
        }
    }

    /// Stops the API server (`cluster.py stop-apiserver`); [`Cluster::start_apiserver`] starts
    /// it again with the same arguments.
    pub fn stop_apiserver(&self) -> Result<(), String> {
        self.cluster_py("stop-apiserver")
    }

    /// Starts the API server stopped by [`Cluster::stop_apiserver`]; returns once it is ready.
    pub fn start_apiserver(&self) -> Result<(), String> {
        self.cluster_py("start-apiserver")
    }

    /// Stops the API server and starts it advertising `address` (`cluster.py restart-apiserver`):
    /// the `kubernetes` Service's endpoint moves there. Returns once it is ready.
    pub fn restart_apiserver(&self, address: &str) -> Result<(), String> {
        self.cluster_py_with("restart-apiserver", &["--advertise-address", address])
    }

    fn cluster_py(&self, action: &str) -> Result<(), String> {
        self.cluster_py_with(action, &[])
    }

    fn cluster_py_with(&self, action: &str, args: &[&str]) -> Result<(), String> {
        let output = Command::new("python3")
            .arg(self.root.join("scripts/cluster/cluster.py"))
            .arg(action)
            .arg(&self.dir)
            .args(args)
            .output()
            .map_err(|e| format!("python3: {e}"))?;
        stdout_or_error(&format!("cluster.py {action}"), &output).map(drop)
    }

    /// Where kube-proxy on node `node` sends the `kubernetes` Service's connections: the DNAT
    /// targets (`ADDRESS:PORT`) of its endpoints' chains in the node's nat table.
    pub fn service_endpoints(&self, node: u8) -> Result<Vec<String>, String> {
        let output = self
            .in_node(node, "iptables-save")
            .args(["-t", "nat"])
            .output()
            .map_err(|e| format!("iptables-save: {e}"))?;
        let rules = stdout_or_error(&format!("iptables-save -t nat on node {node}"), &output)?;
        Ok(kubernetes_dnat_targets(&rules))
    }

    /// Applies the installed overlay again, the one [`Cluster::deployed`] made (the same test
    /// certificate): what a case deleted comes back as installed.
    pub fn apply_installed_again(&self) -> Result<(), String> {
        let overlay = self.dir.join("deploy");
        self.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            path(&overlay),
        ])
        .map(drop)
    }

    /// The API server's /metrics.
    pub fn metrics(&self) -> Result<String, String> {
        self.kubectl(&["get", "--raw", "/metrics"])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        teardown(&self.root, &self.dir);
    }
}

/// A running `node.py sample`.
#[derive(Debug)]
pub struct Sampler {
    child: std::process::Child,
}

impl Sampler {
    /// Stops sampling: `{"samples": N, "missing": M, "longest_interval_ms": L}`.
    pub fn finish(mut self) -> Result<Value, String> {
        drop(self.child.stdin.take());
        let output = self
            .child
            .wait_with_output()
            .map_err(|e| format!("node.py: {e}"))?;
        parse(&output)
    }
}

/// Sleeps for the case's own pacing (polls, streams), not for ordering.
pub fn pause_ms(ms: u64) {
    #[allow(clippy::disallowed_methods)] // The harness's pacing, not code under test.
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// Ctrl-C or SIGTERM (the cluster's processes run in sessions of their own and do not get it):
/// tear the cluster down, then exit 130. SIGINT and SIGTERM are blocked in this thread and
/// every thread started after it (the cases'), and taken by one thread that waits for them;
/// the processes the harness spawns start with an empty mask.
fn tear_down_on_interrupt(root: &Path, dir: &Path) {
    use nix::sys::signal::{SigSet, Signal};
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if let Err(errno) = signals.thread_block() {
        eprintln!("cluster: cannot block SIGINT and SIGTERM ({errno}): an interrupt leaves the cluster running");
        return;
    }
    let (root, dir) = (root.to_owned(), dir.to_owned());
    std::thread::spawn(move || {
        if let Ok(signal) = signals.wait() {
            eprintln!("cluster: {signal}: tearing the cluster down");
            teardown(&root, &dir);
            #[allow(clippy::exit)]
            // The harness's own interrupt: the cluster is down, nothing else to undo.
            std::process::exit(130);
        }
    });
}

fn teardown(root: &Path, dir: &Path) {
    let status = Command::new("python3")
        .arg(root.join("scripts/cluster/cluster.py"))
        .arg("down")
        .arg(dir)
        .status();
    if !matches!(status, Ok(status) if status.success()) {
        eprintln!(
            "cluster: teardown failed ({status:?}); run `python3 scripts/cluster/cluster.py down {}`",
            dir.display()
        );
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn parse(output: &Output) -> Result<Value, String> {
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn openssl(parts: &[&[&str]]) -> Result<(), String> {
    let args: Vec<&str> = parts.concat();
    let output = Command::new("openssl")
        .args(&args)
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    stdout_or_error(&format!("openssl {}", args.join(" ")), &output).map(drop)
}

/// A finished command's stdout, or `Err` naming `what` failed and what it said on stderr.
pub fn stdout_or_error(what: &str, output: &Output) -> Result<String, String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Standard base64, as Kubernetes' `caBundle` and Secrets want it.
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How many failure lines a [`PathCounts`] keeps for the report.
const FIRST_FAILURES: usize = 5;

/// What the data-path clients (`datapath-client`, testdata/cluster/datapath/clients.yaml)
/// counted on one node over a window of their per-second lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PathCounts {
    /// Requests, both streams (new connections and the kept-alive one).
    pub requests: u64,
    /// Failed requests: refused, reset, timed out, a TLS error or an answer other than 200.
    pub failed: u64,
    /// The slowest answered request, in ms.
    pub worst_ms: u64,
    /// Of those, on the kept-alive connection.
    pub kept_requests: u64,
    /// Of those, failed on the kept-alive connection.
    pub kept_failed: u64,
    /// Times the kept-alive connection was closed between two requests and opened again.
    pub reconnects: u64,
    /// The first failure lines ([`FIRST_FAILURES`]), for the report.
    pub failures: Vec<String>,
}

impl PathCounts {
    /// Sums the per-second lines of a client's log with `seq` in `after < seq <= until` (`None`:
    /// every line up to `until`), and the failure lines printed between them.
    pub fn from_log(log: &str, after: Option<u64>, until: u64) -> PathCounts {
        let mut counts = PathCounts::default();
        // A failure line belongs to the second the next per-second line reports.
        let mut previous = 0;
        for line in log.lines() {
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let Some(seq) = value["seq"].as_u64() else {
                let inside = after.is_none_or(|after| previous >= after) && previous < until;
                if inside && !value["failure"].is_null() && counts.failures.len() < FIRST_FAILURES {
                    counts.failures.push(line.to_owned());
                }
                continue;
            };
            previous = seq;
            if after.is_some_and(|after| seq <= after) {
                continue;
            }
            if seq > until {
                break;
            }
            let field = |stream: &str, index: usize| value[stream][index].as_u64().unwrap_or(0);
            counts.requests += field("fresh", 0) + field("kept", 0);
            counts.failed += field("fresh", 1) + field("kept", 1);
            counts.worst_ms = counts.worst_ms.max(field("fresh", 2)).max(field("kept", 2));
            counts.kept_requests += field("kept", 0);
            counts.kept_failed += field("kept", 1);
            counts.reconnects += value["reconnects"].as_u64().unwrap_or(0);
        }
        counts
    }

    /// The line every data-path case prints per node.
    pub fn line(&self, case: &str, node: u8) -> String {
        format!(
            "data path: {case}: node {node}: {} requests, {} failed, worst {} ms \
             (kept-alive connection: {} requests, {} failed, {} reconnects){}",
            self.requests,
            self.failed,
            self.worst_ms,
            self.kept_requests,
            self.kept_failed,
            self.reconnects,
            if self.failures.is_empty() {
                String::new()
            } else {
                format!("; first failures: {}", self.failures.join(" "))
            }
        )
    }
}

/// The counts of two parts of a window, as one (the first failures of both, up to
/// [`FIRST_FAILURES`]).
impl std::ops::AddAssign<&PathCounts> for PathCounts {
    fn add_assign(&mut self, other: &PathCounts) {
        self.requests += other.requests;
        self.failed += other.failed;
        self.worst_ms = self.worst_ms.max(other.worst_ms);
        self.kept_requests += other.kept_requests;
        self.kept_failed += other.kept_failed;
        self.reconnects += other.reconnects;
        let room = FIRST_FAILURES.saturating_sub(self.failures.len());
        self.failures
            .extend(other.failures.iter().take(room).cloned());
    }
}

/// The DNAT targets of the `kubernetes` Service's endpoint chains in `iptables-save -t nat`.
fn kubernetes_dnat_targets(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter(|rule| {
            rule.starts_with("-A KUBE-SEP-") && rule.contains("default/kubernetes:https")
        })
        .filter_map(|rule| {
            let mut words = rule.split_whitespace();
            words.find(|&word| word == "--to-destination")?;
            words.next().map(str::to_owned)
        })
        .collect()
}

/// The last per-second line's `seq` in a client's log.
pub fn last_seq(log: &str) -> Option<u64> {
    log.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find_map(|value| value["seq"].as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"{"failure":"fresh","error":"connect: refused"}
{"seq":1,"fresh":[20,1,9],"kept":[20,0,4],"reconnects":0}
{"failure":"kept","error":"receive: reset"}
{"seq":2,"fresh":[19,0,31],"kept":[20,1,7],"reconnects":1}
{"seq":3,"fresh":[20,0,12],"kept":[20,0,5],"reconnects":0}
{"failure":"fresh","error":"late"}
{"seq":4,"fresh":[20,1,8],"kept":[20,0,3],"reconnects":0}
"#;

    #[test]
    fn a_window_sums_exactly_its_lines_and_their_failures() {
        let counts = PathCounts::from_log(LOG, Some(1), 3);
        assert_eq!(
            (counts.requests, counts.failed, counts.worst_ms),
            (79, 1, 31)
        );
        assert_eq!(
            (counts.kept_requests, counts.kept_failed, counts.reconnects),
            (40, 1, 1)
        );
        assert_eq!(
            counts.failures,
            vec![r#"{"failure":"kept","error":"receive: reset"}"#]
        );
    }

    #[test]
    fn parts_of_a_window_add_up_to_the_whole() {
        let mut sum = PathCounts::from_log(LOG, None, 2);
        sum += &PathCounts::from_log(LOG, Some(2), 4);
        let whole = PathCounts::from_log(LOG, None, 4);
        assert_eq!(sum, whole);
        assert_eq!((sum.requests, sum.failed, sum.worst_ms), (159, 3, 31));
    }

    #[test]
    fn the_kubernetes_services_dnat_targets_and_no_other_services() {
        let rules = r#"-A KUBE-SEP-ABC -s 10.96.0.2/32 -m comment --comment "default/kubernetes:https" -j KUBE-MARK-MASQ
-A KUBE-SEP-ABC -p tcp -m comment --comment "default/kubernetes:https" -m tcp -j DNAT --to-destination 10.96.0.2:443
-A KUBE-SEP-DEF -p tcp -m comment --comment "default/kubernetes:https" -m tcp -j DNAT --to-destination 10.96.0.3:443
-A KUBE-SEP-GHI -p tcp -m comment --comment "kube-system/apiserver-proxy-pod-webhook" -m tcp -j DNAT --to-destination 10.201.1.5:9443
-A KUBE-SVC-NPX -d 10.32.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -j KUBE-SEP-ABC
"#;
        assert_eq!(
            kubernetes_dnat_targets(rules),
            vec!["10.96.0.2:443", "10.96.0.3:443"]
        );
    }

    #[test]
    fn from_the_start_counts_the_failures_before_the_first_line() {
        let counts = PathCounts::from_log(LOG, None, 1);
        assert_eq!((counts.requests, counts.failed), (40, 1));
        assert_eq!(counts.failures.len(), 1);
        assert_eq!(last_seq(LOG), Some(4));
    }
}
