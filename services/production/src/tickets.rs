//! Kitchen tickets: made from `order.paid`, moved by staff.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, put};
use std::sync::Arc;

use contracts::events::{
    KitchenStep, OrderAnonymized, OrderPaid, ProductionDelivered, ProductionReady,
    ProductionStarted, order_label,
};
use contracts::{Envelope, Event};
use serde::{Deserialize, Serialize};
use service_kit::auth::StaffCaller;
use service_kit::error::{ApiError, ApiResult, FieldError};
use service_kit::extract::{Json, Path, Query};
use service_messaging::consumer::Attempt;
use service_messaging::{BoxFuture, HandleError, Handler, Transport, outbox};
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AppState, SERVICE};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/production", get(list_tickets))
        .route("/production/board", get(board))
        .route("/production/{id}", get(get_ticket))
        .route("/production/{id}/started", put(start))
        .route("/production/{id}/completed", put(complete))
        .route("/production/{id}/delivered", put(deliver))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TicketStatus {
    Received,
    InPreparation,
    Ready,
    Delivered,
}

impl TicketStatus {
    const ALL: [TicketStatus; 4] = [
        TicketStatus::Received,
        TicketStatus::InPreparation,
        TicketStatus::Ready,
        TicketStatus::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Received => "RECEIVED",
            TicketStatus::InPreparation => "IN_PREPARATION",
            TicketStatus::Ready => "READY",
            TicketStatus::Delivered => "DELIVERED",
        }
    }

    fn parse(text: &str) -> Option<TicketStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Serialize, Deserialize, FromRow, utoipa::ToSchema)]
pub struct Ticket {
    pub id: Uuid,
    pub order_id: Uuid,
    pub order_number: i64,
    pub customer_name: String,
    /// The lines to prepare: name, quantity and the customer's note.
    #[schema(value_type = Object)]
    pub items: sqlx::types::Json<serde_json::Value>,
    /// RECEIVED, IN_PREPARATION, READY or DELIVERED.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub delivered_at: Option<OffsetDateTime>,
}

const SELECT_TICKET: &str = "SELECT id, order_id, order_number, customer_name, items, status, \
     created_at, started_at, ready_at, delivered_at FROM tickets";

/// Makes the ticket of each paid order, and erases the name of an erased
/// customer from its tickets and from the messages on its transport.
pub struct Kitchen(pub Arc<dyn Transport>);

impl Handler for Kitchen {
    fn events(&self) -> &'static [&'static str] {
        &[OrderPaid::NAME, OrderAnonymized::NAME]
    }

    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        envelope: &'a Envelope,
        _attempt: Attempt,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            if envelope.name() == OrderAnonymized::NAME {
                let order: OrderAnonymized = envelope.decode()?;
                service_messaging::scrub_order(self.0.as_ref(), &order).await?;
                sqlx::query("UPDATE tickets SET customer_name = $2 WHERE order_id = $1")
                    .bind(order.order_id)
                    .bind(order_label(order.number))
                    .execute(tx)
                    .await?;
                return Ok(());
            }
            let paid: OrderPaid = envelope.decode()?;
            let items = serde_json::to_value(&paid.items)
                .map_err(|e| HandleError::Reject(e.to_string()))?;
            sqlx::query(
                "INSERT INTO tickets (id, order_id, order_number, customer_name, items, status) \
                 VALUES ($1, $2, $3, $4, $5, 'RECEIVED') ON CONFLICT (order_id) DO NOTHING",
            )
            .bind(Uuid::now_v7())
            .bind(paid.order_id)
            .bind(paid.number)
            // Never a name, even from an event made before names left the
            // saga: the kitchen calls the order by its number.
            .bind(order_label(paid.number))
            .bind(sqlx::types::Json(items))
            .execute(tx)
            .await?;
            Ok(())
        })
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only tickets in this status; without it, every ticket not yet delivered.
    pub status: Option<String>,
}

/// The kitchen's queue, oldest first (staff). The kitchen display polls
/// it: with `If-None-Match` it gets `304` until the queue changes.
#[utoipa::path(
    get, path = "/production", params(ListQuery),
    responses(
        (status = 200, body = [Ticket]),
        (status = 304, description = "The queue is as the ETag named"),
        (status = 422, body = service_kit::error::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn list_tickets(
    State(state): State<AppState>,
    _: StaffCaller,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let statuses: Vec<&str> = match query.status.as_deref() {
        Some(s) => vec![
            TicketStatus::parse(&s.to_uppercase())
                .ok_or_else(|| {
                    ApiError::invalid(vec![FieldError::new(
                        "status",
                        "must be RECEIVED, IN_PREPARATION, READY or DELIVERED",
                    )])
                })?
                .as_str(),
        ],
        None => vec!["RECEIVED", "IN_PREPARATION", "READY"],
    };
    let tickets = sqlx::query_as::<_, Ticket>(&format!(
        "{SELECT_TICKET} WHERE status = ANY($1) ORDER BY created_at, id LIMIT 200"
    ))
    .bind(&statuses)
    .fetch_all(&state.pool)
    .await?;
    Ok(service_kit::etag::json(&headers, &tickets))
}

/// What the pickup board shows: order numbers only, never a name (LGPD).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Board {
    /// Paid and not yet ready (received or being made), oldest first.
    pub preparing: Vec<i64>,
    /// Ready at the counter, first ready first.
    pub ready: Vec<i64>,
}

/// The most numbers the board shows: the newest, when more are open.
const BOARD_MAX: i64 = 200;
/// How long one reading of the board serves every screen that polls it.
const BOARD_FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// The last board read, shared by the screens polling within a second.
#[derive(Default)]
pub struct BoardCache(std::sync::Mutex<Option<(std::time::Instant, Arc<Board>)>>);

/// The pickup board (public, no token): the numbers being prepared and
/// the ones ready. With `If-None-Match`, `304` until one moves. Read from
/// the database at most once a second, however many screens poll it.
#[utoipa::path(
    get, path = "/production/board",
    responses((status = 200, body = Board), (status = 304, description = "The board is as the ETag named"))
)]
pub async fn board(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let cached = {
        let last = state.board.0.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < BOARD_FRESH)
            .map(|(_, board)| board.clone())
    };
    let board = match cached {
        Some(board) => board,
        None => {
            let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
                "SELECT order_number, status FROM ( \
                   SELECT order_number, status, coalesce(ready_at, created_at) AS at, id FROM tickets \
                   WHERE status IN ('RECEIVED', 'IN_PREPARATION', 'READY') \
                   ORDER BY coalesce(ready_at, created_at) DESC, id DESC LIMIT {BOARD_MAX} \
                 ) newest ORDER BY at, id"
            ))
            .fetch_all(&state.pool)
            .await?;
            let (ready, preparing): (Vec<_>, Vec<_>) =
                rows.into_iter().partition(|(_, s)| s == "READY");
            let numbers = |rows: Vec<(i64, String)>| rows.into_iter().map(|(n, _)| n).collect();
            let board = Arc::new(Board {
                preparing: numbers(preparing),
                ready: numbers(ready),
            });
            *state.board.0.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((std::time::Instant::now(), board.clone()));
            board
        }
    };
    Ok(service_kit::etag::json(&headers, &*board))
}

