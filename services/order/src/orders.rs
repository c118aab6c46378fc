//! Placing and reading orders.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use contracts::events::{Customer, OrderCreated, OrderedItem};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Caller, CustomerCaller, StaffCaller};
use service_kit::error::{ApiError, ApiResult, FieldError};
use service_kit::extract::{Json, Paging, Path, Query};
use service_messaging::outbox;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AppState, SERVICE, Status};

const LINES_MAX: usize = 50;
const QUANTITY: std::ops::RangeInclusive<i32> = 1..=20;
const NOTE_MAX: usize = 140;
const IDEMPOTENCY_KEY_MAX: usize = 255;
const LIST_MAX: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orders", get(list_orders).post(place_order))
        .route("/orders/active", get(active_orders))
        .route("/orders/{id}", get(get_order))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub items: Vec<NewItem>,
    /// The Mercado Pago point of sale of the kiosk placing the order (one
    /// of `POINTS_OF_SALE`); none for an order from elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_of_sale: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    pub product_id: Uuid,
    pub quantity: i32,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// What the counter calls out.
    pub number: i64,
    pub status: Status,
    /// The status in the customer's words.
    pub status_label: String,
    /// The customer's name on orders placed before tokens stopped carrying
    /// it; erased with the customer.
    pub customer_name: Option<String>,
    pub total_cents: i64,
    /// The kiosk's point of sale, when a kiosk placed it.
    pub point_of_sale: Option<String>,
    pub items: Vec<ItemView>,
    /// The QR code to pay with, once the payment service made it.
    pub payment: Option<PaymentView>,
    /// Every status the order went through, oldest first.
    pub history: Vec<HistoryEntry>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, Deserialize, FromRow, utoipa::ToSchema)]
pub struct ItemView {
    pub product_id: Uuid,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: i32,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub payment_id: Uuid,
    /// The Pix "copia e cola" string the screen renders as a QR code.
    pub qr_data: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, Deserialize, FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub status: String,
    pub cause: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(FromRow)]
