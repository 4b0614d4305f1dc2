use super::*;
use rstest::rstest;

fn fqdn() -> ApiserverFqdn {
    "api.example.com.".parse().expect("a valid name")
}

fn variable() -> Value {
    json!({ "name": ENV_NAME, "value": "api.example.com." })
}

/// Applies `add` operations as RFC 6902 does, so a test sees the Pod the API server would store.
fn apply(mut pod: Value, patch: &[AddOperation]) -> Value {
    for operation in patch {
        let (parent, last) = operation
            .path
            .rsplit_once('/')
            .expect("a path with a parent");
        let target = pod.pointer_mut(parent).expect("the parent exists");
        match (target, last) {
            (Value::Array(items), "-") => items.push(operation.value.clone()),
            (Value::Object(fields), name) => {
                assert!(!fields.contains_key(name), "add would replace {name}");
                fields.insert(name.to_owned(), operation.value.clone());
            }
            (other, _) => panic!("cannot add {} to {other}", operation.path),
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
        env_patch(&pod, &fqdn()),
        Ok(vec![AddOperation::new(path.to_owned(), value)])
    );
}

#[rstest]
#[case::with_a_value(json!({ "name": ENV_NAME, "value": "mine" }))]
#[case::from_a_secret(json!({ "name": ENV_NAME, "valueFrom": { "secretKeyRef": { "name": "s", "key": "k" } } }))]
#[case::empty_value(json!({ "name": ENV_NAME }))]
fn leaves_containers_that_set_the_variable(#[case] entry: Value) {
    let pod =
        json!({ "spec": { "containers": [{ "name": "a", "env": [{ "name": "X" }, entry] }] } });
    assert_eq!(env_patch(&pod, &fqdn()), Ok(vec![]));
}

#[test]
fn patches_init_containers_first_then_containers_by_index() {
    let pod = json!({ "spec": {
        "containers": [{ "name": "c0" }, { "name": "c1", "env": [variable()] }, { "name": "c2", "env": [] }],
        "initContainers": [{ "name": "i0" }],
    } });
    let paths: Vec<String> = env_patch(&pod, &fqdn())
        .expect("a readable Pod")
        .into_iter()
        .map(|operation| operation.path)
        .collect();
    assert_eq!(
        paths,
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
    let patched = apply(
        pod.clone(),
        &env_patch(&pod, &fqdn()).expect("a readable Pod"),
    );
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
    let once = apply(
        pod.clone(),
        &env_patch(&pod, &fqdn()).expect("a readable Pod"),
    );
    assert_eq!(env_patch(&once, &fqdn()), Ok(vec![]));
}

#[rstest]
#[case::no_containers(json!({ "spec": {} }))]
#[case::empty_lists(json!({ "spec": { "containers": [], "initContainers": [] } }))]
fn a_pod_without_containers_needs_no_patch(#[case] pod: Value) {
    assert_eq!(env_patch(&pod, &fqdn()), Ok(vec![]));
}

#[rstest]
#[case::not_an_object(json!("pod"), "the Pod is a string: expected an object")]
#[case::no_spec(json!({ "metadata": {} }), ".spec is missing or null: expected an object")]
#[case::spec_a_list(json!({ "spec": [] }), ".spec is an array: expected an object")]
#[case::containers_an_object(json!({ "spec": { "containers": {} } }), ".spec.containers is an object: expected an array")]
#[case::container_a_string(json!({ "spec": { "initContainers": ["x"] } }), ".spec.initContainers[0] is a string: expected an object")]
#[case::env_an_object(json!({ "spec": { "containers": [{}, { "env": {} }] } }), ".spec.containers[1].env is an object: expected an array")]
fn says_where_an_unreadable_pod_is_wrong(#[case] pod: Value, #[case] message: &str) {
    assert_eq!(
        env_patch(&pod, &fqdn()).map_err(|e| e.to_string()),
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
    assert_eq!(opted_out(&pod), Ok(Some(value)));
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
        opted_out(&json!({ "metadata": { "labels": ["a"] } })).map_err(|e| e.to_string()),
        Err(".metadata.labels is an array: expected an object".to_owned())
    );
}
