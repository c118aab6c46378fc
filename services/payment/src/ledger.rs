//! The payment's status machine, applied from what Mercado Pago says.
//!
//! PENDING → APPROVED | REJECTED | EXPIRED | CANCELLED | FAILED, and
//! APPROVED → REFUNDED. Mercado Pago's word is only ever taken from a
//! payment read back from its API, never from a notification's body.

use contracts::events::{PaymentApproved, PaymentEnded, PaymentExpired, PaymentRejected};
use serde::Serialize;
use service_messaging::outbox;
use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::SERVICE;
use crate::mercadopago::{MercadoPago, MpError, MpPayment};

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

fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

/// Applies Mercado Pago's view of a payment to ours (locked by the caller).
pub async fn settle(
    tx: &mut PgConnection,
    mp: &MercadoPago,
    payment: &Payment,
    reported: &MpPayment,
) -> Result<Settled, SettleError> {
    let mismatched = mismatches(mp, payment, reported);
    match (reported.status.as_str(), payment.status.as_str()) {
        ("approved", "PENDING") if !mismatched.is_empty() => {
            // Not this order's payment: the money goes back and the order
            // is cancelled, nothing reaches the kitchen.
            refund(tx, mp, payment, reported).await?;
            let reason = format!(
                "Mercado Pago payment {} does not match the order ({}); refunded",
                reported.id,
                mismatched.join(", ")
            );
            tracing::warn!(payment_id = %payment.id, %reason, "approval refused");
            set_status(tx, payment, "REFUNDED", &reason).await?;
            outbox::add(tx, SERVICE, &PaymentRejected(ended(payment, reason))).await?;
            Ok(Settled::Refunded)
        }
        ("approved", "PENDING") => {
            record_provider_payment(tx, payment, &reported.id).await?;
            set_status(
                tx,
                payment,
                "APPROVED",
                &format!("Mercado Pago approved payment {}", reported.id),
            )
            .await?;
            outbox::add(
                tx,
                SERVICE,
                &PaymentApproved {
                    order_id: payment.order_id,
                    payment_id: payment.id,
                    provider_payment_id: reported.id.clone(),
                    amount_cents: cents(reported.transaction_amount),
                    approved_at: OffsetDateTime::now_utc(),
                },
            )
            .await?;
            Ok(Settled::Approved)
        }
        // Money for an order that will not be served: give it back.
        ("approved", "REJECTED" | "EXPIRED" | "CANCELLED" | "FAILED") => {
            refund(tx, mp, payment, reported).await?;
            let cause = format!(
                "payment {} approved after the payment was {}; refunded",
                reported.id,
                payment.status.to_lowercase()
            );
            set_status(tx, payment, "REFUNDED", &cause).await?;
            Ok(Settled::Refunded)
        }
        ("rejected" | "cancelled", "PENDING") => {
            let reason = format!("Mercado Pago {} payment {}", reported.status, reported.id);
            set_status(tx, payment, "REJECTED", &reason).await?;
            outbox::add(tx, SERVICE, &PaymentRejected(ended(payment, reason))).await?;
            Ok(Settled::Rejected)
        }
        _ => Ok(Settled::Unchanged),
    }
}

/// Gives the money of `reported` back and records which payment it was.
async fn refund(
    tx: &mut PgConnection,
    mp: &MercadoPago,
    payment: &Payment,
    reported: &MpPayment,
) -> Result<(), SettleError> {
    mp.refund(&reported.id).await?;
    record_provider_payment(tx, payment, &reported.id).await?;
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

/// How an approved payment differs from what the order's QR asked for:
/// its amount, its currency (reais only) and the account it was paid to.
fn mismatches(mp: &MercadoPago, payment: &Payment, reported: &MpPayment) -> Vec<String> {
    let mut found = Vec::new();
    let paid = cents(reported.transaction_amount);
    if paid != payment.amount_cents {
        found.push(format!(
            "paid {paid} cents, the order is {} cents",
            payment.amount_cents
        ));
    }
    match reported.currency_id.as_deref() {
        Some("BRL") => {}
        other => found.push(format!(
            "currency {} instead of BRL",
            other.unwrap_or("unknown")
        )),
    }
    match reported.collector_id.as_deref() {
        Some(collector) if collector == mp.collector_id() => {}
        other => found.push(format!(
            "paid to collector {} instead of {}",
            other.unwrap_or("unknown"),
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
