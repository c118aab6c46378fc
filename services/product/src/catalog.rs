//! Categories and products.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use service_kit::auth::StaffCaller;
use service_kit::error::{ApiError, ApiResult, FieldError, unique_violation};
use service_kit::etag::already_has;
use service_kit::extract::{Json, Paging, Path, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::menu::{PageKey, Snapshot};

/// Kiosks may reuse a menu for a few seconds, and keep showing it while
/// they revalidate it (a `304` when nothing changed).
const MENU_CACHE_CONTROL: &str = "public, max-age=5, stale-while-revalidate=30";

const NAME_MAX: usize = 100;
const DESCRIPTION_MAX: usize = 500;
const URL_MAX: usize = 2048;
/// R$ 100,000.00: no menu item costs more.
const PRICE_MAX_CENTS: i64 = 10_000_000;
const PREPARATION_MAX_MINUTES: i32 = 240;
/// 20 products a page by default, 100 at most; the last page anyone can
/// ask for is far past any menu.
const PAGING: Paging = Paging {
    per_page: 20,
    per_page_max: 100,
    page_max: 1_000_000,
};
const LOOKUP_MAX: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/categories", get(list_categories))
        .route("/products", get(list_products).post(create_product))
        .route("/products/lookup", post(lookup))
        .route("/products/inactive", get(list_inactive))
        .route(
            "/products/{id}",
            get(get_product)
                .put(update_product)
                .delete(deactivate_product),
        )
}

#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub struct Category {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, FromRow, utoipa::ToSchema)]
pub struct Product {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    /// The category's name: Lanche, Acompanhamento, Bebida or Sobremesa.
    pub category: String,
    /// The price in integer cents (BRL).
    pub price_cents: i64,
    pub image_url: Option<String>,
    pub preparation_minutes: i32,
    /// Inactive products stay readable but cannot be ordered.
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What an employee sends to create or replace a product.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub category: String,
    pub price_cents: i64,
    #[serde(default)]
    pub image_url: Option<String>,
    pub preparation_minutes: i32,
    /// On the menu or not. A `PUT` without it keeps the product's state: a
    /// product taken off the menu comes back only when asked to.
    #[serde(default)]
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this category (by name).
    pub category: Option<String>,
    /// 1-based page number.
    pub page: Option<i64>,
    /// Products per page, 1 to 100 (default 20).
    pub per_page: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    pub ids: Vec<Uuid>,
}

/// The answer of a batch lookup: what can be ordered, and what cannot.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LookupResult {
    pub products: Vec<Product>,
    pub unknown: Vec<Uuid>,
    pub inactive: Vec<Uuid>,
}

pub(crate) const SELECT_PRODUCT: &str = "SELECT p.id, p.name, p.description, c.name AS category, p.price_cents, p.image_url, \
     p.preparation_minutes, p.active, p.created_at, p.updated_at \
     FROM products p JOIN categories c ON c.id = p.category_id";

/// A menu answer: `304` when the client has it, else `body`, both with
/// the snapshot's `ETag` and the menu's `Cache-Control`.
fn menu_answer(headers: &HeaderMap, snapshot: &Snapshot, body: impl FnOnce() -> Bytes) -> Response {
    let (status, body, json) = if already_has(headers, &snapshot.etag) {
        (StatusCode::NOT_MODIFIED, Body::empty(), false)
    } else {
        (StatusCode::OK, Body::from(body()), true)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let out = response.headers_mut();
    if json {
        out.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(MENU_CACHE_CONTROL),
    );
    if let Ok(etag) = HeaderValue::from_str(&snapshot.etag) {
        out.insert(header::ETAG, etag);
    }
    response
}

/// The four categories, in menu order, from memory.
#[utoipa::path(
    get, path = "/categories", params(("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier answer: 304 and no body when the menu is still that one")),
    responses(
        (status = 200, body = [Category], headers(("ETag" = String, description = "The catalog's version"), ("Cache-Control" = String))),
        (status = 304, description = "The client's copy, named by If-None-Match, is current", headers(("ETag" = String), ("Cache-Control" = String)))
    )
)]
pub async fn list_categories(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let snapshot = state.menu.snapshot().await?;
    Ok(menu_answer(&headers, &snapshot, || {
        snapshot.categories_body()
    }))
}

