//! What a metrics address answers: `/metrics` and the health probes, from an [`Exposition`].
//! The webhook's TLS port answers its probes here too.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Response, StatusCode};

use super::Exposition;

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
