use super::*;
use blackbox_tests::metric;
use time::macros::datetime;

const PATCHED_V1: &str =
    "apiserver_proxy_webhook_requests_total{outcome=\"patched\",version=\"v1\"}";
const BAD_UNKNOWN: &str =
    "apiserver_proxy_webhook_requests_total{outcome=\"bad_request\",version=\"unknown\"}";

fn report(outcome: OutcomeKind, version: ReviewVersion) -> ReviewReport {
    ReviewReport { outcome, version }
}

#[test]
fn every_outcome_and_version_starts_at_zero() {
    let text = WebhookMetrics::new().metrics();
    for outcome in OutcomeKind::ALL {
        for version in ReviewVersion::ALL {
            let series = format!(
                "apiserver_proxy_webhook_requests_total{{outcome=\"{}\",version=\"{}\"}}",
                outcome.as_str(),
                version.as_str()
            );
            assert_eq!(metric(&text, &series), Some(0.0), "{series} in\n{text}");
        }
    }
    for result in ["ok", "failed"] {
        let series =
            format!("apiserver_proxy_webhook_certificate_reloads_total{{result=\"{result}\"}}");
        assert_eq!(metric(&text, &series), Some(0.0), "{text}");
    }
    assert_eq!(
        metric(&text, "apiserver_proxy_webhook_requests_in_flight"),
        Some(0.0)
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

#[test]
fn an_answered_request_moves_exactly_its_counter_and_the_histogram() {
    let metrics = WebhookMetrics::new();
    metrics.request_answered(
        report(OutcomeKind::Patched, ReviewVersion::V1),
        Duration::from_micros(40),
    );
    metrics.request_answered(
        report(OutcomeKind::BadRequest, ReviewVersion::Unknown),
        Duration::from_millis(3),
    );
    let text = metrics.metrics();
    assert_eq!(metric(&text, PATCHED_V1), Some(1.0), "{text}");
    assert_eq!(metric(&text, BAD_UNKNOWN), Some(1.0));
    let others: f64 = text
        .lines()
        .filter(|line| line.starts_with("apiserver_proxy_webhook_requests_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(others, 2.0, "no other series moved:\n{text}");
    let duration = "apiserver_proxy_webhook_request_duration_seconds";
    assert_eq!(metric(&text, &format!("{duration}_count")), Some(2.0));
    assert_eq!(
        metric(&text, &format!("{duration}_bucket{{le=\"0.00005\"}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, &format!("{duration}_bucket{{le=\"0.005\"}}")),
        Some(2.0)
    );
}

#[test]
fn in_flight_counts_until_the_guard_is_dropped() {
    let metrics = WebhookMetrics::new();
    let in_flight = "apiserver_proxy_webhook_requests_in_flight";
    let first = metrics.in_flight();
    let second = metrics.in_flight();
    assert_eq!(metric(&metrics.metrics(), in_flight), Some(2.0));
    drop(first);
    assert_eq!(metric(&metrics.metrics(), in_flight), Some(1.0));
    drop(second);
    assert_eq!(metric(&metrics.metrics(), in_flight), Some(0.0));
}

#[test]
fn reloads_are_counted_by_result_and_move_the_expiry() {
    let metrics = WebhookMetrics::new();
    let expiry = "apiserver_proxy_webhook_certificate_expiration_timestamp_seconds";
    metrics.certificate_loaded(datetime!(2126-10-31 23:02:04 UTC));
    assert_eq!(metric(&metrics.metrics(), expiry), Some(4_949_161_324.0));
    metrics.certificate_refused();
    metrics.certificate_reloaded(datetime!(2127-01-01 00:00:00 UTC));
    let text = metrics.metrics();
    assert_eq!(metric(&text, expiry), Some(4_954_435_200.0));
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_webhook_certificate_reloads_total{result=\"ok\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "apiserver_proxy_webhook_certificate_reloads_total{result=\"failed\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn ready_while_the_certificate_is_valid_and_always_live() {
    let metrics = WebhookMetrics::new();
    assert!(metrics.ready().is_err(), "no certificate yet");
    metrics.certificate_loaded(datetime!(2126-10-31 23:02:04 UTC));
    assert_eq!(metrics.ready(), Ok(()));
    metrics.certificate_reloaded(datetime!(2001-01-01 00:00:00 UTC));
    let why = metrics.ready().expect_err("an expired certificate");
    assert!(why.contains("expired at 2001-01-01T00:00:00Z"), "{why}");
    assert_eq!(metrics.healthy(), Ok(()));
}
