//! The rule itself: which containers of a Pod lack `KUBERNETES_SERVICE_HOST`, and the JSON Patch
//! that adds it. Works on the Pod's raw JSON, so fields this program does not know are never
//! touched: the patch only adds.

use serde::Serialize;
use serde_json::{json, Value};

use super::fqdn::ApiserverFqdn;

/// The variable the webhook sets; client-go's in-cluster config reads it.
pub const ENV_NAME: &str = "KUBERNETES_SERVICE_HOST";

/// A Pod labelled with this key and a false-like value is left alone.
pub const OPT_OUT_LABEL: &str = "apiserver-proxy.networking.gardener.cloud/inject";

/// The values that opt a Pod out: those of the clusters' `objectSelector`, plus `disable`.
pub const FALSE_LIKE: [&str; 7] = ["false", "False", "FALSE", "f", "F", "0", "disable"];

/// Both lists of containers that run with the Pod's environment; init containers first, as the
/// original webhook ordered its patch.
const CONTAINER_LISTS: [&str; 2] = ["initContainers", "containers"];

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

/// One RFC 6902 operation; this webhook only ever adds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddOperation {
    op: &'static str,
    pub path: String,
    pub value: Value,
}

impl AddOperation {
    fn new(path: String, value: Value) -> Self {
        Self {
            op: "add",
            path,
            value,
        }
    }
}

/// The opt-out label's value when it is false-like, so the log can say which value it was.
pub fn opted_out(pod: &Value) -> Result<Option<&str>, PodError> {
    let labels = match pod.get("metadata").and_then(|m| m.get("labels")) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(labels)) => labels,
        Some(other) => return Err(shape(".metadata.labels", other, "an object")),
    };
    Ok(labels
        .get(OPT_OUT_LABEL)
        .and_then(Value::as_str)
        .filter(|value| FALSE_LIKE.contains(value)))
}

/// The operations that add `KUBERNETES_SERVICE_HOST=<fqdn>` to each container and init container
/// that does not set it yet: `add .../env` when a container has no `env`, `add .../env/-` when
/// it has one without the variable. Empty when every container sets it already.
pub fn env_patch(pod: &Value, fqdn: &ApiserverFqdn) -> Result<Vec<AddOperation>, PodError> {
    if !pod.is_object() {
        return Err(shape("the Pod", pod, "an object"));
    }
    let spec = match pod.get("spec") {
        Some(spec @ Value::Object(_)) => spec,
        Some(other) => return Err(shape(".spec", other, "an object")),
        None => return Err(shape(".spec", &Value::Null, "an object")),
    };
    let variable = json!({ "name": ENV_NAME, "value": fqdn.as_str() });
    let mut patch = Vec::new();
    for list in CONTAINER_LISTS {
        let containers = match spec.get(list) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(containers)) => containers,
            Some(other) => return Err(shape(&format!(".spec.{list}"), other, "an array")),
        };
        for (index, container) in containers.iter().enumerate() {
            let at = format!("spec/{list}/{index}");
            if !container.is_object() {
                return Err(shape(&jq_path(&at), container, "an object"));
            }
            match container.get("env") {
                None | Some(Value::Null) => patch.push(AddOperation::new(
                    format!("/{at}/env"),
                    Value::Array(vec![variable.clone()]),
                )),
                Some(Value::Array(env)) if sets_variable(env) => {}
                Some(Value::Array(_)) => {
                    patch.push(AddOperation::new(format!("/{at}/env/-"), variable.clone()))
                }
                Some(other) => {
                    return Err(shape(&jq_path(&format!("{at}/env")), other, "an array"))
                }
            }
        }
    }
    Ok(patch)
}

/// Whether the container already names the variable, whatever its value or source: the Pod's
/// author decided, and the webhook keeps out.
fn sets_variable(env: &[Value]) -> bool {
    env.iter()
        .any(|entry| entry.get("name").and_then(Value::as_str) == Some(ENV_NAME))
}

fn shape(path: &str, found: &Value, expected: &'static str) -> PodError {
    PodError {
        path: path.to_owned(),
        found: json_type(found),
        expected,
    }
}

/// `spec/containers/1/env` as `.spec.containers[1].env`, the way people read it in logs.
fn jq_path(pointer: &str) -> String {
    pointer
        .split('/')
        .map(|part| match part.parse::<usize>() {
            Ok(index) => format!("[{index}]"),
            Err(_) => format!(".{part}"),
        })
        .collect()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "missing or null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
