//! The listener: TLS handshakes, HTTP/1.1 connections, timeouts, graceful shutdown.

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use domain::duration::format_go_duration;
use domain::ports::Clock as _;
use domain::webhook::fqdn::ApiserverFqdn;
use futures::{Stream, StreamExt};

use crate::accept::accept_until;
use crate::clock::TokioClock;
use crate::connections::{Activity, Connections, Tracked};
use crate::metrics::webhook::WebhookMetrics;

use super::certs::{load_client_roots, CertError, CertPaths};
use super::plaintext::{self, Opening};
use super::reload::ReloadingCertResolver;
use super::routes::Routes;
use super::tls;
use crate::rfc3339::rfc3339;

/// A client gets this long for its TLS handshake, for its request head (from the handshake or
/// the previous answer, so also an idle keep-alive connection), and for its body: the API
/// server's webhook timeout is 10 s by default and 30 s at most, so a client slower than that
/// has given up anyway.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The most connections open at once; at the cap a new one pushes out the one that has gone
/// longest without progress (see `crate::connections`). The API server keeps a handful open per
/// webhook; the cap bounds what a flood of connections can make the webhook hold (memory per
/// connection: docs/webhook.md).
pub const MAX_CONNECTIONS: usize = 512;

/// hyper's read buffer per connection at most (its floor): a request head larger than this is
/// refused, and a body is read in pieces of at most this size. The API server's heads are well
/// under 1 KiB.
const MAX_READ_BUFFER: usize = 8 * 1024;

const LISTEN_BACKLOG: i32 = 1024;

/// What the server needs from the flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub fqdn: ApiserverFqdn,
    pub cert_dir: PathBuf,
    pub cert_name: String,
    pub key_name: String,
    /// Empty: no client certificates asked for.
    pub client_ca_name: String,
    /// Empty: every address, IPv6 and IPv4.
    pub host: String,
    pub port: u16,
    /// How long the server still serves after the first stop (see [`Server::run`]).
    pub shutdown_delay: Duration,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("serving certificate: {0}")]
    Certificate(CertError),
    #[error("client CA: {0}")]
    ClientCa(CertError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot resolve --host {host:?}: {cause}")]
    Resolve { host: String, cause: io::Error },
    #[error("cannot listen on {address}: {cause}")]
    Listen { address: String, cause: io::Error },
}

/// A server that is listening, with its certificate loaded, not yet accepting.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    certs: Arc<ReloadingCertResolver>,
    routes: Arc<Routes>,
    metrics: Arc<WebhookMetrics>,
    shutdown_delay: Duration,
}

impl Server {
    /// Loads the certificates and binds; everything that can fail at start-up fails here, before
    /// a single connection is accepted. Requests and certificate changes are counted in
    /// `metrics`.
    pub fn bind(config: Config, metrics: Arc<WebhookMetrics>) -> Result<Self, StartError> {
        let provider = tls::provider();
        let paths = CertPaths::in_dir(&config.cert_dir, &config.cert_name, &config.key_name);
        let cert = paths.cert.clone();
        let certs = ReloadingCertResolver::load(paths, Arc::clone(&provider))
            .map_err(StartError::Certificate)?;
        let certs = Arc::new(certs);
        let not_after = certs.not_after();
        metrics.certificate_loaded(not_after);
        tracing::info!(
            cert = %cert.display(),
            not_after = %rfc3339(not_after),
            "loaded the serving certificate"
        );
        let client_roots = match config.client_ca_name.as_str() {
            "" => None,
            name => {
                Some(load_client_roots(&config.cert_dir.join(name)).map_err(StartError::ClientCa)?)
            }
        };
        let tls = tls::server_config(provider, certs.clone(), client_roots)?;
        let listener = listen(&config.host, config.port)?;
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            certs,
            routes: Arc::new(Routes::new(config.fqdn, Arc::clone(&metrics), READ_TIMEOUT)),
            metrics,
            shutdown_delay: config.shutdown_delay,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the first of `stops` (SIGTERM), then for the shutdown delay more, then stops
    /// accepting and lets the requests in flight finish, for at most [`SHUTDOWN_GRACE`].
    ///
    /// The delay is for the API server: it learns that this Pod is leaving only when its
    /// endpoints update, which can come after the kubelet's SIGTERM. A webhook that stopped at
    /// once would refuse the calls of that moment, and with `failurePolicy: Ignore` their Pods
    /// would be admitted unpatched. During the delay every answer says `Connection: close`, so
    /// the API server's keep-alive connections end right after an answer, never idle under a
    /// request it is sending; and `/readyz` fails. A second stop ends the delay at once.
    pub async fn run(self, stops: impl Stream<Item = ()> + Unpin) {
        let clock = TokioClock::default();
        let reload = tokio::spawn(Arc::clone(&self.certs).watch(Arc::clone(&self.metrics), clock));
        let graceful = GracefulShutdown::new();
        let connections = Connections::new(
            "webhook",
            MAX_CONNECTIONS,
            clock,
            READ_TIMEOUT,
            tracing::Level::INFO,
        );
        accept_until(
            &self.listener,
            &clock,
            "webhook",
            self.stopped(stops, &clock),
            |stream, peer| {
                connections.spawn(peer, |activity| {
                    serve_connection(
                        stream,
                        peer,
                        activity,
                        self.acceptor.clone(),
                        Arc::clone(&self.routes),
                        graceful.watcher(),
                    )
                });
            },
        )
        .await;
        drop(self.listener);
        reload.abort();
        let in_flight = graceful.count();
        tracing::info!(
            connections = in_flight,
            "shutting down: no new connections, finishing requests in flight"
        );
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace = ?SHUTDOWN_GRACE,
                "requests still in flight after the grace period: closing their connections"
            );
        }
    }

    /// Completes when the listener should close: at the first stop when there is no shutdown
    /// delay, else when the delay is over or at a second stop.
    async fn stopped(&self, mut stops: impl Stream<Item = ()> + Unpin, clock: &TokioClock) {
        stops.next().await;
        if self.shutdown_delay.is_zero() {
            return;
        }
        self.metrics.shutting_down();
        self.routes.close_connections_after_answers();
        tracing::info!(
            delay = %format_go_duration(self.shutdown_delay),
            "shutdown delay: still serving until the API server drops this endpoint; every \
             answer closes its connection, /readyz fails (a second signal ends the delay)"
        );
        tokio::select! {
            () = clock.sleep(self.shutdown_delay) => {}
            _ = stops.next() => tracing::info!("a second signal: the shutdown delay ends now"),
        }
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("certs", &self.certs)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

/// One connection, from its accept to its close: plain HTTP gets Go's 400, TLS gets its
/// handshake and then HTTP/1.1. `activity` learns of its reads (below TLS), its requests and its
/// answers, for its head deadline and for the cap.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    activity: Activity<TokioClock>,
    acceptor: TlsAcceptor,
    routes: Arc<Routes>,
    watcher: Watcher,
) {
    // Reviews are small request/response pairs: Nagle would only add latency.
    if let Err(cause) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %cause, "cannot set TCP_NODELAY");
    }
    let Some(tls) = handshake(stream, peer, &acceptor, &activity).await else {
        return;
    };
    let service = service_fn(|request| {
        let request = activity.request(request);
        let routes = Arc::clone(&routes);
        let activity = activity.clone();
        async move {
            let response = routes.answer(request).await;
            Ok::<_, Infallible>(activity.response(response))
        }
    });
    // hyper's own header_read_timeout is off: see connections/head_deadline.rs for why.
    let connection = http1::Builder::new()
        .max_buf_size(MAX_READ_BUFFER)
        .serve_connection(TokioIo::new(tls), service);
    if let Err(cause) = watcher.watch(connection).await {
        tracing::debug!(%peer, %cause, "connection ended with an error");
    }
}

