//! `/health/live`: the process answers. `/health/ready`: it can do its
//! work, i.e. its database answers; the load balancer routes to it only then.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::error::{ApiError, ApiResult};
use crate::extract::Json;

pub fn routes(pool: PgPool) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(pool)
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(pool): State<PgPool>) -> ApiResult<Json<Value>> {
    let check = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool);
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(_)) => Ok(Json(json!({ "status": "ok", "database": "ok" }))),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!("database: {e}"))),
        Err(_) => Err(ApiError::Unavailable(
            "database did not answer within 2s".into(),
        )),
    }
}
