//! Publishes what the outbox holds, in the order it was written, and marks
//! it sent. Several replicas may run a relay: `SKIP LOCKED` gives each row
//! to one of them. A crash after publishing and before marking publishes
//! the event again; the consumers' inbox makes that harmless.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{Envelope, Transport};

const BATCH: i64 = 100;
/// Published rows are kept this long for inspection, then removed.
const KEEP_PUBLISHED: &str = "7 days";

/// Wakes the relay when a transaction with events has committed, so events
/// go out at once instead of at the next sweep.
#[derive(Clone, Default)]
pub struct Relay {
    wake: Arc<Notify>,
}

impl Relay {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Runs the relay of `pool` on `transport` until the task is aborted.
pub fn spawn_relay(
    pool: PgPool,
    transport: Arc<dyn Transport>,
    relay: Relay,
    poll: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut sweeps = 0u64;
        loop {
            match publish_pending(&pool, transport.as_ref()).await {
                // A full batch: more may be waiting.
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot publish the outbox; retrying")
                }
            }
            sweeps += 1;
            if sweeps.is_multiple_of(3600) {
                let _ = sqlx::query(&format!(
                    "DELETE FROM outbox WHERE published_at < now() - interval '{KEEP_PUBLISHED}'"
                ))
                .execute(&pool)
                .await;
            }
            tokio::select! {
                _ = relay.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    })
}

/// Publishes one batch; returns how many went out.
pub async fn publish_pending(pool: &PgPool, transport: &dyn Transport) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, envelope FROM outbox WHERE published_at IS NULL \
         ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut published = Vec::with_capacity(rows.len());
    let mut failure = None;
    for (id, text) in rows {
        let envelope = match Envelope::parse(&text) {
            Ok(e) => e,
            Err(e) => {
                // Written by this service, so this is a bug; do not block the rest.
                tracing::error!(%id, error = %e, "an outbox row is not an envelope; skipping it");
                published.push(id);
                continue;
            }
        };
        match transport.publish(&envelope).await {
            Ok(()) => {
                tracing::debug!(event = %envelope.meta.event_name, event_id = %id, "published");
                published.push(id);
            }
            Err(e) => {
                // Stop here so later events do not overtake this one.
                failure = Some(e);
                break;
            }
        }
    }
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
        .bind(&published)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    match failure {
        Some(e) => Err(e.context(format!("published {} events, then failed", published.len()))),
        None => Ok(published.len()),
    }
}
