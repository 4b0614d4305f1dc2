//! One AdmissionReview in, one answer out: a pure function from the request body's bytes to the
//! response, so the HTTP side has no rule of its own.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::fqdn::ApiserverFqdn;
use super::json::Text;
use super::outcome::Outcome;
use super::pod_patch;
use super::pod_view::PodView;

pub const ADMISSION_V1: &str = "admission.k8s.io/v1";
pub const ADMISSION_V1BETA1: &str = "admission.k8s.io/v1beta1";
const REVIEW_KIND: &str = "AdmissionReview";

/// The bytes of an answer besides its uid and patch, rounded up, so that it is written into one
/// allocation: `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","response":
/// {"uid":"","allowed":true,"patchType":"JSONPatch","patch":""}}` has 138.
const ANSWER_BYTES: usize = 160;

/// The bytes of one operation besides the FQDN, rounded up, for the same reason:
/// `{"op":"add","path":"/spec/initContainers/10/env","value":[{"name":"KUBERNETES_SERVICE_HOST","value":""}]},`
/// has 106.
const OPERATION_BYTES: usize = 112;

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
    /// The request's `apiVersion`, which the answer repeats.
    api_version: &'static str,
    uid: String,
    /// The JSON Patch, when there is one.
    patch: Option<Vec<u8>>,
    pub outcome: Outcome,
    /// The request's version, which the answer repeats.
    pub version: ReviewVersion,
    /// `namespace/name` of the object (or `generateName` when it has no name yet), for the log.
    pub object: String,
}

impl Answer {
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The response body: an AdmissionReview of the request's version, with the patch as a
    /// base64 string (`[]byte` in Go's JSON, not an array of numbers), and `patchType` only
    /// beside a patch.
    ///
    /// Written from a template, for the reason [`pod_patch::write_patch`] gives; only the uid,
    /// the one string from the request, goes through serde_json to be escaped.
    pub fn to_json(&self) -> Vec<u8> {
        let patch_bytes = self
            .patch
            .as_ref()
            .map_or(0, |patch| 4 * patch.len().div_ceil(3));
        let mut json = Vec::with_capacity(ANSWER_BYTES + self.uid.len() + patch_bytes);
        json.extend_from_slice(br#"{"apiVersion":""#);
        json.extend_from_slice(self.api_version.as_bytes());
        json.extend_from_slice(br#"","kind":"AdmissionReview","response":{"uid":"#);
        serde_json::to_writer(&mut json, &self.uid).expect("a string always serialises");
        json.extend_from_slice(br#","allowed":true"#);
        if let Some(patch) = &self.patch {
            json.extend_from_slice(br#","patchType":"JSONPatch","patch":""#);
            let start = json.len();
            json.resize(start + patch_bytes, 0);
            BASE64
                .encode_slice(patch, &mut json[start..])
                .expect("room for the base64 was made");
            json.push(b'"');
        }
        json.extend_from_slice(b"}}");
        json
    }
}

// The review as this webhook reads it: strings are borrowed from the body, and every field not
// named here (`oldObject`, `userInfo`, most of the object...) is skipped without a copy. serde
// refuses a repeated field here, where serde_json's `Value` let the last one win; the API
// server never repeats one (Go's encoding/json cannot).

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewIn<'a> {
    #[serde(borrow)]
    api_version: Option<Text<'a>>,
    #[serde(borrow)]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    request: Option<RequestIn<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIn<'a> {
    #[serde(borrow)]
    uid: Text<'a>,
    #[serde(borrow)]
    kind: GroupVersionKind<'a>,
    #[serde(borrow)]
    operation: Text<'a>,
    #[serde(default, borrow)]
    sub_resource: Option<Text<'a>>,
    #[serde(default, borrow)]
    name: Option<Text<'a>>,
    #[serde(default, borrow)]
    namespace: Option<Text<'a>>,
    /// Read as far as the rule needs, and never refused for its shape: a review of any object
    /// is answered.
    #[serde(default, borrow)]
    object: PodView<'a>,
}

#[derive(Deserialize)]
struct GroupVersionKind<'a> {
    #[serde(borrow)]
    group: Text<'a>,
    #[serde(borrow)]
    version: Text<'a>,
    #[serde(borrow)]
    kind: Text<'a>,
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
    let (outcome, patch) = decide(&request);
    let patch = patch.map(|operations| {
        let mut json =
            Vec::with_capacity(2 + operations.len() * (OPERATION_BYTES + fqdn.as_str().len()));
        pod_patch::write_patch(&operations, fqdn, &mut json);
        json
    });
    Ok(Answer {
        api_version,
        object: describe(&request),
        uid: request.uid.0.into_owned(),
        patch,
        outcome,
        version,
    })
}

fn decide(request: &RequestIn) -> (Outcome, Option<Vec<pod_patch::AddOperation>>) {
    let gvk = &request.kind;
    let is_pod = gvk.group.is_empty() && &*gvk.version == "v1" && &*gvk.kind == "Pod";
    let subresource = request.sub_resource.as_deref().unwrap_or_default();
    if !is_pod || &*request.operation != "CREATE" || !subresource.is_empty() {
        let kind = match (&*gvk.group, subresource) {
            ("", "") => format!("{}/{}", gvk.version, gvk.kind),
            ("", sub) => format!("{}/{} subresource {sub}", gvk.version, gvk.kind),
            (group, _) => format!("{group}/{}/{}", gvk.version, gvk.kind),
        };
        let outcome = Outcome::NotAPodCreate {
            kind,
            operation: request.operation.to_string(),
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
    match pod_patch::env_patch(pod) {
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
    let name = request
        .name
        .as_deref()
        .filter(|name| !name.is_empty())
        .or_else(|| request.object.name())
        .or_else(|| request.object.generate_name())
        .unwrap_or_default();
    match request.namespace.as_deref().filter(|ns| !ns.is_empty()) {
        Some(namespace) => [namespace, "/", name].concat(),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests;
