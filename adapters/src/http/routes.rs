//! What the TLS port serves: the kubelet's probes (`/healthz`, `/livez`, `/readyz`), so that a
//! probe with `scheme: HTTPS` works without another port, and everything else through the
//! admission route, counted and timed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::{Request, Response};

use domain::ports::Clock as _;
use domain::webhook::fqdn::ApiserverFqdn;
use domain::webhook::readiness::Readiness;

use super::admission;
use crate::clock::TokioClock;
use crate::metrics::routes::{is_probe, respond};
use crate::metrics::webhook::WebhookMetrics;

/// The TLS port's request handler.
#[derive(Debug)]
pub struct Routes {
    fqdn: ApiserverFqdn,
    metrics: Arc<WebhookMetrics>,
    body_timeout: Duration,
    /// Times each review for the histogram, on the one clock of the process (tokio's, paused in
    /// tests) rather than a clock of its own.
    clock: TokioClock,
    /// Its shutdown phase says whether an answer ends its connection (hyper closes it after
    /// writing an answer that says `Connection: close`).
    readiness: Arc<Readiness>,
}

impl Routes {
    pub fn new(fqdn: ApiserverFqdn, metrics: Arc<WebhookMetrics>, body_timeout: Duration) -> Self {
        Self {
            fqdn,
            readiness: Arc::clone(metrics.readiness()),
            metrics,
            body_timeout,
            clock: TokioClock::default(),
        }
    }

    /// Answers one request, with `Connection: close` once the webhook is leaving (see
    /// [`domain::webhook::shutdown::Phase`]).
    pub async fn answer<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut response = self.route(request).await;
        if self.readiness.phase().get().is_leaving() {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }

    /// Probes are not counted: a kubelet polling every few seconds would drown the requests that
    /// matter.
    async fn route<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = request.uri().path();
        if is_probe(path) {
            return respond(self.metrics.as_ref(), request.method(), path);
        }
        let _in_flight = self.metrics.in_flight();
        let started = self.clock.now();
        let (response, report) = admission::handle(request, &self.fqdn, self.body_timeout).await;
        let took = self.clock.now().saturating_sub(started);
        self.metrics.request_answered(report, took);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Exposition as _;
    use blackbox_tests::metric;
    use domain::webhook::shutdown::Phase;
    use hyper::{Method, StatusCode};
    use rstest::rstest;
    use time::macros::datetime;

    const SAMPLE: &[u8] = include_bytes!("../../../testdata/admission/pod-create-v1.json");

    fn routes() -> (Routes, Arc<WebhookMetrics>) {
        let metrics = Arc::new(WebhookMetrics::new());
        metrics.certificate_loaded(datetime!(2126-10-31 23:02:04 UTC));
        let fqdn = "foo.bar.".parse().expect("a valid name");
        let routes = Routes::new(fqdn, Arc::clone(&metrics), Duration::from_secs(5));
        (routes, metrics)
    }

    fn request(method: Method, path: &str, body: &[u8]) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("a request")
    }

    fn total(metrics: &WebhookMetrics) -> f64 {
        metric(
            &metrics.metrics(),
            "apiserver_proxy_webhook_request_duration_seconds_count",
        )
        .expect("the histogram")
    }

    /// The one phase decides both: every answer closes its connection, and `/readyz` fails.
    #[rstest]
    #[case::draining(Phase::Draining)]
    #[case::closing(Phase::Closing)]
    #[case::stopped(Phase::Stopped)]
    #[tokio::test]
    async fn answers_close_their_connection_and_readyz_fails_only_once_leaving(
        #[case] leaving: Phase,
    ) {
        let (routes, metrics) = routes();
        let path = "/webhook/pod-apiserver-env";
        let closes = |response: &Response<Full<Bytes>>| {
            response
                .headers()
                .get(CONNECTION)
                .map(|value| value.as_bytes())
                == Some(b"close")
        };
        assert!(!closes(
            &routes.answer(request(Method::POST, path, SAMPLE)).await
        ));
        metrics.readiness().phase().enter(leaving);
        assert!(closes(
            &routes.answer(request(Method::POST, path, SAMPLE)).await
        ));
        let readyz = routes.answer(request(Method::GET, "/readyz", b"")).await;
        assert!(closes(&readyz));
        assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn probes_answer_200_and_are_not_counted() {
        let (routes, metrics) = routes();
        for path in ["/healthz", "/livez", "/readyz"] {
            let response = routes.answer(request(Method::GET, path, b"")).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
        }
        assert_eq!(total(&metrics), 0.0);
    }

    #[tokio::test]
    async fn a_review_and_a_refusal_are_counted_once_each_and_leave_nothing_in_flight() {
        let (routes, metrics) = routes();
        let path = "/webhook/pod-apiserver-env";
        let answered = routes.answer(request(Method::POST, path, SAMPLE)).await;
        assert_eq!(answered.status(), StatusCode::OK);
        let refused = routes.answer(request(Method::GET, "/metrics", b"")).await;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND, "no metrics here");
        let text = metrics.metrics();
        let series = |outcome: &str, version: &str| {
            metric(
                &text,
                &format!(
                    "apiserver_proxy_webhook_requests_total{{outcome=\"{outcome}\",version=\"{version}\"}}"
                ),
            )
        };
        assert_eq!(series("patched", "v1"), Some(1.0), "{text}");
        assert_eq!(series("bad_request", "unknown"), Some(1.0));
        assert_eq!(total(&metrics), 2.0);
        assert_eq!(
            metric(&text, "apiserver_proxy_webhook_requests_in_flight"),
            Some(0.0)
        );
    }
}