/// Active products, by category and name, a page at a time, from memory:
/// a write through this replica is seen at once, one through another as
/// soon as the database notifies it.
#[utoipa::path(
    get, path = "/products", params(ListQuery, ("If-None-Match" = Option<String>, Header, description = "An ETag of an earlier answer: 304 and no body when the menu is still that one")),
    responses(
        (status = 200, body = ProductPage, headers(("ETag" = String, description = "The catalog's version"), ("Cache-Control" = String))),
        (status = 304, description = "The client's copy, named by If-None-Match, is current", headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 422, body = service_kit::error::Problem)
    )
)]
pub async fn list_products(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let (page, per_page, _) = PAGING.check(q.page, q.per_page, &mut errors);
    let snapshot = state.menu.snapshot().await?;
    let category = match &q.category {
        Some(name) => {
            let found = snapshot.category(name);
            if found.is_none() {
                errors.push(unknown_category(&snapshot.categories, name));
            }
            found
        }
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let key = PageKey {
        category,
        page,
        per_page,
    };
    Ok(menu_answer(&headers, &snapshot, || snapshot.page(key)))
}

/// The most products off the menu one answer lists.
const INACTIVE_MAX: i64 = 500;

/// Products taken off the menu (employees), by category and name: what
/// the menu admin can put back.
#[utoipa::path(
    get, path = "/products/inactive", security(("bearer" = [])),
    responses((status = 200, body = [Product]), (status = 401, body = service_kit::error::Problem), (status = 403, body = service_kit::error::Problem))
)]
pub async fn list_inactive(
    State(state): State<AppState>,
    _: StaffCaller,
) -> ApiResult<Json<Vec<Product>>> {
    let products = sqlx::query_as::<_, Product>(&format!(
        "{SELECT_PRODUCT} WHERE NOT p.active ORDER BY c.position, p.name LIMIT {INACTIVE_MAX}"
    ))
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(products))
}

/// One product, active or not.
#[utoipa::path(
    get, path = "/products/{id}",
    responses((status = 200, body = Product), (status = 404, body = service_kit::error::Problem))
)]
pub async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Arc<Product>>> {
    let generation = state.menu.generation();
    if let Some(product) = state.cache.get(id, generation) {
        return Ok(Json(product));
    }
    let product = find(&state, id).await?.ok_or_else(|| not_found(id))?;
    Ok(Json(state.cache.put(product, generation)))
}

/// Adds a product (employees).
#[utoipa::path(
    post, path = "/products", request_body = ProductInput, security(("bearer" = [])),
    responses(
        (status = 201, body = Product), (status = 401, body = service_kit::error::Problem),
        (status = 403, body = service_kit::error::Problem), (status = 409, body = service_kit::error::Problem),
        (status = 422, body = service_kit::error::Problem)
    )
)]
pub async fn create_product(
    State(state): State<AppState>,
    _: StaffCaller,
    Json(input): Json<ProductInput>,
) -> ApiResult<impl IntoResponse> {
    let category = validate(&state, &input).await?;
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO products (id, name, description, category_id, price_cents, image_url, preparation_minutes, active) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, true))",
    )
    .bind(id)
    .bind(input.name.trim())
    .bind(input.description.trim())
    .bind(category)
    .bind(input.price_cents)
    .bind(&input.image_url)
    .bind(input.preparation_minutes)
    .bind(input.active)
    .execute(&state.pool)
    .await;
    inserted.map_err(|e| duplicate_name(e, &input.name))?;
    state.menu.invalidate();
    let product = find(&state, id).await?.ok_or_else(|| not_found(id))?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/products/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(product)))
}

