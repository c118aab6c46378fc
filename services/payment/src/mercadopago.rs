//! The slice of Mercado Pago's **Orders API** the payment service uses: a
//! QR order per order (dynamic mode: a QR of its own, so two customers
//! paying at once never touch each other's), read, cancelled and refunded
//! by its id.

use std::time::Duration;

use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use service_kit::config::Secret;
use service_kit::http_client::{HttpClient, Response};

#[derive(Clone)]
pub struct MercadoPago {
    client: HttpClient,
    base_url: String,
    access_token: Secret,
    collector_id: String,
    default_pos: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MpError {
    /// Network trouble, 5xx or 429: worth retrying.
    #[error("Mercado Pago is unavailable: {0}")]
    Unavailable(String),
    #[error("Mercado Pago has no such order")]
    NotFound,
    /// A 4xx: the request itself is wrong, or the order is past what was
    /// asked (`409`); retrying will not help.
    #[error("Mercado Pago refused the request ({status} {code}): {message}")]
    Refused {
        status: u16,
        /// Mercado Pago's error code, such as `order_already_canceled`.
        code: String,
        message: String,
    },
}

/// An order as Mercado Pago reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct MpOrder {
    pub id: String,
    /// `created`, `processing`, `action_required`, `processed`, `canceled`,
    /// `expired`, `refunded`, `failed`…
    pub status: String,
    #[serde(default)]
    pub status_detail: Option<String>,
    pub external_reference: Option<String>,
    #[serde(default)]
    pub total_amount: Option<String>,
    #[serde(default)]
    pub total_paid_amount: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    /// The account the order belongs to, whose money it collects.
    #[serde(default, deserialize_with = "optional_id_as_text")]
    pub user_id: Option<String>,
    #[serde(default)]
    pub transactions: Transactions,
    #[serde(default)]
    pub type_response: TypeResponse,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Transactions {
    #[serde(default)]
    pub payments: Vec<MpTransaction>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MpTransaction {
    pub id: String,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TypeResponse {
    #[serde(default)]
    pub qr_data: Option<String>,
}

/// What an order's status means for the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not settled yet: open, or a payment under way.
    Pending,
    /// The money is in.
    Approved,
    /// The customer's payment failed.
    Rejected,
    /// Closed without money: cancelled or expired.
    Closed,
    /// The money went back.
    Refunded,
}

impl MpOrder {
    pub fn outcome(&self) -> Outcome {
        match self.status.as_str() {
            "processed" => Outcome::Approved,
            "failed" => Outcome::Rejected,
            "canceled" | "expired" => Outcome::Closed,
            "refunded" => Outcome::Refunded,
            _ => Outcome::Pending,
        }
    }

    /// What was paid, in cents: the paid total, else the payment's amount.
    pub fn paid_cents(&self) -> Option<i64> {
        self.total_paid_amount
            .as_deref()
            .or_else(|| self.transactions.payments.first()?.amount.as_deref())
            .and_then(cents)
    }

    /// The id of the payment within the order (`PAY…`).
    pub fn payment_id(&self) -> Option<&str> {
        self.transactions.payments.first().map(|p| p.id.as_str())
    }
}

/// `"25.90"` in cents.
pub fn cents(amount: &str) -> Option<i64> {
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, "0"));
    let fraction = format!("{fraction:0<2}");
    if fraction.len() != 2 {
        return None;
    }
    Some(whole.parse::<i64>().ok()? * 100 + fraction.parse::<i64>().ok()?)
}

