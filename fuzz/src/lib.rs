//! The property every review target checks: the webhook answers any body without panicking; a
//! decodable review gets a well-formed `allowed: true` answer that echoes the uid; and applying
//! the returned patch to the Pod changes nothing but adding the variable to containers that
//! lacked it.

use domain::webhook::fqdn::ApiserverFqdn;
use domain::webhook::pod_patch::ENV_NAME;
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
    let incoming: Value = serde_json::from_slice(body).expect("decodable, so JSON");
    assert_eq!(response["uid"], incoming["request"]["uid"], "the uid is echoed");
    let Some(patch) = response.get("patch") else {
        assert!(response.get("patchType").is_none());
        return;
    };
    assert_eq!(response["patchType"], json!("JSONPatch"));
    let decoded = base64_decode(patch.as_str().expect("the patch is a base64 string"));
    let operations: Vec<Value> = serde_json::from_slice(&decoded).expect("the patch is JSON");
    let pod = &incoming["request"]["object"];
    let mut patched = pod.clone();
    let variable = json!({ "name": ENV_NAME, "value": FQDN });
    let mut replaced = Vec::new();
    for operation in &operations {
        assert_eq!(operation["op"], json!("add"), "{operation}");
        let path = operation["path"].as_str().expect("a path");
        let value = &operation["value"];
        assert!(
            *value == variable || *value == json!([variable.clone()]),
            "only the variable is added: {operation}"
        );
        replaced.push(add(&mut patched, path, value.clone()));
    }
    assert_eq!(undo(&patched, &operations, replaced), *pod, "nothing but the variable changed");
    for list in ["initContainers", "containers"] {
        for container in patched["spec"][list].as_array().into_iter().flatten() {
            let sets = container["env"]
                .as_array()
                .is_some_and(|env| env.iter().any(|e| e["name"] == json!(ENV_NAME)));
            assert!(sets, "every container sets the variable after the patch: {container}");
        }
    }
}

/// RFC 6902 `add`, as the API server applies it; panics where the API server would refuse.
/// Returns the member it replaced: `add` over an existing member replaces it, which the patch may
/// only do to an `env: null`.
fn add(document: &mut Value, pointer: &str, value: Value) -> Option<Value> {
    let (parent, last) = pointer.rsplit_once('/').expect("a pointer starts with /");
    let target = document
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("the patch adds under a missing {parent}"));
    match (target, last) {
        (Value::Array(items), "-") => {
            items.push(value);
            None
        }
        (Value::Object(fields), key) => {
            let old = fields.insert(key.to_owned(), value);
            assert!(matches!(old, None | Some(Value::Null)), "add over a set {pointer}: {old:?}");
            old
        }
        (other, _) => panic!("the patch adds {pointer} into {other}"),
    }
}

/// The patched Pod with every added variable taken out again, and what it replaced put back.
fn undo(patched: &Value, operations: &[Value], replaced: Vec<Option<Value>>) -> Value {
    let mut pod = patched.clone();
    for (operation, old) in operations.iter().zip(replaced).rev() {
        let path = operation["path"].as_str().expect("a path");
        if let Some(env) = path.strip_suffix("/-") {
            pod.pointer_mut(env).and_then(Value::as_array_mut).expect("env").pop();
        } else {
            let (parent, key) = path.rsplit_once('/').expect("a pointer");
            let container = pod.pointer_mut(parent).and_then(Value::as_object_mut).expect("a container");
            match old {
                Some(old) => container.insert(key.to_owned(), old),
                None => container.remove(key),
            };
        }
    }
    pod
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text.bytes().filter(|b| *b != b'=') {
        let index = ALPHABET.iter().position(|a| *a == byte).expect("standard base64") as u32;
        bits = bits << 6 | index;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
