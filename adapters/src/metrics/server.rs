//! A small plain-HTTP server for `/metrics`, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

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

/// Binds `address` now (so a bad address fails at start), then serves in the background.
pub async fn serve(
    address: SocketAddr,
    exposition: Arc<dyn Exposition>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
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
