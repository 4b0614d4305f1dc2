use super::*;
use crate::webhook::outcome::ReviewVersion;
use crate::webhook::rule::{PodError, OPT_OUT_LABEL};
use base64::Engine as _;
use rstest::rstest;
use serde_json::{json, Value};

const SAMPLE: &str = include_str!("../../../../testdata/admission/pod-create-v1.json");
const PATCHED: &str = include_str!("../../../../testdata/admission/pod-create-v1-patched.json");

fn fqdn() -> ApiserverFqdn {
    "foo.bar.".parse().expect("a valid name")
}

fn sample() -> Value {
    serde_json::from_str(SAMPLE).expect("the sample is JSON")
}

/// The sample with `change` applied to it, as bytes.
fn sample_with(change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut review = sample();
    change(&mut review);
    serde_json::to_vec(&review).expect("JSON")
}

fn answer(body: &[u8]) -> (Value, Outcome) {
    let answer = review(body, &fqdn()).expect("a decodable review");
    let json = serde_json::from_slice(&answer.to_json()).expect("the answer is JSON");
    (json, answer.outcome)
}

fn decoded_patch(answer: &Value) -> Value {
    let patch = answer["response"]["patch"]
        .as_str()
        .expect("the patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("the patch is JSON")
}

#[test]
fn the_answer_to_the_seed_sample_is_byte_for_byte_the_one_it_always_was() {
    let answer = review(SAMPLE.as_bytes(), &fqdn()).expect("a decodable review");
    // What the first version, which built the patch from serde_json Values, answered.
    let expected = concat!(
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"#,
        r#""uid":"3c1e0b1a-9f4d-4c55-8a1e-7d2f6b9c0a11","allowed":true,"patchType":"JSONPatch","#,
        r#""patch":"W3sib3AiOiJhZGQiLCJwYXRoIjoiL3NwZWMvaW5pdENvbnRhaW5lcnMvMC9lbnYiLCJ2YWx1ZSI6"#,
        "W3sibmFtZSI6IktVQkVSTkVURVNfU0VSVklDRV9IT1NUIiwidmFsdWUiOiJmb28uYmFyLiJ9XX0seyJvcCI6ImFkZCIs",
        "InBhdGgiOiIvc3BlYy9jb250YWluZXJzLzAvZW52IiwidmFsdWUiOlt7Im5hbWUiOiJLVUJFUk5FVEVTX1NFUlZJQ0Vf",
        r#"SE9TVCIsInZhbHVlIjoiZm9vLmJhci4ifV19XQ=="}}"#
    );
    assert_eq!(String::from_utf8(answer.to_json()), Ok(expected.to_owned()));
}

#[test]
fn the_seed_sample_gets_exactly_the_seeds_two_operations() {
    let (answer, outcome) = answer(SAMPLE.as_bytes());
    // The seed's README output, verbatim.
    let seed_patch = json!([
        { "op": "add", "path": "/spec/initContainers/0/env",
          "value": [{ "name": "KUBERNETES_SERVICE_HOST", "value": "foo.bar." }] },
        { "op": "add", "path": "/spec/containers/0/env",
          "value": [{ "name": "KUBERNETES_SERVICE_HOST", "value": "foo.bar." }] },
    ]);
    assert_eq!(decoded_patch(&answer), seed_patch);
    assert_eq!(outcome, Outcome::Patched { containers: 2 });
    let patch: json_patch::Patch = serde_json::from_value(seed_patch).expect("a JSON Patch");
    let mut pod = sample()["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).expect("the patch applies to the review's Pod");
    let expected: Value = serde_json::from_str(PATCHED).expect("the patched Pod is JSON");
    assert_eq!(pod, expected);
    assert_eq!(
        answer["response"]["patchType"], "JSONPatch",
        "patchType goes with the patch"
    );
}

#[rstest]
#[case::v1(ADMISSION_V1)]
#[case::v1beta1(ADMISSION_V1BETA1)]
fn answers_in_the_version_it_was_asked_and_echoes_the_uid(#[case] version: &str) {
    let body = sample_with(|r| {
        r["apiVersion"] = json!(version);
        r["request"]["uid"] = json!("uid-of-this-review");
    });
    let (answer, _) = answer(&body);
    assert_eq!(answer["apiVersion"], version);
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "uid-of-this-review");
    assert_eq!(answer["response"]["allowed"], true);
}

#[rstest]
#[case("false")]
#[case("False")]
#[case("FALSE")]
#[case("f")]
#[case("F")]
#[case("0")]
#[case("disable")]
fn an_opted_out_pod_is_allowed_without_patch(#[case] value: &str) {
    let body = sample_with(|r| {
        r["request"]["object"]["metadata"]["labels"] = json!({ OPT_OUT_LABEL: value, "app": "x" })
    });
    let (answer, outcome) = answer(&body);
    assert_eq!(
        answer["response"],
        json!({ "uid": "3c1e0b1a-9f4d-4c55-8a1e-7d2f6b9c0a11", "allowed": true })
    );
    assert_eq!(
        outcome,
        Outcome::OptedOut {
            value: value.to_owned()
        }
    );
}

#[test]
fn an_opt_in_label_still_patches() {
    let body = sample_with(|r| {
        r["request"]["object"]["metadata"]["labels"] = json!({ OPT_OUT_LABEL: "true" })
    });
    assert_eq!(answer(&body).1, Outcome::Patched { containers: 2 });
}

#[rstest]
#[case::update(json!({ "group": "", "version": "v1", "kind": "Pod" }), "UPDATE", None, "UPDATE of v1/Pod")]
#[case::delete(json!({ "group": "", "version": "v1", "kind": "Pod" }), "DELETE", None, "DELETE of v1/Pod")]
#[case::connect(json!({ "group": "", "version": "v1", "kind": "PodExecOptions" }), "CONNECT", Some("exec"), "CONNECT of v1/PodExecOptions subresource exec")]
#[case::deployment(json!({ "group": "apps", "version": "v1", "kind": "Deployment" }), "CREATE", None, "CREATE of apps/v1/Deployment")]
#[case::other_group(json!({ "group": "example.com", "version": "v1", "kind": "Pod" }), "CREATE", None, "CREATE of example.com/v1/Pod")]
#[case::other_version(json!({ "group": "", "version": "v2", "kind": "Pod" }), "CREATE", None, "CREATE of v2/Pod")]
#[case::binding(json!({ "group": "", "version": "v1", "kind": "Pod" }), "CREATE", Some("binding"), "CREATE of v1/Pod subresource binding")]
fn only_the_creation_of_a_core_v1_pod_is_patched(
    #[case] kind: Value,
    #[case] operation: &str,
    #[case] subresource: Option<&str>,
    #[case] described: &str,
) {
    let body = sample_with(|r| {
        r["request"]["kind"] = kind;
        r["request"]["operation"] = json!(operation);
        r["request"]["subResource"] = json!(subresource);
    });
    let (answer, outcome) = answer(&body);
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());
    assert!(answer["response"].get("patchType").is_none());
    assert_eq!(outcome.as_str(), "not_a_pod_create");
    assert!(
        outcome.to_string().contains(described),
        "{outcome} does not say {described:?}"
    );
}

