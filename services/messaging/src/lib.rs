//! Events between services, with no lost and no doubled effect.
//!
//! - **Outbox**: a service writes its state change and the events it
//!   causes in one transaction ([`outbox::add`]); the [`relay`] publishes
//!   them afterwards and marks them sent. A crash between commit and publish
//!   only delays the event.
//! - **Inbox**: the [`consumer`] records each handled `event_id` in the
//!   same transaction as the handler's effect, so a redelivered message
//!   changes nothing.
//! - **Transports**: SNS/SQS on AWS ([`sqs`]), a PostgreSQL queue table for
//!   local runs and tests ([`postgres`]). Both redeliver a message that was
//!   not acknowledged, and dead-letter it, with the reason, once it has
//!   been received `max_receive` times.

pub mod consumer;
pub mod outbox;
pub mod postgres;
pub mod relay;
pub mod sqs;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use service_kit::config::{ConfigError, Env};

pub use consumer::{HandleError, Handler, spawn_consumer};
pub use contracts::Envelope;
pub use relay::{Relay, spawn_relay};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A message taken from the service's queue, invisible to other
/// consumers until it is acknowledged, put back or its visibility ends.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: String,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
    /// What the transport needs to acknowledge it.
    pub handle: String,
    /// When it was first sent (retries keep it): how long it has waited.
    pub sent_at: std::time::SystemTime,
}

impl Delivery {
    /// How long since the message was first sent.
    pub fn age(&self) -> Duration {
        self.sent_at.elapsed().unwrap_or_default()
    }
}

/// A message that could not be handled, kept with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub body: String,
    pub reason: String,
}

/// One service's view of the event bus: it publishes on its own topic and
/// consumes its own queue.
pub trait Transport: Send + Sync {
    /// Publishes to every queue subscribed to the event's name.
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Up to `max` messages, waiting up to `wait` for the first one.
    fn receive(&self, max: usize, wait: Duration) -> BoxFuture<'_, anyhow::Result<Vec<Delivery>>>;
    /// The effect is committed: the message is gone for good.
    fn ack<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Not now: deliver it again after `delay`.
    fn retry_later<'a>(
        &'a self,
        delivery: &'a Delivery,
        delay: Duration,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Never: move it to the dead-letter queue with `reason`.
    fn dead_letter<'a>(
        &'a self,
        delivery: &'a Delivery,
        reason: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// What the dead-letter queue holds (for operators and tests).
    fn dead_letters(&self) -> BoxFuture<'_, anyhow::Result<Vec<DeadLetter>>>;
    /// Rewrites each dead letter, and each message still waiting where the
    /// transport can change one in place, whose body holds `about` and that
    /// `scrub` changes (an erasure); answers how many it rewrote.
    fn scrub<'a>(
        &'a self,
        about: &'a str,
        scrub: &'a Scrub,
    ) -> BoxFuture<'a, anyhow::Result<usize>>;
}

/// A message body without what must go, or `None` to leave it as it is.
pub type Scrub = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The name of an erased customer leaves every message of `order` still on
/// `transport` (its queue and dead letters): what a consumer of
/// `order.anonymized` does with its own queues.
pub async fn scrub_order(
    transport: &dyn Transport,
    order: &contracts::events::OrderAnonymized,
) -> Result<usize, HandleError> {
    let (order_id, number) = (order.order_id, order.number);
    let scrub = move |body: &str| contracts::events::without_customer_name(body, order_id, number);
    Ok(transport.scrub(&order_id.to_string(), &scrub).await?)
}

/// How a service's messaging behaves, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub transport: TransportSettings,
    /// Receives before a message is dead-lettered: every retry is one, so
    /// this leaves room for all those [`Settings::retry_for`] allows.
    pub max_receive: u32,
    /// How long a received message stays invisible to other consumers.
    pub visibility: Duration,
    /// The first retry delay; it doubles with each further attempt, up to
    /// `retry_max_delay`.
    pub retry_delay: Duration,
    pub retry_max_delay: Duration,
    /// How long an event that cannot apply yet is retried before it is
    /// dead-lettered.
    pub retry_for: Duration,
    /// How often the relay looks for unpublished events it was not told about.
    pub relay_poll: Duration,
}

#[derive(Debug, Clone)]
pub enum TransportSettings {
    Postgres {
        url: String,
    },
    /// A service that only publishes (the user service) has no queues:
    /// their URLs are empty.
    SnsSqs {
        topic_arn: String,
        queue_url: String,
        dead_letter_queue_url: String,
    },
}

