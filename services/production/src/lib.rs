//! The production service: the kitchen's tickets. A paid order becomes a
//! ticket; staff move it RECEIVED → IN_PREPARATION → READY → DELIVERED,
//! and each step emits the event that moves the order.

mod tickets;

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

pub use tickets::TicketStatus;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");
pub const SERVICE: &str = "production";

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub events: messaging::Settings,
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Config {
            common: Common::from_env(env, 4005, "kitchen")?,
            events: messaging::Settings::from_env(env)?,
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub relay: Relay,
    /// The pickup board as last read, for the screens polling it.
    pub board: Arc<tickets::BoardCache>,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Production service", description = "The kitchen's tickets, from paid to delivered."),
    paths(tickets::list_tickets, tickets::board, tickets::get_ticket, tickets::start, tickets::complete, tickets::deliver),
    components(schemas(service_kit::error::Problem)),
    modifiers(&BearerAuth, &ProblemResponses),
)]
struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let routes = tickets::routes().with_state(state.clone());
    service_kit::server::service(routes, state.pool, ApiDoc::openapi())
}

pub fn assemble(
    state: AppState,
    transport: Arc<dyn Transport>,
    events: &messaging::Settings,
) -> (Router, Workers) {
    let workers = Workers::start(
        &state.pool,
        transport.clone(),
        &state.relay,
        Some(Arc::new(tickets::Kitchen(transport))),
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
        relay: Relay::default(),
        board: Default::default(),
    };
    let (app, _workers) = assemble(state, base.transport, &config.events);
    service_kit::server::listen("production service", config.common.port, app).await
}