/// The TLS handshake, its reads tracked by `activity`; or `None` when the client does not speak
/// TLS (plain HTTP gets Go's answer) or the handshake fails.
async fn handshake(
    mut stream: TcpStream,
    peer: SocketAddr,
    acceptor: &TlsAcceptor,
    activity: &Activity<TokioClock>,
) -> Option<TlsStream<Tracked<TcpStream, TokioClock>>> {
    match Opening::read(&mut stream).await {
        Ok(Opening::Tls) => {}
        Ok(Opening::Http) => {
            tracing::info!(%peer, "plain HTTP on the TLS port: answered 400");
            plaintext::answer(&mut stream).await;
            return None;
        }
        Ok(Opening::Closed) => {
            // A TCP probe, a port scan, a flood: nothing to report at info.
            tracing::debug!(%peer, "the client closed before sending anything");
            return None;
        }
        Ok(Opening::Other) => {
            tracing::info!(%peer, "TLS handshake failed: the client sent no TLS handshake record");
            return None;
        }
        Err(cause) => {
            tracing::info!(%peer, %cause, "TLS handshake failed");
            return None;
        }
    }
    match acceptor.accept(activity.track(stream)).await {
        Ok(tls) => Some(tls),
        Err(cause) => {
            tracing::info!(%peer, %cause, "TLS handshake failed");
            None
        }
    }
}

/// Binds `host:port`; an empty host means every address, IPv6 and IPv4 on one dual-stack socket,
/// or IPv4 alone where the kernel has no IPv6.
fn listen(host: &str, port: u16) -> Result<TcpListener, StartError> {
    let listen_error = |address: SocketAddr| {
        move |cause| StartError::Listen {
            address: address.to_string(),
            cause,
        }
    };
    if host.is_empty() {
        let any6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
        match listen_on(any6) {
            Err(cause) if no_ipv6(&cause) => {
                tracing::info!(%cause, "no IPv6 here: listening on IPv4 only");
            }
            other => return other.map_err(listen_error(any6)),
        }
        let any4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        return listen_on(any4).map_err(listen_error(any4));
    }
    let resolve_error = |cause| StartError::Resolve {
        host: host.to_owned(),
        cause,
    };
    // `[::1]` is how an IPv6 host is written next to a port; the resolver wants it bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let address = (bare, port)
        .to_socket_addrs()
        .map_err(resolve_error)?
        .next()
        .ok_or_else(|| resolve_error(io::Error::new(io::ErrorKind::NotFound, "no address")))?;
    listen_on(address).map_err(listen_error(address))
}

/// The errors a dual-stack socket gets from a kernel without IPv6 (or with it disabled).
fn no_ipv6(cause: &io::Error) -> bool {
    matches!(
        cause.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}

fn listen_on(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    if address.is_ipv6() && address.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    // A restart must not wait for the old process's connections to leave TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}
