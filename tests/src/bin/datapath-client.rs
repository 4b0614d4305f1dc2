//! The cluster tier's data-path client (docs/testing.md, "The data path"): it runs in a Pod and
//! reaches the API server as any in-cluster client does, through the `kubernetes` Service
//! (`KUBERNETES_SERVICE_HOST`/`_PORT` from the kubelet, the ServiceAccount's token and CA), so
//! every request crosses kube-proxy, the proxy address and the node's proxy.
//!
//! Two streams, each a `GET /version` every `INTERVAL_MS` (default 50) on a fixed grid:
//! - `fresh`: each request on a new TCP and TLS connection, closed after the answer;
//! - `kept`: all requests on one keep-alive connection. A request that fails on a reused
//!   connection before any byte of the answer is sent again once on a new connection, as HTTP
//!   clients do for idempotent requests (Go's transport does): a proxy that drains closes idle
//!   connections, and that is no failure. Such a retry counts in `reconnects`.
//!
//! Every second it prints one JSON line with that second's counts, so a test sums exactly the
//! lines of a window: `{"seq":N,"fresh":[requests,failed,worst_ms],"kept":[...],"reconnects":R}`
//! (`worst_ms`: the slowest answered request). Each failure is printed at once as
//! `{"failure":"fresh","error":"..."}`. A failure is a refused, reset or timed-out connection,
//! a TLS error, or an answer other than 200.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
// A real client's own clock and pacing (not code under test, which has the Clock port).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const SECRETS: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// One stream's counts in the current second.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: u64,
    failed: u64,
    worst_ms: u64,
}

#[derive(Debug, Default)]
struct Window {
    fresh: Counts,
    kept: Counts,
    reconnects: u64,
}

