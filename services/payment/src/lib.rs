//! The payment service: a Mercado Pago QR code for each new order, signed
//! webhooks read back from Mercado Pago, expiry of unpaid codes, and the
//! compensations of the saga (withdrawing a QR code, refunding a payment
//! that arrived for a cancelled order).

mod expiry;
mod ledger;
mod mercadopago;
mod payments;
mod saga;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use service_kit::auth::Verifier;
use service_kit::config::{Common, ConfigError, Env, Secret};
use service_kit::docs::{BearerAuth, ProblemResponses};
use service_kit::keys::KeySource;
use service_messaging::{self as messaging, Foundation, Relay, Transport, Workers};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use utoipa::OpenApi;

pub use expiry::sweep as expire_due_payments;
pub use mercadopago::MercadoPago;
pub use webhook::{SignatureError, verify as verify_signature};

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");
pub const SERVICE: &str = "payment";

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub mercadopago: MercadoPagoConfig,
    pub events: messaging::Settings,
}

#[derive(Debug, Clone)]
pub struct MercadoPagoConfig {
    pub base_url: String,
    pub access_token: Secret,
    pub collector_id: String,
    /// The point of sale of orders that name no kiosk's.
    pub pos_id: String,
    pub webhook_secret: Secret,
    /// How long a QR code can be paid.
    pub expiry: Duration,
    /// How often PENDING payments past their expiry are looked at.
    pub expiry_check: Duration,
    /// How old a webhook signature may be.
    pub webhook_max_age: Duration,
}

impl MercadoPagoConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(MercadoPagoConfig {
            base_url: env.parsed_or(
                "MERCADOPAGO_BASE_URL",
                "https://api.mercadopago.com".to_string(),
                "Mercado Pago's API base URL",
            )?,
            access_token: Secret::new(env.required(
                "MERCADOPAGO_ACCESS_TOKEN",
                "the access token of the Mercado Pago application",
            )?),
            collector_id: env.required(
                "MERCADOPAGO_COLLECTOR_ID",
                "the Mercado Pago user id that collects payments",
            )?,
            pos_id: env.required(
                "MERCADOPAGO_POS_ID",
                "the external id of the point of sale of orders that name no kiosk's",
            )?,
            webhook_secret: Secret::new(env.required(
                "MERCADOPAGO_WEBHOOK_SECRET",
                "the secret signature key of the application's webhooks",
            )?),
            expiry: Duration::from_secs(env.parsed_or(
                "PAYMENT_EXPIRY_SECONDS",
                900,
                "seconds a QR code can be paid, such as 900",
            )?),
            expiry_check: Duration::from_secs(env.parsed_or(
                "PAYMENT_EXPIRY_CHECK_SECONDS",
                60,
                "seconds between looks at expired payments, such as 60",
            )?),
            webhook_max_age: Duration::from_secs(env.parsed_or(
                "WEBHOOK_MAX_AGE_SECONDS",
                300,
                "seconds a webhook signature stays valid, such as 300",
            )?),
        })
    }
}

impl Config {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Config {
            common: Common::from_env(env, 4004, "payments")?,
            mercadopago: MercadoPagoConfig::from_env(env)?,
            events: messaging::Settings::from_env(env)?,
        })
    }
}

/// Mercado Pago and what the service needs to talk with it.
pub struct Payments {
    pub mp: MercadoPago,
    pub webhook_secret: Secret,
    pub expiry: Duration,
    pub webhook_max_age: Duration,
}

impl Payments {
    pub fn new(config: &MercadoPagoConfig) -> Payments {
        Payments {
            mp: MercadoPago::new(
                &config.base_url,
                config.access_token.clone(),
                &config.collector_id,
                &config.pos_id,
            ),
            webhook_secret: config.webhook_secret.clone(),
            expiry: config.expiry,
            webhook_max_age: config.webhook_max_age,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub payments: Arc<Payments>,
    pub relay: Relay,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Payment service", description = "Mercado Pago QR payments of orders, and their webhooks."),
    paths(payments::get_payment, payments::list_payments),
    components(schemas(service_kit::error::Problem)),
    modifiers(&BearerAuth, &ProblemResponses),
)]
struct ApiDoc;

pub fn router(state: AppState) -> Router {
    let routes = payments::routes()
        .merge(webhook::routes())
        .with_state(state.clone());
    service_kit::server::service(routes, state.pool, ApiDoc::openapi())
}

/// The HTTP side and the background work: relay, consumer, expiry checks.
pub fn assemble(
    state: AppState,
    transport: Arc<dyn Transport>,
    events: &messaging::Settings,
    expiry_check: Duration,
) -> (Router, Workers) {
    let mut workers = Workers::start(
        &state.pool,
        transport.clone(),
        &state.relay,
        Some(Arc::new(saga::PaymentSaga(
            state.payments.clone(),
            transport,
        ))),
        events,
    );
    workers.add(expiry::spawn(
        state.pool.clone(),
        state.payments.clone(),
        state.relay.clone(),
        expiry_check,
    ));
    (router(state), workers)
}

pub async fn run(config: Config, keys: KeySource) -> anyhow::Result<()> {
    let base =
        Foundation::connect(SERVICE, &config.common, &MIGRATOR, keys, &config.events).await?;
    let state = AppState {
        pool: base.pool,
        verifier: base.verifier,
        payments: Arc::new(Payments::new(&config.mercadopago)),
        relay: Relay::default(),
    };
    let expiry_check = config.mercadopago.expiry_check;
    let (app, _workers) = assemble(state, base.transport, &config.events, expiry_check);
    service_kit::server::listen("payment service", config.common.port, app).await
}
