//! An `env` longer than [`MAX_ITEMS`] by more than one: every element past the bound is counted
//! (and skipped unread), however many there are, and the Pod gets no patch.

use super::*;
use rstest::rstest;
use serde_json::{json, Value};

#[rstest]
#[case::two_past_the_bound(MAX_ITEMS + 2)]
#[case::three_times_the_bound(3 * MAX_ITEMS)]
fn an_env_far_past_the_bound_is_counted_whole(#[case] len: usize) {
    let env: Vec<Value> = (0..len)
        .map(|i| json!({ "name": format!("V{i}") }))
        .collect();
    let pod = json!({ "spec": { "containers": [{ "env": env }] } });
    let review = json!({
        "uid": "u",
        "kind": { "group": "", "version": "v1", "kind": "Pod" },
        "operation": "CREATE",
        "object": pod,
    })
    .to_string();
    let request: Request = serde_json::from_str(&review).expect("a decodable request");
    assert_eq!(
        mutate(&request),
        (
            Outcome::TooLarge {
                path: ".spec.containers[0].env".into(),
                len
            },
            vec![]
        )
    );
}
