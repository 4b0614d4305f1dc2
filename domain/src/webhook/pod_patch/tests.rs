use super::*;
use rstest::rstest;
use serde::Deserialize as _;
use serde_json::{json, Value};

fn fqdn() -> ApiserverFqdn {
    "api.example.com.".parse().expect("a valid name")
}

fn variable() -> Value {
    json!({ "name": ENV_NAME, "value": "api.example.com." })
}

/// Runs `rule` on the Pod as a review carries it: JSON text, read through the view.
fn read<R>(pod: &Value, rule: impl FnOnce(&PodView) -> R) -> R {
    read_text(&serde_json::to_string(pod).expect("JSON"), rule)
}

/// Runs `rule` on a Pod written out by hand, for what `json!` cannot write: escapes, repeated
/// keys.
fn read_text<R>(pod: &str, rule: impl FnOnce(&PodView) -> R) -> R {
    let mut deserializer = serde_json::Deserializer::from_str(pod);
    let view = PodView::deserialize(&mut deserializer).expect("any JSON reads as a view");
    deserializer.end().expect("one JSON value");
    rule(&view)
}

/// The patch for `pod`, as the JSON it is sent as.
fn patch(pod: &Value) -> Result<Value, PodError> {
    read(pod, env_patch).map(|patch| serde_json::from_slice(&written(&patch)).expect("JSON"))
}

/// The paths a patch adds at, as written.
fn paths(patch: &[AddOperation]) -> Vec<String> {
    let json: Value = serde_json::from_slice(&written(patch)).expect("JSON");
    json.as_array()
        .expect("a list of operations")
        .iter()
        .map(|operation| operation["path"].as_str().expect("a path").to_owned())
        .collect()
}

fn written(patch: &[AddOperation]) -> Vec<u8> {
    let mut json = Vec::new();
    write_patch(patch, &fqdn(), &mut json);
    json
}

/// The paths the patch for a hand-written Pod adds, or why the Pod cannot be read.
fn paths_text(pod: &str) -> Result<Vec<String>, String> {
    read_text(pod, env_patch)
        .map(|patch| paths(&patch))
        .map_err(|e| e.to_string())
}

/// Applies a patch's `add` operations as RFC 6902 does, so a test sees the Pod the API server
/// would store.
fn apply(mut pod: Value, patch: &Value) -> Value {
    for operation in patch.as_array().expect("a list of operations") {
        assert_eq!(operation["op"], "add");
        let path = operation["path"].as_str().expect("a path");
        let value = operation["value"].clone();
        let (parent, last) = path.rsplit_once('/').expect("a path with a parent");
        let target = pod.pointer_mut(parent).expect("the parent exists");
        match (target, last) {
            (Value::Array(items), "-") => items.push(value),
            (Value::Object(fields), name) => {
                assert!(!fields.contains_key(name), "add would replace {name}");
                fields.insert(name.to_owned(), value);
            }
            (other, _) => panic!("cannot add {path} to {other}"),
        }
    }
    pod
}

#[rstest]
#[case::no_env(json!({ "name": "a" }), "/spec/containers/0/env", json!([variable()]))]
#[case::null_env(json!({ "name": "a", "env": null }), "/spec/containers/0/env", json!([variable()]))]
#[case::empty_env(json!({ "name": "a", "env": [] }), "/spec/containers/0/env/-", variable())]
#[case::env_without_the_variable(
    json!({ "name": "a", "env": [{ "name": "OTHER", "value": "1" }] }),
    "/spec/containers/0/env/-",
    variable()
)]
fn adds_the_variable_where_it_is_missing(
    #[case] container: Value,
    #[case] path: &str,
    #[case] value: Value,
) {
    let pod = json!({ "spec": { "containers": [container] } });
    assert_eq!(
        patch(&pod),
        Ok(json!([{ "op": "add", "path": path, "value": value }]))
    );
}

#[rstest]
#[case::with_a_value(json!({ "name": ENV_NAME, "value": "mine" }))]
#[case::from_a_secret(json!({ "name": ENV_NAME, "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }))]
#[case::empty_value(json!({ "name": ENV_NAME }))]
fn leaves_containers_that_set_the_variable(#[case] entry: Value) {
    let pod =
        json!({ "spec": { "containers": [{ "name": "a", "env": [{ "name": "X" }, entry] }] } });
    assert_eq!(patch(&pod), Ok(json!([])));
}

#[test]
fn patches_init_containers_first_then_containers_by_index() {
    let pod = json!({ "spec": {
        "containers": [{ "name": "c0" }, { "name": "c1", "env": [variable()] }, { "name": "c2", "env": [] }],
        "initContainers": [{ "name": "i0" }],
    } });
    let patch = read(&pod, env_patch).expect("a readable Pod");
    assert_eq!(
        paths(&patch),
        [
            "/spec/initContainers/0/env",
            "/spec/containers/0/env",
            "/spec/containers/2/env/-"
        ]
    );
}

