//! Reading payments: staff see all, a customer sees the payments of their
//! own orders.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use service_kit::auth::Caller;
use service_kit::error::{ApiError, ApiResult};
use service_kit::extract::{Json, Path, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::ledger::{Payment, SELECT_PAYMENT};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/payments", get(list_payments))
        .route("/payments/{id}", get(get_payment))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    #[serde(flatten)]
    pub payment: Payment,
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub status: String,
    pub cause: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

fn visible(caller: &Caller, payment: &Payment) -> bool {
    caller.is_staff() || payment.customer_id.as_deref() == Some(caller.subject.as_str())
}

async fn with_history(state: &AppState, payment: Payment) -> ApiResult<PaymentView> {
    let history = sqlx::query_as::<_, HistoryEntry>(
        "SELECT status, cause, at FROM payment_history WHERE payment_id = $1 ORDER BY id",
    )
    .bind(payment.id)
    .fetch_all(&state.pool)
    .await?;
    Ok(PaymentView { payment, history })
}

/// A payment with its history.
#[utoipa::path(
    get, path = "/payments/{id}",
    responses((status = 200, body = PaymentView), (status = 404, body = service_kit::error::Problem)),
    security(("bearer" = []))
)]
pub async fn get_payment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<PaymentView>> {
    let payment: Option<Payment> = sqlx::query_as(&format!("{SELECT_PAYMENT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    match payment {
        Some(p) if visible(&caller, &p) => Ok(Json(with_history(&state, p).await?)),
        _ => Err(ApiError::NotFound(format!("no payment {id}"))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The order whose payments to list.
    pub order_id: Uuid,
}

/// The payments of an order.
#[utoipa::path(
    get, path = "/payments", params(ListQuery),
    responses((status = 200, body = [PaymentView])),
    security(("bearer" = []))
)]
pub async fn list_payments(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<PaymentView>>> {
    let found: Vec<Payment> = sqlx::query_as(&format!(
        "{SELECT_PAYMENT} WHERE order_id = $1 ORDER BY created_at"
    ))
    .bind(query.order_id)
    .fetch_all(&state.pool)
    .await?;
    let mut views = Vec::new();
    for p in found.into_iter().filter(|p| visible(&caller, p)) {
        views.push(with_history(&state, p).await?);
    }
    Ok(Json(views))
}
