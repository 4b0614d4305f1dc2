//! A small plain-HTTP server for `/metrics`, `/healthz` and `/readyz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::Exposition;

const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The health paths: `/healthz` and its newer name `/livez` (liveness), `/readyz` (readiness).
const PROBES: [&str; 3] = ["/healthz", "/livez", "/readyz"];

/// Whether `path` is one of the health probes, which the webhook also serves on its TLS port.
pub fn is_probe(path: &str) -> bool {
    PROBES.contains(&path)
}

/// Answers one request from what `exposition` says.
pub fn respond<E: Exposition + ?Sized>(
    exposition: &E,
    method: &Method,
    path: &str,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(CONTENT_TYPE, value);
        }
        response
    };
    let probe = |result: Result<(), String>| match result {
        Ok(()) => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        Err(why) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{why}\n"),
        ),
    };
    if method != Method::GET && method != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        );
    }
    match path {
        "/metrics" => reply(StatusCode::OK, OPENMETRICS, exposition.metrics()),
        "/healthz" | "/livez" => probe(exposition.healthy()),
        "/readyz" => probe(exposition.ready()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// Binds `address` now (so a bad address fails at start), then serves in the background.
pub async fn serve(
    address: SocketAddr,
    exposition: Arc<dyn Exposition>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(cause = %error, "metrics: accept failed");
                    continue;
                }
            };
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
        }
    });
    Ok(bound)
}
