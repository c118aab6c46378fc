//! Customers: registration by CPF, reading and editing, and LGPD erasure.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use service_kit::auth::{Caller, Role, StaffCaller};
use service_kit::error::{ApiError, ApiResult, FieldError, unique_violation};
use service_kit::extract::{Json, Path, Query};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AppState;
use crate::cpf::Cpf;

pub const NAME_MAX: usize = 100;
pub const EMAIL_MAX: usize = 254;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", post(register).get(find_by_cpf))
        .route("/users/anonymization", post(anonymize))
        .route("/users/{id}", get(read).patch(edit))
}

#[derive(Debug, Serialize, Deserialize, FromRow, utoipa::ToSchema)]
pub struct Customer {
    pub id: Uuid,
    /// None once the customer's data was erased.
    pub name: Option<String>,
    /// Eleven digits; None once erased.
    pub cpf: Option<String>,
    pub email: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub anonymized_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub name: String,
    /// With or without formatting: `529.982.247-25` or `52998224725`.
    pub cpf: String,
    pub email: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Changes {
    pub name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CpfQuery {
    pub cpf: String,
}

const SELECT: &str = "SELECT id, name, cpf, email, anonymized_at, created_at FROM customers";

/// Registers a customer.
#[utoipa::path(
    post, path = "/users", request_body = Registration,
    responses((status = 201, body = Customer), (status = 409, body = service_kit::error::Problem), (status = 422, body = service_kit::error::Problem))
)]
pub async fn register(
    State(state): State<AppState>,
    _client: crate::limits::WithinLimit,
    Json(input): Json<Registration>,
) -> ApiResult<impl IntoResponse> {
    let mut errors = Vec::new();
    let name = check_name(&input.name, &mut errors);
    let email = check_email(&input.email, &mut errors);
    let cpf = match Cpf::parse(&input.cpf) {
        Ok(cpf) => Some(cpf),
        Err(e) => {
            errors.push(FieldError::new("cpf", e.to_string()));
            None
        }
    };
    let Some(cpf) = cpf.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO customers (id, name, cpf, email) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(&name)
        .bind(cpf.digits())
        .bind(&email)
        .execute(&state.pool)
        .await
        .map_err(conflict)?;
    let customer = load(&state, id).await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/users/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(customer)))
}

/// A customer, for staff or for the customer themself.
#[utoipa::path(
    get, path = "/users/{id}", security(("bearer" = [])),
    responses((status = 200, body = Customer), (status = 403, body = service_kit::error::Problem), (status = 404, body = service_kit::error::Problem))
)]
pub async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Customer>> {
    self_or_staff(&caller, id)?;
    Ok(Json(load(&state, id).await?))
}

/// Finds a customer by CPF (staff).
#[utoipa::path(
    get, path = "/users", params(CpfQuery), security(("bearer" = [])),
    responses((status = 200, body = Customer), (status = 404, body = service_kit::error::Problem), (status = 422, body = service_kit::error::Problem))
)]
pub async fn find_by_cpf(
    State(state): State<AppState>,
    _: StaffCaller,
    Query(q): Query<CpfQuery>,
) -> ApiResult<Json<Customer>> {
    let cpf = Cpf::parse(&q.cpf)
        .map_err(|e| ApiError::invalid(vec![FieldError::new("cpf", e.to_string())]))?;
    sqlx::query_as::<_, Customer>(&format!("{SELECT} WHERE cpf = $1"))
        .bind(cpf.digits())
        .fetch_optional(&state.pool)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no customer with CPF {cpf}")))
}

/// Changes a customer's name or email (the customer or staff).
#[utoipa::path(
    patch, path = "/users/{id}", request_body = Changes, security(("bearer" = [])),
    responses((status = 200, body = Customer), (status = 409, body = service_kit::error::Problem), (status = 422, body = service_kit::error::Problem))
)]
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(changes): Json<Changes>,
) -> ApiResult<Json<Customer>> {
    self_or_staff(&caller, id)?;
    let mut errors = Vec::new();
    let name = changes.name.as_deref().map(|n| check_name(n, &mut errors));
    let email = changes
        .email
        .as_deref()
        .map(|e| check_email(e, &mut errors));
    if name.is_none() && email.is_none() {
        errors.push(FieldError::new(
            "body",
            "nothing to change: send name and/or email",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let done = sqlx::query(
        "UPDATE customers SET name = COALESCE($2, name), email = COALESCE($3, email), updated_at = now() \
         WHERE id = $1 AND anonymized_at IS NULL",
    )
    .bind(id)
    .bind(name)
    .bind(email)
    .execute(&state.pool)
    .await
    .map_err(conflict)?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound(format!(
            "no customer with id {id} (or their data was erased)"
        )));
    }
    Ok(Json(load(&state, id).await?))
}

/// The LGPD request: erases a customer's name, CPF and email when all three
/// match the record. The id stays, so past orders keep their reference.
#[utoipa::path(
    post, path = "/users/anonymization", request_body = Registration,
    responses((status = 204), (status = 404, body = service_kit::error::Problem), (status = 422, body = service_kit::error::Problem))
)]
pub async fn anonymize(
    State(state): State<AppState>,
    Json(input): Json<Registration>,
) -> ApiResult<StatusCode> {
    let cpf = Cpf::parse(&input.cpf)
        .map_err(|e| ApiError::invalid(vec![FieldError::new("cpf", e.to_string())]))?;
    let done = sqlx::query(
        "UPDATE customers SET name = NULL, cpf = NULL, email = NULL, anonymized_at = now(), updated_at = now() \
         WHERE cpf = $1 AND lower(email) = lower($2) AND name = $3",
    )
    .bind(cpf.digits())
    .bind(input.email.trim())
    .bind(input.name.trim())
    .execute(&state.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound(
            "no customer matches this CPF, name and email".into(),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn load(state: &AppState, id: Uuid) -> ApiResult<Customer> {
    sqlx::query_as::<_, Customer>(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no customer with id {id}")))
}

fn self_or_staff(caller: &Caller, id: Uuid) -> ApiResult<()> {
    if caller.is_staff() || (caller.role == Role::Customer && caller.subject == id.to_string()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only the customer themself or staff may do this".into(),
        ))
    }
}

pub fn check_name(name: &str, errors: &mut Vec<FieldError>) -> String {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {NAME_MAX} characters"),
        ));
    }
    name.to_string()
}

pub fn check_email(email: &str, errors: &mut Vec<FieldError>) -> String {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= EMAIL_MAX
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.contains(char::is_whitespace)
        && email.matches('@').count() == 1;
    if !valid {
        errors.push(FieldError::new(
            "email",
            "must be an email address such as ana@example.com",
        ));
    }
    email
}

fn conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e).as_deref() {
        Some("customers_cpf_key") => {
            ApiError::Conflict("a customer with this CPF is already registered".into())
        }
        Some("customers_email_key") => {
            ApiError::Conflict("a customer with this email is already registered".into())
        }
        _ => e.into(),
    }
}
