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
use uuid::Uuid;

use crate::ledger;
use crate::mercadopago::{MpError, amount};
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

/// The QR order Mercado Pago is asked for: the order id as reference, one
/// item per line, amounts as strings that add up, a QR of its own (dynamic
/// mode) at the kiosk's point of sale, open as long as the payment is.
fn qr_order_body(payments: &Payments, order: &OrderCreated) -> Value {
    let items: Vec<Value> = order
        .items
        .iter()
        .map(|i| {
            json!({
                "title": i.name,
                "unit_price": amount(i.unit_price_cents),
                "quantity": i.quantity,
                "unit_measure": "unit",
                "external_code": i.product_id.to_string(),
            })
        })
        .collect();
    let total = amount(order.amount_cents);
    let pos = order
        .point_of_sale
        .as_deref()
        .unwrap_or(payments.mp.default_pos());
    // Mercado Pago keeps an order open 30 s at least; a shorter expiry is
    // ours to enforce (the expiry sweep).
    let seconds = payments.expiry.as_secs().max(30);
    json!({
        "type": "qr",
        "external_reference": order.order_id.to_string(),
        "description": format!("Pedido {} da lanchonete", order.number),
        "total_amount": total,
        "expiration_time": format!("PT{seconds}S"),
        "processing_mode": "automatic",
        "config": {"qr": {"external_pos_id": pos, "mode": "dynamic"}},
        "transactions": {"payments": [{"amount": total}]},
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
    let body = qr_order_body(payments, &order);
    // The same key on every attempt: Mercado Pago answers a retry with the
    // order it already made.
    let key = format!("qr-{}", order.order_id);
    let created = payments.mp.create_order(&key, &body).await;
    let created = created.and_then(|o| match o.type_response.qr_data.clone() {
        Some(qr_data) => Ok((o.id, qr_data)),
        None => Err(MpError::Unavailable(format!(
            "order {} came without its QR",
            o.id
        ))),
    });
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
    .bind(qr.as_ref().map(|(order, _)| order))
    .bind(qr.as_ref().map(|(_, qr_data)| qr_data))
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    match qr {
        Some((provider_order, qr_data)) => {
            let cause = format!("QR order {provider_order} created at Mercado Pago");
            ledger::history(tx, id, status, &cause).await?;
            outbox::add(
                tx,
                SERVICE,
                &PaymentCreated {
                    order_id: order.order_id,
                    payment_id: id,
                    qr_data,
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
        let paid = payment.provider_order_id.as_deref().unwrap_or_default();
        let refunded = payments.mp.refund_order(paid).await;
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
    let Some(provider_order) = payment.provider_order_id.as_deref() else {
        return Ok(());
    };
    if payment.qr_cancelled_at.is_some() {
        return Ok(());
    }
    // This order's QR alone: cancelled by its own id.
    match payments.mp.cancel_order(provider_order).await {
        Ok(()) | Err(MpError::NotFound) => {
            sqlx::query(
                "UPDATE payments SET qr_cancelled_at = now(), updated_at = now() WHERE id = $1",
            )
            .bind(payment.id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
        // Being paid, or paid, meanwhile: the approval's notification
        // brings the money back (ledger::settle refunds it).
        Err(MpError::Refused { code, .. }) => {
            let cause = format!("the QR order {provider_order} could not be withdrawn ({code})");
            tracing::warn!(order_id = %cancelled.order_id, %cause, "QR left to its notification");
            let now = if payment.status == "PENDING" {
                "CANCELLED"
            } else {
                payment.status.as_str()
            };
            ledger::history(tx, payment.id, now, &cause).await?;
            Ok(())
        }
        Err(e) => Err(HandleError::Retry(format!(
            "cannot cancel the QR order: {e}"
        ))),
    }
}
