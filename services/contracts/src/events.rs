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
            fn order_id(&self) -> Uuid {
                self.order_id
            }
        }
    };
}

/// Who ordered: a registered customer (id and name) or a guest.
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
            fn order_id(&self) -> Uuid {
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
            fn order_id(&self) -> Uuid {
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