#[test]
fn a_pod_whose_containers_all_set_the_variable_gets_no_patch() {
    let body = sample_with(|r| {
        let env = json!([{ "name": "KUBERNETES_SERVICE_HOST", "value": "x" }]);
        r["request"]["object"]["spec"]["initContainers"][0]["env"] = env.clone();
        r["request"]["object"]["spec"]["containers"][0]["env"] = env;
    });
    let (answer, outcome) = answer(&body);
    assert_eq!(
        answer["response"],
        json!({ "uid": "3c1e0b1a-9f4d-4c55-8a1e-7d2f6b9c0a11", "allowed": true })
    );
    assert_eq!(outcome, Outcome::Unchanged);
}

#[rstest]
#[case::no_object(json!(null), "the Pod", "missing or null")]
#[case::spec_a_string(json!({ "spec": "x" }), ".spec", "a string")]
#[case::env_a_string(json!({ "spec": { "containers": [{ "env": "x" }] } }), ".spec.containers[0].env", "a string")]
#[case::labels_a_string(json!({ "metadata": { "labels": "x" }, "spec": {} }), ".metadata.labels", "a string")]
#[case::pod_a_list(json!([{ "spec": {} }]), "the Pod", "an array")]
#[case::spec_a_list(json!({ "spec": [{ "containers": [] }] }), ".spec", "an array")]
#[case::labels_before_spec(json!({ "spec": [], "metadata": { "labels": 7 } }), ".metadata.labels", "a number")]
fn a_pod_that_cannot_be_read_is_allowed_without_patch_and_says_why(
    #[case] object: Value,
    #[case] path: &str,
    #[case] found: &str,
) {
    let body = sample_with(|r| r["request"]["object"] = object);
    let (answer, outcome) = answer(&body);
    assert_eq!(
        answer["response"],
        json!({ "uid": "3c1e0b1a-9f4d-4c55-8a1e-7d2f6b9c0a11", "allowed": true })
    );
    match outcome {
        Outcome::PodUnreadable {
            reason:
                PodError {
                    path: got_path,
                    found: got_found,
                    ..
                },
        } => assert_eq!((got_path.as_str(), got_found), (path, found)),
        other => panic!("expected pod_unreadable, got {other:?}"),
    }
}

