use super::*;
use crate::webhook::answer::write_patch;
use crate::webhook::fqdn::ApiserverFqdn;
use rstest::rstest;
use serde_json::{json, Value};

fn fqdn() -> ApiserverFqdn {
    "api.example.com.".parse().expect("a valid name")
}

fn variable() -> Value {
    json!({ "name": ENV_NAME, "value": "api.example.com." })
}

/// The review's request around `pod`, as text: what `json!` cannot write (escapes, repeated
/// keys) can be written out by hand.
fn request_text(pod: &str) -> String {
    format!(
        r#"{{"uid":"u","kind":{{"group":"","version":"v1","kind":"Pod"}},"operation":"CREATE","object":{pod}}}"#
    )
}

/// Runs the rule on the Pod as a review carries it: JSON text, decoded into the facts.
fn mutate_text(pod: &str) -> (Outcome, Vec<AddOperation>) {
    let text = request_text(pod);
    let request: Request = serde_json::from_str(&text).expect("a decodable request");
    mutate(&request)
}

fn mutate_pod(pod: &Value) -> (Outcome, Vec<AddOperation>) {
    mutate_text(&serde_json::to_string(pod).expect("JSON"))
}

/// The patch for `pod`, as the JSON it is sent as (`[]` for none), or why the Pod cannot be
/// read.
fn patch(pod: &Value) -> Result<Value, PodError> {
    match mutate_pod(pod) {
        (Outcome::PodUnreadable { reason }, _) => Err(reason),
        (_, patch) => Ok(serde_json::from_slice(&written(&patch)).expect("JSON")),
    }
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
    match mutate_text(pod) {
        (Outcome::PodUnreadable { reason }, _) => Err(reason.to_string()),
        (_, patch) => Ok(paths(&patch)),
    }
}

/// The opt-out label's value when the rule opted the Pod out for it, or what is wrong with the
/// Pod's metadata.
fn opted_out_text(pod: &str) -> Result<Option<String>, String> {
    match mutate_text(pod).0 {
        Outcome::OptedOut { value } => Ok(Some(value)),
        Outcome::PodUnreadable { reason } if reason.path.starts_with(".metadata") => {
            Err(reason.to_string())
        }
        _ => Ok(None),
    }
}

fn opted_out(pod: &Value) -> Result<Option<String>, String> {
    opted_out_text(&serde_json::to_string(pod).expect("JSON"))
}

/// Applies a patch with the json-patch crate, as the API server applies RFC 6902, so a test
/// sees the Pod the API server would store.
fn apply(mut pod: Value, patch: &Value) -> Value {
    let patch: json_patch::Patch = serde_json::from_value(patch.clone()).expect("a JSON Patch");
    json_patch::patch(&mut pod, &patch).expect("the patch applies");
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
    let (_, patch) = mutate_pod(&pod);
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
    assert_eq!(opted_out(&pod), Ok(Some(value.to_owned())));
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
    assert_eq!(opted_out(&json!({ "metadata": metadata })), Ok(None));
}

