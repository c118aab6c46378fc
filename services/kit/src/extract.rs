//! Extractors whose rejections are problem documents like every other
//! error: a malformed body, a wrong content type or a bad query string get
//! the same shape as a failed validation.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, FieldError};

/// `axum::Json` with problem+json rejections.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with problem+json rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with problem+json rejections.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "the body must be JSON, sent with Content-Type: application/json".into(),
            ),
            JsonRejection::JsonDataError(e) => {
                // serde's words, e.g. "missing field `name` at line 1 column 2".
                let detail =
                    std::error::Error::source(&e).map_or_else(|| e.body_text(), |s| s.to_string());
                ApiError::invalid(vec![FieldError::new("body", detail)])
            }
            JsonRejection::JsonSyntaxError(e) => {
                let detail =
                    std::error::Error::source(&e).map_or_else(|| e.body_text(), |s| s.to_string());
                ApiError::BadRequest(format!("the body is not valid JSON: {detail}"))
            }
            JsonRejection::BytesRejection(e) => {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge("the body is too large".into())
                } else {
                    ApiError::BadRequest(format!("the body could not be read: {}", e.body_text()))
                }
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        let detail = std::error::Error::source(&rejection)
            .map_or_else(|| rejection.body_text(), |s| s.to_string());
        ApiError::BadRequest(format!("invalid query string: {detail}"))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

/// How a list is paged: the default and largest page size, and the last
/// page anyone may ask for (small enough that no offset overflows).
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub per_page: i64,
    pub per_page_max: i64,
    pub page_max: i64,
}

impl Paging {
    /// The page and page size asked for (1 and the default when not), each
    /// out-of-range one named in `errors`; and the offset to read from.
    pub fn check(
        &self,
        page: Option<i64>,
        per_page: Option<i64>,
        errors: &mut Vec<FieldError>,
    ) -> (i64, i64, i64) {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(self.per_page);
        if !(1..=self.page_max).contains(&page) {
            errors.push(FieldError::new(
                "page",
                format!("must be between 1 and {}", self.page_max),
            ));
        }
        if !(1..=self.per_page_max).contains(&per_page) {
            errors.push(FieldError::new(
                "per_page",
                format!("must be between 1 and {}", self.per_page_max),
            ));
        }
        let offset = (page.clamp(1, self.page_max) - 1) * per_page.clamp(1, self.per_page_max);
        (page, per_page, offset)
    }
}
