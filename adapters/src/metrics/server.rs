//! A small plain-HTTP server for `/metrics`, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::routes::respond;
use super::Exposition;
use crate::accept::accept_until;
use crate::clock::TokioClock;

const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds `address` now (so a bad address fails at start), then serves in the background.
pub async fn serve(
    address: SocketAddr,
    exposition: Arc<dyn Exposition>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let clock = TokioClock::default();
        accept_until(
            &listener,
            &clock,
            "metrics",
            std::future::pending(),
            |stream, _| {
                let exposition = Arc::clone(&exposition);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let response =
                            respond(exposition.as_ref(), request.method(), request.uri().path());
                        async move { Ok::<_, Infallible>(response) }
                    });
                    // A client that never finishes its headers must not hold a connection forever.
                    let connection = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
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
