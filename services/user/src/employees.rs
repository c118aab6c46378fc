//! Employees: the first admin from configuration, more added by admins,
//! and admins disabling (and enabling again) an employee: a disabled
//! employee gets no token, and every service refuses the ones they hold
//! from its next reread of the revocation list on.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use service_kit::auth::{AdminCaller, AuthError, Caller, Role};
use service_kit::error::{ApiError, ApiResult, FieldError, unique_violation};
use service_kit::extract::{Json, Path};
use sqlx::PgPool;
use uuid::Uuid;

use crate::AppState;
use crate::customers::{check_email, check_name};

/// An argon2 hash of a random password, checked when a login names no
/// employee so that both failures take the same time.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J0wvP5f5qP0cPNmQm2m2fQk3j0oB0XhZ5g8Y0m8c5yY";

const PASSWORD_MIN: usize = 12;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/employees", post(create))
        .route("/employees/{id}/disable", post(disable))
        .route("/employees/{id}/enable", post(enable))
        .route(service_kit::auth::REVOCATIONS_PATH, get(revocations))
}

/// How far back the revocation list reaches: no token lives longer (the
/// blueprint allows a day at most), so an older revocation refuses nothing.
const REVOCATIONS_KEPT: &str = "1 day";

/// Every employee, and every erased customer, whose tokens issued before a
/// moment are refused, with that moment (whole seconds, rounded up so a
/// token issued in the same second is refused too).
pub async fn revoked(pool: &PgPool) -> anyhow::Result<service_kit::auth::Revoked> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(&format!(
        "SELECT id, ceil(extract(epoch FROM tokens_not_before))::bigint FROM employees \
         WHERE tokens_not_before > now() - interval '{REVOCATIONS_KEPT}' \
         UNION ALL \
         SELECT id, ceil(extract(epoch FROM anonymized_at))::bigint FROM customers \
         WHERE anonymized_at > now() - interval '{REVOCATIONS_KEPT}'"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, at)| (id.to_string(), at.max(0) as u64))
        .collect())
}

/// The user service's own revocation list, from its database.
pub struct DatabaseRevocations(pub PgPool);

impl service_kit::auth::RevocationSource for DatabaseRevocations {
    fn fetch(
        &self,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = anyhow::Result<service_kit::auth::Revoked>>
                + Send
                + '_,
        >,
    > {
        Box::pin(revoked(&self.0))
    }
}

/// The employees and erased customers whose earlier tokens are refused
/// (every service reads it).
#[utoipa::path(
    get, path = "/auth/revocations",
    responses((status = 200, description = "{\"revocations\": [{\"subject\", \"not_before\"}]}: ids of disabled employees and erased customers, and the second from which their tokens count again"))
)]
pub async fn revocations(State(state): State<AppState>) -> ApiResult<Json<Arc<serde_json::Value>>> {
    let answer = state.revocations.read(|| revoked(&state.pool)).await;
    Ok(Json(answer.map_err(ApiError::Internal)?))
}

/// `GET /auth/revocations` is public and every service polls it: requests
/// take turns at one read of the database, and one that arrives while a
/// read runs takes the next read's answer, shared by all who waited for it.
/// So a flood costs one query at a time, and no answer is older than the
/// request.
#[derive(Default)]
pub struct RevocationReads {
    /// The last answer, with the moment its read began.
    latest: tokio::sync::Mutex<Option<(Instant, Arc<serde_json::Value>)>>,
}

impl RevocationReads {
    /// The list as `fetch` reads it, read now or by the read that began
    /// after this request arrived.
    pub async fn read<F>(&self, fetch: impl FnOnce() -> F) -> anyhow::Result<Arc<serde_json::Value>>
    where
        F: std::future::Future<Output = anyhow::Result<service_kit::auth::Revoked>>,
    {
        let asked = Instant::now();
        let mut latest = self.latest.lock().await;
        if let Some((began, answer)) = latest.as_ref()
            && *began >= asked
        {
            return Ok(answer.clone());
        }
        let began = Instant::now();
        let answer = Arc::new(service_kit::auth::revocations_json(&fetch().await?));
        *latest = Some((began, answer.clone()));
        Ok(answer)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmployeeStatus {
    pub id: Uuid,
    pub email: String,
    pub disabled: bool,
}

/// Disables an employee (admins): no new token, and their live tokens are
/// refused everywhere within the keys' refresh interval.
#[utoipa::path(
    post, path = "/employees/{id}/disable", security(("bearer" = [])),
    responses((status = 200, body = EmployeeStatus), (status = 403, body = service_kit::error::Problem), (status = 404, body = service_kit::error::Problem), (status = 409, body = service_kit::error::Problem))
)]
pub async fn disable(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EmployeeStatus>> {
    set_disabled(&state, &caller, id, true).await
}

/// Enables a disabled employee again (admins); tokens they held before
/// stay refused, so they sign in anew.
#[utoipa::path(
    post, path = "/employees/{id}/enable", security(("bearer" = [])),
    responses((status = 200, body = EmployeeStatus), (status = 403, body = service_kit::error::Problem), (status = 404, body = service_kit::error::Problem))
)]
pub async fn enable(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<EmployeeStatus>> {
    set_disabled(&state, &caller, id, false).await
}

/// The caller's token is an admin's, and that admin is, in the database,
/// neither disabled nor holding a token from before a disabling: the
/// revocation list of another replica may not have caught up yet, and an
/// admin's powers are the ones that must not outlive it.
async fn require_active_admin(pool: &PgPool, caller: &Caller) -> ApiResult<()> {
    caller.require(&[Role::Admin])?;
    let id = Uuid::parse_str(&caller.subject)
        .map_err(|_| ApiError::Forbidden("the token names no employee".into()))?;
    let row: Option<(bool, Option<i64>)> = sqlx::query_as(
        "SELECT disabled_at IS NOT NULL, ceil(extract(epoch FROM tokens_not_before))::bigint \
         FROM employees WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some((false, not_before)) if not_before.is_none_or(|at| caller.issued_at as i64 >= at) => {
            Ok(())
        }
        Some(_) => Err(ApiError::Unauthorized(AuthError::Revoked.to_string())),
        None => Err(ApiError::Forbidden("the token names no employee".into())),
    }
}