#[test]
fn the_patch_keeps_fields_it_does_not_know() {
    let pod = json!({ "spec": {
        "futureField": { "x": 1 },
        "containers": [
            { "name": "a", "image": "i", "someNewField": [1, 2], "env": [{ "name": "A", "value": "1" }] },
            { "name": "b", "resizePolicy": [{ "resourceName": "cpu" }] },
        ],
    } });
    let patched = apply(pod.clone(), &patch(&pod).expect("a readable Pod"));
    assert_eq!(
        patched,
        json!({ "spec": {
            "futureField": { "x": 1 },
            "containers": [
                { "name": "a", "image": "i", "someNewField": [1, 2], "env": [{ "name": "A", "value": "1" }, variable()] },
                { "name": "b", "resizePolicy": [{ "resourceName": "cpu" }], "env": [variable()] },
            ],
        } })
    );
}

#[test]
fn patching_twice_changes_nothing_the_second_time() {
    let pod = json!({ "spec": { "initContainers": [{ "name": "i" }], "containers": [{ "name": "a", "env": [] }] } });
    let once = apply(pod.clone(), &patch(&pod).expect("a readable Pod"));
    assert_eq!(patch(&once), Ok(json!([])));
}

#[rstest]
#[case::no_containers(json!({ "spec": {} }))]
#[case::empty_lists(json!({ "spec": { "containers": [], "initContainers": [] } }))]
fn a_pod_without_containers_needs_no_patch(#[case] pod: Value) {
    assert_eq!(patch(&pod), Ok(json!([])));
}

#[rstest]
#[case::not_an_object(json!("pod"), "the Pod is a string: expected an object")]
#[case::a_list(json!([{ "spec": {} }]), "the Pod is an array: expected an object")]
#[case::null(json!(null), "the Pod is missing or null: expected an object")]
#[case::no_spec(json!({ "metadata": {} }), ".spec is missing or null: expected an object")]
#[case::spec_a_list(json!({ "spec": [] }), ".spec is an array: expected an object")]
#[case::containers_an_object(json!({ "spec": { "containers": {} } }), ".spec.containers is an object: expected an array")]
#[case::container_a_string(json!({ "spec": { "initContainers": ["x"] } }), ".spec.initContainers[0] is a string: expected an object")]
#[case::env_an_object(json!({ "spec": { "containers": [{}, { "env": {} }] } }), ".spec.containers[1].env is an object: expected an array")]
#[case::env_a_number(json!({ "spec": { "containers": [{ "env": 1 }] } }), ".spec.containers[0].env is a number: expected an array")]
#[case::container_a_boolean(json!({ "spec": { "containers": [true] } }), ".spec.containers[0] is a boolean: expected an object")]
#[case::init_containers_first(
    json!({ "spec": { "containers": [{ "env": 1 }], "initContainers": [{ "env": "x" }] } }),
    ".spec.initContainers[0].env is a string: expected an array"
)]
#[case::then_by_index(
    json!({ "spec": { "containers": [{}, { "env": true }, "x"] } }),
    ".spec.containers[1].env is a boolean: expected an array"
)]
fn says_where_an_unreadable_pod_is_wrong(#[case] pod: Value, #[case] message: &str) {
    assert_eq!(
        patch(&pod).map_err(|e| e.to_string()),
        Err(message.to_owned())
    );
}

#[rstest]
#[case("false")]
#[case("False")]
#[case("FALSE")]
#[case("f")]
#[case("F")]
#[case("0")]
#[case("disable")]
fn false_like_label_values_opt_out(#[case] value: &str) {
    let pod = json!({ "metadata": { "labels": { OPT_OUT_LABEL: value } } });
    assert_eq!(read(&pod, opted_out), Ok(Some(value)));
}

#[rstest]
#[case::true_(json!({ "labels": { OPT_OUT_LABEL: "true" } }))]
#[case::empty(json!({ "labels": { OPT_OUT_LABEL: "" } }))]
#[case::no(json!({ "labels": { OPT_OUT_LABEL: "no" } }))]
#[case::other_key(json!({ "labels": { "inject": "false" } }))]
#[case::annotation_not_label(json!({ "annotations": { OPT_OUT_LABEL: "false" } }))]
#[case::no_labels(json!({}))]
#[case::null_labels(json!({ "labels": null }))]
fn other_labels_do_not_opt_out(#[case] metadata: Value) {
    assert_eq!(read(&json!({ "metadata": metadata }), opted_out), Ok(None));
}

#[test]
fn labels_that_are_not_an_object_make_the_pod_unreadable() {
    assert_eq!(
        read(&json!({ "metadata": { "labels": ["a"] } }), opted_out).map_err(|e| e.to_string()),
        Err(".metadata.labels is an array: expected an object".to_owned())
    );
}

// The view reads the body's text, not a tree: what `json!` cannot write, written out by hand.

#[test]
fn spec_in_any_key_order_reports_init_containers_first() {
    let pod = r#"{ "spec": { "containers": [{ "env": 1 }], "initContainers": {} } }"#;
    assert_eq!(
        paths_text(pod),
        Err(".spec.initContainers is an object: expected an array".to_owned())
    );
}