/// One ticket (staff).
#[utoipa::path(
    get, path = "/production/{id}",
    responses((status = 200, body = Ticket), (status = 404, body = service_kit::error::Problem)),
    security(("bearer" = []))
)]
pub async fn get_ticket(
    State(state): State<AppState>,
    _: StaffCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Ticket>> {
    sqlx::query_as::<_, Ticket>(&format!("{SELECT_TICKET} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no ticket {id}")))
}

/// A step of the kitchen: the status it needs, the one it makes, the
/// column that remembers when, and the event it emits.
struct Step {
    from: TicketStatus,
    to: TicketStatus,
    stamp: &'static str,
    verb: &'static str,
}

const START: Step = Step {
    from: TicketStatus::Received,
    to: TicketStatus::InPreparation,
    stamp: "started_at",
    verb: "started",
};
const COMPLETE: Step = Step {
    from: TicketStatus::InPreparation,
    to: TicketStatus::Ready,
    stamp: "ready_at",
    verb: "completed",
};
const DELIVER: Step = Step {
    from: TicketStatus::Ready,
    to: TicketStatus::Delivered,
    stamp: "delivered_at",
    verb: "delivered",
};

async fn advance(state: &AppState, id: Uuid, step: &Step) -> ApiResult<Json<Ticket>> {
    let mut tx = state.pool.begin().await?;
    let moved: Option<Ticket> = sqlx::query_as(&format!(
        "UPDATE tickets SET status = $3, {stamp} = now(), updated_at = now() \
         WHERE id = $1 AND status = $2 \
         RETURNING id, order_id, order_number, customer_name, items, status, created_at, started_at, ready_at, delivered_at",
        stamp = step.stamp
    ))
    .bind(id)
    .bind(step.from.as_str())
    .bind(step.to.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(ticket) = moved else {
        let now: Option<String> = sqlx::query_scalar("SELECT status FROM tickets WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match now {
            None => ApiError::NotFound(format!("no ticket {id}")),
            Some(now) => ApiError::Conflict(format!(
                "ticket {id} is {now}; it can be {} only when {}",
                step.verb,
                step.from.as_str()
            )),
        });
    };
    let kitchen_step = KitchenStep {
        order_id: ticket.order_id,
        ticket_id: ticket.id,
        at: OffsetDateTime::now_utc(),
    };
    match step.to {
        TicketStatus::InPreparation => {
            outbox::add(&mut tx, SERVICE, &ProductionStarted(kitchen_step)).await?
        }
        TicketStatus::Ready => {
            outbox::add(&mut tx, SERVICE, &ProductionReady(kitchen_step)).await?
        }
        _ => outbox::add(&mut tx, SERVICE, &ProductionDelivered(kitchen_step)).await?,
    };
    tx.commit().await?;
    state.relay.wake();
    tracing::info!(ticket_id = %id, order_id = %ticket.order_id, status = step.to.as_str(), "ticket moved");
    Ok(Json(ticket))
}

/// The kitchen starts the order (RECEIVED → IN_PREPARATION).
#[utoipa::path(
    put, path = "/production/{id}/started",
    responses((status = 200, body = Ticket), (status = 409, body = service_kit::error::Problem)),
    security(("bearer" = []))
)]
pub async fn start(
    State(state): State<AppState>,
    _: StaffCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Ticket>> {
    advance(&state, id, &START).await
}

/// The order is ready (IN_PREPARATION → READY).
#[utoipa::path(
    put, path = "/production/{id}/completed",
    responses((status = 200, body = Ticket), (status = 409, body = service_kit::error::Problem)),
    security(("bearer" = []))
)]
pub async fn complete(
    State(state): State<AppState>,
    _: StaffCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Ticket>> {
    advance(&state, id, &COMPLETE).await
}

/// The order was handed over (READY → DELIVERED).
#[utoipa::path(
    put, path = "/production/{id}/delivered",
    responses((status = 200, body = Ticket), (status = 409, body = service_kit::error::Problem)),
    security(("bearer" = []))
)]
pub async fn deliver(
    State(state): State<AppState>,
    _: StaffCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Ticket>> {
    advance(&state, id, &DELIVER).await
}
