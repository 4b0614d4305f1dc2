//! The pod webhook as a process on 127.0.0.1, and a TLS client that verifies it against the test
//! CA: the same view the API server has.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use blackbox_tests::{binary, http_get, wait_until};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConfig;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub const WEBHOOK: &str = "apiserver-proxy-pod-webhook";
pub const PATH: &str = "/webhook/pod-apiserver-env";
pub const FQDN: &str = "foo.bar.";

pub fn testdata(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(path)
}

pub fn sample() -> Vec<u8> {
    std::fs::read(testdata("admission/pod-create-v1.json")).expect("the sample review")
}

/// The head of a review's POST as the API server sends it, for tests that write the bytes
/// themselves (half a body, a declared length alone).
pub fn review_head(content_length: usize) -> String {
    format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n"
    )
}

/// The sample review, changed by `change`.
pub fn sample_with(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(&sample()).expect("JSON");
    change(&mut review);
    serde_json::to_vec(&review).expect("JSON")
}

/// A directory of its own, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Unique per call: parallel cases of one rstest table share their `name`.
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("webhook-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies `tls.crt` and `tls.key` of a committed pair (`server-ecdsa`, ...) into `dir`.
pub fn put_pair(pair: &str, dir: &Path) {
    std::fs::create_dir_all(dir).expect("the directory");
    for file in ["tls.crt", "tls.key"] {
        std::fs::copy(testdata(&format!("certs/{pair}/{file}")), dir.join(file)).expect("a copy");
    }
}

/// Issues a fresh server pair signed by the test CA into `dir`, with the committed recipe.
pub fn issue_server_pair(dir: &Path, key_type: &str) {
    let status = Command::new("bash")
        .arg(testdata("certs/gen-certs.sh"))
        .args(["leaf", &dir.display().to_string(), key_type, "server"])
        .status()
        .expect("openssl runs");
    assert!(status.success(), "gen-certs.sh leaf failed");
}

/// The DER of the first certificate in a PEM file.
pub fn cert_der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .expect("a PEM certificate")
        .to_vec()
}

/// The certificate's NotAfter as a Unix time, as openssl and date read it (independent of the
/// webhook's own parser).
pub fn not_after_unix(cert: &Path) -> f64 {
    let script = format!(
        "date -u +%s -d \"$(openssl x509 -noout -enddate -in '{}' | cut -d= -f2)\"",
        cert.display()
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a number of seconds")
}

/// A free port below the kernel's ephemeral range (32768 and up), so that no client connection
/// of a concurrent test can take it as its source port between this check and the webhook's bind.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    loop {
        let draw = std::process::id()
            .wrapping_mul(7919)
            .wrapping_add(NEXT.fetch_add(31, Ordering::Relaxed));
        let port = 20_000 + u16::try_from(draw % 10_000).expect("below 10,000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("::1", port)).is_ok()
        {
            return port;
        }
    }
}

/// The seed's patch for the sample review with `--apiserver-fqdn=foo.bar.`.
pub fn seed_patch() -> serde_json::Value {
    let env = json!([{ "name": "KUBERNETES_SERVICE_HOST", "value": FQDN }]);
    json!([
        { "op": "add", "path": "/spec/initContainers/0/env", "value": env },
        { "op": "add", "path": "/spec/containers/0/env", "value": env },
    ])
}

#[derive(Debug, Clone, Copy)]
pub enum Layout {
    /// tls.crt and tls.key are rewritten in place (each replaced by a rename).
    InPlace,
    /// A Kubernetes secret volume: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>; an update
    /// renames a new ..data over the old one.
    SecretVolume,
}

pub fn install_first_pair(dir: &Path, layout: Layout) {
    match layout {
        Layout::InPlace => put_pair("server-ecdsa", dir),
        Layout::SecretVolume => {
            put_pair("server-ecdsa", &dir.join("..2024_01_01_00_00_00.1"));
            std::os::unix::fs::symlink("..2024_01_01_00_00_00.1", dir.join("..data"))
                .expect("..data");
            for file in ["tls.crt", "tls.key"] {
                std::os::unix::fs::symlink(format!("..data/{file}"), dir.join(file))
                    .expect("a link");
            }
        }
    }
}

