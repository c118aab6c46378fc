//! The product service: the catalog of products and their categories.
//! Anyone may read it; employees change it. The order service prices
//! orders through the batch lookup, never from what a client sends.

mod cache;
mod catalog;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use service_kit::auth::Verifier;
use service_kit::config::{ConfigError, Env};
use service_kit::docs::BearerAuth;
use service_kit::keys::KeySource;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use utoipa::OpenApi;

pub use cache::ProductCache;
pub use catalog::{LookupRequest, LookupResult, Product, ProductInput, ProductPage};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Settings, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub database_url: String,
    pub pool_size: u32,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwks_refresh: Duration,
    /// How long a product read stays cached in this replica.
    pub cache_ttl: Duration,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Config {
            port: env.parsed_or("PORT", 4002, "a TCP port such as 4002")?,
            database_url: env
                .required("DATABASE_URL", "a postgres:// URL of the catalog database")?,
            pool_size: env.parsed_or("DB_POOL_SIZE", 10, "a number of connections such as 10")?,
            jwt_issuer: env.parsed_or(
                "JWT_ISSUER",
                "techchallenge".to_string(),
                "the issuer the user service signs with",
            )?,
            jwt_audience: env.parsed_or(
                "JWT_AUDIENCE",
                "techchallenge".to_string(),
                "the audience of the tokens",
            )?,
            cache_ttl: Duration::from_millis(env.parsed_or(
                "PRODUCT_CACHE_MILLISECONDS",
                2000,
                "how long a product read is cached, in milliseconds (0 turns the cache off)",
            )?),
            jwks_refresh: Duration::from_secs(env.parsed_or(
                "JWKS_REFRESH_SECONDS",
                60,
                "how often the JWK set is reread, in seconds",
            )?),
        })
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub cache: Arc<ProductCache>,
}

impl AppState {
    pub fn new(pool: PgPool, verifier: Arc<Verifier>, cache_ttl: Duration) -> Self {
        Self {
            pool,
            verifier,
            cache: Arc::new(ProductCache::new(cache_ttl)),
        }
    }
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Product service", description = "The catalog: products and categories, priced in integer cents."),
    paths(
        catalog::list_categories,
        catalog::list_products,
        catalog::get_product,
        catalog::create_product,
        catalog::update_product,
        catalog::deactivate_product,
        catalog::lookup,
    ),
    components(schemas(service_kit::error::Problem)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

/// The whole service as a router: its routes, health, docs and the shared edge.
pub fn router(state: AppState) -> Router {
    let routes = catalog::routes()
        .with_state(state.clone())
        .merge(service_kit::health::routes(state.pool.clone()))
        .merge(service_kit::docs::routes(ApiDoc::openapi()));
    service_kit::server::app(routes)
}

/// Connects, migrates and serves until SIGTERM; tokens are verified with
/// the keys of `keys`.
pub async fn run(config: Config, keys: KeySource) -> anyhow::Result<()> {
    let pool = service_kit::db::connect(&config.database_url, config.pool_size, &MIGRATOR).await?;
    let described = keys.describe();
    let verifier = Verifier::new(&config.jwt_issuer, &config.jwt_audience, Box::new(keys))
        .await
        .map_err(|e| anyhow::anyhow!("{described}: {e:#}"))?;
    verifier.spawn_refresh(config.jwks_refresh);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await?;
    tracing::info!(port = config.port, "product service listening");
    service_kit::server::serve(
        router(AppState::new(pool, verifier, config.cache_ttl)),
        listener,
        service_kit::server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