/// Disables (from now on, tokens held included) or enables an employee.
async fn set_disabled(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    disabled: bool,
) -> ApiResult<Json<EmployeeStatus>> {
    require_active_admin(&state.pool, caller).await?;
    if caller.subject == id.to_string() {
        return Err(ApiError::Conflict(format!(
            "an admin cannot {} themself: another admin must",
            if disabled { "disable" } else { "enable" }
        )));
    }
    let update = if disabled {
        "UPDATE employees SET disabled_at = coalesce(disabled_at, now()), tokens_not_before = now() \
         WHERE id = $1 RETURNING email"
    } else {
        "UPDATE employees SET disabled_at = NULL WHERE id = $1 RETURNING email"
    };
    let email: Option<String> = sqlx::query_scalar(update)
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    let email = email.ok_or_else(|| ApiError::NotFound(format!("no employee {id}")))?;
    tracing::info!(employee = %id, by = %caller.subject, disabled, "employee access changed");
    if disabled {
        // This replica refuses their tokens at once; the others (and every
        // other service) from their next reread.
        if let Err(e) = state.verifier.refresh_revocations().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot reread the revocation list");
        }
    }
    Ok(Json(EmployeeStatus {
        id,
        email,
        disabled,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmployee {
    pub name: String,
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Employee {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub role: Role,
}

/// Adds an employee (admins).
#[utoipa::path(
    post, path = "/employees", request_body = NewEmployee, security(("bearer" = [])),
    responses((status = 201, body = Employee), (status = 403, body = service_kit::error::Problem), (status = 409, body = service_kit::error::Problem))
)]
pub async fn create(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Json(input): Json<NewEmployee>,
) -> ApiResult<impl IntoResponse> {
    require_active_admin(&state.pool, &caller).await?;
    let mut errors = Vec::new();
    let name = check_name(&input.name, &mut errors);
    let email = check_email(&input.email, &mut errors);
    if input.password.chars().count() < PASSWORD_MIN {
        errors.push(FieldError::new(
            "password",
            format!("must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if !Role::STAFF.contains(&input.role) {
        errors.push(FieldError::new("role", "must be employee or admin"));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let password = input.password;
    let hash = state
        .limits
        .hashing
        .run(move || hash_password(&password))
        .await?
        .map_err(ApiError::Internal)?;
    let id = insert(&state.pool, &name, &email, hash, input.role)
        .await
        .map_err(
            |e| match e.downcast_ref::<sqlx::Error>().and_then(unique_violation) {
                Some(_) => {
                    ApiError::Conflict(format!("an employee with email {email} exists already"))
                }
                None => ApiError::Internal(e),
            },
        )?;
    Ok((
        StatusCode::CREATED,
        Json(Employee {
            id,
            name,
            email,
            role: input.role,
        }),
    ))
}

/// An Argon2 hash of `password` (19 MiB: run it on the hashing pool, or
/// once at start).
fn hash_password(password: &str) -> anyhow::Result<String> {
    crate::passwords::hash(password)
}

async fn insert(
    pool: &PgPool,
    name: &str,
    email: &str,
    hash: String,
    role: Role,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO employees (id, name, email, password_hash, role) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(name)
    .bind(email)
    .bind(hash)
    .bind(role.as_str())
    .execute(pool)
    .await?;
    Ok(id)
}

/// Creates the first admin from configuration unless that email exists.
pub async fn ensure_admin(pool: &PgPool, email: &str, password: &str) -> anyhow::Result<()> {
    let email = email.trim().to_lowercase();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM employees WHERE email = $1)")
            .bind(&email)
            .fetch_one(pool)
            .await?;
    if !exists {
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
        match insert(pool, "Administrator", &email, hash, Role::Admin).await {
            Ok(_) => tracing::info!(%email, "created the first admin"),
            // Another replica made it at the same moment.
            Err(e)
                if e.downcast_ref::<sqlx::Error>()
                    .and_then(unique_violation)
                    .is_some() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_revocation_reads_takes_turns_at_few_queries() {
        let reads = Arc::new(RevocationReads::default());
        let queries = Arc::new(AtomicUsize::new(0));
        let flood = (0..200).map(|_| {
            let (reads, queries) = (reads.clone(), queries.clone());
            tokio::spawn(async move {
                reads
                    .read(|| async move {
                        queries.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(Default::default())
                    })
                    .await
            })
        });
        for request in flood.collect::<Vec<_>>() {
            request.await.unwrap().unwrap();
        }
        let flooded = queries.load(Ordering::SeqCst);
        // The first read, then one for all who came during it (a few more
        // when the spawns straddle a read's start).
        assert!(flooded <= 4, "{flooded} queries for 200 requests");
        // A request after the reads ended is answered by a read of its own.
        let counter = queries.clone();
        let later = reads.read(|| async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(Default::default())
        });
        later.await.unwrap();
        assert_eq!(queries.load(Ordering::SeqCst), flooded + 1);
    }
}
