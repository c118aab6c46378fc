//! The outbox: events written in the same transaction as the change that
//! caused them.

use contracts::{Envelope, Event};
use sqlx::{PgConnection, PgPool};

/// Queues `event` from `source` for publishing when the transaction commits.
pub async fn add<E: Event>(
    tx: &mut PgConnection,
    source: &str,
    event: &E,
) -> sqlx::Result<Envelope> {
    let envelope = Envelope::new(source, event);
    add_envelope(tx, &envelope).await?;
    Ok(envelope)
}

pub async fn add_envelope(tx: &mut PgConnection, envelope: &Envelope) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO outbox (id, event_name, envelope) VALUES ($1, $2, $3)")
        .bind(envelope.meta.event_id)
        .bind(&envelope.meta.event_name)
        .bind(envelope.to_json())
        .execute(tx)
        .await?;
    Ok(())
}

/// Events written but not yet published.
pub async fn pending(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
}
