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
