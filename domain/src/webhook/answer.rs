//! The answer to a decodable review, written out: an AdmissionReview of the request's version
//! with the JSON Patch of [`super::rule::mutate`], if any.

use std::io::Write as _;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::fqdn::ApiserverFqdn;
use super::outcome::ReviewVersion;
use super::rule::{AddOperation, Outcome, ENV_NAME};

/// The bytes of an answer besides its uid and patch, rounded up, so that it is written into one
/// allocation: `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","response":
/// {"uid":"","allowed":true,"patchType":"JSONPatch","patch":""}}` has 138.
const ANSWER_BYTES: usize = 160;

/// The bytes of one operation besides the FQDN, rounded up, for the same reason:
/// `{"op":"add","path":"/spec/initContainers/10/env","value":[{"name":"KUBERNETES_SERVICE_HOST","value":""}]},`
/// has 106.
const OPERATION_BYTES: usize = 112;

/// The answer to a decodable review, with what was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The request's `apiVersion`, which the answer repeats.
    pub(super) api_version: &'static str,
    pub(super) uid: String,
    /// The JSON Patch, when there is one.
    pub(super) patch: Option<Vec<u8>>,
    /// Shown by kubectl to whoever created the Pod, when something needs saying.
    pub(super) warning: Option<String>,
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
    /// Written from a template, for the reason [`write_patch`] gives; only the uid and the
    /// warning go through serde_json to be escaped.
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
        if let Some(warning) = &self.warning {
            json.extend_from_slice(br#","warnings":["#);
            serde_json::to_writer(&mut json, warning).expect("a string always serialises");
            json.push(b']');
        }
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

/// The patch as JSON, or `None` for no operations.
pub(super) fn patch_json(patch: &[AddOperation], fqdn: &ApiserverFqdn) -> Option<Vec<u8>> {
    if patch.is_empty() {
        return None;
    }
    let mut json = Vec::with_capacity(2 + patch.len() * (OPERATION_BYTES + fqdn.as_str().len()));
    write_patch(patch, fqdn, &mut json);
    Some(json)
}

/// Writes the patch as JSON, byte for byte as the seed wrote it:
/// `[{"op":"add","path":"/spec/containers/0/env","value":[{"name":"KUBERNETES_SERVICE_HOST",
/// "value":"<fqdn>"}]}]`, with the variable alone, not in a list, when it is appended.
///
/// Written from a template rather than through serde_json, which scans every string for
/// characters to escape: that scan was a tenth of a review's cost, and no part of the patch can
/// need escaping (constant names, digits, and an FQDN, which holds only `a-z`, `0-9`, `-` and
/// `.`).
pub fn write_patch(patch: &[AddOperation], fqdn: &ApiserverFqdn, out: &mut Vec<u8>) {
    out.push(b'[');
    for (index, operation) in patch.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"op":"add","path":""#);
        write_path(operation, out);
        out.extend_from_slice(br#"","value":"#);
        if !operation.append {
            out.push(b'[');
        }
        out.extend_from_slice(br#"{"name":""#);
        out.extend_from_slice(ENV_NAME.as_bytes());
        out.extend_from_slice(br#"","value":""#);
        out.extend_from_slice(fqdn.as_str().as_bytes());
        out.extend_from_slice(br#""}"#);
        if !operation.append {
            out.push(b']');
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// Writes the JSON Pointer an operation adds at: `/spec/containers/1/env`, or `.../env/-`.
fn write_path(operation: &AddOperation, out: &mut Vec<u8>) {
    out.extend_from_slice(b"/spec/");
    out.extend_from_slice(operation.list.as_bytes());
    write!(out, "/{}/env", operation.index).expect("writing to a Vec cannot fail");
    if operation.append {
        out.extend_from_slice(b"/-");
    }
}
