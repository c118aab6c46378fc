//! Every event of the saga, version 1. Money is integer cents (BRL);
//! times are RFC 3339 in UTC.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Event;

macro_rules! event {
    ($type:ty, $name:literal, $version:literal) => {
        impl Event for $type {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
            fn correlation_id(&self) -> Uuid {
                self.order_id
            }
        }
    };
}

/// Who ordered: a registered customer or a guest. `name` is no longer
/// sent (tokens carry none); events made before still hold it until the
/// customer's erasure scrubs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: Option<String>,
    pub name: Option<String>,
}

/// A line of an order, priced from the catalog when it was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderedItem {
    pub product_id: Uuid,
    pub name: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
    pub note: Option<String>,
}

/// A new order awaits payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order_id: Uuid,
    pub number: i64,
    pub amount_cents: i64,
    pub customer: Customer,
    pub items: Vec<OrderedItem>,
    /// The Mercado Pago point of sale (its external id) of the kiosk the
    /// order was placed at; none for orders from elsewhere (an app), paid
    /// at the payment service's default point of sale. Added within
    /// version 1: older messages have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_of_sale: Option<String>,
}
event!(OrderCreated, "order.created", 1);

/// The QR code the customer pays with exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentCreated {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub qr_data: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}
event!(PaymentCreated, "payment.created", 1);

/// Mercado Pago confirmed the payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentApproved {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub provider_payment_id: String,
    pub amount_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub approved_at: OffsetDateTime,
}
event!(PaymentApproved, "payment.approved", 1);

/// Why a payment ended without money: rejected, expired or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentEnded {
    pub order_id: Uuid,
    pub payment_id: Uuid,
    pub reason: String,
}

macro_rules! payment_end {
    ($type:ident, $name:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $type(pub PaymentEnded);
        impl Event for $type {
            const NAME: &'static str = $name;
            const VERSION: u32 = 1;
            fn correlation_id(&self) -> Uuid {
                self.0.order_id
            }
        }
    };
}
payment_end!(
    PaymentRejected,
    "payment.rejected",
    "Mercado Pago rejected the payment."
);
payment_end!(
    PaymentExpired,
    "payment.expired",
    "Nobody paid before the QR code expired."
);
payment_end!(
    PaymentFailed,
    "payment.failed",
    "No QR code could be made: Mercado Pago kept failing."
);

/// A line of a kitchen ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketItem {
    pub name: String,
    pub quantity: i32,
    pub note: Option<String>,
}

/// The order is paid: the kitchen may start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub order_id: Uuid,
    pub number: i64,
    /// What the kitchen calls the order by: [`order_label`] (events made
    /// before held the customer's name).
    pub customer_name: String,
    pub items: Vec<TicketItem>,
}
event!(OrderPaid, "order.paid", 1);

/// The order will never be served; its payment is voided or refunded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: Uuid,
    pub reason: String,
}
event!(OrderCancelled, "order.cancelled", 1);

/// A step of the kitchen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KitchenStep {
    pub order_id: Uuid,
    pub ticket_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

macro_rules! kitchen_step {
    ($type:ident, $name:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $type(pub KitchenStep);
        impl Event for $type {
            const NAME: &'static str = $name;
            const VERSION: u32 = 1;
            fn correlation_id(&self) -> Uuid {
                self.0.order_id
            }
        }
    };
}
kitchen_step!(
    ProductionStarted,
    "production.started",
    "The kitchen started the order."
);
kitchen_step!(
    ProductionReady,
    "production.ready",
    "The order is ready to be picked up."
);
kitchen_step!(
    ProductionDelivered,
    "production.delivered",
    "The order was handed over."
);

/// What the kitchen and the board call an order: its number, never a name.
pub fn order_label(number: i64) -> String {
    format!("Order #{number}")
}

/// A customer's personal data was erased (LGPD): the services that hold
/// their name scrub it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserAnonymized {
    pub user_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub anonymized_at: OffsetDateTime,
}

impl Event for UserAnonymized {
    const NAME: &'static str = "user.anonymized";
    const VERSION: u32 = 1;
    fn correlation_id(&self) -> Uuid {
        self.user_id
    }
}

/// An order whose customer was erased: its name leaves the kitchen's
/// tickets and every message still carrying it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderAnonymized {
    pub order_id: Uuid,
    pub number: i64,
}
event!(OrderAnonymized, "order.anonymized", 1);

/// `body` (an event envelope) without the name of the customer of
/// `order_id`; `None` when it holds no such name.
pub fn without_customer_name(body: &str, order_id: Uuid, number: i64) -> Option<String> {
    let mut envelope = crate::Envelope::parse(body).ok()?;
    if envelope.meta.correlation_id != order_id.to_string() {
        return None;
    }
    let payload = envelope.payload.as_object_mut()?;
    let scrubbed = match envelope.meta.event_name.as_str() {
        OrderCreated::NAME => {
            let name = payload.get_mut("customer")?.get_mut("name")?;
            (!name.is_null()).then(|| *name = serde_json::Value::Null)
        }
        OrderPaid::NAME => {
            let label = order_label(number);
            let name = payload.get_mut("customer_name")?;
            (name.as_str() != Some(label.as_str())).then(|| *name = label.into())
        }
        _ => None,
    };
    scrubbed.map(|()| envelope.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    #[test]
    fn the_customer_s_name_leaves_the_events_of_their_order_only() {
        let order_id = Uuid::now_v7();
        let created = Envelope::new(
            "order",
            &OrderCreated {
                order_id,
                number: 7,
                amount_cents: 1000,
                customer: Customer {
                    id: Some(Uuid::now_v7().to_string()),
                    name: Some("Ana Souza".into()),
                },
                items: vec![],
                point_of_sale: Some("TOTEM01".into()),
            },
        )
        .to_json();
        let paid = Envelope::new(
            "order",
            &OrderPaid {
                order_id,
                number: 7,
                customer_name: "Ana Souza".into(),
                items: vec![],
            },
        )
        .to_json();
        for body in [&created, &paid] {
            let scrubbed = without_customer_name(body, order_id, 7).expect("scrubbed");
            assert!(!scrubbed.contains("Ana"), "{scrubbed}");
            // Once is enough: the scrubbed body holds no name any more.
            assert_eq!(without_customer_name(&scrubbed, order_id, 7), None);
            assert_eq!(without_customer_name(body, Uuid::now_v7(), 7), None);
        }
        assert!(
            without_customer_name(&paid, order_id, 7)
                .unwrap()
                .contains("Order #7")
        );
        assert_eq!(without_customer_name("not json", order_id, 7), None);
    }

    #[test]
    fn an_order_created_before_kiosks_reads_as_placed_elsewhere() {
        let older = serde_json::json!({
            "order_id": Uuid::now_v7(), "number": 1, "amount_cents": 100,
            "customer": {"id": null, "name": null}, "items": [],
        });
        let read: OrderCreated = serde_json::from_value(older).unwrap();
        assert_eq!(read.point_of_sale, None);
        let written = serde_json::to_value(&read).unwrap();
        assert!(written.get("point_of_sale").is_none(), "{written}");
    }
}
