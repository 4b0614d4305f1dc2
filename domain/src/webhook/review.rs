//! One AdmissionReview in, one answer out: a pure function from the request body's bytes to the
//! response, so the HTTP side has no rule of its own.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::answer::{patch_json, Answer};
use super::fqdn::ApiserverFqdn;
use super::outcome::{OutcomeKind, ReviewReport, ReviewVersion};
use super::rule::{mutate, Metadata, Outcome, Request};

pub const ADMISSION_V1: &str = "admission.k8s.io/v1";
pub const ADMISSION_V1BETA1: &str = "admission.k8s.io/v1beta1";
const REVIEW_KIND: &str = "AdmissionReview";

/// Why a body is not a review this webhook can answer. Only these get an error answer (HTTP
/// 400); anything decodable gets `allowed: true`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is empty: expected an AdmissionReview in JSON")]
    Empty,
    #[error("the body is not an AdmissionReview: {reason}")]
    Undecodable { reason: String },
    #[error(
        "got apiVersion {api_version:?} and kind {kind:?}: expected kind AdmissionReview \
         of {ADMISSION_V1} or {ADMISSION_V1BETA1}"
    )]
    NotAReview { api_version: String, kind: String },
    #[error("the AdmissionReview has no request: expected .request with the uid and the object to review")]
    NoRequest { version: ReviewVersion },
}

impl ReviewError {
    /// The review's version, when the body got as far as naming one.
    pub fn version(&self) -> ReviewVersion {
        match self {
            ReviewError::NoRequest { version } => *version,
            _ => ReviewVersion::Unknown,
        }
    }
}

/// The envelope; the request inside is the rule's [`Request`]. serde refuses a repeated field
/// here, as it does in the request; the API server never repeats one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<Request<'a>>,
}

/// Decodes a review, decides, and builds the answer in the review's own version.
pub fn review(body: &[u8], fqdn: &ApiserverFqdn) -> Result<Answer, ReviewError> {
    let undecodable = |e: serde_json::Error| ReviewError::Undecodable {
        reason: e.to_string(),
    };
    match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        None => return Err(ReviewError::Empty),
        Some(b'{') => {}
        // serde would read a struct from a JSON array too; a review is an object. Invalid JSON
        // still gets the parser's reason.
        Some(_) => {
            serde_json::from_slice::<IgnoredAny>(body).map_err(undecodable)?;
            return Err(ReviewError::Undecodable {
                reason: "expected a JSON object at the top level".to_owned(),
            });
        }
    }
    // JSON is UTF-8 (RFC 8259), and serde_json does not check the strings it skips, such as
    // `userInfo` (found by fuzzing). Checked once here, whole; parsing from a `str` then spares
    // serde_json checking each string it reads.
    let text = std::str::from_utf8(body).map_err(|e| ReviewError::Undecodable {
        reason: format!(
            "the body is not UTF-8: invalid bytes after the first {} bytes",
            e.valid_up_to()
        ),
    })?;
    let incoming: ReviewIn = serde_json::from_str(text).map_err(undecodable)?;
    let (api_version, version) = match (incoming.api_version.as_deref(), incoming.kind.as_deref()) {
        (Some(ADMISSION_V1), Some(REVIEW_KIND)) => (ADMISSION_V1, ReviewVersion::V1),
        (Some(ADMISSION_V1BETA1), Some(REVIEW_KIND)) => (ADMISSION_V1BETA1, ReviewVersion::V1beta1),
        (api_version, kind) => {
            return Err(ReviewError::NotAReview {
                api_version: api_version.unwrap_or_default().to_owned(),
                kind: kind.unwrap_or_default().to_owned(),
            })
        }
    };
    let request = incoming.request.ok_or(ReviewError::NoRequest { version })?;
    let (outcome, patch) = mutate(&request);
    let warning = matches!(outcome, Outcome::TooLarge { .. }).then(|| outcome.to_string());
    Ok(Answer {
        api_version,
        object: describe(&request),
        uid: request.uid.into_owned(),
        patch: patch_json(&patch, fqdn),
        warning,
        outcome,
        version,
    })
}

/// The labels one request counts under: the outcome and version of an answer, or
/// `bad_request` with as much of the version as the body named.
pub fn report(result: &Result<Answer, ReviewError>) -> ReviewReport {
    match result {
        Ok(answer) => ReviewReport {
            outcome: answer.outcome.kind(),
            version: answer.version,
        },
        Err(error) => ReviewReport {
            outcome: OutcomeKind::BadRequest,
            version: error.version(),
        },
    }
}

fn describe(request: &Request) -> String {
    let name = request
        .name
        .as_deref()
        .filter(|name| !name.is_empty())
        .or_else(|| pod_metadata(request, |metadata| metadata.name.as_deref()))
        .or_else(|| pod_metadata(request, |metadata| metadata.generate_name.as_deref()))
        .unwrap_or_default();
    match request.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        Some(namespace) => [namespace, "/", name].concat(),
        None => name.to_owned(),
    }
}

fn pod_metadata<'r>(
    request: &'r Request,
    field: impl FnOnce(&'r Metadata) -> Option<&'r str>,
) -> Option<&'r str> {
    let pod = request.object.0.as_ref().ok()?;
    pod.metadata.0.as_ref().ok().and_then(field)
}

#[cfg(test)]
mod tests;
