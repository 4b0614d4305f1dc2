//! The cost of one review, decode to encoded answer, without HTTP or TLS: the seed's sample, a
//! Pod with 50 containers and large fields this program does not know, and the two largest
//! answers: the most containers the rule patches (with the longest FQDN), and 250,000 empty
//! containers, past the bound. Prints `ALLOCATIONS <case> <allocations> <bytes> <body bytes>`
//! per review (a counting global allocator; the bytes allocated bound the peak from above),
//! which bench/patch.py reads beside criterion's estimates.

use criterion::{criterion_group, criterion_main, Criterion};
use domain::webhook::fqdn::ApiserverFqdn;
use domain::webhook::review::review;
use domain::webhook::rule::MAX_ITEMS;
use serde_json::{json, Value};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::hint::black_box;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const SAMPLE: &str = include_str!("../../testdata/admission/pod-create-v1.json");

/// The sample's review around a Pod of 50 containers, each with ten variables, and about 2 KiB
/// of unknown fields per container and 20 KiB on the Pod: what the patch must leave alone.
fn large_review() -> Vec<u8> {
    let filler = "x".repeat(1024);
    let containers: Vec<Value> = (0..50)
        .map(|i| {
            let env: Vec<Value> = (0..10)
                .map(|j| json!({ "name": format!("VAR_{j}"), "value": format!("value-{i}-{j}") }))
                .collect();
            json!({
                "name": format!("c{i}"),
                "image": "registry.example/app:1",
                "env": env,
                "x-unknown": { "blob": filler, "nested": { "list": [1, 2, 3], "blob": filler } },
            })
        })
        .collect();
    let mut review: Value = serde_json::from_str(SAMPLE).expect("the sample is JSON");
    let object = &mut review["request"]["object"];
    object["spec"]["containers"] = Value::Array(containers);
    object["x-unknown"] = (0..20)
        .map(|i| (format!("k{i}"), Value::String(filler.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    serde_json::to_vec(&review).expect("serialises")
}

/// The sample's review around a Pod of `init` init containers and `containers` containers,
/// each `{}`: every one lacks the variable.
fn empty_containers(init: usize, containers: usize) -> Vec<u8> {
    let mut review: Value = serde_json::from_str(SAMPLE).expect("the sample is JSON");
    let spec = &mut review["request"]["object"]["spec"];
    spec["initContainers"] = vec![json!({}); init].into();
    spec["containers"] = vec![json!({}); containers].into();
    serde_json::to_vec(&review).expect("serialises")
}

fn reviews(c: &mut Criterion) {
    let fqdn: ApiserverFqdn = "foo.bar.".parse().expect("a valid FQDN");
    // 253 characters, the most a domain name has: the longest operations.
    let longest: ApiserverFqdn = [
        &"a".repeat(63)[..],
        &"b".repeat(63),
        &"c".repeat(63),
        &"d".repeat(61),
    ]
    .join(".")
    .parse()
    .expect("a valid FQDN");
    let cases = [
        ("seed_sample", SAMPLE.as_bytes().to_vec(), &fqdn),
        ("pod_50_containers", large_review(), &fqdn),
        (
            "pod_2048_empty_containers",
            empty_containers(MAX_ITEMS, MAX_ITEMS),
            &longest,
        ),
        (
            "pod_250000_empty_containers",
            empty_containers(0, 250_000),
            &longest,
        ),
    ];
    for (name, body, fqdn) in &cases {
        let region = Region::new(ALLOCATOR);
        let answer = review(body, fqdn).expect("a review").to_json();
        let change = region.change();
        black_box(answer);
        println!(
            "ALLOCATIONS {name} {} {} {}",
            change.allocations + change.reallocations,
            change.bytes_allocated,
            body.len()
        );
        c.bench_function(name, |b| {
            b.iter(|| review(black_box(body), fqdn).map(|answer| answer.to_json()))
        });
    }
}

criterion_group!(benches, reviews);
criterion_main!(benches);