/// Replaces a product's fields (employees).
#[utoipa::path(
    put, path = "/products/{id}", request_body = ProductInput, security(("bearer" = [])),
    responses(
        (status = 200, body = Product), (status = 404, body = service_kit::error::Problem),
        (status = 409, body = service_kit::error::Problem), (status = 422, body = service_kit::error::Problem)
    )
)]
pub async fn update_product(
    State(state): State<AppState>,
    _: StaffCaller,
    Path(id): Path<Uuid>,
    Json(input): Json<ProductInput>,
) -> ApiResult<Json<Product>> {
    let category = validate(&state, &input).await?;
    let updated = sqlx::query(
        "UPDATE products SET name = $2, description = $3, category_id = $4, price_cents = $5, image_url = $6, \
         preparation_minutes = $7, active = coalesce($8, active), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .bind(input.name.trim())
    .bind(input.description.trim())
    .bind(category)
    .bind(input.price_cents)
    .bind(&input.image_url)
    .bind(input.preparation_minutes)
    .bind(input.active)
    .execute(&state.pool)
    .await
    .map_err(|e| duplicate_name(e, &input.name))?;
    state.cache.forget(id);
    state.menu.invalidate();
    if updated.rows_affected() == 0 {
        return Err(not_found(id));
    }
    find(&state, id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(id))
}

/// Takes a product off the menu (employees). It stays readable, so past
/// orders keep their reference.
#[utoipa::path(
    delete, path = "/products/{id}", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = service_kit::error::Problem))
)]
pub async fn deactivate_product(
    State(state): State<AppState>,
    _: StaffCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let done = sqlx::query("UPDATE products SET active = false, updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&state.pool)
        .await?;
    state.cache.forget(id);
    state.menu.invalidate();
    if done.rows_affected() == 0 {
        return Err(not_found(id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Several products at once, saying which ids are unknown or inactive: how
/// the order service prices an order.
#[utoipa::path(
    post, path = "/products/lookup", request_body = LookupRequest,
    responses((status = 200, body = LookupResult), (status = 422, body = service_kit::error::Problem))
)]
pub async fn lookup(
    State(state): State<AppState>,
    Json(req): Json<LookupRequest>,
) -> ApiResult<Json<LookupResult>> {
    if req.ids.is_empty() || req.ids.len() > LOOKUP_MAX {
        return Err(ApiError::invalid(vec![FieldError::new(
            "ids",
            format!("must hold 1 to {LOOKUP_MAX} product ids"),
        )]));
    }
    let found = sqlx::query_as::<_, Product>(&format!("{SELECT_PRODUCT} WHERE p.id = ANY($1)"))
        .bind(&req.ids)
        .fetch_all(&state.pool)
        .await?;
    let mut unknown = Vec::new();
    let mut inactive = Vec::new();
    let mut products = Vec::new();
    for id in &req.ids {
        match found.iter().find(|p| p.id == *id) {
            None => unknown.push(*id),
            Some(p) if !p.active => inactive.push(*id),
            Some(p) => {
                if !products.iter().any(|q: &Product| q.id == p.id) {
                    products.push(p.clone());
                }
            }
        }
    }
    unknown.dedup();
    inactive.dedup();
    Ok(Json(LookupResult {
        products,
        unknown,
        inactive,
    }))
}

async fn find(state: &AppState, id: Uuid) -> ApiResult<Option<Product>> {
    Ok(
        sqlx::query_as::<_, Product>(&format!("{SELECT_PRODUCT} WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(&state.pool)
            .await?,
    )
}

async fn category_id(state: &AppState, name: &str) -> ApiResult<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM categories WHERE lower(name) = lower($1)")
            .bind(name.trim())
            .fetch_optional(&state.pool)
            .await?,
    )
}

fn unknown_category(categories: &[Category], name: &str) -> FieldError {
    let names: Vec<&str> = categories.iter().map(|c| c.name.as_str()).collect();
    FieldError::new(
        "category",
        format!("unknown category {name:?}; one of: {}", names.join(", ")),
    )
}

/// Every problem of a product at once; the category's id when all is well.
async fn validate(state: &AppState, input: &ProductInput) -> ApiResult<Uuid> {
    let mut errors = Vec::new();
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {NAME_MAX} characters"),
        ));
    }
    if input.description.chars().count() > DESCRIPTION_MAX {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if !(1..=PRICE_MAX_CENTS).contains(&input.price_cents) {
        errors.push(FieldError::new(
            "price_cents",
            format!("must be a whole number of cents from 1 to {PRICE_MAX_CENTS}"),
        ));
    }
    if !(0..=PREPARATION_MAX_MINUTES).contains(&input.preparation_minutes) {
        errors.push(FieldError::new(
            "preparation_minutes",
            format!("must be 0 to {PREPARATION_MAX_MINUTES}"),
        ));
    }
    if let Some(url) = &input.image_url
        && (url.len() > URL_MAX || !(url.starts_with("https://") || url.starts_with("http://")))
    {
        errors.push(FieldError::new(
            "image_url",
            format!("must be an http(s) URL of at most {URL_MAX} characters"),
        ));
    }
    let category = category_id(state, &input.category).await?;
    if category.is_none() {
        let snapshot = state.menu.snapshot().await?;
        errors.push(unknown_category(&snapshot.categories, &input.category));
    }
    match category {
        Some(id) if errors.is_empty() => Ok(id),
        _ => Err(ApiError::invalid(errors)),
    }
}

fn duplicate_name(e: sqlx::Error, name: &str) -> ApiError {
    match unique_violation(&e) {
        Some(_) => ApiError::Conflict(format!("a product named {:?} already exists", name.trim())),
        None => e.into(),
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no product with id {id}"))
}
