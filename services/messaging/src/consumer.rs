//! Takes messages from the service's queue and applies them exactly once.
//!
//! For each message: a body that is not an envelope is dead-lettered with
//! the reason; an event the service does not handle is acknowledged and
//! logged; otherwise, in one transaction, the `event_id` goes into the
//! inbox and the handler applies its effect (and writes the events it
//! causes to the outbox). The message is acknowledged only after that
//! commit. An event seen before is acknowledged without effect.
//!
//! Failures are told apart by cause. What can never succeed (a handler's
//! `Reject`: a malformed payload, a version not read here, a transition
//! impossible for good; a handler that panics) is dead-lettered at once.
//! What cannot succeed *yet* (`Retry`: the database or Mercado Pago away,
//! an event ahead of the one it needs) is retried with capped exponential
//! backoff for as long as `Settings::retry_for` allows, however many
//! attempts that takes: a database failover or a provider's incident
//! strands nothing.

use std::sync::Arc;
use std::time::Duration;

use contracts::DecodeError;
use sqlx::{PgConnection, PgPool};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::{BoxFuture, Delivery, Envelope, Relay, Settings, Transport};

const BATCH: usize = 10;
const WAIT: Duration = Duration::from_secs(10);

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Not now: the event does not fit the current state yet, or something
    /// it needs is unavailable. Retried, then dead-lettered.
    #[error("{0}")]
    Retry(String),
    /// Never: the event can not be applied whatever happens.
    #[error("{0}")]
    Reject(String),
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        HandleError::Retry(format!("database: {e}"))
    }
}

impl From<anyhow::Error> for HandleError {
    fn from(e: anyhow::Error) -> Self {
        HandleError::Retry(format!("{e:#}"))
    }
}

impl From<DecodeError> for HandleError {
    fn from(e: DecodeError) -> Self {
        HandleError::Reject(e.to_string())
    }
}

/// Where a delivery stands among its attempts.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub number: u32,
    pub max: u32,
    /// The next retry would come after `Settings::retry_for` has passed.
    pub out_of_time: bool,
}

impl Attempt {
    fn of(delivery: &Delivery, settings: &Settings) -> Attempt {
        let next = delivery.age() + settings.backoff(delivery.receive_count);
        Attempt {
            number: delivery.receive_count,
            max: settings.max_receive,
            out_of_time: next > settings.retry_for,
        }
    }

    /// A retry after this one would be dead-lettered.
    pub fn is_last(&self) -> bool {
        self.number >= self.max || self.out_of_time
    }
}

/// A service's reactions to the events it consumes.
pub trait Handler: Send + Sync + 'static {
    /// The event names it handles; others are acknowledged and ignored.
    fn events(&self) -> &'static [&'static str];
    /// Applies `envelope` inside `tx`, which also records it in the inbox.
    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        envelope: &'a Envelope,
        attempt: Attempt,
    ) -> BoxFuture<'a, Result<(), HandleError>>;
}

/// Consumes the service's queue until the task is aborted.
pub fn spawn_consumer(
    pool: PgPool,
    transport: Arc<dyn Transport>,
    handler: Arc<dyn Handler>,
    relay: Relay,
    settings: Settings,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let deliveries = match transport.receive(BATCH, WAIT).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot receive events; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut batch = JoinSet::new();
            for delivery in deliveries {
                let (pool, transport, handler, relay, settings) = (
                    pool.clone(),
                    transport.clone(),
                    handler.clone(),
                    relay.clone(),
                    settings.clone(),
                );
                batch.spawn(async move {
                    if let Err(e) =
                        process(&pool, transport.as_ref(), handler.as_ref(), &relay, &settings, &delivery).await
                    {
                        // Unacknowledged: it comes back after its visibility timeout.
                        tracing::warn!(error = %format!("{e:#}"), "cannot settle an event; it will be redelivered");
                    }
                });
            }
            while batch.join_next().await.is_some() {}
        }
    })
}

async fn process(
    pool: &PgPool,
    transport: &dyn Transport,
    handler: &dyn Handler,
    relay: &Relay,
    settings: &Settings,
    delivery: &Delivery,
) -> anyhow::Result<()> {
    let envelope = match Envelope::parse(&delivery.body) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "dead-lettering a message that is not an event");
            transport.dead_letter(delivery, &e.to_string()).await?;
            return Ok(());
        }
    };
    let span = tracing::info_span!(
        "event",
        event = %envelope.meta.event_name,
        event_id = %envelope.meta.event_id,
        correlation_id = %envelope.meta.correlation_id,
        attempt = delivery.receive_count,
    );
    async {
        if !handler.events().contains(&envelope.name()) {
            tracing::info!("ignoring an event this service does not handle");
            transport.ack(delivery).await?;
            return Ok(());
        }
        let attempt = Attempt::of(delivery, settings);
        match apply(pool, handler, relay, &envelope, attempt).await {
            Ok(true) => {
                transport.ack(delivery).await?;
                tracing::info!("applied");
                Ok(())
            }
            Ok(false) => {
                tracing::info!("already handled; acknowledging the duplicate");
                transport.ack(delivery).await?;
                Ok(())
            }
            Err(HandleError::Reject(reason)) => {
                tracing::error!(%reason, "dead-lettering an event that can never apply");
                transport.dead_letter(delivery, &reason).await?;
                Ok(())
            }
            Err(HandleError::Retry(reason)) if attempt.is_last() => {
                let reason = if attempt.number >= attempt.max {
                    format!("gave up after {} attempts: {reason}", attempt.number)
                } else {
                    format!(
                        "gave up within the {} s allowed, after {} attempts: {reason}",
                        settings.retry_for.as_secs(),
                        attempt.number
                    )
                };
                tracing::error!(%reason, "dead-lettering an event");
                transport.dead_letter(delivery, &reason).await?;
                Ok(())
            }
            Err(HandleError::Retry(reason)) => {
                let delay = settings.backoff(attempt.number);
                tracing::warn!(%reason, ?delay, "cannot apply the event yet; retrying later");
                transport.retry_later(delivery, delay).await?;
                Ok(())
            }
        }
    }
    .instrument(span)
    .await
}

/// Applies `envelope` once: `true` when applied now, `false` when it was
/// before. A database error is a `Retry`, a panic a `Reject`.
async fn apply(
    pool: &PgPool,
    handler: &dyn Handler,
    relay: &Relay,
    envelope: &Envelope,
    attempt: Attempt,
) -> Result<bool, HandleError> {
    use futures_util::FutureExt;
    let mut tx = pool.begin().await?;
    let first_time = sqlx::query(
        "INSERT INTO inbox (event_id, event_name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(envelope.meta.event_id)
    .bind(&envelope.meta.event_name)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first_time {
        return Ok(false);
    }
    let handled = std::panic::AssertUnwindSafe(handler.handle(&mut tx, envelope, attempt))
        .catch_unwind()
        .await;
    match handled {
        Ok(outcome) => outcome?,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            return Err(HandleError::Reject(format!(
                "the handler panicked: {message}"
            )));
        }
    }
    tx.commit().await?;
    relay.wake();
    Ok(true)
}
