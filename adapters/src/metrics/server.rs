//! A small plain-HTTP server for `/metrics`, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};

use super::routes::respond;
use super::Exposition;
use crate::accept::accept_until;
use crate::clock::TokioClock;
use crate::connections::{Connections, Limits};

/// A client gets this long for its request head, from its accept and from each answer: one that
/// never finishes its headers, or keeps an idle connection, must not hold it forever.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The most connections open at once; at the cap a new one pushes out the one that has gone
/// longest without progress, as on the webhook's TLS port. A scraper and the kubelet's probes
/// need a few; the cap bounds the memory a flood of connections to this port can take.
pub const MAX_CONNECTIONS: usize = 64;

/// Binds `address` now (so a bad or busy address fails at start), then serves in the
/// background.
pub async fn serve(
    address: SocketAddr,
    exposition: Arc<dyn Exposition>,
) -> std::io::Result<SocketAddr> {
    serve_on(TcpListener::bind(address).await?, exposition)
}

/// As [`serve`], but the port may be shared (`SO_REUSEPORT`) with another process of the same
/// user that binds it the same way: the sidecar's two generations run side by side on a node
/// during a surge rollout (docs/deploy.md#rollouts), in the node's network namespace, on the
/// one port their probes name. The kernel spreads connections over both; what `/readyz`
/// answers (the address is in place) is a fact of the node, the same from either.
pub async fn serve_shared(
    address: SocketAddr,
    exposition: Arc<dyn Exposition>,
) -> std::io::Result<SocketAddr> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    serve_on(socket.listen(1024)?, exposition)
}

fn serve_on(listener: TcpListener, exposition: Arc<dyn Exposition>) -> std::io::Result<SocketAddr> {
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let clock = TokioClock::default();
        let limits = Limits {
            cap: MAX_CONNECTIONS,
            head_timeout: HEADER_TIMEOUT,
            idle_timeout: HEADER_TIMEOUT,
            // Nothing here reads a request's body.
            body_budget: 0,
            body_under_way: 0,
        };
        // A scraper keeps its connection between scrapes, longer than the timeout.
        let connections = Connections::new("metrics", limits, clock, tracing::Level::DEBUG);
        accept_until(
            &listener,
            &clock,
            "metrics",
            std::future::pending(),
            |stream, peer| {
                let exposition = Arc::clone(&exposition);
                connections.spawn(peer, |activity| async move {
                    let service = service_fn(|request: Request<Incoming>| {
                        let request = activity.request(request);
                        let response =
                            respond(exposition.as_ref(), request.method(), request.uri().path());
                        let response = activity.response(response);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(activity.track(stream)), service);
                    if let Err(error) = connection.await {
                        tracing::debug!(cause = %error, "metrics: connection ended with an error");
                    }
                });
            },
        )
        .await;
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sidecar::SidecarMetrics;

    fn metrics() -> Arc<dyn Exposition> {
        Arc::new(SidecarMetrics::new(Duration::from_secs(60)))
    }

    #[tokio::test]
    async fn two_shared_listeners_share_a_port() {
        let first = serve_shared("127.0.0.1:0".parse().unwrap(), metrics())
            .await
            .expect("the first binds");
        serve_shared(first, metrics())
            .await
            .expect("a second generation binds the same port");
    }

    #[tokio::test]
    async fn an_exclusive_listener_refuses_a_busy_port() {
        let first = serve("127.0.0.1:0".parse().unwrap(), metrics())
            .await
            .expect("the first binds");
        let error = serve(first, metrics()).await.expect_err("the port is busy");
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    }
}
