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

/// Rewrites the outbox's events (published or not) whose envelope holds
/// `about` and that `scrub` changes (an erasure); answers how many.
pub async fn scrub(
    tx: &mut PgConnection,
    about: &str,
    scrub: &crate::Scrub,
) -> sqlx::Result<usize> {
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, envelope FROM outbox WHERE strpos(envelope, $1) > 0 FOR UPDATE")
            .bind(about)
            .fetch_all(&mut *tx)
            .await?;
    let mut rewritten = 0;
    for (id, envelope) in rows {
        if let Some(clean) = scrub(&envelope) {
            sqlx::query("UPDATE outbox SET envelope = $2 WHERE id = $1")
                .bind(id)
                .bind(clean)
                .execute(&mut *tx)
                .await?;
            rewritten += 1;
        }
    }
    Ok(rewritten)
}

/// Events written but not yet published.
pub async fn pending(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
}
