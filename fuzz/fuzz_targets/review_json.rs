//! Structure-aware: reviews shaped like the API server's, with arbitrary containers, env lists,
//! labels, the mirror annotation, operations and unknown fields, so the fuzzer spends its time past the decoder.
#![no_main]

use arbitrary::Arbitrary;
use serde_json::{json, Map, Value};

#[derive(Debug, Arbitrary)]
struct Review {
    beta: bool,
    uid: String,
    operation: Operation,
    kind: String,
    label: Option<String>,
    /// The mirror Pod annotation's value, when the Pod has it.
    mirror: Option<String>,
    init_containers: Option<Vec<Container>>,
    containers: Option<Vec<Container>>,
    unknown: Vec<(String, Field)>,
}

#[derive(Debug, Arbitrary)]
enum Operation {
    Create,
    Update,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Container {
    name: String,
    env: Option<Vec<(String, Option<String>)>>,
    /// An env that is not a list: the Pod is unreadable, and must be let through untouched.
    env_not_a_list: Option<Field>,
    unknown: Vec<(String, Field)>,
}

#[derive(Debug, Arbitrary)]
enum Field {
    Null,
    Bool(bool),
    Number(i64),
    Text(String),
    List(Vec<String>),
}

impl Field {
    fn json(&self) -> Value {
        match self {
            Field::Null => Value::Null,
            Field::Bool(b) => json!(b),
            Field::Number(n) => json!(n),
            Field::Text(t) => json!(t),
            Field::List(l) => json!(l),
        }
    }
}

fn fields(unknown: &[(String, Field)], into: &mut Map<String, Value>) {
    for (key, field) in unknown {
        into.entry(key.clone()).or_insert_with(|| field.json());
    }
}

impl Container {
    fn json(&self) -> Value {
        let mut object = Map::new();
        object.insert("name".into(), json!(self.name));
        if let Some(env) = &self.env {
            let env: Vec<Value> = env
                .iter()
                .map(|(name, value)| match value {
                    Some(value) => json!({ "name": name, "value": value }),
                    None => json!({ "name": name }),
                })
                .collect();
            object.insert("env".into(), Value::Array(env));
        } else if let Some(field) = &self.env_not_a_list {
            object.insert("env".into(), field.json());
        }
        fields(&self.unknown, &mut object);
        Value::Object(object)
    }
}

libfuzzer_sys::fuzz_target!(|review: Review| {
    let mut spec = Map::new();
    for (list, containers) in [("initContainers", &review.init_containers), ("containers", &review.containers)] {
        if let Some(containers) = containers {
            spec.insert(list.into(), containers.iter().map(Container::json).collect());
        }
    }
    let mut labels = Map::new();
    if let Some(value) = &review.label {
        labels.insert(domain::webhook::rule::OPT_OUT_LABEL.into(), json!(value));
    }
    let mut pod = Map::new();
    let mut annotations = Map::new();
    if let Some(value) = &review.mirror {
        annotations.insert(domain::webhook::rule::MIRROR_ANNOTATION.into(), json!(value));
    }
    pod.insert("metadata".into(), json!({ "name": "p", "labels": labels, "annotations": annotations }));
    pod.insert("spec".into(), Value::Object(spec));
    fields(&review.unknown, &mut pod);
    let operation = match &review.operation {
        Operation::Create => "CREATE".to_owned(),
        Operation::Update => "UPDATE".to_owned(),
        Operation::Other(other) => other.clone(),
    };
    let kind = if review.kind.is_empty() { "Pod" } else { review.kind.as_str() };
    let body = json!({
        "apiVersion": if review.beta { "admission.k8s.io/v1beta1" } else { "admission.k8s.io/v1" },
        "kind": "AdmissionReview",
        "request": {
            "uid": review.uid,
            "kind": { "group": "", "version": "v1", "kind": kind },
            "operation": operation,
            "object": Value::Object(pod),
        },
    });
    apiserver_proxy_fuzz::check_review(&serde_json::to_vec(&body).expect("serialises"));
});