#[derive(Debug)]
struct Target {
    address: SocketAddr,
    name: ServerName<'static>,
    tls: Arc<ClientConfig>,
    request_close: Vec<u8>,
    request_keep: Vec<u8>,
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn main() {
    let target = match target() {
        Ok(target) => Arc::new(target),
        Err(error) => {
            eprintln!("datapath-client: {error}");
            std::process::exit(2);
        }
    };
    let interval = std::env::var("INTERVAL_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_millis(50), Duration::from_millis);
    let window = Arc::new(Mutex::new(Window::default()));
    for kept in [false, true] {
        let (target, window) = (Arc::clone(&target), Arc::clone(&window));
        std::thread::spawn(move || stream(&target, &window, interval, kept));
    }
    let start = Instant::now();
    for seq in 1u64.. {
        sleep_until(start + Duration::from_secs(seq));
        let done = std::mem::take(&mut *lock(&window));
        let triple = |c: Counts| format!("[{},{},{}]", c.requests, c.failed, c.worst_ms);
        println!(
            "{{\"seq\":{seq},\"fresh\":{},\"kept\":{},\"reconnects\":{}}}",
            triple(done.fresh),
            triple(done.kept),
            done.reconnects
        );
    }
}

fn target() -> Result<Target, String> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let (host, port) = (
        env("KUBERNETES_SERVICE_HOST")?,
        env("KUBERNETES_SERVICE_PORT")?,
    );
    let address: SocketAddr = format!("{host}:{port}").parse().map_err(|e| {
        format!("KUBERNETES_SERVICE_HOST={host:?} KUBERNETES_SERVICE_PORT={port:?}: expected an IP address and a port ({e})")
    })?;
    let token = std::fs::read_to_string(format!("{SECRETS}/token"))
        .map_err(|e| format!("{SECRETS}/token: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(format!("{SECRETS}/ca.crt"))
        .map_err(|e| format!("{SECRETS}/ca.crt: {e}"))?
    {
        let cert = cert.map_err(|e| format!("{SECRETS}/ca.crt: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{SECRETS}/ca.crt: {e}"))?;
    }
    let tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    let request = |connection: &str| {
        format!(
            "GET /version HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
             Connection: {connection}\r\n\r\n",
            token.trim()
        )
        .into_bytes()
    };
    Ok(Target {
        address,
        name: ServerName::IpAddress(address.ip().into()),
        tls: Arc::new(tls),
        request_close: request("close"),
        request_keep: request("keep-alive"),
    })
}

fn stream(target: &Target, window: &Mutex<Window>, interval: Duration, kept: bool) {
    let mut connection: Option<Tls> = None;
    let start = Instant::now();
    for tick in 1u32.. {
        let began = Instant::now();
        let result = if kept {
            kept_request(target, &mut connection, window)
        } else {
            connect(target).and_then(|mut tls| request(&mut tls, &target.request_close))
        };
        let elapsed_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        {
            let mut window = lock(window);
            let counts = if kept {
                &mut window.kept
            } else {
                &mut window.fresh
            };
            counts.requests += 1;
            match &result {
                Ok(()) => counts.worst_ms = counts.worst_ms.max(elapsed_ms),
                Err(_) => counts.failed += 1,
            }
        }
        if let Err(failure) = result {
            let name = if kept { "kept" } else { "fresh" };
            let error = failure.error.replace('\\', "\\\\").replace('"', "'");
            println!("{{\"failure\":\"{name}\",\"error\":\"{error}\"}}");
        }
        sleep_until(start + interval * tick);
    }
}

/// A request on the kept connection, made first when there is none; see the module's doc for
/// the one retry.
fn kept_request(
    target: &Target,
    connection: &mut Option<Tls>,
    window: &Mutex<Window>,
) -> Result<(), Failure> {
    if let Some(tls) = connection.as_mut() {
        match request(tls, &target.request_keep) {
            Ok(()) => return Ok(()),
            Err(failure) if !failure.answered => {
                *connection = None;
                lock(window).reconnects += 1;
            }
            Err(failure) => {
                *connection = None;
                return Err(failure);
            }
        }
    }
    let mut tls = connect(target)?;
    let result = request(&mut tls, &target.request_keep);
    if result.is_ok() {
        *connection = Some(tls);
    }
    result
}

#[derive(Debug)]
struct Failure {
    error: String,
    /// Some byte of the answer had arrived.
    answered: bool,
}

impl Failure {
    fn before_answer(error: impl std::fmt::Display) -> Failure {
        Failure {
            error: error.to_string(),
            answered: false,
        }
    }
}

fn connect(target: &Target) -> Result<Tls, Failure> {
    let tcp = TcpStream::connect_timeout(&target.address, CONNECT_TIMEOUT)
        .map_err(|e| Failure::before_answer(format!("connect: {e}")))?;
    for timeout in [TcpStream::set_read_timeout, TcpStream::set_write_timeout] {
        timeout(&tcp, Some(IO_TIMEOUT)).map_err(Failure::before_answer)?;
    }
    let tls = ClientConnection::new(Arc::clone(&target.tls), target.name.clone())
        .map_err(Failure::before_answer)?;
    Ok(StreamOwned::new(tls, tcp))
}

/// Sends `request` and reads one answer (Content-Length or chunked), which must be a 200.
fn request(tls: &mut Tls, request: &[u8]) -> Result<(), Failure> {
    tls.write_all(request)
        .and_then(|()| tls.flush())
        .map_err(|e| Failure::before_answer(format!("send: {e}")))?;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = find(&answer, b"\r\n\r\n") {
            break end + 4;
        }
        let read = tls.read(&mut buffer).map_err(|e| Failure {
            error: format!("receive: {e}"),
            answered: !answer.is_empty(),
        })?;
        if read == 0 {
            return Err(Failure {
                error: "receive: connection closed before the answer".to_owned(),
                answered: !answer.is_empty(),
            });
        }
        answer.extend_from_slice(&buffer[..read]);
    };
    let answered = |error: String| Failure {
        error,
        answered: true,
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    let complete = |body: &[u8]| match length {
        Some(length) => body.len() >= length,
        None => find(body, b"0\r\n\r\n").is_some(),
    };
    while !complete(&answer[head_end..]) {
        let read = tls
            .read(&mut buffer)
            .map_err(|e| answered(format!("receive: {e}")))?;
        if read == 0 {
            return Err(answered(
                "receive: connection closed in the answer".to_owned(),
            ));
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    if status == "200" {
        Ok(())
    } else {
        Err(answered(format!("status {status}")))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn sleep_until(deadline: Instant) {
    std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
}

fn lock(window: &Mutex<Window>) -> std::sync::MutexGuard<'_, Window> {
    window
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