#[test]
fn labels_that_are_not_an_object_make_the_pod_unreadable() {
    assert_eq!(
        opted_out(&json!({ "metadata": { "labels": ["a"] } })),
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
    assert_eq!(opted_out_text(pod), Ok(Some("false".to_owned())));
}

// serde refuses a repeated field the rule reads, where the first decoder let the last one win:
// the API server never repeats one (Go's encoding/json cannot), and a body that does was not
// written by it. The review answers it 400, as it does a repeated field of the envelope.
#[rstest]
#[case::label(r#"{ "metadata": { "labels": { "apiserver-proxy.networking.gardener.cloud/inject": "true", "apiserver-proxy.networking.gardener.cloud/inject": "0" } } }"#, "apiserver-proxy.networking.gardener.cloud/inject")]
#[case::labels(r#"{ "metadata": { "labels": 7, "labels": { "apiserver-proxy.networking.gardener.cloud/inject": "F" } } }"#, "labels")]
#[case::spec(r#"{ "spec": [], "spec": { "containers": [{ "env": [] }] } }"#, "spec")]
#[case::env_name(r#"{ "spec": { "containers": [{ "env": [{ "name": "OTHER", "name": "KUBERNETES_SERVICE_HOST" }] }] } }"#, "name")]
fn a_repeated_field_the_rule_reads_is_refused(#[case] pod: &str, #[case] field: &str) {
    let text = request_text(pod);
    let error = serde_json::from_str::<Request>(&text).expect_err("a repeated field");
    assert!(
        error
            .to_string()
            .contains(&format!("duplicate field `{field}`")),
        "{error}"
    );
}

#[test]
fn a_repeated_field_the_rule_does_not_read_is_skipped() {
    let pod = r#"{ "metadata": { "labels": { "app": "a", "app": "b" } }, "spec": { "containers": [{ "image": "a", "image": "b" }] } }"#;
    assert_eq!(
        paths_text(pod),
        Ok(vec!["/spec/containers/0/env".to_owned()])
    );
}

#[rstest]
#[case::escaped_name(r#"{ "name": "KUBERNETES_SERVICE_\u0048OST" }"#)]
#[case::escaped_key(r#"{ "n\u0061me": "KUBERNETES_SERVICE_HOST", "value": "x" }"#)]
fn an_escaped_name_still_sets_the_variable(#[case] entry: &str) {
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
    assert_eq!(opted_out(&pod), Ok(None));
}

#[test]
fn the_patch_is_written_exactly_as_the_seed_wrote_it() {
    let pod =
        json!({ "spec": { "initContainers": [{ "env": null }], "containers": [{ "env": [] }] } });
    let json = written(&mutate_pod(&pod).1);
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

#[rstest]
#[case::with_a_hash(json!("2f1c6a0b5e9d"))]
#[case::empty(json!(""))]
fn a_mirror_pod_is_left_alone(#[case] value: Value) {
    let pod = json!({
        "metadata": { "annotations": { MIRROR_ANNOTATION: value, "other": "x" } },
        "spec": { "containers": [{ "name": "a" }] },
    });
    assert_eq!(mutate_pod(&pod), (Outcome::MirrorPod, vec![]));
}

#[rstest]
#[case::other_annotation(json!({ "annotations": { "kubernetes.io/config.source": "file" } }))]
#[case::mirror_as_a_label(json!({ "labels": { MIRROR_ANNOTATION: "x" } }))]
#[case::null_annotations(json!({ "annotations": null }))]
fn other_annotations_do_not_make_a_mirror_pod(#[case] metadata: Value) {
    let pod = json!({ "metadata": metadata, "spec": { "containers": [{ "name": "a" }] } });
    assert_eq!(mutate_pod(&pod).0, Outcome::Patched { containers: 1 });
}

#[test]
fn annotations_that_are_not_an_object_make_the_pod_unreadable() {
    let pod = json!({ "metadata": { "annotations": ["a"] }, "spec": {} });
    assert_eq!(
        patch(&pod).map_err(|e| e.to_string()),
        Err(".metadata.annotations is an array: expected an object".to_owned())
    );
}

#[test]
fn the_opt_out_label_is_read_before_the_mirror_annotation() {
    let pod = json!({ "metadata": {
        "labels": { OPT_OUT_LABEL: "false" },
        "annotations": { MIRROR_ANNOTATION: "x" },
    } });
    assert_eq!(
        mutate_pod(&pod).0,
        Outcome::OptedOut {
            value: "false".to_owned()
        }
    );
}

#[test]
fn ephemeral_containers_are_never_patched() {
    let pod = json!({ "spec": {
        "containers": [{ "name": "a", "env": [variable()] }],
        "ephemeralContainers": [{ "name": "debugger" }],
    } });
    assert_eq!(patch(&pod), Ok(json!([])));
}

fn containers(n: usize) -> Value {
    (0..n).map(|_| json!({})).collect()
}

#[test]
fn a_list_of_the_bound_is_patched_whole() {
    let pod = json!({ "spec": { "initContainers": containers(MAX_ITEMS), "containers": containers(MAX_ITEMS) } });
    let (outcome, patch) = mutate_pod(&pod);
    assert_eq!(
        outcome,
        Outcome::Patched {
            containers: 2 * MAX_ITEMS
        }
    );
    assert_eq!(patch.len(), 2 * MAX_ITEMS);
}

#[rstest]
#[case::containers(json!({ "containers": containers(MAX_ITEMS + 1) }), ".spec.containers", MAX_ITEMS + 1)]
#[case::init_containers(json!({ "initContainers": containers(250_000) }), ".spec.initContainers", 250_000)]
#[case::env(
    json!({ "containers": [{}, { "env": containers(MAX_ITEMS + 1) }] }),
    ".spec.containers[1].env",
    MAX_ITEMS + 1
)]
fn a_list_longer_than_the_bound_gets_no_patch(
    #[case] spec: Value,
    #[case] path: &str,
    #[case] len: usize,
) {
    let (outcome, patch) = mutate_pod(&json!({ "spec": spec }));
    assert_eq!(
        outcome,
        Outcome::TooLarge {
            path: path.to_owned(),
            len
        }
    );
    assert_eq!(patch, vec![]);
}

#[test]
fn elements_past_the_bound_are_counted_but_not_read() {
    let mut list = containers(MAX_ITEMS);
    list.as_array_mut()
        .expect("a list")
        .push(json!("not a container"));
    let (outcome, _) = mutate_pod(&json!({ "spec": { "containers": list } }));
    assert_eq!(outcome.to_string(), format!(
        "allowed without KUBERNETES_SERVICE_HOST: .spec.containers has {} elements, more than the {MAX_ITEMS} this webhook patches",
        MAX_ITEMS + 1
    ));
}
