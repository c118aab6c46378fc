//! The event bus in a PostgreSQL database, for local runs and tests: one
//! table of messages, each addressed to a consuming service's queue, taken
//! with `FOR UPDATE SKIP LOCKED`; a table of dead letters; and `NOTIFY` so
//! that a waiting consumer wakes as soon as a message is sent.
//!
//! It keeps SQS's semantics: a received message is hidden for the
//! visibility timeout and comes back unless acknowledged, and one received
//! more than `max_receive` times goes to the dead letters.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Mutex;

use super::{BoxFuture, DeadLetter, Delivery, Envelope, Scrub, Transport};

const CHANNEL: &str = "event_bus";
/// A waiting consumer also looks again this often, for messages whose
/// retry delay has passed (nobody notifies about those).
const RECHECK: Duration = Duration::from_millis(200);

pub struct PgTransport {
    pool: PgPool,
    /// This service's queue.
    queue: String,
    max_receive: u32,
    visibility: Duration,
    listener: Mutex<Option<PgListener>>,
}

impl PgTransport {
    /// Connects to the bus database (created if missing) and creates its
    /// tables if needed.
    pub async fn connect(
        url: &str,
        service: &str,
        max_receive: u32,
        visibility: Duration,
    ) -> anyhow::Result<PgTransport> {
        // The bus database is created like a service's own, and has no
        // migrations: its tables are made just below.
        let pool = service_kit::db::connect(url, 4, &sqlx::migrate::Migrator::DEFAULT)
            .await
            .context("cannot connect to the event bus database (EVENTS_DATABASE_URL)")?;
        install(&pool).await?;
        Ok(PgTransport {
            pool,
            queue: service.to_string(),
            max_receive,
            visibility,
            listener: Mutex::new(None),
        })
    }

    async fn take(&self, max: usize) -> anyhow::Result<Vec<Delivery>> {
        let rows: Vec<(i64, String, i32, f64)> = sqlx::query_as(
            "UPDATE bus_messages m
                SET receive_count = m.receive_count + 1,
                    visible_at = now() + make_interval(secs => $3)
               FROM (SELECT id FROM bus_messages
                      WHERE queue = $1 AND visible_at <= now()
                      ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) picked
              WHERE m.id = picked.id
          RETURNING m.id, m.body, m.receive_count, extract(epoch FROM m.sent_at)::float8",
        )
        .bind(&self.queue)
        .bind(max as i64)
        .bind(self.visibility.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for (id, body, receive_count, sent_at) in rows {
            let delivery = Delivery {
                body,
                receive_count: receive_count as u32,
                handle: id.to_string(),
                sent_at: std::time::UNIX_EPOCH
                    + Duration::try_from_secs_f64(sent_at).unwrap_or_default(),
            };
            if delivery.receive_count > self.max_receive {
                // Received and never settled that often: a consumer keeps
                // dying on it. Moved aside, as SQS's redrive policy does.
                self.dead_letter(
                    &delivery,
                    &format!(
                        "received {} times without being acknowledged",
                        self.max_receive
                    ),
                )
                .await?;
            } else {
                deliveries.push(delivery);
            }
        }
        deliveries.sort_by_key(|d| d.handle.parse::<i64>().unwrap_or_default());
        Ok(deliveries)
    }

    fn id(delivery: &Delivery) -> anyhow::Result<i64> {
        delivery
            .handle
            .parse()
            .context("not a delivery of the PostgreSQL transport")
    }

    /// Sends a raw body to this service's own queue (tests use it for
    /// messages no producer would write).
    pub async fn send_raw(&self, body: &str) -> anyhow::Result<()> {
        send(&self.pool, &[self.queue.as_str()], body).await
    }

    /// Messages waiting or in flight on this service's queue.
    pub async fn depth(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM bus_messages WHERE queue = $1")
                .bind(&self.queue)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

async fn install(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7202)")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS bus_messages (
            id bigserial PRIMARY KEY,
            queue text NOT NULL,
            body text NOT NULL,
            receive_count integer NOT NULL DEFAULT 0,
            visible_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS bus_messages_ready ON bus_messages (queue, visible_at, id);
        CREATE TABLE IF NOT EXISTS bus_dead_letters (
            id bigint PRIMARY KEY,
            queue text NOT NULL,
            body text NOT NULL,
            reason text NOT NULL,
            receive_count integer NOT NULL,
            sent_at timestamptz NOT NULL,
            dead_at timestamptz NOT NULL DEFAULT now()
        );",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One copy of `body` on each queue, and a wake-up for their consumers.
async fn send(pool: &PgPool, queues: &[&str], body: &str) -> anyhow::Result<()> {
    if queues.is_empty() {
        return Ok(());
    }
    let queues: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO bus_messages (queue, body) SELECT q, $2 FROM unnest($1::text[]) q")
        .bind(&queues)
        .bind(body)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, q) FROM unnest($2::text[]) q")
        .bind(CHANNEL)
        .bind(&queues)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

impl Transport for PgTransport {
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let queues = contracts::consumers_of(envelope.name());
            send(&self.pool, &queues, &envelope.to_json()).await
        })
    }

