//! `POST /webhooks/mercadopago`: Mercado Pago's order notifications (topic
//! `order`; configure the webhook for the event "Order (Mercado Pago)").
//!
//! A notification is only a hint. It is accepted when its `x-signature`
//! (`ts=…,v1=…`) is the HMAC-SHA256, under the webhook secret, of
//! `id:<data.id>;request-id:<x-request-id>;ts:<ts>;` (an alphanumeric id in
//! lower case) and `ts` is recent; then the order is read back from
//! Mercado Pago by its id and only that answer is applied. The answer is
//! 5xx only when Mercado Pago should send it again.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use service_kit::error::{ApiError, ApiResult};
use service_kit::extract::{Json, Query};
use sha2::Sha256;
use uuid::Uuid;

use crate::AppState;
use crate::ledger::{self, SettleError, Settled};
use crate::mercadopago::MpError;

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks/mercadopago", post(notification))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the notification is not signed: x-signature and x-request-id are required")]
    Missing,
    #[error("x-signature must read ts=<seconds>,v1=<hex>")]
    Malformed,
    #[error("the signature does not match")]
    Mismatch,
    #[error("the signature is {0} s away from now, more than allowed")]
    Stale(u64),
}

/// Checks a notification's signature against `secret`.
pub fn verify(
    secret: &[u8],
    signature: Option<&str>,
    request_id: Option<&str>,
    data_id: &str,
    now: SystemTime,
    max_age: Duration,
) -> Result<(), SignatureError> {
    let (Some(signature), Some(request_id)) = (signature, request_id) else {
        return Err(SignatureError::Missing);
    };
    let mut ts = None;
    let mut v1 = None;
    for part in signature.split(',') {
        match part.trim().split_once('=') {
            Some(("ts", value)) => ts = Some(value.trim()),
            Some(("v1", value)) => v1 = Some(value.trim()),
            _ => {}
        }
    }
    let (Some(ts), Some(v1)) = (ts, v1) else {
        return Err(SignatureError::Malformed);
    };
    let expected = decode_hex(v1).ok_or(SignatureError::Malformed)?;
    let stamp: u64 = ts.parse().map_err(|_| SignatureError::Malformed)?;
    // Mercado Pago's `ts` has been seen in seconds and in milliseconds.
    let stamp_seconds = if stamp > 100_000_000_000 {
        stamp / 1000
    } else {
        stamp
    };
    let manifest = format!("id:{data_id};request-id:{request_id};ts:{ts};");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(manifest.as_bytes());
    // Constant time, and before the clock check so a forger learns nothing.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let skew = now.abs_diff(stamp_seconds);
    if skew > max_age.as_secs() {
        return Err(SignatureError::Stale(skew));
    }
    Ok(())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Mercado Pago's `data.id`, as the signature manifest wants it.
fn manifest_id(id: &str) -> String {
    if id.chars().all(|c| c.is_ascii_alphanumeric()) {
        id.to_lowercase()
    } else {
        id.to_string()
    }
}

async fn notification(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The body is informational; the query string and Mercado Pago's own
    // answer are what count.
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let kind = query
        .get("type")
        .or_else(|| query.get("topic"))
        .cloned()
        .or_else(|| body["type"].as_str().map(str::to_string))
        .unwrap_or_default();
    let Some(data_id) = query.get("data.id").or_else(|| query.get("id")).cloned() else {
        return Err(ApiError::BadRequest(
            "the notification names no data.id in its query string".into(),
        ));
    };
    let payments = &state.payments;
    verify(
        payments.webhook_secret.expose().as_bytes(),
        header("x-signature"),
        header("x-request-id"),
        &manifest_id(&data_id),
        SystemTime::now(),
        payments.webhook_max_age,
    )
    .map_err(|e| {
        tracing::warn!(error = %e, %data_id, "refusing a webhook");
        ApiError::Unauthorized(e.to_string())
    })?;
    let request_id = header("x-request-id").unwrap_or_default().to_string();
    sqlx::query(
        "INSERT INTO webhook_receipts (request_id, data_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(&request_id)
    .bind(&data_id)
    .execute(&state.pool)
    .await?;
    if kind != "order" {
        return Ok(Json(
            json!({"outcome": "ignored", "detail": format!("not an order notification ({kind:?})")}),
        ));
    }
    let outcome = settle_reported(&state, &data_id).await?;
    sqlx::query("UPDATE webhook_receipts SET outcome = $2 WHERE request_id = $1")
        .bind(&request_id)
        .bind(&outcome)
        .execute(&state.pool)
        .await?;
    Ok(Json(json!({ "outcome": outcome })))
}

/// Reads the order back from Mercado Pago and applies it.
async fn settle_reported(state: &AppState, data_id: &str) -> ApiResult<String> {
    let payments = &state.payments;
    let reported = match payments.mp.order(data_id).await {
        Ok(o) => o,
        Err(MpError::NotFound) => {
            return Ok("ignored: Mercado Pago does not know this order".into());
        }
        Err(e) => return Err(retry_later(e.to_string())),
    };
    let Some(order_id) = reported
        .external_reference
        .as_deref()
        .and_then(|r| Uuid::parse_str(r).ok())
    else {
        return Ok("ignored: not an order of this system".into());
    };
    let mut tx = state.pool.begin().await?;
    let Some(payment) = ledger::lock_for_order(&mut tx, order_id).await? else {
        return Ok("ignored: no payment for this order".into());
    };
    let settled = ledger::settle(&mut tx, &payments.mp, &payment, &reported)
        .await
        .map_err(|e| match e {
            SettleError::Database(e) => ApiError::from(e),
            SettleError::MercadoPago(e) => retry_later(e.to_string()),
        })?;
    tx.commit().await?;
    state.relay.wake();
    tracing::info!(%order_id, mp_status = %reported.status, ?settled, "webhook applied");
    Ok(match settled {
        Settled::Approved => "approved",
        Settled::Rejected => "rejected",
        Settled::Refunded => "refunded",
        Settled::Unchanged => "unchanged",
    }
    .into())
}

/// 503: Mercado Pago sends the notification again later.
fn retry_later(reason: String) -> ApiError {
    tracing::warn!(%reason, "asking Mercado Pago to retry the notification");
    ApiError::Unavailable(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"webhook-secret";

    fn signed(data_id: &str, request_id: &str, ts: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(format!("id:{data_id};request-id:{request_id};ts:{ts};").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("ts={ts},v1={hex}")
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    const MAX_AGE: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_is_checked_against_the_manifest_and_the_clock() {
        let sig = signed("123", "req-1", 1_700_000_000);
        let ok = verify(
            SECRET,
            Some(&sig),
            Some("req-1"),
            "123",
            at(1_700_000_100),
            MAX_AGE,
        );
        assert_eq!(ok, Ok(()));
        // Another payment id or request id breaks it.
        assert_eq!(
            verify(
                SECRET,
                Some(&sig),
                Some("req-1"),
                "124",
                at(1_700_000_100),
                MAX_AGE
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                SECRET,
                Some(&sig),
                Some("req-2"),
                "123",
                at(1_700_000_100),
                MAX_AGE
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                b"other",
                Some(&sig),
                Some("req-1"),
                "123",
                at(1_700_000_100),
                MAX_AGE
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                SECRET,
                Some(&sig),
                Some("req-1"),
                "123",
                at(1_700_001_000),
                MAX_AGE
            ),
            Err(SignatureError::Stale(1000))
        );
        assert_eq!(
            verify(
                SECRET,
                None,
                Some("req-1"),
                "123",
                at(1_700_000_000),
                MAX_AGE
            ),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(
                SECRET,
                Some("v1=abc"),
                Some("req-1"),
                "123",
                at(1_700_000_000),
                MAX_AGE
            ),
            Err(SignatureError::Malformed)
        );
        // Milliseconds are read as such.
        let ms = signed("123", "req-1", 1_700_000_000_123);
        assert_eq!(
            verify(
                SECRET,
                Some(&ms),
                Some("req-1"),
                "123",
                at(1_700_000_001),
                MAX_AGE
            ),
            Ok(())
        );
    }

    #[test]
    fn alphanumeric_ids_are_lowercased_for_the_manifest() {
        assert_eq!(manifest_id("ABC123"), "abc123");
        assert_eq!(manifest_id("12345"), "12345");
    }
}
