//! The order's side of the saga: payment and kitchen events move it along
//! its status machine. An event that does not fit the order's current
//! status is not applied; it is retried (it may have overtaken the event
//! before it) and dead-lettered if it never fits.

use contracts::events::{
    KitchenStep, OrderAnonymized, OrderCancelled, OrderPaid, PaymentApproved, PaymentCreated,
    PaymentEnded, PaymentExpired, PaymentFailed, PaymentRejected, ProductionDelivered,
    ProductionReady, ProductionStarted, TicketItem, UserAnonymized, order_label,
    without_customer_name,
};
use contracts::{Envelope, Event};
use service_messaging::consumer::Attempt;
use service_messaging::{BoxFuture, HandleError, Handler, outbox};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::orders::record;
use crate::{SERVICE, Status};

pub struct OrderSaga;

impl Handler for OrderSaga {
    fn events(&self) -> &'static [&'static str] {
        &[
            PaymentCreated::NAME,
            PaymentApproved::NAME,
            PaymentRejected::NAME,
            PaymentExpired::NAME,
            PaymentFailed::NAME,
            ProductionStarted::NAME,
            ProductionReady::NAME,
            ProductionDelivered::NAME,
            UserAnonymized::NAME,
        ]
    }

    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        envelope: &'a Envelope,
        _attempt: Attempt,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let event_id = envelope.meta.event_id;
            match envelope.name() {
                PaymentCreated::NAME => qr_ready(tx, envelope.decode()?).await,
                PaymentApproved::NAME => paid(tx, envelope.decode()?, event_id).await,
                PaymentRejected::NAME => {
                    let PaymentRejected(e) = envelope.decode()?;
                    cancel(tx, e, "payment rejected", event_id).await
                }
                PaymentExpired::NAME => {
                    let PaymentExpired(e) = envelope.decode()?;
                    cancel(tx, e, "payment expired", event_id).await
                }
                PaymentFailed::NAME => {
                    let PaymentFailed(e) = envelope.decode()?;
                    cancel(tx, e, "payment could not be started", event_id).await
                }
                ProductionStarted::NAME => {
                    let ProductionStarted(step) = envelope.decode()?;
                    kitchen(tx, step, Status::InPreparation, "kitchen started", event_id).await
                }
                ProductionReady::NAME => {
                    let ProductionReady(step) = envelope.decode()?;
                    kitchen(tx, step, Status::Ready, "ready for pick-up", event_id).await
                }
                ProductionDelivered::NAME => {
                    let ProductionDelivered(step) = envelope.decode()?;
                    kitchen(
                        tx,
                        step,
                        Status::Finished,
                        "handed to the customer",
                        event_id,
                    )
                    .await
                }
                UserAnonymized::NAME => erase_customer(tx, envelope.decode()?).await,
                other => Err(HandleError::Reject(format!("no handler for {other}"))),
            }
        })
    }
}

/// Moves the order from the status `to` comes from into `to`, recording
/// why; `Retry` when the order is elsewhere.
async fn transition(
    tx: &mut PgConnection,
    order_id: Uuid,
    to: Status,
    cause: &str,
    event_id: Uuid,
) -> Result<(), HandleError> {
    let from = to.comes_from().expect("a status reached by a transition");
    let moved = sqlx::query(
        "UPDATE orders SET status = $3, updated_at = now() WHERE id = $1 AND status = $2",
    )
    .bind(order_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !moved {
        return Err(not_fitting(tx, order_id, from, to).await);
    }
    record(tx, order_id, to, cause, Some(event_id)).await?;
    Ok(())
}

async fn current_status(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<Status>> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(tx)
        .await?;
    Ok(status.and_then(|s| Status::parse(&s)))
}

async fn not_fitting(
    tx: &mut PgConnection,
    order_id: Uuid,
    from: Status,
    to: Status,
) -> HandleError {
    match current_status(tx, order_id).await {
        // Ahead of the event it needs (a kitchen step before the payment's):
        // that one comes, so this fits later.
        Ok(Some(now)) if now.may_reach(from) => HandleError::Retry(format!(
            "order {order_id} is {}; moving it to {} needs {}",
            now.as_str(),
            to.as_str(),
            from.as_str()
        )),
        // Past it, or cancelled: it never will.
        Ok(Some(now)) => HandleError::Reject(format!(
            "order {order_id} is {}, and can never be {} again to move to {}",
            now.as_str(),
            from.as_str(),
            to.as_str()
        )),
        Ok(None) => HandleError::Retry(format!("no order {order_id}")),
        Err(e) => e.into(),
    }
}

async fn qr_ready(tx: &mut PgConnection, event: PaymentCreated) -> Result<(), HandleError> {
    let updated = sqlx::query(
        "UPDATE orders SET payment_id = $2, qr_data = $3, payment_expires_at = $4, updated_at = now() \
         WHERE id = $1",
    )
    .bind(event.order_id)
    .bind(event.payment_id)
    .bind(&event.qr_data)
    .bind(event.expires_at)
    .execute(tx)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(HandleError::Retry(format!("no order {}", event.order_id)));
    }
    Ok(())
}

