//! The payment's side of the saga: a new order gets a QR code; a cancelled
//! order gets its QR code withdrawn, or its money back.

use std::sync::Arc;

use contracts::events::{
    OrderAnonymized, OrderCancelled, OrderCreated, PaymentCreated, PaymentFailed,
};
use contracts::{Envelope, Event};
use serde_json::{Value, json};
use service_messaging::consumer::Attempt;
use service_messaging::{BoxFuture, HandleError, Handler, Transport, outbox};
use sqlx::PgConnection;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::ledger;
use crate::mercadopago::MpError;
use crate::{Payments, SERVICE};

/// The payments, and the transport whose messages an erasure scrubs.
pub struct PaymentSaga(pub Arc<Payments>, pub Arc<dyn Transport>);

impl Handler for PaymentSaga {
    fn events(&self) -> &'static [&'static str] {
        &[
            OrderCreated::NAME,
            OrderCancelled::NAME,
            OrderAnonymized::NAME,
        ]
    }

    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        envelope: &'a Envelope,
        attempt: Attempt,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            match envelope.name() {
                OrderCreated::NAME => open(&self.0, tx, envelope.decode()?, attempt).await,
                OrderCancelled::NAME => close(&self.0, tx, envelope.decode()?).await,
                // Payments hold no name; `order.created` messages may.
                OrderAnonymized::NAME => {
                    service_messaging::scrub_order(self.1.as_ref(), &envelope.decode()?)
                        .await
                        .map(drop)
                }
                other => Err(HandleError::Reject(format!("no handler for {other}"))),
            }
        })
    }
}

fn reais(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// The QR order Mercado Pago is asked for: the order id as reference, one
/// item per line, totals that add up.
fn qr_order_body(payments: &Payments, order: &OrderCreated, expires_at: OffsetDateTime) -> Value {
    let items: Vec<Value> = order
        .items
        .iter()
        .map(|i| {
            json!({
                "sku_number": i.product_id.to_string(),
                "category": "food",
                "title": i.name,
                "unit_price": reais(i.unit_price_cents),
                "quantity": i.quantity,
                "unit_measure": "unit",
                "total_amount": reais(i.unit_price_cents * i64::from(i.quantity)),
            })
        })
        .collect();
    json!({
        "external_reference": order.order_id.to_string(),
        "title": format!("Pedido {}", order.number),
        "description": format!("Pedido {} da lanchonete", order.number),
        "notification_url": payments.notification_url,
        "total_amount": reais(order.amount_cents),
        "expiration_date": expires_at.format(&Rfc3339).unwrap_or_default(),
        "items": items,
    })
}

async fn open(
    payments: &Payments,
    tx: &mut PgConnection,
    order: OrderCreated,
    attempt: Attempt,
) -> Result<(), HandleError> {
    if ledger::lock_for_order(tx, order.order_id).await?.is_some() {
        return Ok(());
    }
    let id = Uuid::now_v7();
    let expires_at = OffsetDateTime::now_utc() + payments.expiry;
    let body = qr_order_body(payments, &order, expires_at);
    // The same key on every attempt: Mercado Pago answers a retry with the
    // QR order it already made.
    let key = format!("qr-{}", order.order_id);
    let created = payments.mp.create_qr_order(&key, &body).await;
    let (status, qr) = match created {
        Ok(qr) => ("PENDING", Some(qr)),
        Err(MpError::Unavailable(e)) if !attempt.is_last() => {
            return Err(HandleError::Retry(format!(
                "cannot create the QR order: {e}"
            )));
        }
        Err(e) => {
            tracing::error!(order_id = %order.order_id, error = %e, "giving up on the QR order");
            ("FAILED", None)
        }
    };
    sqlx::query(
        "INSERT INTO payments (id, order_id, customer_id, amount_cents, status, provider_order_id, qr_data, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(order.order_id)
    .bind(&order.customer.id)
    .bind(order.amount_cents)
    .bind(status)
    .bind(qr.as_ref().map(|q| &q.in_store_order_id))
    .bind(qr.as_ref().map(|q| &q.qr_data))
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    match qr {
        Some(qr) => {
            ledger::history(tx, id, status, "QR order created at Mercado Pago").await?;
            outbox::add(
                tx,
                SERVICE,
                &PaymentCreated {
                    order_id: order.order_id,
                    payment_id: id,
                    qr_data: qr.qr_data,
                    expires_at,
                },
            )
            .await?;
        }
        None => {
            let reason = "Mercado Pago did not create the QR order".to_string();
            ledger::history(tx, id, status, &reason).await?;
            let failed = contracts::events::PaymentEnded {
                order_id: order.order_id,
                payment_id: id,
                reason,
            };
            outbox::add(tx, SERVICE, &PaymentFailed(failed)).await?;
        }
    }
    Ok(())
}

async fn close(
    payments: &Payments,
    tx: &mut PgConnection,
    cancelled: OrderCancelled,
) -> Result<(), HandleError> {
    let Some(payment) = ledger::lock_for_order(tx, cancelled.order_id).await? else {
        tracing::info!(order_id = %cancelled.order_id, "no payment to cancel");
        return Ok(());
    };
    if payment.status == "PENDING" {
        ledger::set_status(
            tx,
            &payment,
            "CANCELLED",
            &format!("order cancelled: {}", cancelled.reason),
        )
        .await?;
    }
    if payment.status == "APPROVED" {
        // The order was cancelled although its payment went through.
        // An approved payment always has Mercado Pago's id (see ledger::settle).
        let paid = payment.provider_payment_id.as_deref().unwrap_or_default();
        let refunded = payments.mp.refund(paid).await;
        refunded.map_err(|e| HandleError::Retry(e.to_string()))?;
        ledger::set_status(
            tx,
            &payment,
            "REFUNDED",
            &format!("order cancelled: {}; refunded", cancelled.reason),
        )
        .await?;
        return Ok(());
    }
    if payment.qr_cancelled_at.is_none() && payment.provider_order_id.is_some() {
        payments
            .mp
            .cancel_qr_order()
            .await
            .map_err(|e| HandleError::Retry(format!("cannot cancel the QR order: {e}")))?;
        sqlx::query(
            "UPDATE payments SET qr_cancelled_at = now(), updated_at = now() WHERE id = $1",
        )
        .bind(payment.id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
