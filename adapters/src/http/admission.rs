//! The one route: HTTP in, [`domain::webhook::review`] in the middle, HTTP out. Every refusal is
//! a 4xx with a Kubernetes `Status` body that says what was wrong.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Buf as _};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use domain::webhook::answer::Answer;
use domain::webhook::fqdn::ApiserverFqdn;
use domain::webhook::outcome::{OutcomeKind, ReviewReport};
use domain::webhook::review::{report, review};
use domain::webhook::rule::Outcome;

use crate::connections::BodiesFull;

pub const PATH: &str = "/webhook/pod-apiserver-env";

/// The API server stores at most about 1.5 MiB per object (etcd's request limit), and the only
/// review this webhook patches, a Pod's CREATE, carries the object once. 3 MiB leaves room for
/// the review around it (and for an UPDATE's object and old object, which are allowed without a
/// patch anyway: refused, they are allowed too, by `failurePolicy: Ignore`), and bounds what one
/// request can make us hold; what all requests together can is `BODY_BUDGET` (server.rs).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

const JSON: &str = "application/json";

/// Answers one request, and says what to count it as. Never fails: every error is an answer.
pub async fn handle<B>(
    request: Request<B>,
    fqdn: &ApiserverFqdn,
    body_timeout: Duration,
) -> (Response<Full<Bytes>>, ReviewReport)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // `_held` keeps the body's bytes counted against the budget until the answer is made.
    let (body, _held) = match read_body(request, body_timeout).await {
        Ok(read) => read,
        Err(refusal) => return (refusal, ReviewReport::REFUSED),
    };
    let result = review(&body, fqdn);
    let report = report(&result);
    let response = match result {
        Ok(answer) => {
            log_outcome(&answer);
            json_response(StatusCode::OK, answer.to_json())
        }
        Err(cause) => refuse(StatusCode::BAD_REQUEST, cause.to_string()),
    };
    (response, report)
}

/// Why a body could not be read.
#[derive(Debug)]
enum Unread {
    TooLarge,
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// The body of a POST of JSON to [`PATH`], and the request's body itself, which the caller holds
/// while it holds the bytes (a body whose bytes count against a budget gives them back when
/// dropped); or the error answer for anything else.
async fn read_body<B>(
    request: Request<B>,
    body_timeout: Duration,
) -> Result<(Vec<u8>, B), Response<Full<Bytes>>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (parts, body) = request.into_parts();
    if parts.uri.path() != PATH {
        let message = format!("no such path {:?}: expected {PATH}", parts.uri.path());
        return Err(refuse(StatusCode::NOT_FOUND, message));
    }
    if parts.method != Method::POST {
        let message = format!("method {} is not allowed: expected POST", parts.method);
        let mut response = refuse(StatusCode::METHOD_NOT_ALLOWED, message);
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Err(response);
    }
    if let Err(message) = check_content_type(parts.headers.get(CONTENT_TYPE)) {
        return Err(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, message));
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = body;
    // Each piece is copied and let go at once: a piece keeps the whole read buffer it was cut
    // from alive (8 KiB for a byte trickled), while the copy costs its length. The copy grows
    // by doubling, but never past the declared length: a buffer sized for the declared length
    // at once would take a page of memory for each trickled body's first byte, and a larger
    // one than the body needs would take the doubling's last step for nothing.
    let declared = declared.map_or(MAX_BODY_BYTES, |len| len as usize);
    let mut bytes = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|cause| Unread::Failed(cause.into()))?;
            if let Ok(data) = frame.into_data() {
                let needed = bytes.len() + data.remaining();
                if needed > MAX_BODY_BYTES {
                    return Err(Unread::TooLarge);
                }
                if needed > bytes.capacity() {
                    let grown = (bytes.capacity() * 2).clamp(needed, declared.max(needed));
                    bytes.reserve_exact(grown - bytes.len());
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(())
    };
    match tokio::time::timeout(body_timeout, read).await {
        Ok(Ok(())) => Ok((bytes, body)),
        Ok(Err(Unread::TooLarge)) => Err(too_large()),
        Ok(Err(Unread::Failed(cause))) => match cause.downcast::<BodiesFull>() {
            Ok(full) => Err(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!("{full}: try again"),
            )),
            Err(cause) => Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {cause}"),
            )),
        },
        Err(_) => {
            let message = format!(
                "the body did not arrive within {}s: expected the whole review at once",
                body_timeout.as_secs()
            );
            Err(refuse(StatusCode::REQUEST_TIMEOUT, message))
        }
    }
}

/// One line per review at `--v=2` (klog's level for per-request lines): at info, a busy cluster's
/// Pod creations would cost more in logging than in reviewing. A Pod that cannot be read, or
/// that is too large to patch, is always worth a warning. The line is in a `review` span that
/// carries the uid and the Pod.
fn log_outcome(answer: &Answer) {
    let outcome = &answer.outcome;
    let label = outcome.as_str();
    let warn = matches!(
        outcome,
        Outcome::PodUnreadable { .. } | Outcome::TooLarge { .. }
    );
    // A span costs an allocation: built only for a line that is written.
    if !warn && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let span = tracing::info_span!("review", uid = answer.uid(), pod = answer.object);
    let _in_review = span.enter();
    if warn {
        tracing::warn!(outcome = label, "{outcome}")
    } else {
        tracing::debug!(outcome = label, "{outcome}")
    }
}

/// `application/json`, in any case, with or without parameters such as `charset=utf-8`.
fn check_content_type(value: Option<&HeaderValue>) -> Result<(), String> {
    let Some(value) = value else {
        return Err(format!("no Content-Type: expected {JSON}"));
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let media_type = text.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case(JSON) {
        Ok(())
    } else {
        Err(format!(
            "Content-Type {text:?} is not supported: expected {JSON}"
        ))
    }
}

fn too_large() -> Response<Full<Bytes>> {
    let message = format!("the body is larger than {MAX_BODY_BYTES} bytes (3 MiB)");
    refuse(StatusCode::PAYLOAD_TOO_LARGE, message)
}

fn refuse(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    tracing::warn!(
        outcome = OutcomeKind::BadRequest.as_str(),
        status = status.as_u16(),
        cause = %message,
        "refused a request"
    );
    status_response(status, &message)
}

/// A Kubernetes `Status`, the shape the API server and kubectl expect of an error.
fn status_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": status.as_u16(),
        "reason": status.canonical_reason().unwrap_or_default().replace(' ', ""),
        "message": message,
    });
    json_response(status, body.to_string().into_bytes())
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

#[cfg(test)]
mod tests;
