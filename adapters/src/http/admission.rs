//! The one route: HTTP in, [`domain::webhook::review`] in the middle, HTTP out. Every refusal is
//! a 4xx with a Kubernetes `Status` body that says what was wrong.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use domain::webhook::answer::Answer;
use domain::webhook::fqdn::ApiserverFqdn;
use domain::webhook::outcome::{OutcomeKind, ReviewReport};
use domain::webhook::review::{report, review};
use domain::webhook::rule::Outcome;

pub const PATH: &str = "/webhook/pod-apiserver-env";

/// The API server sends at most 3 MiB of object; 7 MiB leaves room for the review around it and
/// its old object, and bounds what one request can make us hold.
pub const MAX_BODY_BYTES: usize = 7 * 1024 * 1024;

const JSON: &str = "application/json";

/// Answers one request, and says what to count it as. Never fails: every error is an answer.
pub async fn handle<B>(
    request: Request<B>,
    fqdn: &ApiserverFqdn,
    body_timeout: Duration,
) -> (Response<Full<Bytes>>, ReviewReport)
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = match read_body(request, body_timeout).await {
        Ok(body) => body,
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

/// The body of a POST of JSON to [`PATH`], or the error answer for anything else.
async fn read_body<B>(
    request: Request<B>,
    body_timeout: Duration,
) -> Result<Bytes, Response<Full<Bytes>>>
where
    B: Body<Data = Bytes>,
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
    match tokio::time::timeout(body_timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(cause)) if cause.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(cause)) => Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {cause}"),
        )),
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
    let message = format!("the body is larger than {MAX_BODY_BYTES} bytes (7 MiB)");
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