pub fn rotate_to(new_pair: &Path, dir: &Path, layout: Layout) {
    match layout {
        Layout::InPlace => {
            for file in ["tls.crt", "tls.key"] {
                let staged = dir.join(format!(".{file}.new"));
                std::fs::copy(new_pair.join(file), &staged).expect("a copy");
                std::fs::rename(&staged, dir.join(file)).expect("a rename");
            }
        }
        Layout::SecretVolume => {
            let version = dir.join("..2024_01_02_00_00_00.2");
            std::fs::create_dir_all(&version).expect("a new version");
            for file in ["tls.crt", "tls.key"] {
                std::fs::copy(new_pair.join(file), version.join(file)).expect("a copy");
            }
            std::os::unix::fs::symlink("..2024_01_02_00_00_00.2", dir.join("..data_tmp"))
                .expect("..data_tmp");
            std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("the swap");
        }
    }
}

/// A running webhook; killed on drop if a test did not stop it.
#[derive(Debug)]
pub struct Webhook {
    child: Option<Child>,
    pub port: u16,
    /// `--metrics-bind-address` on 127.0.0.1: every test webhook serves its metrics.
    pub metrics_port: u16,
    log: PathBuf,
    /// Holds the log (and the certificates, when the test made them there) until the end.
    _dir: TempDir,
}

impl Webhook {
    /// Starts the webhook on 127.0.0.1 with `--cert-dir=cert_dir` and `extra` flags, and waits
    /// until it says it is serving.
    pub fn start(name: &str, cert_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(name, cert_dir, "127.0.0.1", extra)
    }

    /// Retries on another port when the chosen one was taken meanwhile (a concurrent test's
    /// listener), so that tests do not fail by chance.
    pub fn start_on(name: &str, cert_dir: &Path, host: &str, extra: &[&str]) -> Self {
        Self::start_limited(name, cert_dir, host, extra, None)
    }

    /// Starts the webhook with its open-file limit set to `(soft, hard)` (by `prlimit`), as a
    /// container runtime sets it.
    pub fn start_with_open_files(name: &str, cert_dir: &Path, soft: u64, hard: u64) -> Self {
        Self::start_limited(name, cert_dir, "127.0.0.1", &[], Some((soft, hard)))
    }

    fn start_limited(
        name: &str,
        cert_dir: &Path,
        host: &str,
        extra: &[&str],
        open_files: Option<(u64, u64)>,
    ) -> Self {
        for _ in 0..5 {
            match Self::try_start_on(name, cert_dir, host, extra, open_files) {
                Ok(webhook) => return webhook,
                Err(log) if log.contains("in use") => continue,
                Err(log) => panic!("the webhook did not start:\n{log}"),
            }
        }
        panic!("no free port after 5 attempts");
    }