struct OrderRow {
    id: Uuid,
    number: i64,
    status: String,
    customer_name: Option<String>,
    total_cents: i64,
    point_of_sale: Option<String>,
    payment_id: Option<Uuid>,
    qr_data: Option<String>,
    payment_expires_at: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

const SELECT_ORDER: &str = "SELECT id, number, status, customer_name, total_cents, point_of_sale, \
     payment_id, qr_data, payment_expires_at, created_at, updated_at FROM orders";

/// Places an order. Names and prices come from the catalog, never from the
/// request. With an `Idempotency-Key`, a retry gets the first answer.
#[utoipa::path(
    post, path = "/orders", request_body = NewOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request return the first answer")),
    responses(
        (status = 201, body = OrderView),
        (status = 422, body = service_kit::error::Problem, description = "Empty order, bad quantity, unknown or unavailable product"),
        (status = 503, body = service_kit::error::Problem, description = "The catalog cannot be reached; retry"),
    ),
    security(("bearer" = []))
)]
pub async fn place_order(
    State(state): State<AppState>,
    CustomerCaller(caller): CustomerCaller,
    headers: HeaderMap,
    Json(request): Json<NewOrder>,
) -> ApiResult<Response> {
    let key = idempotency_key(&headers)?;
    let request_hash = hex_sha256(&serde_json::to_vec(&request).map_err(anyhow::Error::from)?);
    if let Some(key) = &key
        && let Some(replay) = replayed(&state, &caller, key, &request_hash).await?
    {
        return Ok(replay);
    }
    check_order(&state, &request)?;
    let lines = price(&state, &request).await?;
    let total_cents: i64 = lines
        .iter()
        .map(|l| l.unit_price_cents * i64::from(l.quantity))
        .sum();

    let mut tx = state.pool.begin().await?;
    if let Some(key) = &key {
        let claimed = sqlx::query(
            "INSERT INTO idempotency_keys (customer_id, key, request_hash) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&caller.subject)
        .bind(key)
        .bind(&request_hash)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !claimed {
            // A concurrent twin committed first: answer what it answered.
            drop(tx);
            return replayed(&state, &caller, key, &request_hash)
                .await?
                .ok_or_else(|| {
                    ApiError::Conflict(
                        "this Idempotency-Key is in use by a request still running; retry shortly"
                            .into(),
                    )
                });
        }
    }
    let id = Uuid::now_v7();
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO orders (id, customer_id, status, total_cents, point_of_sale) \
         VALUES ($1, $2, $3, $4, $5) RETURNING number",
    )
    .bind(id)
    .bind(&caller.subject)
    .bind(Status::AwaitingPayment.as_str())
    .bind(total_cents)
    .bind(&request.point_of_sale)
    .fetch_one(&mut *tx)
    .await?;
    for (position, line) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO order_items (order_id, position, product_id, name, unit_price_cents, quantity, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(position as i32)
        .bind(line.product_id)
        .bind(&line.name)
        .bind(line.unit_price_cents)
        .bind(line.quantity)
        .bind(&line.note)
        .execute(&mut *tx)
        .await?;
    }
    record(&mut tx, id, Status::AwaitingPayment, "order placed", None).await?;
    let event = OrderCreated {
        order_id: id,
        number,
        amount_cents: total_cents,
        customer: Customer {
            id: Some(caller.subject.clone()),
            name: None,
        },
        items: lines,
        point_of_sale: request.point_of_sale.clone(),
    };
    outbox::add(&mut tx, SERVICE, &event).await?;
    let view = load(&mut tx, id).await?.expect("the order just written");
    let body = serde_json::to_string(&view).map_err(anyhow::Error::from)?;
    if let Some(key) = &key {
        sqlx::query(
            "UPDATE idempotency_keys SET status = 201, body = $3 WHERE customer_id = $1 AND key = $2",
        )
        .bind(&caller.subject)
        .bind(key)
        .bind(&body)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    state.relay.wake();
    tracing::info!(order_id = %id, number, total_cents, "order placed");
    Ok(created(id, body, false))
}

fn created(id: Uuid, body: String, replayed: bool) -> Response {
    let mut response = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/orders/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"
        )));
    }
    Ok(Some(key.to_string()))
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stored answer of an earlier request with the same key.
async fn replayed(
    state: &AppState,
    caller: &Caller,
    key: &str,
    request_hash: &str,
) -> ApiResult<Option<Response>> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT request_hash, body FROM idempotency_keys WHERE customer_id = $1 AND key = $2",
    )
    .bind(&caller.subject)
    .bind(key)
    .fetch_optional(&state.pool)
    .await?;
    match row {
        None => Ok(None),
        Some((hash, _)) if hash != request_hash => Err(ApiError::invalid(vec![FieldError::new(
            "Idempotency-Key",
            "was already used with a different request; use a new key for a new order",
        )])),
        Some((_, Some(body))) => {
            let id = serde_json::from_str::<OrderView>(&body)
                .map(|v| v.id)
                .map_err(anyhow::Error::from)?;
            Ok(Some(created(id, body, true)))
        }
        Some((_, None)) => Err(ApiError::Conflict(
            "this Idempotency-Key is in use by a request still running; retry shortly".into(),
        )),
    }
}

