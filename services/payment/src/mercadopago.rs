//! The slice of Mercado Pago's API the payment service uses: dynamic QR
//! orders on a point of sale, payment lookup and search, refunds.

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
    pos_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MpError {
    /// Network trouble, 5xx or 429: worth retrying.
    #[error("Mercado Pago is unavailable: {0}")]
    Unavailable(String),
    #[error("Mercado Pago has no such payment")]
    NotFound,
    /// A 4xx: the request itself is wrong; retrying will not help.
    #[error("Mercado Pago refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
}

#[derive(Debug, Deserialize)]
pub struct QrOrder {
    pub in_store_order_id: String,
    pub qr_data: String,
}

/// A payment as Mercado Pago reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct MpPayment {
    #[serde(deserialize_with = "id_as_text")]
    pub id: String,
    pub status: String,
    pub external_reference: Option<String>,
    #[serde(default)]
    pub transaction_amount: f64,
    #[serde(default)]
    pub currency_id: Option<String>,
    /// Whose account the money went to.
    #[serde(default, deserialize_with = "optional_id_as_text")]
    pub collector_id: Option<String>,
}

#[derive(Deserialize)]
struct Search {
    results: Vec<MpPayment>,
}

fn optional_id_as_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

fn id_as_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

impl MercadoPago {
    pub fn new(
        base_url: &str,
        access_token: Secret,
        collector_id: &str,
        pos_id: &str,
    ) -> MercadoPago {
        MercadoPago {
            client: HttpClient::new(Duration::from_secs(10)),
            base_url: base_url.trim_end_matches('/').to_string(),
            access_token,
            collector_id: collector_id.to_string(),
            pos_id: pos_id.to_string(),
        }
    }

    /// The account this system's payments must be paid to.
    pub fn collector_id(&self) -> &str {
        &self.collector_id
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
            StatusCode::NOT_FOUND => Err(MpError::NotFound),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Err(MpError::Unavailable(format!("{s}: {}", answer.text())))
            }
            s => Err(MpError::Refused {
                status: s.as_u16(),
                message: answer.text(),
            }),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(answer: Response) -> Result<T, MpError> {
        answer
            .json()
            .map_err(|e| MpError::Unavailable(format!("{e:#}")))
    }

    /// Creates the dynamic QR order of `body` on the point of sale.
    pub async fn create_qr_order(
        &self,
        idempotency_key: &str,
        body: &Value,
    ) -> Result<QrOrder, MpError> {
        let path = format!(
            "/instore/orders/qr/seller/collectors/{}/pos/{}/qrs",
            self.collector_id, self.pos_id
        );
        Self::parse(
            self.call(Method::POST, &path, Some(idempotency_key), Some(body))
                .await?,
        )
    }

    /// Cancels the QR order waiting on the point of sale.
    pub async fn cancel_qr_order(&self) -> Result<(), MpError> {
        let path = format!(
            "/instore/qr/seller/collectors/{}/pos/{}/orders",
            self.collector_id, self.pos_id
        );
        match self.call(Method::DELETE, &path, None, None).await {
            Ok(_) | Err(MpError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn payment(&self, id: &str) -> Result<MpPayment, MpError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(MpError::NotFound);
        }
        Self::parse(
            self.call(Method::GET, &format!("/v1/payments/{id}"), None, None)
                .await?,
        )
    }

    /// The payments made for `external_reference`.
    pub async fn payments_for(&self, external_reference: &str) -> Result<Vec<MpPayment>, MpError> {
        let path = format!("/v1/payments/search?external_reference={external_reference}");
        let search: Search = Self::parse(self.call(Method::GET, &path, None, None).await?)?;
        Ok(search.results)
    }

    pub async fn refund(&self, payment_id: &str) -> Result<(), MpError> {
        let key = format!("refund-{payment_id}");
        let path = format!("/v1/payments/{payment_id}/refunds");
        self.call(
            Method::POST,
            &path,
            Some(&key),
            Some(&Value::Object(Default::default())),
        )
        .await
        .map(|_| ())
    }
}
