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
use crate::http::connections::{Connections, Ended};

/// A client gets this long for its request head, from its accept and from each answer: one that
/// never finishes its headers, or keeps an idle connection, must not hold it forever.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The most connections open at once; at the cap a new one pushes out the longest-idle one, as
/// on the webhook's TLS port. A scraper and the kubelet's probes need a few; the cap bounds the
/// memory a flood of connections to this port can take.
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
        let connections = Connections::new("metrics", MAX_CONNECTIONS, clock, HEADER_TIMEOUT);
        accept_until(
            &listener,
            &clock,
            "metrics",
            std::future::pending(),
            |stream, peer| {
                let Some(admitted) = connections.admit() else {
                    return;
                };
                let exposition = Arc::clone(&exposition);
                tokio::spawn(async move {
                    let deadline = admitted.deadline();
                    let service = service_fn(|request: Request<Incoming>| {
                        deadline.head_received();
                        let response =
                            respond(exposition.as_ref(), request.method(), request.uri().path());
                        deadline.answered();
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    let served = async {
                        if let Err(error) = connection.await {
                            tracing::debug!(cause = %error, "metrics: connection ended with an error");
                        }
                    };
                    match admitted.serve(served).await {
                        Ended::Served => {}
                        Ended::DeadlineMissed => {
                            tracing::debug!(%peer, "metrics: no complete request head in time: closing the connection");
                        }
                        Ended::PushedOut => {
                            tracing::debug!(%peer, "metrics: pushed out by a newer connection at the cap");
                        }
                    }
                });
            },
        )
        .await;
    });
    Ok(bound)
}
