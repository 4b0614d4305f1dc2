//! The property every review target checks: the webhook answers any body without panicking; a
//! decodable review gets a well-formed `allowed: true` answer that echoes the uid; and the
//! returned patch, applied to the Pod with the json-patch crate, makes exactly the Pod with the
//! variable added to the containers that lacked it.

use domain::webhook::fqdn::ApiserverFqdn;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use domain::webhook::rule::ENV_NAME;
use domain::webhook::review::review;
use serde_json::{json, Value};

pub const FQDN: &str = "foo.bar.";

pub fn check_review(body: &[u8]) {
    let fqdn: ApiserverFqdn = FQDN.parse().expect("a valid FQDN");
    let Ok(answer) = review(body, &fqdn) else {
        return;
    };
    let out: Value = serde_json::from_slice(&answer.to_json()).expect("the answer is JSON");
    let response = &out["response"];
    assert_eq!(response["allowed"], json!(true), "never a denial: {out}");
    let incoming: Value = match serde_json::from_slice(body) {
        Ok(incoming) => incoming,
        // Found by fuzzing: a number no f64 holds (`1e400`) is valid JSON (RFC 8259 sets no
        // range), and serde_json skips it unchecked where the rule does not read, so the review
        // is answered; but a Value cannot hold it, so there is nothing to compare the answer with.
        Err(e) if e.to_string().starts_with("number out of range") => return,
        // Found by fuzzing too: a lone UTF-16 surrogate escape (`"\uDB7e"`) is within JSON's
        // grammar (RFC 8259 §8.2 leaves its meaning open; Go's decoder reads it as U+FFFD) and
        // is skipped where the rule does not read, but a serde_json String refuses it.
        Err(e)
            if e.to_string().starts_with("unexpected end of hex escape")
                || e.to_string().starts_with("lone leading surrogate in hex escape") =>
        {
            return
        }
        Err(e) => panic!("decodable, so JSON: {e}"),
    };
    assert_eq!(response["uid"], incoming["request"]["uid"], "the uid is echoed");
    let Some(patch) = response.get("patch") else {
        assert!(response.get("patchType").is_none());
        return;
    };
    assert_eq!(response["patchType"], json!("JSONPatch"));
    let decoded = BASE64
        .decode(patch.as_str().expect("the patch is a base64 string"))
        .expect("standard base64");
    let patch: json_patch::Patch = serde_json::from_slice(&decoded).expect("the patch is a JSON Patch");
    let pod = &incoming["request"]["object"];
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies to the Pod");
    assert_eq!(patched, with_the_variable(pod), "nothing but the variable changed");
}

/// The Pod with the variable added to every container and init container whose `env` lacks it:
/// what the patch must make, worked out from the Pod alone.
fn with_the_variable(pod: &Value) -> Value {
    let variable = json!({ "name": ENV_NAME, "value": FQDN });
    let mut expected = pod.clone();
    for list in ["initContainers", "containers"] {
        let Some(containers) = expected["spec"].get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            match container.get_mut("env") {
                Some(Value::Array(env)) => {
                    if !env.iter().any(|entry| entry["name"] == json!(ENV_NAME)) {
                        env.push(variable.clone());
                    }
                }
                Some(Value::Null) | None => container["env"] = json!([variable.clone()]),
                Some(other) => panic!("patched a Pod whose env is {other}"),
            }
        }
    }
    expected
}
