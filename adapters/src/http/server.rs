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
use socket2::{Domain, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use domain::webhook::fqdn::ApiserverFqdn;
use domain::webhook::shutdown::{Shutdown, Timing};
use futures::{FutureExt as _, Stream};

use crate::accept::accept_until;
use crate::clock::TokioClock;
use crate::connections::{Activity, Connections, Limits, Tracked};
use crate::metrics::webhook::WebhookMetrics;

use super::certs::{load_client_roots, CertError, CertPaths};
use super::plaintext::{self, Opening};
use super::reload::ReloadingCertResolver;
use super::routes::Routes;
use super::tls;
use crate::rfc3339::rfc3339;

/// A client gets this long for its TLS handshake and first request head (from the accept), for
/// each later request head (from its first byte), and for each body: the API server's webhook
/// timeout is 10 s by default and 30 s at most, so a client slower than that has given up anyway.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a keep-alive connection is kept idle between an answer and the next request's first
/// byte. Longer than the API server's client keeps an idle connection (Go's `http.Transport`:
/// 90 s), so the client always closes one first: were the webhook to close it, a review the
/// client sends at that moment would fail (Go's client does not retry a POST on a reused
/// connection), and with `failurePolicy: Ignore` its Pod would be admitted unpatched.
/// controller-runtime's server keeps them 90 s.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The most bytes of request bodies held at once, over all connections: with the 512
/// connections' own memory (about 20 KiB each) and the process's, under the 32 MiB the webhook
/// aims for. Two of the largest bodies ([`MAX_BODY_BYTES`](super::admission::MAX_BODY_BYTES))
/// fit, and a review as the API server sends one (tens of KiB) thousands of times.
pub const BODY_BUDGET: usize = 8 * 1024 * 1024;

/// What a request whose body is under way costs beyond its bytes, counted against
/// [`BODY_BUDGET`] with its first piece: measured with 520 clients each dripping a body (README,
/// `bench/flood.py`'s drip rows), a connection reading a body cost about this much more than an
/// idle one. So at most 256 bodies are under way at once, whatever their size.
pub const BODY_UNDER_WAY: usize = 32 * 1024;

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
    /// accepting and lets the requests in flight finish, for at most the domain's shutdown `GRACE`: a
    /// connection that has had a request is closed once idle, one that has not (accepted just
    /// before the listener closed, its handshake perhaps still under way) gets its first request
    /// answered, with `Connection: close`, or its head deadline.
    ///
    /// When each of these happens, and what a second stop does, is the domain's
    /// [`Shutdown`]; this is the I/O it drives.
    pub async fn run(self, stops: impl Stream<Item = ()>) {
        let clock = TokioClock::default();
        let timing = Timing::with_delay(self.shutdown_delay);
        let readiness = Arc::clone(self.metrics.readiness());
        let sequence = Shutdown::new(&clock, timing, readiness.phase());
        let reload = tokio::spawn(Arc::clone(&self.certs).watch(Arc::clone(&self.metrics), clock));
        let (finish, told_to_finish) = watch::channel(false);
        let limits = Limits {
            cap: MAX_CONNECTIONS,
            head_timeout: READ_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            body_budget: BODY_BUDGET,
            body_under_way: BODY_UNDER_WAY,
        };
        let connections = Connections::new("webhook", limits, clock, tracing::Level::INFO);
        accept_until(
            &self.listener,
            &clock,
            "webhook",
            sequence.until_listener_closes(stops),
            |stream, peer| {
                connections.spawn(peer, |activity| {
                    serve_connection(
                        stream,
                        peer,
                        activity,
                        self.acceptor.clone(),
                        Arc::clone(&self.routes),
                        told_to_finish.clone(),
                    )
                });
            },
        )
        .await;
        drop(self.listener);
        drop(told_to_finish);
        reload.abort();
        finish.send_replace(true);
        tracing::info!(
            connections = finish.receiver_count(),
            "shutting down: no new connections, finishing requests in flight"
        );
        sequence.until_connections_finish(finish.closed()).await;
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
/// answers, for its head deadline and for the cap. The shutdown waits for `told_to_finish` to be
/// dropped, so the connection holds it until it ends.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    activity: Activity<TokioClock>,
    acceptor: TlsAcceptor,
    routes: Arc<Routes>,
    mut told_to_finish: watch::Receiver<bool>,
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
    let mut connection = std::pin::pin!(http1::Builder::new()
        .max_buf_size(MAX_READ_BUFFER)
        .serve_connection(TokioIo::new(tls), service));
    let served = tokio::select! {
        served = connection.as_mut() => served,
        // The lock guard the wait ends with is let go at once: it must not live across an await.
        () = told_to_finish.wait_for(|told| *told).map(drop) => {
            // Closed now, a connection accepted just before the listener closed would lose the
            // request its client sends next; its answer says `Connection: close` instead.
            if activity.has_had_a_request() {
                connection.as_mut().graceful_shutdown();
            }
            connection.await
        }
    };
    if let Err(cause) = served {
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
