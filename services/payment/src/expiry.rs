//! Payments nobody paid: a PENDING payment past its expiry is checked with
//! Mercado Pago once more (its order read by id: a notification may have
//! been lost), then settled from that answer or EXPIRED.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::Payments;
use crate::ledger::{self, Settled};
use crate::mercadopago::MpError;
use service_messaging::Relay;

const BATCH: i64 = 20;

pub fn spawn(
    pool: PgPool,
    payments: Arc<Payments>,
    relay: Relay,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sweep(&pool, &payments).await {
                Ok(0) => {}
                Ok(n) => {
                    relay.wake();
                    tracing::info!(settled = n, "expired payments settled");
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot check expired payments")
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Settles the payments past their expiry; returns how many changed.
pub async fn sweep(pool: &PgPool, payments: &Payments) -> anyhow::Result<usize> {
    let due: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT order_id, provider_order_id FROM payments WHERE status = 'PENDING' AND expires_at < now() \
         ORDER BY expires_at LIMIT $1",
    )
    .bind(BATCH)
    .fetch_all(pool)
    .await?;
    let mut changed = 0;
    for (order_id, provider_order) in due {
        // Ask Mercado Pago first, outside any lock.
        let reported = match provider_order.as_deref().map(|id| payments.mp.order(id)) {
            None => None,
            Some(read) => match read.await {
                Ok(order) => Some(order),
                Err(MpError::NotFound) => None,
                Err(e) => {
                    tracing::warn!(%order_id, error = %e, "cannot check an expired payment; next sweep");
                    continue;
                }
            },
        };
        let mut tx = pool.begin().await?;
        let Some(payment) = ledger::lock_for_order(&mut tx, order_id).await? else {
            continue;
        };
        if payment.status != "PENDING" {
            continue; // A webhook settled it meanwhile.
        }
        let settled = match &reported {
            Some(order) => ledger::settle(&mut tx, &payments.mp, &payment, order).await?,
            None => Settled::Unchanged,
        };
        if settled == Settled::Unchanged {
            ledger::expire(&mut tx, &payment).await?;
        }
        tx.commit().await?;
        changed += 1;
    }
    Ok(changed)
}
