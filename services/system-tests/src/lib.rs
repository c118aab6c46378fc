//! The whole ordering system in one process: the five services on real
//! loopback sockets, each with its own PostgreSQL database, events on the
//! PostgreSQL transport, a fake Mercado Pago, and tokens from the user
//! service. A service can be killed (its tasks aborted mid-flight, as a
//! crash would) and started again on the same database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use service_kit::auth::{StaticKeys, Verifier};
use service_kit::http_client::HttpClient;
use service_kit::keys::KeySource;
use service_messaging::postgres::PgTransport;
use service_messaging::{self as messaging, Relay, Transport, Workers};
use sqlx::PgPool;
use testkit::FakeMercadoPago;
use testkit::jwt::TestSigner;

mod sns_sqs;

pub use sns_sqs::SnsSqs;

pub const ISSUER: &str = "techchallenge";
pub const MP_TOKEN: &str = "APP_USR-test-token";
pub const MP_SECRET: &str = "webhook-signing-secret";
/// The first admin the user service makes on its start.
pub const ADMIN_EMAIL: &str = "admin@system.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// How often the services reread the user service's revocation list here.
/// The kiosks' points of sale (the sandbox knows them, and `CAIXA01`, the
/// payment service's default).
pub const KIOSKS: [&str; 4] = ["TOTEM01", "TOTEM02", "TOTEM03", "TOTEM04"];

pub const REVOCATIONS_REFRESH: Duration = Duration::from_millis(300);

/// Wraps a service's transport (to make it fail or duplicate, say).
pub type TransportWrap = Arc<dyn Fn(&str, Arc<dyn Transport>) -> Arc<dyn Transport> + Send + Sync>;

#[derive(Clone)]
pub struct Options {
    pub events: messaging::Settings,
    pub payment_expiry: Duration,
    pub expiry_check: Duration,
    pub wrap: Option<TransportWrap>,
    /// Events on SNS/SQS in moto instead of the PostgreSQL transport.
    pub sns_sqs: Option<Arc<SnsSqs>>,
}