impl Settings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let transport = match env
            .parsed_or(
                "EVENT_TRANSPORT",
                "postgres".to_string(),
                "postgres or sns-sqs",
            )?
            .as_str()
        {
            "postgres" => TransportSettings::Postgres {
                url: env.required(
                    "EVENTS_DATABASE_URL",
                    "a postgres:// URL of the database that holds the event queues",
                )?,
            },
            "sns-sqs" => TransportSettings::SnsSqs {
                topic_arn: env
                    .required("EVENTS_TOPIC_ARN", "the ARN of this service's SNS topic")?,
                queue_url: env.optional("EVENTS_QUEUE_URL").unwrap_or_default(),
                dead_letter_queue_url: env.optional("EVENTS_DLQ_URL").unwrap_or_default(),
            },
            other => {
                return Err(ConfigError {
                    variable: "EVENT_TRANSPORT".into(),
                    problem: format!("{other:?} is not a transport"),
                    expected: "postgres or sns-sqs".into(),
                });
            }
        };
        Ok(Settings {
            transport,
            max_receive: env.parsed_or(
                "EVENTS_MAX_RECEIVE",
                70,
                "a number of receives such as 70",
            )?,
            visibility: Duration::from_secs(env.parsed_or(
                "EVENTS_VISIBILITY_SECONDS",
                30,
                "seconds a received message stays hidden, such as 30",
            )?),
            retry_delay: Duration::from_millis(env.parsed_or(
                "EVENTS_RETRY_DELAY_MS",
                1000,
                "milliseconds before the first retry, such as 1000",
            )?),
            retry_max_delay: Duration::from_millis(env.parsed_or(
                "EVENTS_RETRY_MAX_DELAY_MS",
                60_000,
                "the longest wait between retries in milliseconds, such as 60000",
            )?),
            retry_for: Duration::from_secs(env.parsed_or(
                "EVENTS_RETRY_FOR_SECONDS",
                3600,
                "how long an event that cannot apply yet is retried, in seconds, such as 3600",
            )?),
            relay_poll: Duration::from_millis(env.parsed_or(
                "EVENTS_RELAY_POLL_MS",
                1000,
                "milliseconds between the relay's sweeps, such as 1000",
            )?),
        })
    }

    /// Settings for tests and local runs on the PostgreSQL transport.
    pub fn postgres(url: &str) -> Self {
        Settings {
            transport: TransportSettings::Postgres {
                url: url.to_string(),
            },
            max_receive: 70,
            visibility: Duration::from_secs(30),
            retry_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(60),
            retry_for: Duration::from_secs(3600),
            relay_poll: Duration::from_millis(500),
        }
    }

    /// The transport of `service`.
    pub async fn connect(&self, service: &str) -> anyhow::Result<Arc<dyn Transport>> {
        Ok(match &self.transport {
            TransportSettings::Postgres { url } => Arc::new(
                postgres::PgTransport::connect(url, service, self.max_receive, self.visibility)
                    .await?,
            ),
            TransportSettings::SnsSqs {
                topic_arn,
                queue_url,
                dead_letter_queue_url,
            } => {
                let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                Arc::new(sqs::SqsTransport::new(
                    &config,
                    sqs::Queues {
                        topic_arn: topic_arn.clone(),
                        queue_url: queue_url.clone(),
                        dead_letter_queue_url: dead_letter_queue_url.clone(),
                    },
                    self.max_receive,
                    self.visibility,
                ))
            }
        })
    }

    /// The delay before attempt `receive_count + 1`.
    pub fn backoff(&self, receive_count: u32) -> Duration {
        self.retry_delay
            .saturating_mul(1 << receive_count.saturating_sub(1).min(16))
            .min(self.retry_max_delay)
    }
}

/// What a service of the saga starts from: its migrated database with the
/// outbox and inbox, a token verifier, and its transport.
pub struct Foundation {
    pub pool: PgPool,
    pub verifier: Arc<service_kit::auth::Verifier>,
    pub transport: Arc<dyn Transport>,
}

impl Foundation {
    pub async fn connect(
        service: &str,
        common: &service_kit::config::Common,
        migrator: &sqlx::migrate::Migrator,
        keys: service_kit::keys::KeySource,
        events: &Settings,
    ) -> anyhow::Result<Foundation> {
        let pool =
            service_kit::db::connect(&common.database_url, common.pool_size, migrator).await?;
        install(&pool).await?;
        let verifier = common.verifier(keys).await?;
        let transport = events.connect(service).await?;
        Ok(Foundation {
            pool,
            verifier,
            transport,
        })
    }
}

/// A service's background work on events: the relay always, the consumer
/// when it consumes. Both stop when this is dropped.
pub struct Workers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    pub fn start(
        pool: &PgPool,
        transport: Arc<dyn Transport>,
        relay: &Relay,
        handler: Option<Arc<dyn Handler>>,
        settings: &Settings,
    ) -> Workers {
        let mut tasks = vec![spawn_relay(
            pool.clone(),
            transport.clone(),
            relay.clone(),
            settings.relay_poll,
        )];
        if let Some(handler) = handler {
            tasks.push(spawn_consumer(
                pool.clone(),
                transport,
                handler,
                relay.clone(),
                settings.clone(),
            ));
        }
        Workers { tasks }
    }

    /// Adds a task of the service's own (a scheduler, say).
    pub fn add(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.push(task);
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Creates the outbox and inbox tables in a service's database. Safe to
/// run from several replicas at once.
pub async fn install(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    // Concurrent CREATE TABLE IF NOT EXISTS can still collide; serialise.
    sqlx::query("SELECT pg_advisory_xact_lock(7201)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS outbox (
            id uuid PRIMARY KEY,
            event_name text NOT NULL,
            envelope text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        );
        CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (created_at, id) WHERE published_at IS NULL;
        CREATE TABLE IF NOT EXISTS inbox (
            event_id uuid PRIMARY KEY,
            event_name text NOT NULL,
            handled_at timestamptz NOT NULL DEFAULT now()
        );",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
