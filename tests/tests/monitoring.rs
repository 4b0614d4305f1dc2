//! The dashboard and the alerts in `docs/monitoring/` use only metrics the real binaries export,
//! and show every metric they export: both binaries are run and scraped, the sidecar in a
//! network namespace of its own, the webhook on 127.0.0.1.

// The webhook's harness, shared with tests/webhook.rs; this file uses only part of it.
#[allow(dead_code)]
#[path = "webhook/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;

use blackbox_tests::apiserver::StandInProxy;
use blackbox_tests::netns::in_netns;
use blackbox_tests::sidecar::start;
use blackbox_tests::{http_get, metric, wait_until};
use harness::{testdata, Webhook};

const PREFIX: &str = "apiserver_proxy_";
const SIDECAR_METRICS_PORT: u16 = 9090;

fn monitoring_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/monitoring")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `apiserver_proxy_…` name in `text`: in queries, legends and descriptions alike, so that
/// a description cannot name a metric that does not exist either.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

/// `(family, type)` of every `# TYPE` line of an exposition.
fn families(exposition: &str) -> Vec<(String, String)> {
    exposition
        .lines()
        .filter_map(|line| {
            let mut words = line.strip_prefix("# TYPE ")?.split_whitespace();
            Some((words.next()?.to_owned(), words.next()?.to_owned()))
        })
        .collect()
}

/// The names a query may use for a family: OpenMetrics samples of a counter end in `_total`, a
/// histogram's in `_bucket`, `_count` and `_sum`; a gauge's are the family's own name.
fn sample_names(family: &str, kind: &str) -> Vec<String> {
    let suffixes: &[&str] = match kind {
        "counter" => &["_total"],
        "histogram" => &["_bucket", "_count", "_sum"],
        _ => &[""],
    };
    suffixes
        .iter()
        .map(|suffix| format!("{family}{suffix}"))
        .collect()
}

/// The exposition of a running sidecar, scraped inside a fresh network namespace; `None` when
/// the namespace cannot be made (the skip is reported by `in_netns`).
fn sidecar_exposition() -> Option<String> {
    let (sender, receiver) = mpsc::channel();
    in_netns("monitoring_sidecar_exposition", move || async move {
        // Killed when it goes out of scope, even if the wait below fails.
        let _sidecar = start(&[
            "--ip-address=10.96.0.2",
            &format!("--metrics-bind-address=127.0.0.1:{SIDECAR_METRICS_PORT}"),
        ]);
        let first_sync =
            "apiserver_proxy_sidecar_syncs_total{trigger=\"start\",result=\"success\"}";
        wait_until("the sidecar's first sync is counted", || {
            http_get(SIDECAR_METRICS_PORT, "/metrics")
                .is_ok_and(|(_, text)| metric(&text, first_sync) == Some(1.0))
        });
        let (_, text) = http_get(SIDECAR_METRICS_PORT, "/metrics").expect("/metrics answers");
        sender.send(text).expect("the test waits for it");
    });
    receiver.try_recv().ok()
}

/// The condition of `ApiserverProxyNotAnswering`, on a real sidecar: the address in place and
/// nothing answering on it; then a stand-in proxy starts and reachability follows.
#[test]
fn the_not_answering_alerts_condition_holds_until_a_proxy_listens() {
    in_netns("monitoring_proxy_reachable", || async {
        let _sidecar = start(&[
            "--ip-address=10.96.0.2",
            &format!("--metrics-bind-address=127.0.0.1:{SIDECAR_METRICS_PORT}"),
        ]);
        let scrape = |series: &str| {
            http_get(SIDECAR_METRICS_PORT, "/metrics")
                .ok()
                .and_then(|(_, text)| metric(&text, series))
        };
        let reachable =
            "apiserver_proxy_sidecar_proxy_reachable{address=\"10.96.0.2\",port=\"443\"}";
        let present = "apiserver_proxy_sidecar_address_present{address=\"10.96.0.2\"}";
        let refused = "apiserver_proxy_sidecar_proxy_probes_total{result=\"refused\"}";
        wait_until("a probe was refused with the address in place", || {
            scrape(present) == Some(1.0)
                && scrape(refused).is_some_and(|n| n >= 1.0)
                && scrape(reachable) == Some(0.0)
        });
        StandInProxy::start();
        wait_until("the proxy is reachable", || scrape(reachable) == Some(1.0));
        let answered = "apiserver_proxy_sidecar_proxy_probes_total{result=\"answered\"}";
        assert!(scrape(answered).is_some_and(|n| n >= 1.0));
    });
}

#[test]
fn the_dashboard_is_json_with_a_query_in_every_panel() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&monitoring_file("dashboard.json")).expect("valid JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["expr"].is_string()),
            "panel {} has no query",
            panel["title"]
        );
    }
}

#[test]
fn the_dashboard_and_alerts_use_exactly_the_metrics_the_binaries_export() {
    let dashboard = names_in(&monitoring_file("dashboard.json"));
    let alerts = names_in(&monitoring_file("alerts.yaml"));
    let webhook = Webhook::start("monitoring", &testdata("certs/server-ecdsa"), &[]);
    let Some(sidecar) = sidecar_exposition() else {
        return;
    };
    let exported: Vec<(String, String)> = [families(&webhook.scrape()), families(&sidecar)]
        .concat()
        .into_iter()
        .filter(|(family, _)| family.starts_with(PREFIX))
        .collect();
    assert!(
        exported
            .iter()
            .any(|(f, _)| f.starts_with("apiserver_proxy_sidecar_"))
            && exported
                .iter()
                .any(|(f, _)| f.starts_with("apiserver_proxy_webhook_")),
        "both binaries were scraped: {exported:?}"
    );
    let samples: BTreeSet<String> = exported
        .iter()
        .flat_map(|(family, kind)| sample_names(family, kind))
        .collect();
    for (file, used) in [("dashboard.json", &dashboard), ("alerts.yaml", &alerts)] {
        let unknown: Vec<&String> = used.difference(&samples).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics no binary exports: {unknown:?}\nexported: {samples:?}"
        );
    }
    let unused: Vec<&String> = exported
        .iter()
        .filter(|(family, kind)| {
            !sample_names(family, kind)
                .iter()
                .any(|name| dashboard.contains(name))
        })
        .map(|(family, _)| family)
        .collect();
    assert!(
        unused.is_empty(),
        "the dashboard shows no panel for {unused:?}"
    );
}

#[test]
fn names_are_read_from_queries_and_text_alike() {
    let text = "rate(apiserver_proxy_webhook_requests_total{outcome=\"patched\"}[5m]) \
                and apiserver_proxy_sidecar_address_present, see apiserver_proxy_x.";
    assert_eq!(
        names_in(text).into_iter().collect::<Vec<_>>(),
        [
            "apiserver_proxy_sidecar_address_present",
            "apiserver_proxy_webhook_requests_total",
            "apiserver_proxy_x"
        ]
    );
    assert_eq!(
        sample_names(
            "apiserver_proxy_webhook_request_duration_seconds",
            "histogram"
        )
        .len(),
        3
    );
}
