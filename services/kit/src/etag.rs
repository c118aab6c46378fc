//! Conditional reads: a screen that polls an answer gets `304 Not
//! Modified`, with no body, until the answer changes.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110
/// asks of it; `*` names any).
pub fn already_has(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// `value` as JSON with an `ETag` of its bytes, or `304` when the caller
/// already has them. `Cache-Control: no-cache`: every use revalidates.
pub fn json(headers: &HeaderMap, value: &impl Serialize) -> Response {
    let body = match serde_json::to_vec(value) {
        Ok(body) => body,
        Err(e) => return crate::error::ApiError::Internal(e.into()).into_response(),
    };
    let digest = Sha256::digest(&body);
    let etag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{etag}\"");
    let mut response = if already_has(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    let h = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_tag_answers_304_and_a_changed_value_its_body() {
        let first = json(&HeaderMap::new(), &[1, 2]);
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let mut asking = HeaderMap::new();
        asking.insert(header::IF_NONE_MATCH, etag.clone());
        assert_eq!(json(&asking, &[1, 2]).status(), StatusCode::NOT_MODIFIED);
        let changed = json(&asking, &[1, 2, 3]);
        assert_eq!(changed.status(), StatusCode::OK);
        assert_ne!(changed.headers()[header::ETAG], etag);
        asking.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("W/\"x\", *"),
        );
        assert!(already_has(&asking, "\"anything\""));
    }
}
