//! One AdmissionReview in, one answer out: a pure function from the request body's bytes to the
//! response, so the HTTP side has no rule of its own.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fqdn::ApiserverFqdn;
use super::outcome::Outcome;
use super::pod_patch;

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

/// The AdmissionReview version of a request, as far as it could be read: a metric label, so that
/// an operator sees when the API server still sends `v1beta1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewVersion {
    V1 = 0,
    V1beta1 = 1,
    /// Not a review, or not read as far as its version (wrong path, method, content type, ...).
    Unknown = 2,
}

impl ReviewVersion {
    /// Every version, in discriminant order (metrics index a table by it).
    pub const ALL: [Self; 3] = [Self::V1, Self::V1beta1, Self::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewVersion::V1 => "v1",
            ReviewVersion::V1beta1 => "v1beta1",
            ReviewVersion::Unknown => "unknown",
        }
    }
}

/// The answer to a decodable review, with what was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    review: ReviewOut,
    pub outcome: Outcome,
    /// The request's version, which the answer repeats.
    pub version: ReviewVersion,
    /// `namespace/name` of the object (or `generateName` when it has no name yet), for the log.
    pub object: String,
}

impl Answer {
    pub fn uid(&self) -> &str {
        &self.review.response.uid
    }

    /// The response body: an AdmissionReview of the request's version.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.review).expect("strings and booleans always serialise")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<RequestIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn {
    uid: String,
    kind: GroupVersionKind,
    operation: String,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    /// Kept raw: the patch is computed on the JSON as sent.
    #[serde(default)]
    object: Value,
}

#[derive(Deserialize)]
struct GroupVersionKind {
    group: String,
    version: String,
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseOut,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    /// Base64 of the JSON Patch, as a string: `[]byte` in Go's JSON, not an array of numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
}

/// Decodes a review, decides, and builds the answer in the review's own version.
pub fn review(body: &[u8], fqdn: &ApiserverFqdn) -> Result<Answer, ReviewError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ReviewError::Empty);
    }
    let undecodable = |e: serde_json::Error| ReviewError::Undecodable {
        reason: e.to_string(),
    };
    let json: Value = serde_json::from_slice(body).map_err(undecodable)?;
    // serde would read a struct from a JSON array too; a review is an object.
    if !json.is_object() {
        return Err(ReviewError::Undecodable {
            reason: "expected a JSON object at the top level".to_owned(),
        });
    }
    let incoming: ReviewIn = serde_json::from_value(json).map_err(undecodable)?;
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
    let (outcome, patch) = decide(&request, fqdn);
    let patch = patch.map(|operations| {
        let json = serde_json::to_vec(&operations).expect("a patch of JSON values serialises");
        base64::engine::general_purpose::STANDARD.encode(json)
    });
    Ok(Answer {
        object: describe(&request),
        outcome,
        version,
        review: ReviewOut {
            api_version,
            kind: REVIEW_KIND,
            response: ResponseOut {
                uid: request.uid,
                allowed: true,
                patch_type: patch.as_ref().map(|_| "JSONPatch"),
                patch,
            },
        },
    })
}

fn decide(
    request: &RequestIn,
    fqdn: &ApiserverFqdn,
) -> (Outcome, Option<Vec<pod_patch::AddOperation>>) {
    let gvk = &request.kind;
    let is_pod = gvk.group.is_empty() && gvk.version == "v1" && gvk.kind == "Pod";
    let subresource = request.sub_resource.as_deref().unwrap_or_default();
    if !is_pod || request.operation != "CREATE" || !subresource.is_empty() {
        let kind = match (gvk.group.as_str(), subresource) {
            ("", "") => format!("{}/{}", gvk.version, gvk.kind),
            ("", sub) => format!("{}/{} subresource {sub}", gvk.version, gvk.kind),
            (group, _) => format!("{group}/{}/{}", gvk.version, gvk.kind),
        };
        let outcome = Outcome::NotAPodCreate {
            kind,
            operation: request.operation.clone(),
        };
        return (outcome, None);
    }
    let pod = &request.object;
    match pod_patch::opted_out(pod) {
        Ok(Some(value)) => {
            return (
                Outcome::OptedOut {
                    value: value.to_owned(),
                },
                None,
            )
        }
        Ok(None) => {}
        Err(reason) => return (Outcome::PodUnreadable { reason }, None),
    }
    match pod_patch::env_patch(pod, fqdn) {
        Ok(patch) if patch.is_empty() => (Outcome::Unchanged, None),
        Ok(patch) => (
            Outcome::Patched {
                containers: patch.len(),
            },
            Some(patch),
        ),
        Err(reason) => (Outcome::PodUnreadable { reason }, None),
    }
}

fn describe(request: &RequestIn) -> String {
    let metadata = request.object.get("metadata");
    let from_object = |field| metadata.and_then(|m| m.get(field)).and_then(Value::as_str);
    let name = request
        .name
        .as_deref()
        .filter(|name| !name.is_empty())
        .or_else(|| from_object("name"))
        .or_else(|| from_object("generateName"))
        .unwrap_or_default();
    match request.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests;
