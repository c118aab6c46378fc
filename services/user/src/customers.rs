//! Customers: registration by CPF, reading and editing, and LGPD erasure.
//!
//! A CPF is no secret (it is printed on receipts and leaks all the time),
//! so a token got from a CPF alone reads the customer's own record with
//! the e-mail and CPF masked, and orders; changing the record and erasing
//! it are done by staff at the counter, who check a document with the
//! customer's photo first. That needs no mail sender to run, and it is the
//! check the LGPD asks for before acting on a data subject's request.

use axum::Router;
use axum::extract::FromRequestParts;
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
        .route("/users/{id}", get(read).patch(edit))
        .route("/users/{id}/anonymization", post(anonymize))
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

/// A customer: for staff in full, for the customer themself with the
/// e-mail and CPF masked (a CPF alone gets the token).
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
    let mut customer = load(&state, id).await?;
    if !caller.is_staff() {
        customer.email = customer.email.as_deref().map(mask_email);
        customer.cpf = customer.cpf.as_deref().map(mask_cpf);
    }
    Ok(Json(customer))
}

/// `ana.souza@example.com` → `a***@example.com`: enough for its owner to
/// recognise, too little to write to.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// `52998224725` → `***.982.247-**`, as receipts print it.
pub fn mask_cpf(cpf: &str) -> String {
    match cpf.get(3..9) {
        Some(middle) if cpf.len() == 11 => {
            format!("***.{}.{}-**", &middle[..3], &middle[3..])
        }
        _ => "***".into(),
    }
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

/// Changes a customer's name or email (staff, at the customer's request,
/// once they have checked a document: a CPF token may not).
#[utoipa::path(
    patch, path = "/users/{id}", request_body = Changes, security(("bearer" = [])),
    responses((status = 200, body = Customer), (status = 403, body = service_kit::error::Problem), (status = 404, body = service_kit::error::Problem), (status = 409, body = service_kit::error::Problem), (status = 422, body = service_kit::error::Problem))
)]
pub async fn edit(
    State(state): State<AppState>,
    _: AtTheCounter,
    Path(id): Path<Uuid>,
    Json(changes): Json<Changes>,
) -> ApiResult<Json<Customer>> {
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

/// What an erasure did at once, and what it set going elsewhere.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Erasure {
    pub customer_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub anonymized_at: OffsetDateTime,
    /// Erased from the customer's record here.
    pub erased: Vec<&'static str>,
    /// Tokens the customer holds are refused from this moment on.
    pub tokens: &'static str,
    /// What the other services do once they read `user.anonymized`.
    pub follows: Vec<ErasedElsewhere>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasedElsewhere {
    pub service: &'static str,
    pub erases: &'static str,
}

fn erasure(customer_id: Uuid, anonymized_at: OffsetDateTime) -> Erasure {
    Erasure {
        customer_id,
        anonymized_at,
        erased: vec!["name", "cpf", "email"],
        tokens: "refused by every service from their next reread of /auth/revocations (a minute at most by default)",
        follows: vec![
            ErasedElsewhere {
                service: "order",
                erases: "the name on the customer's orders and in the events it keeps (the orders stay, for the books)",
            },
            ErasedElsewhere {
                service: "production",
                erases: "the name on the kitchen's tickets and in its queue and dead letters",
            },
            ErasedElsewhere {
                service: "payment",
                erases: "the name in its queue and dead letters",
            },
        ],
    }
}

/// The LGPD erasure, made by staff once they have checked the customer's
/// document: the name, CPF and e-mail go, the id stays (past orders keep
/// their reference), the customer's tokens stop working, and
/// `user.anonymized` tells the services that hold the name. Erasing again
/// answers what was done the first time.
#[utoipa::path(
    post, path = "/users/{id}/anonymization", security(("bearer" = [])),
    responses((status = 202, body = Erasure), (status = 403, body = service_kit::error::Problem), (status = 404, body = service_kit::error::Problem))
)]
pub async fn anonymize(
    State(state): State<AppState>,
    AtTheCounter(staff): AtTheCounter,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<Erasure>)> {
    let mut tx = state.pool.begin().await?;
    let done: Option<OffsetDateTime> = sqlx::query_scalar(
        "UPDATE customers SET name = NULL, cpf = NULL, email = NULL, anonymized_at = now(), \
         anonymized_by = $2, updated_at = now() \
         WHERE id = $1 AND anonymized_at IS NULL RETURNING anonymized_at",
    )
    .bind(id)
    .bind(Uuid::parse_str(&staff.subject).ok())
    .fetch_optional(&mut *tx)
    .await?;
    let anonymized_at = match done {
        Some(at) => {
            service_messaging::outbox::add(
                &mut tx,
                crate::SERVICE,
                &contracts::events::UserAnonymized {
                    user_id: id,
                    anonymized_at: at,
                },
            )
            .await?;
            tx.commit().await?;
            state.relay.wake();
            tracing::info!(customer = %id, by = %staff.subject, "customer erased");
            if let Err(e) = state.verifier.refresh_revocations().await {
                tracing::warn!(error = %format!("{e:#}"), "cannot reread the revocation list");
            }
            at
        }
        None => load(&state, id)
            .await?
            .anonymized_at
            .ok_or_else(|| ApiError::NotFound(format!("no customer with id {id}")))?,
    };
    Ok((StatusCode::ACCEPTED, Json(erasure(id, anonymized_at))))
}

pub async fn load(state: &AppState, id: Uuid) -> ApiResult<Customer> {
    sqlx::query_as::<_, Customer>(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no customer with id {id}")))
}

/// Staff acting on a customer's request at the counter; anyone else is
/// told where to go, before anything of the request is read.
pub struct AtTheCounter(pub Caller);

impl FromRequestParts<AppState> for AtTheCounter {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_staff() {
            Ok(AtTheCounter(caller))
        } else {
            Err(ApiError::Forbidden(
                "a customer's data is changed or erased by staff at the counter, \
                 once they have checked a document: a CPF alone is not enough"
                    .into(),
            ))
        }
    }
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