    fn receive(&self, max: usize, wait: Duration) -> BoxFuture<'_, anyhow::Result<Vec<Delivery>>> {
        Box::pin(async move {
            let deadline = Instant::now() + wait;
            let mut listener = self.listener.lock().await;
            if listener.is_none() {
                let mut l = PgListener::connect_with(&self.pool).await?;
                l.listen(CHANNEL).await?;
                *listener = Some(l);
            }
            let listener = listener.as_mut().expect("listening");
            loop {
                let taken = self.take(max).await?;
                let left = deadline.saturating_duration_since(Instant::now());
                if !taken.is_empty() || left.is_zero() {
                    return Ok(taken);
                }
                // Any notification is a reason to look; a timeout too.
                if let Ok(Ok(Some(_))) =
                    tokio::time::timeout(left.min(RECHECK), listener.try_recv()).await
                {
                    // Drain what else arrived meanwhile without waiting.
                    while let Ok(Ok(Some(_))) =
                        tokio::time::timeout(Duration::ZERO, listener.try_recv()).await
                    {
                    }
                }
            }
        })
    }

    fn ack<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM bus_messages WHERE id = $1")
                .bind(Self::id(delivery)?)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn retry_later<'a>(
        &'a self,
        delivery: &'a Delivery,
        delay: Duration,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE bus_messages SET visible_at = now() + make_interval(secs => $2) WHERE id = $1",
            )
            .bind(Self::id(delivery)?)
            .bind(delay.as_secs_f64())
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn dead_letter<'a>(
        &'a self,
        delivery: &'a Delivery,
        reason: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            sqlx::query(
                "WITH moved AS (DELETE FROM bus_messages WHERE id = $1 RETURNING *)
                 INSERT INTO bus_dead_letters (id, queue, body, reason, receive_count, sent_at)
                 SELECT id, queue, body, $2, receive_count, sent_at FROM moved
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(Self::id(delivery)?)
            .bind(reason)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, anyhow::Result<Vec<DeadLetter>>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT body, reason FROM bus_dead_letters WHERE queue = $1 ORDER BY dead_at, id",
            )
            .bind(&self.queue)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .into_iter()
                .map(|(body, reason)| DeadLetter { body, reason })
                .collect())
        })
    }

    fn scrub<'a>(
        &'a self,
        about: &'a str,
        scrub: &'a Scrub,
    ) -> BoxFuture<'a, anyhow::Result<usize>> {
        Box::pin(async move {
            let mut rewritten = 0;
            for table in ["bus_dead_letters", "bus_messages"] {
                let mut tx = self.pool.begin().await?;
                // Locked, so a consumer taking one meanwhile waits for it.
                let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
                    "SELECT id, body FROM {table} WHERE queue = $1 AND strpos(body, $2) > 0 FOR UPDATE"
                ))
                .bind(&self.queue)
                .bind(about)
                .fetch_all(&mut *tx)
                .await?;
                for (id, body) in rows {
                    if let Some(clean) = scrub(&body) {
                        sqlx::query(&format!("UPDATE {table} SET body = $2 WHERE id = $1"))
                            .bind(id)
                            .bind(clean)
                            .execute(&mut *tx)
                            .await?;
                        rewritten += 1;
                    }
                }
                tx.commit().await?;
            }
            Ok(rewritten)
        })
    }
}
