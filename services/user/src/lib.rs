//! The user service: customers (by CPF, or as guests), employees, the
//! tokens they use everywhere, and the public keys that verify them.

pub mod cpf;
mod customers;
mod employees;
pub mod limits;
mod passwords;
pub mod signing;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use service_kit::auth::{JwkSource, Verifier};
use service_kit::config::{ConfigError, Env};
use service_kit::docs::{BearerAuth, ProblemResponses};
use service_kit::keys::KeySource;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use utoipa::OpenApi;

pub use customers::Customer;
/// How its events travel (`Config::events`).
pub use service_messaging::Settings as EventSettings;
pub use signing::{PublishedKeys, Signer, Token};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");
/// The name its events go out under.
pub const SERVICE: &str = "user";

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub database_url: String,
    pub pool_size: u32,
    pub settings: Settings,
    pub jwt_audience: String,
    pub token_lifetime: Duration,
    pub keys_refresh: Duration,
    /// The first admin, created at start when it does not exist.
    pub admin: Option<(String, String)>,
    pub limits: limits::LimitSettings,
    /// Where `user.anonymized` goes.
    pub events: service_messaging::Settings,
}

/// What handlers need to know of the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub issuer: String,
    /// Where clients reach this service, for the discovery document.
    pub public_url: String,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let admin = match env.optional("ADMIN_EMAIL") {
            Some(email) => Some((
                email,
                env.required(
                    "ADMIN_PASSWORD",
                    "the first admin's password (12 characters or more)",
                )?,
            )),
            None => None,
        };
        Ok(Config {
            port: env.parsed_or("PORT", 4001, "a TCP port such as 4001")?,
            database_url: service_kit::config::database_url(env, "user")?,
            pool_size: env.parsed_or("DB_POOL_SIZE", 10, "a number of connections such as 10")?,
            settings: Settings {
                issuer: env.parsed_or(
                    "JWT_ISSUER",
                    "techchallenge".to_string(),
                    "the issuer named in tokens",
                )?,
                public_url: env.parsed_or(
                    "PUBLIC_URL",
                    "http://localhost:4001".to_string(),
                    "the URL clients reach",
                )?,
            },
            jwt_audience: env.parsed_or(
                "JWT_AUDIENCE",
                "techchallenge".to_string(),
                "the audience named in tokens",
            )?,
            token_lifetime: Duration::from_secs(env.parsed_or(
                "TOKEN_TTL_SECONDS",
                3600,
                "a token lifetime in seconds",
            )?),
            keys_refresh: Duration::from_secs(env.parsed_or(
                "JWKS_REFRESH_SECONDS",
                60,
                "how often the keys are reread, in seconds",
            )?),
            admin,
            limits: limits::LimitSettings::from_env(env)?,
            events: service_messaging::Settings::from_env(env)?,
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub signer: Arc<Signer>,
    pub verifier: Arc<Verifier>,
    pub settings: Arc<Settings>,
    pub limits: Arc<limits::Limits>,
    pub revocations: Arc<employees::RevocationReads>,
    /// Woken when an event is written, so it goes out at once.
    pub relay: service_messaging::Relay,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "User service", description = "Customers by CPF or as guests, employees, tokens and the JWK set."),
    paths(
        customers::register,
        customers::read,
        customers::find_by_cpf,
        customers::edit,
        customers::anonymize,
        tokens::customer_token,
        tokens::guest_token,
        tokens::employee_token,
        tokens::jwks,
        tokens::openid_configuration,
        employees::create,
        employees::disable,
        employees::enable,
        employees::revocations,
    ),
    components(schemas(service_kit::error::Problem, customers::Erasure, customers::ErasedElsewhere)),
    modifiers(&BearerAuth, &LIMITED, &ProblemResponses),
)]
struct ApiDoc;

/// The routes `limits::WithinLimit` guards.
const LIMITED: service_kit::docs::RateLimited = service_kit::docs::RateLimited(&[
    "/auth/token",
    "/auth/guest",
    "/auth/employee/token",
    "/users",
]);

pub fn router(state: AppState) -> Router {
    let routes = customers::routes()
        .merge(tokens::routes())
        .merge(employees::routes())
        .with_state(state.clone());
    service_kit::server::service(routes, state.pool, ApiDoc::openapi())
}

/// Builds the state: the outbox, the signer from `keys`, and a verifier
/// that reads the signer's published set (so both see a rotation together).
pub async fn state(pool: PgPool, keys: KeySource, config: &Config) -> anyhow::Result<AppState> {
    service_messaging::install(&pool).await?;
    let described = keys.describe();
    let signer = Signer::load(
        keys,
        &config.settings.issuer,
        &config.jwt_audience,
        config.token_lifetime,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{described}: {e:#}"))?;
    let verifier = Verifier::new(
        &config.settings.issuer,
        &config.jwt_audience,
        Box::new(PublishedKeys(signer.clone())),
    )
    .await?;
    verifier
        .use_revocations(Box::new(employees::DatabaseRevocations(pool.clone())))
        .await;
    verifier.spawn_refresh(config.keys_refresh);
    if let Some((email, password)) = &config.admin {
        employees::ensure_admin(&pool, email, password).await?;
    }
    Ok(AppState {
        pool,
        signer,
        verifier,
        settings: Arc::new(config.settings.clone()),
        limits: limits::Limits::new(&config.limits),
        revocations: Arc::default(),
        relay: service_messaging::Relay::default(),
    })
}

/// The router, with the relay that publishes the outbox over `transport`.
pub fn assemble(
    state: AppState,
    transport: Arc<dyn service_messaging::Transport>,
    events: &service_messaging::Settings,
) -> (Router, service_messaging::Workers) {
    let workers =
        service_messaging::Workers::start(&state.pool, transport, &state.relay, None, events);
    (router(state), workers)
}

/// Connects, migrates and serves until SIGTERM.
pub async fn run(config: Config, keys: KeySource) -> anyhow::Result<()> {
    let pool = service_kit::db::connect(&config.database_url, config.pool_size, &MIGRATOR).await?;
    let state = state(pool, keys, &config).await?;
    tracing::info!(kid = %state.signer.kid(), "signing tokens");
    let transport = config.events.connect(SERVICE).await?;
    let (app, _workers) = assemble(state, transport, &config.events);
    service_kit::server::listen("user service", config.port, app).await
}
