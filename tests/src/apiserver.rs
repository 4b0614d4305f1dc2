//! A fake Kubernetes API server for the sidecar's `--startup-taint`: one Node, served over plain
//! HTTP on loopback in the test's network namespace. It answers the two requests the sidecar
//! makes (GET and JSON PATCH of `/api/v1/nodes/NAME`), applies each patch as the API server
//! would (RFC 6902, a failed `test` answered 422), and records what it was sent. Blocking std
//! I/O on a thread of its own, so the test thread may block on the sidecar meanwhile. Beside it,
//! [`StandInProxy`] listens where the proxy would, since the sidecar removes the taint only once
//! the proxy answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::prelude::{Engine, BASE64_STANDARD};
use serde_json::{json, Value};

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// As an API server with the RBAC of docs/examples/startup-taint.
    Allow,
    /// 403 to every PATCH, with the API server's Status, as without `patch` on `nodes`.
    ForbidPatch,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// The request line's target as sent, query included.
    pub target: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Whether the proxy address was on `lo` when the request came (checked with `ip`).
    pub address_in_place: bool,
}

#[derive(Debug)]
struct State {
    node: Value,
    answer: Answer,
    requests: Vec<Request>,
}

/// The running fake; it serves until the test process ends.
#[derive(Debug, Clone)]
pub struct FakeApiServer {
    port: u16,
    state: Arc<Mutex<State>>,
}

/// The proxy address the tests give the sidecar.
pub const PROXY_ADDRESS: &str = "10.96.0.2";

/// The port the sidecar probes (`--port`'s default).
pub const PROXY_PORT: u16 = 443;

/// Stands in for the proxy (Envoy) in the test's network namespace: accepts connections on
/// [`PROXY_PORT`] of every address, so also on [`PROXY_ADDRESS`] once the sidecar has put it on
/// `lo`, and closes them. It serves until the test process ends.
#[derive(Debug, Clone)]
pub struct StandInProxy {
    accepted: Arc<AtomicUsize>,
}

impl StandInProxy {
    pub fn start() -> Self {
        let listener = TcpListener::bind(("0.0.0.0", PROXY_PORT)).expect("the proxy's port");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        Self { accepted }
    }

    /// Connections accepted so far: the sidecar's probes.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl FakeApiServer {
    /// Serves `node` (a Node object) at once.
    pub fn start(node: Value, answer: Answer) -> Self {
        Self::start_after(node, answer, Duration::ZERO)
    }

    /// Takes a port, but refuses connections (nothing listens) for `outage` before it serves:
    /// an API server that is down when the sidecar starts.
    pub fn start_after(node: Value, answer: Answer, outage: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let server = Self {
            port,
            state: Arc::new(Mutex::new(State {
                node,
                answer,
                requests: Vec::new(),
            })),
        };
        let state = server.state.clone();
        let serving = if outage.is_zero() {
            Some(listener)
        } else {
            drop(listener);
            None
        };
        std::thread::spawn(move || {
            let listener = serving.unwrap_or_else(|| {
                // The outage is the scenario itself, not a wait for something to happen.
                #[allow(clippy::disallowed_methods)]
                std::thread::sleep(outage);
                TcpListener::bind(("127.0.0.1", port)).expect("the same port again")
            });
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &state);
            }
        });
        server
    }

    /// A kubeconfig that points at this fake, written into `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        // Unused over plain HTTP, but kube builds its TLS settings anyway and, without a CA,
        // would look for the system's roots.
        let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/certs/ca.crt");
        let ca = std::fs::read(ca).expect("the test CA");
        let tls = format!("certificate-authority-data: {}", BASE64_STANDARD.encode(ca));
        self.write_kubeconfig(dir, &tls)
    }

    /// A kubeconfig that points at this fake with `insecure-skip-tls-verify: true` and no CA,
    /// written into `dir`.
    pub fn insecure_kubeconfig(&self, dir: &Path) -> PathBuf {
        self.write_kubeconfig(dir, "insecure-skip-tls-verify: true")
    }

    fn write_kubeconfig(&self, dir: &Path, tls: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\n    {tls}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: fake-token\n",
            self.port,
        );
        std::fs::write(&path, text).expect("the kubeconfig is written");
        path
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .requests
            .clone()
    }

    pub fn patches(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == "PATCH")
            .collect()
    }

    /// The Node's taints now.
    pub fn taints(&self) -> Value {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.node["spec"]["taints"].clone()
    }
}

/// A Node named `name` with these taints.
pub fn node(name: &str, taints: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {"taints": taints},
    })
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let (mut length, mut content_type) = (0, None);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let address_in_place = crate::sidecar::on_lo(PROXY_ADDRESS);
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.requests.push(Request {
        method: method.clone(),
        path: path.clone(),
        target: target.clone(),
        content_type,
        body: body.clone(),
        address_in_place,
    });
    let name = state.node["metadata"]["name"].as_str().unwrap_or_default();
    let (code, answer) = if path != format!("/api/v1/nodes/{name}") {
        (
            404,
            status(
                404,
                "NotFound",
                &format!("the server could not find {path}"),
            ),
        )
    } else {
        match (method.as_str(), state.answer) {
            ("GET", _) => (200, state.node.clone()),
            ("PATCH", Answer::ForbidPatch) => (403, status(403, "Forbidden", &format!(
                "nodes \"{name}\" is forbidden: User \"system:serviceaccount:kube-system:apiserver-proxy\" cannot patch resource \"nodes\" in API group \"\" at the cluster scope"
            ))),
            ("PATCH", Answer::Allow) => apply(&mut state.node, &body),
            _ => (405, status(405, "MethodNotAllowed", "method not allowed")),
        }
    };
    let body = answer.to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The patch applied as the API server applies a JSON patch: all or nothing, 422 on failure.
fn apply(node: &mut Value, body: &[u8]) -> (u16, Value) {
    let patch: json_patch::Patch = match serde_json::from_slice(body) {
        Ok(patch) => patch,
        Err(error) => return (400, status(400, "BadRequest", &error.to_string())),
    };
    let mut patched = node.clone();
    match json_patch::patch(&mut patched, &patch) {
        Ok(()) => {
            *node = patched;
            (200, node.clone())
        }
        Err(error) => (422, status(422, "", &error.to_string())),
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}
