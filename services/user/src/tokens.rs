//! Tokens for customers, guests and employees, and the public keys that
//! verify them.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use service_kit::auth::Role;
use service_kit::error::{ApiError, ApiResult, FieldError};
use service_kit::extract::Json;
use uuid::Uuid;

use crate::AppState;
use crate::cpf::Cpf;
use crate::limits::WithinLimit;
use crate::signing::Token;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/token", post(customer_token))
        .route("/auth/guest", post(guest_token))
        .route("/auth/employee/token", post(employee_token))
        .route("/.well-known/jwks.json", get(jwks))
        .route(
            "/.well-known/openid-configuration",
            get(openid_configuration),
        )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CpfLogin {
    pub cpf: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmployeeLogin {
    pub email: String,
    pub password: String,
}

/// A token for a registered customer, by CPF.
#[utoipa::path(
    post, path = "/auth/token", request_body = CpfLogin,
    responses((status = 200, body = Token), (status = 404, body = service_kit::error::Problem), (status = 422, body = service_kit::error::Problem))
)]
pub async fn customer_token(
    State(state): State<AppState>,
    _client: WithinLimit,
    Json(login): Json<CpfLogin>,
) -> ApiResult<Json<Token>> {
    let cpf = Cpf::parse(&login.cpf)
        .map_err(|e| ApiError::invalid(vec![FieldError::new("cpf", e.to_string())]))?;
    // Per CPF as well as per client: trying CPFs from many addresses, or
    // one CPF from many, is slow either way.
    state
        .limits
        .per_identity
        .take(&format!("cpf:{}", cpf.digits()))?;
    // Unknown and known CPFs answer differently, for the kiosk must offer
    // an unknown customer to register; the limits per CPF and per client
    // above make trying CPFs one by one too slow to find anyone.
    let found: Option<Uuid> = sqlx::query_scalar("SELECT id FROM customers WHERE cpf = $1")
        .bind(cpf.digits())
        .fetch_optional(&state.pool)
        .await?;
    let id = found.ok_or_else(|| {
        ApiError::NotFound("no customer with this CPF: register with POST /users, or order as a guest with POST /auth/guest".into())
    })?;
    Ok(Json(state.signer.issue(&id.to_string(), Role::Customer)?))
}

/// A token for an anonymous customer.
#[utoipa::path(post, path = "/auth/guest", responses((status = 200, body = Token)))]
pub async fn guest_token(
    State(state): State<AppState>,
    _client: WithinLimit,
) -> ApiResult<Json<Token>> {
    Ok(Json(
        state
            .signer
            .issue(&Uuid::now_v7().to_string(), Role::Guest)?,
    ))
}

/// A token for an employee, by email and password.
#[utoipa::path(
    post, path = "/auth/employee/token", request_body = EmployeeLogin,
    responses((status = 200, body = Token), (status = 401, body = service_kit::error::Problem))
)]
pub async fn employee_token(
    State(state): State<AppState>,
    _client: WithinLimit,
    Json(login): Json<EmployeeLogin>,
) -> ApiResult<Json<Token>> {
    let email = login.email.trim().to_lowercase();
    // Wrong passwords for one account are limited wherever they come from;
    // checked before any hash is computed.
    let account = format!("email:{email}");
    state.limits.per_identity.check(&account)?;
    let row: Option<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT id, password_hash, role, disabled_at IS NOT NULL FROM employees WHERE email = $1",
    )
    .bind(&email)
    .fetch_optional(&state.pool)
    .await?;
    // The same answer, and about the same time, for an unknown email and a
    // wrong password: a dummy hash is checked when there is no employee.
    let (id, hash, role, disabled) = row.unwrap_or_else(|| {
        (
            Uuid::nil(),
            crate::employees::DUMMY_HASH.to_string(),
            String::new(),
            false,
        )
    });
    let password = login.password;
    let matches = state
        .limits
        .hashing
        .run(move || crate::passwords::verify(&hash, &password))
        .await?;
    let role = match role.as_str() {
        "admin" if matches && !id.is_nil() => Role::Admin,
        "employee" if matches && !id.is_nil() => Role::Employee,
        _ => {
            state.limits.per_identity.charge(&account);
            return Err(ApiError::Unauthorized("wrong email or password".into()));
        }
    };
    if disabled {
        return Err(ApiError::Forbidden(
            "this employee is disabled: an admin can enable them again".into(),
        ));
    }
    Ok(Json(state.signer.issue(&id.to_string(), role)?))
}

/// The public keys that verify tokens: every key not yet retired.
#[utoipa::path(get, path = "/.well-known/jwks.json", responses((status = 200, description = "A JWK set")))]
pub async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.signer.jwks())
}

/// Discovery document for the issuer.
#[utoipa::path(get, path = "/.well-known/openid-configuration", responses((status = 200, description = "OpenID provider metadata")))]
pub async fn openid_configuration(State(state): State<AppState>) -> Json<Value> {
    let base = state.settings.public_url.trim_end_matches('/');
    Json(json!({
        "issuer": state.settings.issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/auth/token"),
        "grant_types_supported": ["urn:techchallenge:cpf", "urn:techchallenge:guest", "password"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["iss", "aud", "sub", "role", "iat", "exp", "jti"],
    }))
}