#[rstest]
#[case::with_name(json!("web-0"), json!({}), "team-a/web-0")]
#[case::generated(json!(""), json!({ "generateName": "web-7d9f-" }), "team-a/web-7d9f-")]
fn names_the_object_for_the_log(
    #[case] name: Value,
    #[case] metadata: Value,
    #[case] described: &str,
) {
    let body = sample_with(|r| {
        r["request"]["name"] = name;
        r["request"]["object"]["metadata"] = metadata;
    });
    let answer = review(&body, &fqdn()).expect("a decodable review");
    assert_eq!(answer.object, described);
    assert_eq!(answer.uid(), "3c1e0b1a-9f4d-4c55-8a1e-7d2f6b9c0a11");
}

#[rstest]
#[case::empty(b"".to_vec(), ReviewError::Empty)]
#[case::blank(b" \n\t".to_vec(), ReviewError::Empty)]
#[case::no_version(b"{}".to_vec(), ReviewError::NotAReview { api_version: String::new(), kind: String::new() })]
#[case::a_pod(br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(), ReviewError::NotAReview { api_version: "v1".into(), kind: "Pod".into() })]
#[case::v1alpha1(br#"{"apiVersion":"admission.k8s.io/v1alpha1","kind":"AdmissionReview"}"#.to_vec(), ReviewError::NotAReview { api_version: "admission.k8s.io/v1alpha1".into(), kind: "AdmissionReview".into() })]
#[case::wrong_kind(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Review"}"#.to_vec(), ReviewError::NotAReview { api_version: "admission.k8s.io/v1".into(), kind: "Review".into() })]
#[case::no_request(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), ReviewError::NoRequest { version: ReviewVersion::V1 })]
#[case::null_request(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}"#.to_vec(), ReviewError::NoRequest { version: ReviewVersion::V1 })]
fn an_undecodable_body_gets_an_error_that_says_what_was_expected(
    #[case] body: Vec<u8>,
    #[case] expected: ReviewError,
) {
    assert_eq!(review(&body, &fqdn()), Err(expected));
}

