//! `NodeTaints` over the API server: a get of our Node, and a JSON patch (RFC 6902) that `test`s
//! each entry it removes. The equivalent of
//! `kubectl patch node NODE --type=json -p '[{"op":"test",...},{"op":"remove",...}]'`.

use async_trait::async_trait;
use domain::ports::NodeTaints;
use domain::sidecar::taint::{NodeName, Taint, TaintError};
use k8s_openapi::api::core::v1::{Node, Taint as ApiTaint};
use kube::api::{Api, Patch, PatchParams};
use kube::Resource;
use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use super::errors::{translate, Verb};
use super::Credentials;

/// The Node named `node`, through a client built on first use and kept until this is dropped.
pub struct ApiNodeTaints {
    credentials: Credentials,
    node: NodeName,
    client: OnceCell<kube::Client>,
}

// kube's client has no `Debug`: say whether it was built.
impl std::fmt::Debug for ApiNodeTaints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiNodeTaints")
            .field("credentials", &self.credentials)
            .field("node", &self.node)
            .field("client_built", &self.client.initialized())
            .finish()
    }
}

impl ApiNodeTaints {
    pub fn new(credentials: Credentials, node: NodeName) -> Self {
        Self {
            credentials,
            node,
            client: OnceCell::new(),
        }
    }

    /// The client, built on first use. Loading the credentials fails like any call, and is
    /// retried like one: a token not mounted yet does not keep the address from being kept.
    async fn client(&self) -> Result<kube::Client, TaintError> {
        let client = self
            .client
            .get_or_try_init(|| self.credentials.client())
            .await?;
        Ok(client.clone())
    }
}

#[async_trait]
impl NodeTaints for ApiNodeTaints {
    async fn taints(&self) -> Result<Vec<Taint>, TaintError> {
        let node = Api::<Node>::all(self.client().await?)
            .get(self.node.as_str())
            .await
            .map_err(|error| translate(error, Verb::Get, &self.node))?;
        let taints = node.spec.and_then(|spec| spec.taints).unwrap_or_default();
        Ok(taints.into_iter().map(from_api).collect())
    }

    async fn remove(&self, entries: &[(usize, Taint)]) -> Result<(), TaintError> {
        let unexpected = |reason: String| TaintError::Unexpected { reason };
        let patch = serde_json::from_value(removal_patch(entries))
            .map_err(|error| unexpected(format!("cannot build the JSON patch: {error}")))?;
        // kube's `Api::patch` would send `/api/v1/nodes/NAME?`, a `?` with no query after it:
        // the same request is built here, and sent without it.
        let request = kube::core::Request::new(Node::url_path(&(), None))
            .patch(
                self.node.as_str(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .map_err(|error| unexpected(format!("cannot build the request: {error}")))?;
        let request = without_empty_query(request)?;
        self.client()
            .await?
            .request::<Node>(request)
            .await
            .map_err(|error| translate(error, Verb::Patch, &self.node))?;
        Ok(())
    }
}

/// The request with a trailing `?` (an empty query) taken off its path.
fn without_empty_query(
    mut request: hyper::Request<Vec<u8>>,
) -> Result<hyper::Request<Vec<u8>>, TaintError> {
    if let Some(path) = request.uri().to_string().strip_suffix('?') {
        *request.uri_mut() = path.parse().map_err(|error| TaintError::Unexpected {
            reason: format!("cannot build the request's path {path:?}: {error}"),
        })?;
    }
    Ok(request)
}

/// The entry as the API server wrote it. `timeAdded` goes through k8s-openapi's `Time`, which
/// writes whole seconds in UTC with a `Z`, as the API server does.
fn from_api(taint: ApiTaint) -> Taint {
    let time_added = taint
        .time_added
        .and_then(|time| serde_json::to_value(time).ok())
        .and_then(|time| time.as_str().map(str::to_owned));
    Taint {
        key: taint.key,
        value: taint.value,
        effect: taint.effect,
        time_added,
    }
}

/// The entry as JSON, with the API server's field names; absent fields stay absent (the API
/// server omits them when empty), so `test` compares equal entries as equal.
fn to_json(taint: &Taint) -> Value {
    let mut entry = Map::new();
    entry.insert("key".into(), json!(taint.key));
    if let Some(value) = &taint.value {
        entry.insert("value".into(), json!(value));
    }
    entry.insert("effect".into(), json!(taint.effect));
    if let Some(time_added) = &taint.time_added {
        entry.insert("timeAdded".into(), json!(time_added));
    }
    Value::Object(entry)
}

/// For each entry, in the order given (the domain gives the highest index first, so each
/// removal leaves the next index in place): a `test` of the exact entry, then its `remove`.
fn removal_patch(entries: &[(usize, Taint)]) -> Value {
    let operations: Vec<Value> = entries
        .iter()
        .flat_map(|(index, taint)| {
            let path = format!("/spec/taints/{index}");
            [
                json!({"op": "test", "path": path, "value": to_json(taint)}),
                json!({"op": "remove", "path": path}),
            ]
        })
        .collect();
    Value::Array(operations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: None,
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn the_patch_path_ends_with_the_node_s_name() {
        let request = hyper::Request::patch("/api/v1/nodes/node-2?")
            .body(Vec::new())
            .unwrap();
        let request = without_empty_query(request).unwrap();
        assert_eq!(request.uri().to_string(), "/api/v1/nodes/node-2");
        let kept = hyper::Request::patch("/api/v1/nodes/node-2?dryRun=All")
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            without_empty_query(kept).unwrap().uri().to_string(),
            "/api/v1/nodes/node-2?dryRun=All"
        );
    }

    #[test]
    fn each_removal_is_guarded_by_a_test_of_its_exact_entry() {
        let mut timed = taint("k", "NoExecute");
        timed.value = Some("v".into());
        timed.time_added = Some("2026-12-03T15:00:00Z".into());
        let patch = removal_patch(&[(3, timed), (1, taint("k", "NoSchedule"))]);
        assert_eq!(
            patch,
            json!([
                {"op": "test", "path": "/spec/taints/3", "value":
                    {"key": "k", "value": "v", "effect": "NoExecute", "timeAdded": "2026-12-03T15:00:00Z"}},
                {"op": "remove", "path": "/spec/taints/3"},
                {"op": "test", "path": "/spec/taints/1", "value": {"key": "k", "effect": "NoSchedule"}},
                {"op": "remove", "path": "/spec/taints/1"},
            ])
        );
    }

    #[test]
    fn an_entry_read_from_the_api_is_written_back_as_it_came() {
        let read = json!({"key": "k", "value": "v", "effect": "NoExecute", "timeAdded": "2026-12-03T15:00:00Z"});
        let api: ApiTaint = serde_json::from_value(read.clone()).unwrap();
        assert_eq!(to_json(&from_api(api)), read);
        let bare = json!({"key": "k", "effect": "NoSchedule"});
        let api: ApiTaint = serde_json::from_value(bare.clone()).unwrap();
        assert_eq!(to_json(&from_api(api)), bare);
    }
}
