//! The rule itself: which containers of a Pod lack `KUBERNETES_SERVICE_HOST`, and the JSON Patch
//! that adds it. The patch only adds, so fields this program does not know are never touched;
//! the Pod is read through [`PodView`], which keeps only what the rule needs.

use std::io::Write as _;

use super::fqdn::ApiserverFqdn;
use super::json::JsonType;
use super::pod_view::{Env, PodView};

/// The variable the webhook sets; client-go's in-cluster config reads it.
pub const ENV_NAME: &str = "KUBERNETES_SERVICE_HOST";

/// A Pod labelled with this key and a false-like value is left alone.
pub const OPT_OUT_LABEL: &str = "apiserver-proxy.networking.gardener.cloud/inject";

/// The values that opt a Pod out: those of the clusters' `objectSelector`, plus `disable`.
pub const FALSE_LIKE: [&str; 7] = ["false", "False", "FALSE", "f", "F", "0", "disable"];

/// Why a Pod's JSON cannot be read. The review still answers `allowed: true` (see
/// [`super::review`]): this says why nothing was patched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} is {found}: expected {expected}")]
pub struct PodError {
    /// Where in the Pod, as a jq-like path (`.spec.containers[1].env`).
    pub path: String,
    /// The JSON type found there.
    pub found: &'static str,
    pub expected: &'static str,
}

impl PodError {
    fn new(path: impl Into<String>, found: JsonType, expected: &'static str) -> Self {
        Self {
            path: path.into(),
            found: found.as_str(),
            expected,
        }
    }
}

/// One RFC 6902 operation; this webhook only ever adds the variable to a container's `env`:
/// a new `env` holding just the variable (`add /spec/containers/1/env`), or the variable at the
/// end of an existing one (`add /spec/containers/1/env/-`). Written out by [`write_patch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOperation {
    /// `initContainers` or `containers`.
    pub list: &'static str,
    pub index: usize,
    /// Whether the container has an `env` already, to which the variable is appended.
    pub append: bool,
}

/// The opt-out label's value when it is false-like, so the log can say which value it was.
pub fn opted_out(pod: &PodView) -> Result<Option<&'static str>, PodError> {
    // Not a Pod at all: env_patch says so.
    let Ok(pod) = pod.pod() else {
        return Ok(None);
    };
    pod.metadata
        .labels
        .map_err(|found| PodError::new(".metadata.labels", found, "an object"))
}

/// The operations that add `KUBERNETES_SERVICE_HOST=<fqdn>` to each container and init container
/// that does not set it yet: `add .../env` when a container has no `env`, `add .../env/-` when
/// it has one without the variable. Empty when every container sets it already.
pub fn env_patch(pod: &PodView) -> Result<Vec<AddOperation>, PodError> {
    let pod = pod
        .pod()
        .map_err(|found| PodError::new("the Pod", found, "an object"))?;
    let spec = pod
        .spec
        .as_ref()
        .map_err(|found| PodError::new(".spec", *found, "an object"))?;
    let lists = [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ];
    let containers = lists
        .iter()
        .flat_map(|(_, list)| list.as_deref().unwrap_or_default());
    let mut patch = Vec::with_capacity(containers.count());
    // Init containers first, as the original webhook ordered its patch; the first unreadable
    // part in this order is the one reported.
    for (list, containers) in lists {
        let containers = containers
            .as_ref()
            .map_err(|found| PodError::new(format!(".spec.{list}"), *found, "an array"))?;
        for (index, container) in containers.iter().enumerate() {
            let env = container.map_err(|found| {
                PodError::new(format!(".spec.{list}[{index}]"), found, "an object")
            })?;
            let append = match env {
                Env::Missing => false,
                // The Pod's author set it, whatever its value or source: the webhook keeps out.
                Env::SetsVariable => continue,
                Env::LacksVariable => true,
                Env::Not(found) => {
                    return Err(PodError::new(
                        format!(".spec.{list}[{index}].env"),
                        found,
                        "an array",
                    ))
                }
            };
            patch.push(AddOperation {
                list,
                index,
                append,
            });
        }
    }
    Ok(patch)
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
        operation.write_path(out);
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

impl AddOperation {
    /// Writes the JSON Pointer it adds at: `/spec/containers/1/env`, or `.../env/-`.
    fn write_path(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"/spec/");
        out.extend_from_slice(self.list.as_bytes());
        write!(out, "/{}/env", self.index).expect("writing to a Vec cannot fail");
        if self.append {
            out.extend_from_slice(b"/-");
        }
    }
}

#[cfg(test)]
mod tests;