impl Options {
    pub fn new() -> Options {
        let mut events = messaging::Settings::postgres("");
        events.retry_delay = Duration::from_millis(50);
        events.relay_poll = Duration::from_millis(200);
        Options {
            events,
            payment_expiry: Duration::from_secs(900),
            expiry_check: Duration::from_millis(200),
            wrap: None,
            sns_sqs: None,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

/// One running service: its address, its server and its workers.
struct Running {
    server: tokio::task::JoinHandle<()>,
    _workers: Option<Workers>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.server.abort();
    }
}

pub struct System {
    pub mp: FakeMercadoPago,
    pub http: HttpClient,
    pub signer: TestSigner,
    pub urls: HashMap<&'static str, String>,
    pub databases: HashMap<&'static str, String>,
    pub options: Options,
    pub bus_url: String,
    running: HashMap<&'static str, Running>,
    ports: HashMap<&'static str, u16>,
    staff_token: String,
    key_file: std::path::PathBuf,
}

pub const SERVICES: [&str; 5] = ["user", "product", "order", "payment", "production"];

async fn fresh_database(prefix: &'static str) -> String {
    tokio::task::spawn_blocking(move || testkit::postgres().fresh_database(prefix))
        .await
        .expect("create a database")
}

impl System {
    pub async fn start(options: Options) -> System {
        let signer = TestSigner::new("system-key");
        let dir = std::env::temp_dir().join(format!(
            "system-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).expect("a key directory");
        let key_file = dir.join("keys.json");
        std::fs::write(&key_file, signer.key_file(&[])).expect("write the key file");
        let mut databases = HashMap::new();
        for service in SERVICES {
            databases.insert(service, fresh_database(service).await);
        }
        let bus_url = fresh_database("bus").await;
        let mut options = options;
        options.events.transport = messaging::TransportSettings::Postgres {
            url: bus_url.clone(),
        };
        let staff_token = signer.token("employee-1", "employee");
        let mut system = System {
            staff_token,
            mp: FakeMercadoPago::start(MP_TOKEN, MP_SECRET).await,
            http: HttpClient::new(Duration::from_secs(10)),
            signer,
            urls: HashMap::new(),
            databases,
            options,
            bus_url,
            running: HashMap::new(),
            ports: HashMap::new(),
            key_file,
        };
        for service in SERVICES {
            system.start_service(service).await;
        }
        // The application's webhook, as configured in Mercado Pago's panel.
        let webhook = format!("{}/webhooks/mercadopago", system.urls["payment"]);
        system.mp.notify_to(&webhook);
        system
    }

    pub fn url(&self, service: &str) -> &str {
        &self.urls[service]
    }

    /// Aborts every task of `service` at once: requests, relay, consumer.
    pub async fn kill(&mut self, service: &str) {
        if let Some(mut running) = self.running.remove(service) {
            running.server.abort();
            // Until the task is gone, its listener holds the port.
            let _ = (&mut running.server).await;
        }
    }

    /// Starts `service` (again), on the port it had.
    pub async fn start_service(&mut self, service: &'static str) {
        let listener = match self.ports.get(service) {
            Some(port) => tokio::net::TcpListener::bind(("127.0.0.1", *port)).await,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await,
        }
        .expect("bind a loopback port");
        let port = listener.local_addr().expect("address").port();
        self.ports.insert(service, port);
        self.urls
            .insert(service, format!("http://127.0.0.1:{port}"));
        let (app, workers) = self.assemble(service).await;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        self.running.insert(
            service,
            Running {
                server,
                _workers: workers,
            },
        );
    }

    async fn pool(&self, service: &str, migrator: &sqlx::migrate::Migrator) -> PgPool {
        let pool = service_kit::db::connect(&self.databases[service], 10, migrator)
            .await
            .expect("connect and migrate");
        messaging::install(&pool)
            .await
            .expect("install the outbox and inbox");
        pool
    }

    pub async fn service_pool(&self, service: &str) -> PgPool {
        PgPool::connect(&self.databases[service])
            .await
            .expect("connect")
    }

    /// The PostgreSQL transport of `service`, as the services get it.
    pub async fn bus(&self, service: &str) -> PgTransport {
        let events = &self.options.events;
        PgTransport::connect(
            &self.bus_url,
            service,
            events.max_receive,
            events.visibility,
        )
        .await
        .expect("connect to the bus")
    }

    async fn transport(&self, service: &str) -> Arc<dyn Transport> {
        let transport: Arc<dyn Transport> = match &self.options.sns_sqs {
            Some(broker) => Arc::new(broker.transport(service, &self.options.events)),
            None => Arc::new(self.bus(service).await),
        };
        match &self.options.wrap {
            Some(wrap) => wrap(service, transport),
            None => transport,
        }
    }

    /// A service's verifier: the signer's key, and the user service's
    /// revocation list (the user service starts first), reread often.
    async fn verifier(&self) -> Arc<Verifier> {
        let verifier = Verifier::new(
            ISSUER,
            ISSUER,
            Box::new(StaticKeys(vec![self.signer.public_jwk()])),
        )
        .await
        .expect("a verifier");
        if let Some(user) = self.urls.get("user") {
            verifier
                .use_revocations(Box::new(service_kit::auth::HttpRevocations::new(user)))
                .await;
            verifier.spawn_refresh(REVOCATIONS_REFRESH);
        }
        verifier
    }

    async fn assemble(&self, service: &str) -> (axum::Router, Option<Workers>) {
        let events = &self.options.events;
        match service {
            "user" => {
                let pool = self.pool(service, &user_service::MIGRATOR).await;
                let config = user_service::Config {
                    port: 0,
                    database_url: self.databases[service].clone(),
                    pool_size: 10,
                    settings: user_service::Settings {
                        issuer: ISSUER.into(),
                        public_url: "http://localhost".into(),
                    },
                    jwt_audience: ISSUER.into(),
                    token_lifetime: Duration::from_secs(3600),
                    keys_refresh: REVOCATIONS_REFRESH,
                    admin: Some((ADMIN_EMAIL.into(), ADMIN_PASSWORD.into())),
                    limits: user_service::limits::LimitSettings::off(),
                    events: events.clone(),
                };
                let state =
                    user_service::state(pool, KeySource::File(self.key_file.clone()), &config)
                        .await
                        .expect("the user service's state");
                let (app, workers) =
                    user_service::assemble(state, self.transport(service).await, events);
                (app, Some(workers))
            }
            "product" => {
                let pool = self.pool(service, &product_service::MIGRATOR).await;
                let state =
                    product_service::AppState::new(pool, self.verifier().await, Duration::ZERO);
                (product_service::router(state), None)
            }
            "order" => {
                let state = order_service::AppState {
                    pool: self.pool(service, &order_service::MIGRATOR).await,
                    verifier: self.verifier().await,
                    catalog: order_service::Catalog::new(&self.urls["product"]),
                    points_of_sale: Arc::new(KIOSKS.iter().map(|k| k.to_string()).collect()),
                    relay: Relay::default(),
                };
                let (app, workers) =
                    order_service::assemble(state, self.transport(service).await, events);
                (app, Some(workers))
            }
            "payment" => {
                let config = payment_service::MercadoPagoConfig {
                    base_url: self.mp.url.clone(),
                    access_token: service_kit::config::Secret::new(MP_TOKEN),
                    collector_id: "123456789".into(),
                    pos_id: "CAIXA01".into(),
                    webhook_secret: service_kit::config::Secret::new(MP_SECRET),
                    expiry: self.options.payment_expiry,
                    expiry_check: self.options.expiry_check,
                    webhook_max_age: Duration::from_secs(300),
                };
                let state = payment_service::AppState {
                    pool: self.pool(service, &payment_service::MIGRATOR).await,
                    verifier: self.verifier().await,
                    payments: Arc::new(payment_service::Payments::new(&config)),
                    relay: Relay::default(),
                };
                let (app, workers) = payment_service::assemble(
                    state,
                    self.transport(service).await,
                    events,
                    config.expiry_check,
                );
                (app, Some(workers))
            }
            "production" => {
                let state = production_service::AppState {
                    pool: self.pool(service, &production_service::MIGRATOR).await,
                    verifier: self.verifier().await,
                    relay: Relay::default(),
                    board: Default::default(),
                };
                let (app, workers) =
                    production_service::assemble(state, self.transport(service).await, events);
                (app, Some(workers))
            }
            other => panic!("no service {other}"),
        }
    }

    /// Calls a service; answers with status and JSON body (Null if none).
    pub async fn call(
        &self,
        service: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(service, method, path, token, &[], body)
            .await
    }

    pub async fn call_with(
        &self,
        service: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(b) = &bearer {
            headers.push(("authorization", b));
        }
        let url = format!("{}{path}", self.urls[service]);
        let answer = self
            .http
            .send_json(method, &url, &headers, body.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:#}"));
        (
            answer.status,
            serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
        )
    }

    /// An employee's token, signed once: RSA signing costs milliseconds,
    /// and the tests and the benchmark read as staff all the time.
    /// The kitchen moves a ticket a step on (`started`, `completed`,
    /// `delivered`), as the kitchen display does.
    pub async fn kitchen_step(&self, ticket: &str, step: &str) -> (StatusCode, Value) {
        self.call(
            "production",
            Method::PUT,
            &format!("/production/{ticket}/{step}"),
            Some(&self.employee_token()),
            None,
        )
        .await
    }

    pub fn employee_token(&self) -> String {
        self.staff_token.clone()
    }

    /// Registers a customer with this CPF and returns their token.
    pub async fn customer_token(&self, name: &str, cpf: &str, email: &str) -> String {
        let (status, body) = self
            .call(
                "user",
                Method::POST,
                "/users",
                None,
                Some(json!({"name": name, "cpf": cpf, "email": email})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register: {body}");
        let (status, body) = self
            .call(
                "user",
                Method::POST,
                "/auth/token",
                None,
                Some(json!({"cpf": cpf})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "token: {body}");
        body["access_token"].as_str().expect("a token").to_string()
    }

    pub async fn guest_token(&self) -> String {
        let (status, body) = self
            .call("user", Method::POST, "/auth/guest", None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "guest token: {body}");
        body["access_token"].as_str().expect("a token").to_string()
    }

    /// Adds a product to the catalog; returns its id.
    pub async fn product(&self, name: &str, category: &str, price_cents: i64) -> String {
        let (status, body) = self
            .call(
                "product",
                Method::POST,
                "/products",
                Some(&self.employee_token()),
                Some(json!({
                    "name": name, "description": "", "category": category,
                    "price_cents": price_cents, "preparation_minutes": 5
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "product: {body}");
        body["id"].as_str().expect("an id").to_string()
    }

    /// Places an order; panics unless it is created.
    pub async fn order(&self, token: &str, items: Value) -> Value {
        let (status, body) = self.try_order(Some(token), json!({ "items": items })).await;
        assert_eq!(status, StatusCode::CREATED, "order: {body}");
        body
    }

    /// Sends `POST /orders` with `body`, whatever the answer.
    pub async fn try_order(&self, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call("order", Method::POST, "/orders", token, Some(body))
            .await
    }

    pub async fn get_order(&self, id: &str) -> Value {
        let (status, body) = self
            .call(
                "order",
                Method::GET,
                &format!("/orders/{id}"),
                Some(&self.employee_token()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "order {id}: {body}");
        body
    }

    /// Waits until the order satisfies `done`, or fails with its last state.
    pub async fn wait_order(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let order = self.get_order(id).await;
            if done(&order) {
                return order;
            }
            assert!(
                Instant::now() < deadline,
                "order {id} never {what}: {order:#}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        self.wait_order(id, &format!("became {status}"), |o| o["status"] == status)
            .await
    }

    /// Waits for the order's QR code; returns the order.
    pub async fn wait_qr(&self, id: &str) -> Value {
        self.wait_order(id, "got its QR code", |o| {
            o["payment"]["qr_data"].is_string()
        })
        .await
    }

    /// The payment of an order, as staff see it.
    pub async fn payment_of(&self, order_id: &str) -> Value {
        let (status, body) = self
            .call(
                "payment",
                Method::GET,
                &format!("/payments?order_id={order_id}"),
                Some(&self.employee_token()),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "payments: {body}");
        body[0].clone()
    }

    /// The kitchen ticket of an order, once it exists.
    pub async fn ticket_of(&self, order_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self
                .call(
                    "production",
                    Method::GET,
                    "/production",
                    Some(&self.employee_token()),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "tickets: {body}");
            if let Some(t) = body
                .as_array()
                .and_then(|a| a.iter().find(|t| t["order_id"] == order_id))
            {
                return t.clone();
            }
            assert!(Instant::now() < deadline, "no ticket for order {order_id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The system's databases (every service's and the event transport's)
    /// go away, as in a failover: new connections refused, open ones cut.
    pub async fn databases_down(&self) {
        self.allow_connections(false).await;
    }

    /// They come back.
    pub async fn databases_up(&self) {
        self.allow_connections(true).await;
    }

    async fn allow_connections(&self, allowed: bool) {
        let name = |url: &str| url.rsplit('/').next().unwrap_or_default().to_string();
        let bus = name(&self.bus_url);
        let admin_url = self.bus_url.replace(&format!("/{bus}"), "/postgres");
        let admin = PgPool::connect(&admin_url).await.expect("the cluster");
        let mut names: Vec<String> = self.databases.values().map(|u| name(u)).collect();
        names.push(bus);
        for database in &names {
            sqlx::query(&format!(
                "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allowed}"
            ))
            .execute(&admin)
            .await
            .expect("alter the database");
        }
        if !allowed {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ANY($1)",
            )
            .bind(&names)
            .execute(&admin)
            .await
            .expect("cut the connections");
        }
        admin.close().await;
    }

    /// Lets in-flight events settle: waits until no queue holds a message
    /// and no outbox an unpublished event, twice in a row. A message whose
    /// acknowledgement was lost (a broker outage) comes back only once its
    /// visibility timeout has passed, so the wait covers one.
    pub async fn quiesce(&self) {
        let deadline = Instant::now() + self.options.events.visibility + Duration::from_secs(20);
        let bus = PgPool::connect(&self.bus_url).await.expect("bus");
        let mut calm = 0;
        while calm < 2 {
            let queued: i64 = match &self.options.sns_sqs {
                Some(broker) => broker.backlog().await.0,
                None => sqlx::query_scalar("SELECT count(*) FROM bus_messages")
                    .fetch_one(&bus)
                    .await
                    .expect("count"),
            };
            let mut pending = 0;
            for service in ["user", "order", "payment", "production"] {
                let pool = self.service_pool(service).await;
                pending += messaging::outbox::pending(&pool).await.expect("outbox");
                pool.close().await;
            }
            calm = if queued == 0 && pending == 0 {
                calm + 1
            } else {
                0
            };
            assert!(
                Instant::now() < deadline,
                "events never settled: {queued} queued, {pending} unpublished"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bus.close().await;
    }
}