async fn paid(
    tx: &mut PgConnection,
    event: PaymentApproved,
    event_id: Uuid,
) -> Result<(), HandleError> {
    if current_status(tx, event.order_id).await? == Some(Status::Cancelled) {
        // Paid too late: ask for the money back.
        outbox::add(
            tx,
            SERVICE,
            &OrderCancelled {
                order_id: event.order_id,
                reason: "the payment arrived after the order was cancelled".into(),
            },
        )
        .await?;
        return Ok(());
    }
    let cause = format!(
        "payment approved (Mercado Pago {})",
        event.provider_payment_id
    );
    transition(tx, event.order_id, Status::Received, &cause, event_id).await?;
    let number: i64 = sqlx::query_scalar("SELECT number FROM orders WHERE id = $1")
        .bind(event.order_id)
        .fetch_one(&mut *tx)
        .await?;
    let items: Vec<(String, i32, Option<String>)> = sqlx::query_as(
        "SELECT name, quantity, note FROM order_items WHERE order_id = $1 ORDER BY position",
    )
    .bind(event.order_id)
    .fetch_all(&mut *tx)
    .await?;
    outbox::add(
        tx,
        SERVICE,
        &OrderPaid {
            order_id: event.order_id,
            number,
            customer_name: order_label(number),
            items: items
                .into_iter()
                .map(|(name, quantity, note)| TicketItem {
                    name,
                    quantity,
                    note,
                })
                .collect(),
        },
    )
    .await?;
    Ok(())
}

async fn cancel(
    tx: &mut PgConnection,
    event: PaymentEnded,
    cause: &str,
    event_id: Uuid,
) -> Result<(), HandleError> {
    let cause = format!("{cause}: {}", event.reason);
    transition(tx, event.order_id, Status::Cancelled, &cause, event_id).await?;
    outbox::add(
        tx,
        SERVICE,
        &OrderCancelled {
            order_id: event.order_id,
            reason: cause,
        },
    )
    .await?;
    Ok(())
}

async fn kitchen(
    tx: &mut PgConnection,
    step: KitchenStep,
    to: Status,
    cause: &str,
    event_id: Uuid,
) -> Result<(), HandleError> {
    transition(tx, step.order_id, to, cause, event_id).await
}

/// An erased customer's name leaves their orders (which stay, for the
/// books) and the events this service keeps; each order that carried it
/// goes on as `order.anonymized`, for the services its events reached.
async fn erase_customer(tx: &mut PgConnection, event: UserAnonymized) -> Result<(), HandleError> {
    let named: Vec<(Uuid, i64)> = sqlx::query_as(
        "UPDATE orders SET customer_name = NULL, updated_at = now() \
         WHERE customer_id = $1 AND customer_name IS NOT NULL RETURNING id, number",
    )
    .bind(event.user_id.to_string())
    .fetch_all(&mut *tx)
    .await?;
    for (order_id, number) in &named {
        let (order_id, number) = (*order_id, *number);
        outbox::scrub(tx, &order_id.to_string(), &move |body: &str| {
            without_customer_name(body, order_id, number)
        })
        .await?;
        outbox::add(tx, SERVICE, &OrderAnonymized { order_id, number }).await?;
    }
    tracing::info!(customer = %event.user_id, orders = named.len(), "customer's name erased");
    Ok(())
}