#[rstest]
#[case::not_json(b"<html>".to_vec(), "expected value at line 1 column 1")]
#[case::truncated(SAMPLE.as_bytes()[..100].to_vec(), "EOF while parsing")]
#[case::an_array(br#"["admission.k8s.io/v1", "AdmissionReview"]"#.to_vec(), "expected a JSON object")]
#[case::a_string(br#""AdmissionReview""#.to_vec(), "expected a JSON object")]
#[case::no_uid(sample_with(|r| { r["request"].as_object_mut().expect("an object").remove("uid"); }), "missing field `uid`")]
#[case::uid_a_number(sample_with(|r| r["request"]["uid"] = json!(7)), "invalid type: integer `7`, expected a string")]
#[case::kind_a_string(sample_with(|r| r["request"]["kind"] = json!("Pod")), "expected struct GroupVersionKind")]
#[case::no_kind(sample_with(|r| { r["request"].as_object_mut().expect("an object").remove("kind"); }), "missing field `kind`")]
#[case::trailing_garbage([SAMPLE.as_bytes(), b"}"].concat(), "trailing characters")]
// Found by fuzzing: keys the rule reads are compared as they come, and must still be valid JSON.
#[case::control_character_in_a_pod_key(SAMPLE.replacen("\"containers\"", "\"cont\u{6}ainers\"", 1).into_bytes(), "control character")]
#[case::control_character_in_an_envelope_key(SAMPLE.replacen("\"operation\"", "\"oper\u{1}ation\"", 1).into_bytes(), "control character")]
#[case::invalid_utf8_in_a_key([&SAMPLE.as_bytes()[..SAMPLE.find("\"containers\"").expect("containers") + 1], b"\xff", &SAMPLE.as_bytes()[SAMPLE.find("\"containers\"").expect("containers") + 1..]].concat(), "not UTF-8")]
#[case::invalid_utf8_in_a_skipped_field(SAMPLE.replacen("replicaset-controller", "replicaset-\u{7f}", 1).into_bytes().into_iter().map(|b| if b == 0x7f { 0xff } else { b }).collect(), "not UTF-8: invalid bytes after the first")]
fn malformed_json_is_refused_with_the_parsers_reason(#[case] body: Vec<u8>, #[case] reason: &str) {
    let error = review(&body, &fqdn()).expect_err("an undecodable body");
    assert!(
        matches!(&error, ReviewError::Undecodable { reason: got } if got.contains(reason)),
        "{error:?} does not say {reason:?}"
    );
    assert!(error
        .to_string()
        .starts_with("the body is not an AdmissionReview: "));
}

#[test]
fn the_patch_is_a_base64_string_not_an_array_of_bytes() {
    let (answer, _) = answer(SAMPLE.as_bytes());
    assert!(answer["response"]["patch"].is_string());
}

#[rstest]
#[case::deployment(json!({ "group": "apps", "version": "v1", "kind": "Deployment" }), "CREATE")]
#[case::pod_update(json!({ "group": "", "version": "v1", "kind": "Pod" }), "UPDATE")]
fn any_object_of_another_review_is_answered_whatever_its_shape(
    #[case] kind: Value,
    #[case] operation: &str,
) {
    for object in [
        json!({ "metadata": 5, "spec": [1, 2] }),
        json!({ "metadata": { "labels": [], "name": {} }, "spec": { "containers": "x" } }),
        json!({ "spec": { "template": { "spec": { "containers": [{ "env": {} }] } } } }),
        json!([1, { "a": null }]),
        json!("x"),
    ] {
        let body = sample_with(|r| {
            r["request"]["kind"] = kind.clone();
            r["request"]["operation"] = json!(operation);
            r["request"]["object"] = object.clone();
        });
        let (answer, outcome) = answer(&body);
        assert_eq!(answer["response"]["allowed"], true, "{object}");
        assert_eq!(outcome.as_str(), "not_a_pod_create", "{object}");
    }
}

/// The sample as text with `from` replaced by `to`, for what `json!` cannot write.
fn sample_text_with(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("UTF-8");
    assert!(text.contains(from), "the body has {from:?}");
    text.replace(from, to).into_bytes()
}

#[test]
fn escaped_strings_read_as_what_they_stand_for() {
    let body = sample_with(|r| {
        let env = json!([{ "name": "KUBERNETES_SERVICE_HOST", "value": "x" }]);
        r["request"]["object"]["spec"]["initContainers"][0]["env"] = env.clone();
        r["request"]["object"]["spec"]["containers"][0]["env"] = env;
        r["request"]["uid"] = json!("uid-1");
    });
    let body = sample_text_with(
        &body,
        "\"KUBERNETES_SERVICE_HOST\"",
        "\"KUBERNETES_SERVICE_\\u0048OST\"",
    );
    let body = sample_text_with(&body, "\"uid-1\"", "\"uid\\u002d1\"");
    let body = sample_text_with(&body, "\"CREATE\"", "\"CRE\\u0041TE\"");
    let answer = review(&body, &fqdn()).expect("a decodable review");
    assert_eq!(answer.outcome, Outcome::Unchanged);
    assert_eq!(answer.uid(), "uid-1");
}

