//! The ceiling for the services' benchmarks: the smallest axum handler,
//! answering a small JSON document on the same runtime, with nothing else.
//!
//!     PORT=4999 cargo run --release -p service-kit --example bare

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(4999);
    let app = Router::new().route(
        "/",
        get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}