    fn try_start_on(
        name: &str,
        cert_dir: &Path,
        host: &str,
        extra: &[&str],
        open_files: Option<(u64, u64)>,
    ) -> Result<Self, String> {
        let dir = TempDir::new(&format!("{name}-log"));
        let log = dir.path().join("stderr.log");
        let port = free_port();
        let metrics_port = free_port();
        let mut command = match open_files {
            None => Command::new(binary(WEBHOOK)),
            Some((soft, hard)) => {
                // prlimit sets the limit and then execs the webhook: same process, same pid.
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={soft}:{hard}"))
                    .arg("--")
                    .arg(binary(WEBHOOK));
                command
            }
        };
        let child = command
            .arg(format!("--apiserver-fqdn={FQDN}"))
            .arg(format!("--cert-dir={}", cert_dir.display()))
            .arg(format!("--host={host}"))
            .arg(format!("--port={port}"))
            .arg(format!("--metrics-bind-address=127.0.0.1:{metrics_port}"))
            .args(extra)
            .stdin(Stdio::null())
            .stderr(File::create(&log).expect("a log file"))
            .spawn()
            .expect("the webhook starts");
        let mut webhook = Self {
            child: Some(child),
            port,
            metrics_port,
            log,
            _dir: dir,
        };
        // Serving, or an error line (klog's `E` severity) before it exits.
        wait_until("the webhook serves or fails", || {
            let log = webhook.log();
            log.contains("serving https://") || log.lines().any(|line| line.starts_with('E'))
        });
        if webhook.log().contains("serving https://") {
            return Ok(webhook);
        }
        webhook.wait();
        Err(webhook.log())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigterm(&self) {
        let child = self.child.as_ref().expect("running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM delivered");
    }

    /// Waits for the exit, for at most 20 s.
    pub fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        for _ in 0..2000 {
            if let Some(status) = child.try_wait().expect("the child's status") {
                self.child = None;
                return status;
            }
            #[allow(clippy::disallowed_methods)] // The test's own pacing.
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the webhook did not exit within 20 s:\n{}", self.log());
    }

    pub fn client(&self) -> Client {
        Client::new(self.port)
    }

    /// The exposition on the metrics port.
    pub fn scrape(&self) -> String {
        let (status, text) = http_get(self.metrics_port, "/metrics").expect("/metrics answers");
        assert_eq!(status, 200, "{text}");
        text
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A TLS client that trusts the test CA only.
#[derive(Debug, Clone)]
pub struct Client {
    port: u16,
    host: String,
    config: Arc<ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Client {
    pub fn new(port: u16) -> Self {
        Self::with_config(
            port,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            None,
        )
    }

    /// A client with the given TLS versions and, if any, the client pair in `client_pair` (a
    /// directory with tls.crt and tls.key).
    pub fn with_config(
        port: u16,
        versions: &[&'static rustls::SupportedProtocolVersion],
        client_pair: Option<&Path>,
    ) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(cert_der(&testdata("certs/ca.crt"))))
            .expect("the test CA");
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match client_pair {
            None => builder.with_no_client_auth(),
            Some(dir) => {
                let chain = CertificateDer::pem_file_iter(dir.join("tls.crt"))
                    .expect("a certificate")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("PEM");
                let key = PrivateKeyDer::from_pem_file(dir.join("tls.key")).expect("a key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("a client pair")
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every connection a full handshake: a resumed session shows the certificate of the
        // session it resumes, not the one the server serves now.
        config.resumption = rustls::client::Resumption::disabled();
        Self {
            port,
            host: "127.0.0.1".to_owned(),
            config: Arc::new(config),
        }
    }

    /// The same client, connecting to another loopback address (`::1`).
    pub fn at_host(mut self, host: &str) -> Self {
        self.host = host.to_owned();
        self
    }

    /// A new TCP connection and TLS handshake.
    pub async fn tls(&self) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let name = ServerName::try_from("localhost").expect("a name");
        TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
    }

    /// A new connection, ready for requests (keep-alive).
    pub async fn connect(&self) -> Result<Connection, String> {
        let tls = self.tls().await.map_err(|e| format!("TLS: {e}"))?;
        let server_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.to_vec())
            .unwrap_or_default();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(connection);
        Ok(Connection {
            sender,
            server_cert,
        })
    }

    /// One request on a new connection.
    pub async fn post(&self, body: Vec<u8>) -> Result<Answer, String> {
        self.connect().await?.post(body).await
    }
}

#[derive(Debug)]
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// The DER of the certificate the server presented.
    pub server_cert: Vec<u8>,
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub json: Value,
}

impl Connection {
    /// Whether the connection has ended (the server closed it), as the client has seen so far.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    pub async fn post(&mut self, body: Vec<u8>) -> Result<Answer, String> {
        let request = Request::post(format!("{PATH}?timeout=10s"))
            .header("content-type", "application/json")
            .header("host", "localhost")
            .body(Full::new(Bytes::from(body)))
            .expect("a request");
        self.send(request).await
    }

    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Answer, String> {
        let (status, body) = self.send_raw(request).await?;
        let json = serde_json::from_slice(&body)
            .map_err(|e| format!("the answer is not JSON: {e}: {body:?}"))?;
        Ok(Answer { status, json })
    }

    /// A GET of `path` (a probe): the status and the body as text.
    pub async fn get(&mut self, path: &str) -> Result<(StatusCode, String), String> {
        let request = Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .expect("a request");
        let (status, body) = self.send_raw(request).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn send_raw(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), String> {
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

impl Answer {
    /// The JSON Patch, decoded from its base64 string.
    pub fn patch(&self) -> Value {
        use base64::Engine as _;
        let patch = self.json["response"]["patch"]
            .as_str()
            .expect("the patch is a base64 string");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("base64");
        serde_json::from_slice(&bytes).expect("the patch is JSON")
    }
}
