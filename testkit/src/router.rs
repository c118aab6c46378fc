//! Calling a service's router in process, and reading its answer, the
//! way handler tests do.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// An answer, with the headers tests look at and the body as JSON
/// (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub request_id: Option<String>,
    pub location: Option<String>,
    pub retry_after: Option<String>,
    pub body: Value,
}

/// A request with an optional bearer token and JSON body.
pub fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .expect("a well-formed request")
}

pub async fn send(router: &Router, req: Request<Body>) -> Answer {
    let res = router
        .clone()
        .oneshot(req)
        .await
        .expect("the router answers");
    let header_of = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (status, content_type, request_id, location, retry_after) = (
        res.status(),
        header_of("content-type").unwrap_or_default(),
        header_of("x-request-id"),
        header_of("location"),
        header_of("retry-after"),
    );
    let bytes = res
        .into_body()
        .collect()
        .await
        .expect("read the body")
        .to_bytes();
    Answer {
        status,
        content_type,
        request_id,
        location,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

pub async fn call(
    router: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    send(router, request(method, path, token, body.as_ref())).await
}

/// Asserts an RFC 9457 problem document with this status whose text
/// contains `detail`.
#[track_caller]
pub fn assert_problem(answer: &Answer, status: StatusCode, detail: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["status"], status.as_u16());
    assert_eq!(answer.body["type"], "about:blank");
    let text = answer.body.to_string();
    assert!(text.contains(detail), "expected {detail:?} in {text}");
}
