//! The payment's status machine, applied from what Mercado Pago says.
//!
//! PENDING → APPROVED | REJECTED | EXPIRED | CANCELLED | FAILED, and
//! APPROVED → REFUNDED. Mercado Pago's word is only ever taken from an
//! order read back from its API, never from a notification's body.

use contracts::events::{PaymentApproved, PaymentEnded, PaymentExpired, PaymentRejected};
use serde::Serialize;
use service_messaging::outbox;
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SERVICE;
use crate::mercadopago::{MercadoPago, MpError, MpOrder, Outcome};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    #[serde(skip)]
    pub customer_id: Option<String>,
    pub amount_cents: i64,
    /// PENDING, APPROVED, REJECTED, EXPIRED, CANCELLED, REFUNDED or FAILED.
    pub status: String,
    pub provider_order_id: Option<String>,
    pub provider_payment_id: Option<String>,
    pub qr_data: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub qr_cancelled_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

pub const SELECT_PAYMENT: &str = "SELECT id, order_id, customer_id, amount_cents, status, provider_order_id, \
     provider_payment_id, qr_data, expires_at, qr_cancelled_at, created_at, updated_at FROM payments";

/// The payment of `order_id`, locked until the transaction ends.
pub async fn lock_for_order(
    tx: &mut PgConnection,
    order_id: Uuid,
) -> sqlx::Result<Option<Payment>> {
    sqlx::query_as(&format!("{SELECT_PAYMENT} WHERE order_id = $1 FOR UPDATE"))
        .bind(order_id)
        .fetch_optional(tx)
        .await
}

/// Sets the status and records why.
pub async fn set_status(
    tx: &mut PgConnection,
    payment: &Payment,
    status: &str,
    cause: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE payments SET status = $2, updated_at = now() WHERE id = $1")
        .bind(payment.id)
        .bind(status)
        .execute(&mut *tx)
        .await?;
    history(tx, payment.id, status, cause).await
}

pub async fn history(
    tx: &mut PgConnection,
    payment_id: Uuid,
    status: &str,
    cause: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO payment_history (payment_id, status, cause) VALUES ($1, $2, $3)")
        .bind(payment_id)
        .bind(status)
        .bind(cause)
        .execute(tx)
        .await?;
    Ok(())
}

/// What applying a Mercado Pago payment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Approved,
    Rejected,
    Refunded,
    /// Still pending at Mercado Pago, or already applied.
    Unchanged,
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    MercadoPago(#[from] MpError),
}

/// Applies Mercado Pago's view of an order to our payment (locked by the
/// caller).
pub async fn settle(
    tx: &mut PgConnection,
    mp: &MercadoPago,
    payment: &Payment,
    reported: &MpOrder,
) -> Result<Settled, SettleError> {
    let mismatched = mismatches(mp, payment, reported);
    match (reported.outcome(), payment.status.as_str()) {
        (Outcome::Approved, "PENDING") if !mismatched.is_empty() => {
            // Not this order's payment: the money goes back and the order
            // is cancelled, nothing reaches the kitchen.
            refund(tx, mp, payment, reported).await?;
            let reason = format!(
                "Mercado Pago order {} does not match the payment ({}); refunded",
                reported.id,
                mismatched.join(", ")
            );
            tracing::warn!(payment_id = %payment.id, %reason, "approval refused");
            set_status(tx, payment, "REFUNDED", &reason).await?;
            outbox::add(tx, SERVICE, &PaymentRejected(ended(payment, reason))).await?;
            Ok(Settled::Refunded)
        }
        (Outcome::Approved, "PENDING") => {
            let paid = reported.payment_id().unwrap_or(&reported.id).to_string();
            record_provider_payment(tx, payment, &paid).await?;
            set_status(
                tx,
                payment,
                "APPROVED",
                &format!(
                    "Mercado Pago processed order {} (payment {paid})",
                    reported.id
                ),
            )
            .await?;
            outbox::add(
                tx,
                SERVICE,
                &PaymentApproved {
                    order_id: payment.order_id,
                    payment_id: payment.id,
                    provider_payment_id: paid,
                    amount_cents: reported.paid_cents().unwrap_or(payment.amount_cents),
                    approved_at: OffsetDateTime::now_utc(),
                },
            )
            .await?;
            Ok(Settled::Approved)
        }
        // Money for an order that will not be served: give it back.
        (Outcome::Approved, "REJECTED" | "EXPIRED" | "CANCELLED" | "FAILED") => {
            refund(tx, mp, payment, reported).await?;
            let cause = format!(
                "order {} paid after the payment was {}; refunded",
                reported.id,
                payment.status.to_lowercase()
            );
            set_status(tx, payment, "REFUNDED", &cause).await?;
            Ok(Settled::Refunded)
        }
        (Outcome::Rejected, "PENDING") => {
            let reason = format!(
                "Mercado Pago payment rejected on order {} ({})",
                reported.id,
                reported.status_detail.as_deref().unwrap_or("no detail")
            );
            set_status(tx, payment, "REJECTED", &reason).await?;
            outbox::add(tx, SERVICE, &PaymentRejected(ended(payment, reason))).await?;
            Ok(Settled::Rejected)
        }
        _ => Ok(Settled::Unchanged),
    }
}

