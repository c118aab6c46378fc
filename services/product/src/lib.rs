//! The product service: the catalog of products and their categories.
//! Anyone may read it; employees change it. The order service prices
//! orders through the batch lookup, never from what a client sends.

mod cache;
mod catalog;
pub mod menu;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use service_kit::auth::Verifier;
use service_kit::config::{Common, ConfigError, Env};
use service_kit::docs::{BearerAuth, ProblemResponses};
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
    pub common: Common,
    /// How long a product read stays cached in this replica.
    pub cache_ttl: Duration,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Config {
            common: Common::from_env(env, 4002, "catalog")?,
            cache_ttl: Duration::from_millis(env.parsed_or(
                "PRODUCT_CACHE_MILLISECONDS",
                2000,
                "how long a product read is cached, in milliseconds (0 turns the cache off)",
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
    /// The menu lists, from memory.
    pub menu: Arc<menu::Menu>,
}

impl AppState {
    /// The state of one replica; it starts watching the catalog for
    /// changes (so it needs a Tokio runtime).
    pub fn new(pool: PgPool, verifier: Arc<Verifier>, cache_ttl: Duration) -> Self {
        Self {
            menu: menu::Menu::new(pool.clone()),
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
        catalog::list_inactive,
        catalog::get_product,
        catalog::create_product,
        catalog::update_product,
        catalog::deactivate_product,
        catalog::lookup,
    ),
    components(schemas(service_kit::error::Problem)),
    modifiers(&BearerAuth, &ProblemResponses),
)]
struct ApiDoc;

/// The whole service as a router: its routes, the screens (served by the
/// catalog's owner: see the README), health, docs and the shared edge.
pub fn router(state: AppState) -> Router {
    let routes = catalog::routes()
        .with_state(state.clone())
        .merge(screens::routes());
    service_kit::server::service(routes, state.pool, ApiDoc::openapi())
}

/// Connects, migrates and serves until SIGTERM; tokens are verified with
/// the keys of `keys`.
pub async fn run(config: Config, keys: KeySource) -> anyhow::Result<()> {
    let common = &config.common;
    let pool = service_kit::db::connect(&common.database_url, common.pool_size, &MIGRATOR).await?;
    let verifier = common.verifier(keys).await?;
    let app = router(AppState::new(pool, verifier, config.cache_ttl));
    service_kit::server::listen("product service", common.port, app).await
}