#[test]
fn an_escaped_opt_out_label_opts_out() {
    let body = sample_with(|r| {
        r["request"]["object"]["metadata"]["labels"] = json!({ OPT_OUT_LABEL: "false" })
    });
    let body = sample_text_with(&body, "gardener.cloud/inject", "gardener.cloud\\/inject");
    assert_eq!(
        answer(&body).1,
        Outcome::OptedOut {
            value: "false".to_owned()
        }
    );
}

#[test]
fn an_escaped_name_is_logged_as_what_it_stands_for() {
    let body = sample_with(|r| {
        r["request"]["name"] = json!("");
        r["request"]["object"]["metadata"] = json!({ "generateName": "web-" });
    });
    let body = sample_text_with(&body, "\"web-\"", "\"w\\u0065b-\"");
    let answer = review(&body, &fqdn()).expect("a decodable review");
    assert_eq!(answer.object, "team-a/web-");
}

#[test]
fn a_pod_too_large_to_patch_is_allowed_with_a_warning() {
    let body = sample_with(|r| {
        let containers: Vec<Value> = (0..2000)
            .map(|i| json!({ "name": format!("c{i}") }))
            .collect();
        r["request"]["object"]["spec"]["containers"] = json!(containers);
    });
    let (answer, outcome) = answer(&body);
    assert_eq!(outcome.as_str(), "too_large");
    assert_eq!(
        answer["response"],
        json!({
            "uid": "3c1e0b1a-9f4d-4c55-8a1e-7d2f6b9c0a11",
            "allowed": true,
            "warnings": [outcome.to_string()],
        })
    );
}

#[test]
fn a_mirror_pod_is_allowed_without_patch() {
    let body = sample_with(|r| {
        r["request"]["object"]["metadata"]["annotations"] =
            json!({ "kubernetes.io/config.mirror": "5c1a" })
    });
    let (answer, outcome) = answer(&body);
    assert_eq!(
        answer["response"],
        json!({ "uid": "3c1e0b1a-9f4d-4c55-8a1e-7d2f6b9c0a11", "allowed": true })
    );
    assert_eq!(outcome, Outcome::MirrorPod);
}

#[test]
fn a_number_no_f64_holds_in_a_field_the_rule_does_not_read_is_answered() {
    // Found by fuzzing (the fuzz checker could not read it into a serde_json Value): valid JSON,
    // as RFC 8259 sets numbers no range, and skipped unread.
    let body = SAMPLE.replacen(
        "\"userInfo\":",
        "\"x-number\":555555551e55555555555555554,\"userInfo\":",
        1,
    );
    assert_ne!(body, SAMPLE, "the sample has userInfo");
    assert_eq!(
        answer(body.as_bytes()).1,
        Outcome::Patched { containers: 2 }
    );
}

#[rstest]
#[case::a_lone_high_surrogate("8d1c3b\\uDB7e")]
#[case::a_lone_low_surrogate("8d1c3b\\uDC00")]
fn a_lone_surrogate_escape_in_a_field_the_rule_does_not_read_is_answered(#[case] uid: &str) {
    // Found by fuzzing (the fuzz checker could not read it into a serde_json Value): JSON's
    // grammar allows any \uXXXX escape (RFC 8259 §8.2), Go's decoder reads a lone surrogate as
    // U+FFFD, and the field is skipped unread.
    let body = SAMPLE.replacen(
        "\"userInfo\":",
        &format!("\"x-uid\":\"{uid}\",\"userInfo\":"),
        1,
    );
    assert_ne!(body, SAMPLE, "the sample has userInfo");
    assert_eq!(
        answer(body.as_bytes()).1,
        Outcome::Patched { containers: 2 }
    );
}