#[rstest]
#[case::escaped_key(r#"{ "metadata": { "labels": { "apiserver-proxy.networking.gardener.cloud\/inject": "false" } } }"#)]
#[case::escaped_value(r#"{ "metadata": { "labels": { "apiserver-proxy.networking.gardener.cloud/inject": "f\u0061lse" } } }"#)]
#[case::escaped_field_names(r#"{ "m\u0065tadata": { "l\u0061bels": { "apiserver-proxy.networking.gardener.cloud/inject": "false" } } }"#)]
fn escaped_labels_opt_out_like_plain_ones(#[case] pod: &str) {
    assert_eq!(read_text(pod, opted_out), Ok(Some("false")));
}

#[rstest]
#[case::last_false(r#"{ "labels": { "apiserver-proxy.networking.gardener.cloud/inject": "true", "apiserver-proxy.networking.gardener.cloud/inject": "0" } }"#, Some("0"))]
#[case::last_true(r#"{ "labels": { "apiserver-proxy.networking.gardener.cloud/inject": "false", "apiserver-proxy.networking.gardener.cloud/inject": "true" } }"#, None)]
#[case::last_not_a_string(r#"{ "labels": { "apiserver-proxy.networking.gardener.cloud/inject": "false", "apiserver-proxy.networking.gardener.cloud/inject": 0 } }"#, None)]
#[case::last_labels(
    r#"{ "labels": 7, "labels": { "apiserver-proxy.networking.gardener.cloud/inject": "F" } }"#,
    Some("F")
)]
fn a_repeated_key_counts_as_its_last_value(#[case] metadata: &str, #[case] value: Option<&str>) {
    let pod = format!(r#"{{ "metadata": {metadata} }}"#);
    assert_eq!(read_text(&pod, opted_out), Ok(value));
}

#[test]
fn a_repeated_spec_counts_as_its_last_value() {
    let pod = r#"{ "spec": [], "spec": { "containers": [{ "env": [] }] } }"#;
    assert_eq!(
        paths_text(pod),
        Ok(vec!["/spec/containers/0/env/-".to_owned()])
    );
}

#[rstest]
#[case::escaped_name(r#"{ "name": "KUBERNETES_SERVICE_\u0048OST" }"#)]
#[case::escaped_key(r#"{ "n\u0061me": "KUBERNETES_SERVICE_HOST", "value": "x" }"#)]
#[case::last_name(r#"{ "name": "OTHER", "name": "KUBERNETES_SERVICE_HOST" }"#)]
fn an_escaped_or_repeated_name_still_sets_the_variable(#[case] entry: &str) {
    let pod = format!(r#"{{ "spec": {{ "containers": [{{ "env": [{entry}] }}] }} }}"#);
    assert_eq!(paths_text(&pod), Ok(vec![]));
}

#[rstest]
#[case::a_string(json!("KUBERNETES_SERVICE_HOST"))]
#[case::a_list(json!([{ "name": "KUBERNETES_SERVICE_HOST" }]))]
#[case::null(json!(null))]
#[case::a_numeric_name(json!({ "name": 7 }))]
#[case::an_object_name(json!({ "name": { "name": "KUBERNETES_SERVICE_HOST" } }))]
#[case::no_name(json!({ "value": "KUBERNETES_SERVICE_HOST" }))]
fn an_env_entry_that_names_no_variable_is_skipped(#[case] entry: Value) {
    let pod = json!({ "spec": { "containers": [{ "env": [entry] }] } });
    let patched = apply(pod.clone(), &patch(&pod).expect("a readable Pod"));
    assert_eq!(
        patched["spec"]["containers"][0]["env"],
        json!([entry, variable()])
    );
}

#[rstest]
#[case::metadata_a_list(json!({ "metadata": [{ "labels": { OPT_OUT_LABEL: "false" } }] }))]
#[case::metadata_a_string(json!({ "metadata": "x" }))]
#[case::name_an_object(json!({ "metadata": { "name": { "a": [1] }, "generateName": [null] } }))]
#[case::label_values_of_any_type(json!({ "metadata": { "labels": { "a": { "b": [1, { "c": null }] }, "d": 1.5, OPT_OUT_LABEL: ["false"] } } }))]
fn fields_the_rule_does_not_need_may_have_any_shape(#[case] pod: Value) {
    assert_eq!(read(&pod, opted_out), Ok(None));
}

#[test]
fn the_patch_is_written_exactly_as_the_seed_wrote_it() {
    let pod =
        json!({ "spec": { "initContainers": [{ "env": null }], "containers": [{ "env": [] }] } });
    let json = written(&read(&pod, env_patch).expect("a readable Pod"));
    assert_eq!(
        String::from_utf8(json).expect("UTF-8"),
        concat!(
            r#"[{"op":"add","path":"/spec/initContainers/0/env","#,
            r#""value":[{"name":"KUBERNETES_SERVICE_HOST","value":"api.example.com."}]},"#,
            r#"{"op":"add","path":"/spec/containers/0/env/-","#,
            r#""value":{"name":"KUBERNETES_SERVICE_HOST","value":"api.example.com."}}]"#
        )
    );
}
