//! `/openapi.json` and `/docs`, a page that renders it. The page is
//! self-contained (no script or style from elsewhere), so it works offline
//! and nothing is downloaded at build time.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use utoipa::openapi::OpenApi;

const PAGE: &str = include_str!("docs.html");

pub fn routes(spec: OpenApi) -> Router {
    let json = spec.to_json().unwrap_or_else(|_| "{}".into());
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        json,
                    )
                }
            }),
        )
        .route("/docs", get(|| async { Html(PAGE) }))
}

/// Declares the bearer-token scheme that protected operations name with
/// `security(("bearer" = []))`.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Documents what every route may answer besides its own outcomes, from
/// what the route takes: a bearer token (401, 403), a body (400, 413, 415,
/// 422), a path or query (400, 422), a path id (404); and for every route
/// 500 and 503. Every error is a problem document, so each 4xx and 5xx
/// response is declared as `application/problem+json`. Run last, after
/// the modifiers that add responses of their own.
pub struct ProblemResponses;

/// Routes at these paths are rate limited: they may answer
/// 429 (too often) and 503 (the bounded work is full).
pub struct RateLimited(pub &'static [&'static str]);

const PROBLEM: &str = "application/problem+json";

fn problem_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

fn operations(
    openapi: &mut OpenApi,
) -> impl Iterator<Item = (&String, &mut utoipa::openapi::path::Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
        .map(move |operation| (path, operation))
    })
}

fn declare(operation: &mut utoipa::openapi::path::Operation, status: u16, description: &str) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| problem_response(description));
}

impl utoipa::Modify for RateLimited {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, operation) in operations(openapi) {
            if self.0.contains(&path.as_str()) {
                declare(
                    operation,
                    429,
                    "Asked too often: wait the seconds Retry-After says",
                );
                declare(
                    operation,
                    503,
                    "Busy: ask again after the seconds Retry-After says",
                );
            }
        }
    }
}

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::path::ParameterIn;
        for (_, operation) in operations(openapi) {
            let parameters = operation.parameters.as_deref().unwrap_or_default();
            let has_parameters = !parameters.is_empty();
            let in_path = parameters
                .iter()
                .any(|p| matches!(p.parameter_in, ParameterIn::Path));
            if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                declare(
                    operation,
                    401,
                    "No token, or one that is invalid, expired or revoked",
                );
                declare(operation, 403, "The token's role may not do this");
            }
            if operation.request_body.is_some() {
                declare(operation, 400, "The body is not JSON");
                declare(operation, 413, "The body is too large");
                declare(operation, 415, "The body is not sent as application/json");
                declare(
                    operation,
                    422,
                    "The body does not fit: each field's problem is named",
                );
            }
            if has_parameters {
                declare(operation, 400, "The path or query cannot be read");
                declare(operation, 422, "A value of the path or query does not fit");
            }
            if in_path {
                declare(operation, 404, "Nothing has this id");
            }
            declare(
                operation,
                500,
                "An unexpected failure, logged with the request id",
            );
            declare(operation, 503, "The database cannot be reached now");
            for (status, response) in operation.responses.responses.iter_mut() {
                let is_error = status.starts_with('4') || status.starts_with('5');
                if let (true, RefOr::T(response)) = (is_error, response) {
                    let json = response.content.shift_remove("application/json");
                    if let Some(content) = json {
                        response.content.insert(PROBLEM.to_string(), content);
                    }
                }
            }
        }
    }
}
