use super::*;
use domain::webhook::outcome::ReviewVersion;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rstest::rstest;
use serde_json::Value;
use std::convert::Infallible;

const SAMPLE: &[u8] = include_bytes!("../../../../testdata/admission/pod-create-v1.json");

fn fqdn() -> ApiserverFqdn {
    "foo.bar.".parse().expect("a valid name")
}

fn post(path: &str, content_type: Option<&str>, body: &[u8]) -> Request<Full<Bytes>> {
    let mut builder = Request::post(path);
    if let Some(content_type) = content_type {
        builder = builder.header(CONTENT_TYPE, content_type);
    }
    builder
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("a request")
}

async fn send<B>(request: Request<B>) -> (StatusCode, Value)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (status, answer, _) = send_counted(request).await;
    (status, answer)
}

/// The answer, and what the request counts as.
async fn send_counted<B>(request: Request<B>) -> (StatusCode, Value, ReviewReport)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (response, report) = handle(request, &fqdn(), Duration::from_secs(5)).await;
    let status = response.status();
    assert_eq!(response.headers()[CONTENT_TYPE], JSON);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a full body")
        .to_bytes();
    let json = serde_json::from_slice(&body).expect("a JSON body");
    (status, json, report)
}

#[rstest]
#[case::plain("application/json")]
#[case::with_charset("application/json; charset=utf-8")]
#[case::upper_case("Application/JSON;charset=UTF-8")]
#[tokio::test]
async fn a_review_is_answered_with_200(#[case] content_type: &str) {
    let path = format!("{PATH}?timeout=10s");
    let (status, answer) = send(post(&path, Some(content_type), SAMPLE)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
}

#[rstest]
#[case::unknown_path(
    "/webhook/other",
    Some(JSON),
    SAMPLE,
    StatusCode::NOT_FOUND,
    "no such path \"/webhook/other\""
)]
#[case::trailing_slash(
    "/webhook/pod-apiserver-env/",
    Some(JSON),
    SAMPLE,
    StatusCode::NOT_FOUND,
    "expected /webhook/pod-apiserver-env"
)]
#[case::no_content_type(
    PATH,
    None,
    SAMPLE,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "no Content-Type: expected application/json"
)]
#[case::text(
    PATH,
    Some("text/plain"),
    SAMPLE,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "Content-Type \"text/plain\" is not supported"
)]
#[case::json_patch(
    PATH,
    Some("application/json-patch+json"),
    SAMPLE,
    StatusCode::UNSUPPORTED_MEDIA_TYPE,
    "expected application/json"
)]
#[case::empty(PATH, Some(JSON), b"", StatusCode::BAD_REQUEST, "the body is empty")]
#[case::not_json(
    PATH,
    Some(JSON),
    b"{",
    StatusCode::BAD_REQUEST,
    "the body is not an AdmissionReview: EOF while parsing"
)]
#[case::not_a_review(
    PATH,
    Some(JSON),
    br#"{"kind":"Pod","apiVersion":"v1"}"#,
    StatusCode::BAD_REQUEST,
    "got apiVersion \"v1\" and kind \"Pod\""
)]
#[case::no_request(
    PATH,
    Some(JSON),
    br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#,
    StatusCode::BAD_REQUEST,
    "has no request"
)]
#[tokio::test]
async fn what_cannot_be_a_review_gets_a_status_that_says_why(
    #[case] path: &str,
    #[case] content_type: Option<&str>,
    #[case] body: &[u8],
    #[case] status: StatusCode,
    #[case] message: &str,
) {
    let (got, answer, report) = send_counted(post(path, content_type, body)).await;
    assert_eq!(got, status);
    assert_eq!(report.outcome, OutcomeKind::BadRequest);
    assert_eq!(answer["kind"], "Status");
    assert_eq!(answer["code"], status.as_u16());
    let got_message = answer["message"].as_str().expect("a message");
    assert!(
        got_message.contains(message),
        "{got_message:?} does not say {message:?}"
    );
}

#[rstest]
#[case(Method::GET)]
#[case(Method::PUT)]
#[case(Method::DELETE)]
#[case(Method::HEAD)]
#[tokio::test]
async fn other_methods_get_405_with_allow(#[case] method: Method) {
    let request = Request::builder()
        .method(method.clone())
        .uri(PATH)
        .header(CONTENT_TYPE, JSON)
        .body(Full::new(Bytes::new()))
        .expect("a request");
    let (response, report) = handle(request, &fqdn(), Duration::from_secs(5)).await;
    assert_eq!(report, ReviewReport::REFUSED);
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()[ALLOW], "POST");
}

#[tokio::test]
async fn a_declared_length_over_3_mib_is_refused_before_reading() {
    let mut request = post(PATH, Some(JSON), b"{}");
    request
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(MAX_BODY_BYTES + 1));
    let (status, answer) = send(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["code"], 413);
}

#[tokio::test]
async fn a_streamed_body_over_3_mib_is_refused() {
    let chunk = Bytes::from(vec![b' '; 1024 * 1024]);
    let frames = (0..4).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone())));
    let body = StreamBody::new(futures::stream::iter(frames));
    let request = Request::post(PATH)
        .header(CONTENT_TYPE, JSON)
        .body(body)
        .expect("a request");
    assert_eq!(send(request).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_arrive_times_out_with_408() {
    let stalled = futures::stream::pending::<Result<Frame<Bytes>, Infallible>>();
    let request = Request::post(PATH)
        .header(CONTENT_TYPE, JSON)
        .body(StreamBody::new(stalled))
        .expect("a request");
    let (status, answer) = send(request).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(answer["message"]
        .as_str()
        .is_some_and(|m| m.contains("did not arrive within 5s")));
}

#[rstest]
#[case::patched(PATH, SAMPLE, OutcomeKind::Patched, ReviewVersion::V1)]
#[case::no_request(
    PATH,
    br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1"}"#,
    OutcomeKind::BadRequest,
    ReviewVersion::V1beta1
)]
#[case::not_json(PATH, b"{", OutcomeKind::BadRequest, ReviewVersion::Unknown)]
#[case::unknown_path("/mutate", SAMPLE, OutcomeKind::BadRequest, ReviewVersion::Unknown)]
#[tokio::test]
async fn every_answer_says_what_it_counts_as(
    #[case] path: &str,
    #[case] body: &[u8],
    #[case] outcome: OutcomeKind,
    #[case] version: ReviewVersion,
) {
    let (_, _, report) = send_counted(post(path, Some(JSON), body)).await;
    assert_eq!(report, ReviewReport { outcome, version });
}

#[tokio::test]
async fn a_body_the_budget_has_no_room_for_gets_429() {
    let full = futures::stream::iter([Err::<Frame<Bytes>, _>(BodiesFull { budget: 100 })]);
    let request = Request::post(PATH)
        .header(CONTENT_TYPE, JSON)
        .body(StreamBody::new(full))
        .expect("a request");
    let (status, answer, report) = send_counted(request).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(report, ReviewReport::REFUSED);
    assert!(answer["message"]
        .as_str()
        .is_some_and(|m| m.contains("hold the 100 bytes") && m.contains("try again")));
}
