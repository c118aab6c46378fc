//! The order service: a customer's order, priced from the catalog, and its
//! way from payment to the counter.
//!
//! The HTTP side places and shows orders ([`orders`]); the saga side moves
//! them when payment and kitchen events arrive ([`saga`]). Both write the
//! events they cause to the outbox in the same transaction as the change.

mod catalog;
mod orders;
mod qr;
mod saga;
mod status;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use service_kit::auth::Verifier;
use service_kit::config::{Common, ConfigError, Env};
use service_kit::docs::{BearerAuth, ProblemResponses};
use service_kit::keys::KeySource;
use service_messaging::{self as messaging, Foundation, Relay, Transport, Workers};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use utoipa::OpenApi;

pub use catalog::Catalog;
pub use status::Status;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");
/// The name this service publishes under.
pub const SERVICE: &str = "order";

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    /// Where the product service answers (its batch lookup prices orders).
    pub product_url: String,
    /// The kiosks' Mercado Pago points of sale an order may name.
    pub points_of_sale: Vec<String>,
    pub events: messaging::Settings,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Config {
            common: Common::from_env(env, 4003, "orders")?,
            product_url: env.parsed_or(
                "PRODUCT_SERVICE_URL",
                "http://127.0.0.1:4002".to_string(),
                "the base URL of the product service, such as http://product.internal",
            )?,
            points_of_sale: env
                .parsed_or::<String>(
                    "POINTS_OF_SALE",
                    String::new(),
                    "the kiosks' Mercado Pago points of sale, separated by commas, such as TOTEM01,TOTEM02",
                )?
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            events: messaging::Settings::from_env(env)?,
        })
    }
}

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub catalog: Catalog,
    /// The kiosks' points of sale an order may name.
    pub points_of_sale: Arc<Vec<String>>,
    pub relay: Relay,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Order service", description = "Orders priced from the catalog, paid by QR code, followed by the kitchen."),
    paths(orders::place_order, orders::get_order, qr::order_qr, orders::list_orders, orders::active_orders),
    components(schemas(service_kit::error::Problem)),
    modifiers(&BearerAuth, &ProblemResponses),
)]
struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let routes = orders::routes()
        .route("/orders/{id}/qr.svg", axum::routing::get(qr::order_qr))
        .with_state(state.clone());
    service_kit::server::service(routes, state.pool, ApiDoc::openapi())
}

/// The service's HTTP side and its event workers (relay and consumer).
pub fn assemble(
    state: AppState,
    transport: Arc<dyn Transport>,
    events: &messaging::Settings,
) -> (Router, Workers) {
    let workers = Workers::start(
        &state.pool,
        transport,
        &state.relay,
        Some(Arc::new(saga::OrderSaga)),
        events,
    );
    (router(state), workers)
}

pub async fn run(config: Config, keys: KeySource) -> anyhow::Result<()> {
    let base =
        Foundation::connect(SERVICE, &config.common, &MIGRATOR, keys, &config.events).await?;
    let state = AppState {
        pool: base.pool,
        verifier: base.verifier,
        catalog: Catalog::new(&config.product_url),
        points_of_sale: Arc::new(config.points_of_sale.clone()),
        relay: Relay::default(),
    };
    let (app, _workers) = assemble(state, base.transport, &config.events);
    service_kit::server::listen("order service", config.common.port, app).await
}