/// Cents as Mercado Pago writes amounts in Brazil: a string, two decimals.
pub fn amount(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn optional_id_as_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// An order id as Mercado Pago makes them (`ORD` and letters and digits):
/// anything else is never sent in a path.
fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

impl MercadoPago {
    pub fn new(
        base_url: &str,
        access_token: Secret,
        collector_id: &str,
        default_pos: &str,
    ) -> MercadoPago {
        MercadoPago {
            client: HttpClient::new(Duration::from_secs(10)),
            base_url: base_url.trim_end_matches('/').to_string(),
            access_token,
            collector_id: collector_id.to_string(),
            default_pos: default_pos.to_string(),
        }
    }

    /// The account this system's payments must be paid to.
    pub fn collector_id(&self) -> &str {
        &self.collector_id
    }

    /// The point of sale of orders that name none (an app's).
    pub fn default_pos(&self) -> &str {
        &self.default_pos
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Response, MpError> {
        let bearer = format!("Bearer {}", self.access_token.expose());
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(key) = idempotency_key {
            headers.push(("x-idempotency-key", key));
        }
        let url = format!("{}{path}", self.base_url);
        let answer = self
            .client
            .send_json(method, &url, &headers, body)
            .await
            .map_err(|e| MpError::Unavailable(format!("{e:#}")))?;
        match answer.status {
            s if s.is_success() => Ok(answer),
            StatusCode::NOT_FOUND if answer.text().contains("order_not_found") => {
                Err(MpError::NotFound)
            }
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Err(MpError::Unavailable(format!("{s}: {}", answer.text())))
            }
            s => {
                let text = answer.text();
                let code = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_string))
                    .unwrap_or_default();
                Err(MpError::Refused {
                    status: s.as_u16(),
                    code,
                    message: text,
                })
            }
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(answer: Response) -> Result<T, MpError> {
        answer
            .json()
            .map_err(|e| MpError::Unavailable(format!("{e:#}")))
    }

    /// Creates the QR order of `body`; a retry with the same key gets the
    /// order already made.
    pub async fn create_order(
        &self,
        idempotency_key: &str,
        body: &Value,
    ) -> Result<MpOrder, MpError> {
        Self::parse(
            self.call(
                Method::POST,
                "/v1/orders",
                Some(idempotency_key),
                Some(body),
            )
            .await?,
        )
    }

    pub async fn order(&self, id: &str) -> Result<MpOrder, MpError> {
        if !plausible_id(id) {
            return Err(MpError::NotFound);
        }
        Self::parse(
            self.call(Method::GET, &format!("/v1/orders/{id}"), None, None)
                .await?,
        )
    }

    /// Cancels the open order `id`: its QR can no longer be paid. An order
    /// already closed counts as cancelled; one being paid, or paid, is
    /// refused (`Refused` with Mercado Pago's code).
    pub async fn cancel_order(&self, id: &str) -> Result<(), MpError> {
        if !plausible_id(id) {
            return Err(MpError::NotFound);
        }
        let key = format!("cancel-{id}");
        let path = format!("/v1/orders/{id}/cancel");
        match self.call(Method::POST, &path, Some(&key), None).await {
            Ok(_) => Ok(()),
            Err(MpError::Refused { code, .. }) if code == "order_already_canceled" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives all the money of the paid order `id` back.
    pub async fn refund_order(&self, id: &str) -> Result<(), MpError> {
        if !plausible_id(id) {
            return Err(MpError::NotFound);
        }
        let key = format!("refund-{id}");
        let path = format!("/v1/orders/{id}/refund");
        self.call(Method::POST, &path, Some(&key), None)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_and_written_in_reais() {
        assert_eq!(cents("25.90"), Some(2590));
        assert_eq!(cents("25.9"), Some(2590));
        assert_eq!(cents("25"), Some(2500));
        assert_eq!(cents("2.999"), None);
        assert_eq!(amount(2590), "25.90");
        assert_eq!(amount(5), "0.05");
    }

    #[test]
    fn an_order_s_status_says_what_became_of_the_money() {
        let order = |status: &str| MpOrder {
            id: "ORD1".into(),
            status: status.into(),
            status_detail: None,
            external_reference: None,
            total_amount: Some("10.00".into()),
            total_paid_amount: None,
            currency: None,
            user_id: None,
            transactions: Transactions {
                payments: vec![MpTransaction {
                    id: "PAY1".into(),
                    amount: Some("10.00".into()),
                    status: None,
                }],
            },
            type_response: TypeResponse::default(),
        };
        assert_eq!(order("processed").outcome(), Outcome::Approved);
        assert_eq!(order("failed").outcome(), Outcome::Rejected);
        assert_eq!(order("expired").outcome(), Outcome::Closed);
        assert_eq!(order("canceled").outcome(), Outcome::Closed);
        assert_eq!(order("refunded").outcome(), Outcome::Refunded);
        assert_eq!(order("created").outcome(), Outcome::Pending);
        assert_eq!(order("action_required").outcome(), Outcome::Pending);
        assert_eq!(order("processed").paid_cents(), Some(1000));
        assert_eq!(order("processed").payment_id(), Some("PAY1"));
        assert!(!plausible_id("../v1/payments") && plausible_id("ORD01ABC"));
    }
}