/// Gives the money of `reported` back, by the order's id, and records
/// which payment it was.
async fn refund(
    tx: &mut PgConnection,
    mp: &MercadoPago,
    payment: &Payment,
    reported: &MpOrder,
) -> Result<(), SettleError> {
    mp.refund_order(&reported.id).await?;
    let paid = reported.payment_id().unwrap_or(&reported.id);
    record_provider_payment(tx, payment, paid).await?;
    Ok(())
}

async fn record_provider_payment(
    tx: &mut PgConnection,
    payment: &Payment,
    provider_payment_id: &str,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE payments SET provider_payment_id = $2 WHERE id = $1")
        .bind(payment.id)
        .bind(provider_payment_id)
        .execute(&mut *tx)
        .await
        .map(drop)
}

/// How a paid order differs from what this payment's QR asked for: the
/// order itself, the amount paid, its currency (reais only, when stated)
/// and the account it was paid to (when stated).
fn mismatches(mp: &MercadoPago, payment: &Payment, reported: &MpOrder) -> Vec<String> {
    let mut found = Vec::new();
    if payment.provider_order_id.as_deref() != Some(reported.id.as_str()) {
        found.push(format!(
            "order {} is not the payment's {}",
            reported.id,
            payment.provider_order_id.as_deref().unwrap_or("(none)")
        ));
    }
    match reported.paid_cents() {
        Some(paid) if paid == payment.amount_cents => {}
        paid => found.push(format!(
            "paid {} cents, the order is {} cents",
            paid.map_or("an unknown amount of".into(), |p| p.to_string()),
            payment.amount_cents
        )),
    }
    match reported.currency.as_deref() {
        None | Some("BRL") => {}
        Some(other) => found.push(format!("currency {other} instead of BRL")),
    }
    match reported.user_id.as_deref() {
        None => {}
        Some(collector) if collector == mp.collector_id() => {}
        Some(other) => found.push(format!(
            "paid to collector {other} instead of {}",
            mp.collector_id()
        )),
    }
    found
}

pub fn ended(payment: &Payment, reason: String) -> PaymentEnded {
    PaymentEnded {
        order_id: payment.order_id,
        payment_id: payment.id,
        reason,
    }
}

/// Nobody paid in time.
pub async fn expire(tx: &mut PgConnection, payment: &Payment) -> sqlx::Result<()> {
    let reason = "nobody paid before the QR code expired".to_string();
    set_status(tx, payment, "EXPIRED", &reason).await?;
    outbox::add(tx, SERVICE, &PaymentExpired(ended(payment, reason))).await?;
    Ok(())
}