/// The checks that need no catalog.
fn check_order(state: &AppState, request: &NewOrder) -> ApiResult<()> {
    let mut errors = Vec::new();
    if let Some(pos) = &request.point_of_sale
        && !state.points_of_sale.iter().any(|known| known == pos)
    {
        let known = if state.points_of_sale.is_empty() {
            "none is configured (POINTS_OF_SALE): leave point_of_sale out".to_string()
        } else {
            format!("one of {}", state.points_of_sale.join(", "))
        };
        errors.push(FieldError::new(
            "point_of_sale",
            format!("{pos:?} is no kiosk's point of sale: {known}"),
        ));
    }
    if request.items.is_empty() {
        errors.push(FieldError::new("items", "an order needs at least one item"));
    }
    if request.items.len() > LINES_MAX {
        errors.push(FieldError::new(
            "items",
            format!("at most {LINES_MAX} lines per order"),
        ));
    }
    for (i, item) in request.items.iter().enumerate() {
        if !QUANTITY.contains(&item.quantity) {
            errors.push(FieldError::new(
                format!("items[{i}].quantity"),
                format!(
                    "must be {} to {}, not {}",
                    QUANTITY.start(),
                    QUANTITY.end(),
                    item.quantity
                ),
            ));
        }
        if item
            .note
            .as_ref()
            .is_some_and(|n| n.chars().count() > NOTE_MAX)
        {
            errors.push(FieldError::new(
                format!("items[{i}].note"),
                format!("at most {NOTE_MAX} characters"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// Each line with its name and price from the catalog; 422 naming every
/// line whose product is unknown or not for sale.
async fn price(state: &AppState, request: &NewOrder) -> ApiResult<Vec<OrderedItem>> {
    let mut ids: Vec<Uuid> = request.items.iter().map(|i| i.product_id).collect();
    ids.sort();
    ids.dedup();
    let lookup = state.catalog.lookup(&ids).await.map_err(|e| {
        tracing::error!(error = %format!("{e:#}"), "the catalog lookup failed");
        ApiError::Unavailable("the catalog cannot be reached; retry in a moment".into())
    })?;
    let products: HashMap<Uuid, _> = lookup.products.iter().map(|p| (p.id, p)).collect();
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(request.items.len());
    for (i, item) in request.items.iter().enumerate() {
        let field = format!("items[{i}].product_id");
        match products.get(&item.product_id) {
            Some(p) => lines.push(OrderedItem {
                product_id: p.id,
                name: p.name.clone(),
                quantity: item.quantity,
                unit_price_cents: p.price_cents,
                note: item
                    .note
                    .as_ref()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty()),
            }),
            None if lookup.inactive.contains(&item.product_id) => errors.push(FieldError::new(
                field,
                format!("{} is not available any more", item.product_id),
            )),
            None => errors.push(FieldError::new(
                field,
                format!("{} is not a product of the catalog", item.product_id),
            )),
        }
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// Appends a status change to the order's history.
pub(crate) async fn record(
    tx: &mut PgConnection,
    order_id: Uuid,
    status: Status,
    cause: &str,
    event_id: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO order_status_history (order_id, status, cause, event_id) VALUES ($1, $2, $3, $4)",
    )
    .bind(order_id)
    .bind(status.as_str())
    .bind(cause)
    .bind(event_id)
    .execute(tx)
    .await?;
    Ok(())
}

async fn load(db: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<OrderView>> {
    let Some(row) = sqlx::query_as::<_, OrderRow>(&format!("{SELECT_ORDER} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *db)
        .await?
    else {
        return Ok(None);
    };
    let items = sqlx::query_as::<_, ItemView>(
        "SELECT product_id, name, unit_price_cents, quantity, note FROM order_items \
         WHERE order_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *db)
    .await?;
    let history = sqlx::query_as::<_, HistoryEntry>(
        "SELECT status, cause, at FROM order_status_history WHERE order_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut *db)
    .await?;
    Ok(Some(view(row, items, history)))
}

fn view(row: OrderRow, items: Vec<ItemView>, history: Vec<HistoryEntry>) -> OrderView {
    let status = Status::parse(&row.status).unwrap_or(Status::Cancelled);
    OrderView {
        id: row.id,
        number: row.number,
        status,
        status_label: status.label().to_string(),
        customer_name: row.customer_name,
        total_cents: row.total_cents,
        point_of_sale: row.point_of_sale,
        items,
        payment: match (row.payment_id, row.qr_data) {
            (Some(payment_id), Some(qr_data)) => Some(PaymentView {
                payment_id,
                qr_data,
                expires_at: row.payment_expires_at,
            }),
            _ => None,
        },
        history,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// An order, for its customer or staff.
#[utoipa::path(
    get, path = "/orders/{id}",
    responses((status = 200, body = OrderView), (status = 404, body = service_kit::error::Problem)),
    security(("bearer" = []))
)]
pub async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<OrderView>> {
    let mut db = state.pool.acquire().await?;
    let owner: Option<String> = sqlx::query_scalar("SELECT customer_id FROM orders WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *db)
        .await?;
    // Someone else's order is as invisible as a missing one.
    match owner {
        Some(owner) if caller.is_staff() || owner == caller.subject => {}
        _ => return Err(ApiError::NotFound(format!("no order {id}"))),
    }
    let view = load(&mut db, id).await?;
    view.map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no order {id}")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only orders in this status.
    pub status: Option<String>,
    /// At most this many, newest first (1 to 100, default 50).
    pub limit: Option<i64>,
}

/// Orders, newest first (staff).
#[utoipa::path(
    get, path = "/orders", params(ListQuery),
    responses((status = 200, body = [OrderView]), (status = 422, body = service_kit::error::Problem)),
    security(("bearer" = []))
)]
pub async fn list_orders(
    State(state): State<AppState>,
    _: StaffCaller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Vec<OrderView>>> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(&s.to_uppercase()).ok_or_else(|| {
            let allowed: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid(vec![FieldError::new(
                "status",
                format!("must be one of {}", allowed.join(", ")),
            )])
        })?),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=LIST_MAX).contains(&limit) {
        return Err(ApiError::invalid(vec![FieldError::new(
            "limit",
            format!("must be 1 to {LIST_MAX}"),
        )]));
    }
    let rows = sqlx::query_as::<_, OrderRow>(&format!(
        "{SELECT_ORDER} WHERE $1::text IS NULL OR status = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(status.map(Status::as_str))
    .bind(limit)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(with_details(&state, rows).await?))
}

/// Orders on the kitchen's and counter's screens a page at a time: a busy
/// day's backlog never comes back as one unbounded answer.
const ACTIVE_PAGING: Paging = Paging {
    per_page: 100,
    per_page_max: 200,
    page_max: 10_000,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActiveQuery {
    /// 1-based page number (at most 10000).
    pub page: Option<i64>,
    /// Orders per page, 1 to 200 (default 100).
    pub per_page: Option<i64>,
}

/// The kitchen screen: READY, then IN_PREPARATION, then RECEIVED, oldest
/// first within each; finished and cancelled orders are left out (staff).
#[utoipa::path(
    get, path = "/orders/active", params(ActiveQuery),
    responses((status = 200, body = [OrderView]), (status = 422, body = service_kit::error::Problem)),
    security(("bearer" = []))
)]
pub async fn active_orders(
    State(state): State<AppState>,
    _: StaffCaller,
    Query(q): Query<ActiveQuery>,
) -> ApiResult<Json<Vec<OrderView>>> {
    let mut errors = Vec::new();
    let (_, per_page, offset) = ACTIVE_PAGING.check(q.page, q.per_page, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let rows = sqlx::query_as::<_, OrderRow>(&format!(
        "{SELECT_ORDER} WHERE status IN ('READY', 'IN_PREPARATION', 'RECEIVED') \
         ORDER BY CASE status WHEN 'READY' THEN 0 WHEN 'IN_PREPARATION' THEN 1 ELSE 2 END, created_at, id \
         LIMIT $1 OFFSET $2"
    ))
    .bind(per_page)
    .bind(offset)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(with_details(&state, rows).await?))
}

/// Items and history for many orders in two queries.
async fn with_details(state: &AppState, rows: Vec<OrderRow>) -> ApiResult<Vec<OrderView>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let items: Vec<(Uuid, Uuid, String, i64, i32, Option<String>)> = sqlx::query_as(
        "SELECT order_id, product_id, name, unit_price_cents, quantity, note FROM order_items \
         WHERE order_id = ANY($1) ORDER BY order_id, position",
    )
    .bind(&ids)
    .fetch_all(&state.pool)
    .await?;
    let history: Vec<(Uuid, String, String, OffsetDateTime)> = sqlx::query_as(
        "SELECT order_id, status, cause, at FROM order_status_history \
         WHERE order_id = ANY($1) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&state.pool)
    .await?;
    let mut items_of: HashMap<Uuid, Vec<ItemView>> = HashMap::new();
    for (order_id, product_id, name, unit_price_cents, quantity, note) in items {
        items_of.entry(order_id).or_default().push(ItemView {
            product_id,
            name,
            unit_price_cents,
            quantity,
            note,
        });
    }
    let mut history_of: HashMap<Uuid, Vec<HistoryEntry>> = HashMap::new();
    for (order_id, status, cause, at) in history {
        history_of
            .entry(order_id)
            .or_default()
            .push(HistoryEntry { status, cause, at });
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let id = row.id;
            view(
                row,
                items_of.remove(&id).unwrap_or_default(),
                history_of.remove(&id).unwrap_or_default(),
            )
        })
        .collect())
}
