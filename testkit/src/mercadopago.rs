//! A fake Mercado Pago on a loopback port, following the public API shapes
//! the payment service uses: dynamic QR orders for a point of sale, payment
//! lookup and search, refunds, QR cancellation. It records every request,
//! and a test (or the dev sandbox) decides what the customer does: pay,
//! have the payment rejected, or do nothing; then it sends the webhook,
//! correctly signed or not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::Sha256;

/// A QR order as the payment service created it.
#[derive(Debug, Clone)]
pub struct QrOrder {
    pub in_store_order_id: String,
    pub collector: String,
    pub pos: String,
    pub external_reference: String,
    pub total_amount: f64,
    pub notification_url: String,
    pub qr_data: String,
    /// The whole body the service sent.
    pub body: Value,
    pub cancelled: bool,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub body: Value,
}

/// How a webhook is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    Valid,
    /// Signed with another secret.
    Forged,
    /// Correctly signed, ten minutes ago.
    Stale,
    /// No `x-signature` header.
    Missing,
}

#[derive(Default)]
struct Books {
    qr_orders: Vec<QrOrder>,
    /// Payment id → payment document.
    payments: HashMap<u64, Value>,
    requests: Vec<Recorded>,
    replies: HashMap<String, (StatusCode, Value)>,
    next_id: u64,
    failures_left: u32,
    delay: Duration,
}

#[derive(Clone)]
struct Shared {
    access_token: String,
    books: Arc<Mutex<Books>>,
}

pub struct FakeMercadoPago {
    pub url: String,
    pub access_token: String,
    pub webhook_secret: String,
    books: Arc<Mutex<Books>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMercadoPago {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn now_iso() -> String {
    time_string(SystemTime::now())
}

fn time_string(t: SystemTime) -> String {
    // RFC 3339 in UTC, without pulling a date library into the testkit.
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn problem(status: StatusCode, error: &str, message: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"message": message, "error": error, "status": status.as_u16(), "cause": []}),
    )
}

impl FakeMercadoPago {
    pub async fn start(access_token: &str, webhook_secret: &str) -> FakeMercadoPago {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the fake Mercado Pago");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let books = Arc::new(Mutex::new(Books {
            next_id: 1_310_000_000,
            ..Books::default()
        }));
        let shared = Shared {
            access_token: access_token.to_string(),
            books: books.clone(),
        };
        let app = Router::new()
            .route(
                "/instore/orders/qr/seller/collectors/{collector}/pos/{pos}/qrs",
                post(create_qr_order),
            )
            .route(
                "/instore/qr/seller/collectors/{collector}/pos/{pos}/orders",
                delete(cancel_qr_order),
            )
            .route("/v1/payments/search", get(search_payments))
            .route("/v1/payments/{id}", get(get_payment))
            .route("/v1/payments/{id}/refunds", post(refund))
            .with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeMercadoPago {
            url,
            access_token: access_token.to_string(),
            webhook_secret: webhook_secret.to_string(),
            books,
            server,
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn qr_orders(&self) -> Vec<QrOrder> {
        self.books().qr_orders.clone()
    }

    /// The QR order whose `external_reference` is `reference`.
    pub fn qr_order(&self, reference: &str) -> Option<QrOrder> {
        self.books()
            .qr_orders
            .iter()
            .find(|o| o.external_reference == reference)
            .cloned()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.books().requests.clone()
    }

    /// Requests whose method and path start as given.
    pub fn requests_to(&self, method: &str, path_prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .collect()
    }

    /// The next `n` QR order requests answer 500.
    pub fn fail_next_qr_orders(&self, n: u32) {
        self.books().failures_left = n;
    }

    /// Mercado Pago goes down: its API stops answering (webhooks can still
    /// be sent from here).
    pub fn go_down(&self) {
        self.server.abort();
    }

    /// Every answer waits this long first.
    pub fn delay_answers(&self, delay: Duration) {
        self.books().delay = delay;
    }

    /// The customer pays the QR order of `reference`; Mercado Pago decides
    /// `status` (`approved`, `rejected`, `pending`, …). Returns the payment id.
    pub fn pay(&self, reference: &str, status: &str) -> u64 {
        let mut books = self.books();
        let amount = books
            .qr_orders
            .iter()
            .rev()
            .find(|o| o.external_reference == reference)
            .map_or(0.0, |o| o.total_amount);
        books.next_id += 1;
        let id = books.next_id;
        let approved = (status == "approved").then(now_iso);
        books.payments.insert(
            id,
            json!({
                "id": id,
                "status": status,
                "status_detail": if status == "approved" { "accredited" } else { "cc_rejected_other_reason" },
                "external_reference": reference,
                "transaction_amount": amount,
                "currency_id": "BRL",
                "payment_method_id": "pix",
                "date_created": now_iso(),
                "date_approved": approved,
            }),
        );
        id
    }

    /// Mercado Pago changes its mind about a payment (a pending payment
    /// approved, say).
    pub fn set_status(&self, payment_id: u64, status: &str) {
        if let Some(p) = self.books().payments.get_mut(&payment_id) {
            p["status"] = json!(status);
            if status == "approved" {
                p["date_approved"] = json!(now_iso());
            }
        }
    }

    pub fn payment(&self, payment_id: u64) -> Option<Value> {
        self.books().payments.get(&payment_id).cloned()
    }

    /// Sends the payment's webhook to the notification URL of its QR order;
    /// returns the HTTP status the service answered.
    pub async fn notify(&self, payment_id: u64, signature: Signature) -> u16 {
        let reference = self
            .payment(payment_id)
            .and_then(|p| p["external_reference"].as_str().map(str::to_string))
            .expect("notify a payment made with pay()");
        let target = self
            .qr_order(&reference)
            .expect("the payment's QR order")
            .notification_url;
        self.send_webhook(&target, &payment_id.to_string(), signature)
            .await
    }

    /// Sends a payment webhook for `data_id` to `notification_url`.
    pub async fn send_webhook(
        &self,
        notification_url: &str,
        data_id: &str,
        signature: Signature,
    ) -> u16 {
        let request_id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ts = if signature == Signature::Stale {
            now - 600
        } else {
            now
        };
        let secret = if signature == Signature::Forged {
            "not-the-secret".to_string()
        } else {
            self.webhook_secret.clone()
        };
        let v1 = sign(&secret, data_id, &request_id, ts);
        let separator = if notification_url.contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!("{notification_url}{separator}data.id={data_id}&type=payment");
        let body = json!({
            "action": "payment.updated",
            "api_version": "v1",
            "data": {"id": data_id},
            "date_created": now_iso(),
            "id": fastrand::u64(1..1_000_000_000),
            "live_mode": false,
            "type": "payment",
            "user_id": "123456789",
        });
        let mut request = axum::http::Request::post(url)
            .header("content-type", "application/json")
            .header("x-request-id", &request_id);
        if signature != Signature::Missing {
            request = request.header("x-signature", format!("ts={ts},v1={v1}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a webhook request");
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        match client.request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await;
                status
            }
            Err(_) => 0,
        }
    }
}

/// Mercado Pago's webhook signature: HMAC-SHA256 over
/// `id:<data.id>;request-id:<x-request-id>;ts:<ts>;`, hex.
pub fn sign(secret: &str, data_id: &str, request_id: &str, ts: u64) -> String {
    let manifest = format!("id:{data_id};request-id:{request_id};ts:{ts};");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(manifest.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Records the request and checks the token; `Err` is the answer to give.
async fn admit(
    shared: &Shared,
    method: &str,
    path: String,
    headers: &HeaderMap,
    body: Value,
) -> Result<Option<String>, Response> {
    let key = headers
        .get("x-idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let delay = {
        let mut books = shared.books.lock().unwrap_or_else(|p| p.into_inner());
        books.requests.push(Recorded {
            method: method.to_string(),
            path,
            idempotency_key: key.clone(),
            body,
        });
        books.delay
    };
    tokio::time::sleep(delay).await;
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", shared.access_token));
    if !authorized {
        let (s, b) = problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid access token",
        );
        return Err((s, axum::Json(b)).into_response());
    }
    Ok(key)
}

fn answer((status, body): (StatusCode, Value)) -> Response {
    (status, axum::Json(body)).into_response()
}

fn parse_body(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

async fn create_qr_order(
    State(shared): State<Shared>,
    Path((collector, pos)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = parse_body(&body);
    let path = format!("/instore/orders/qr/seller/collectors/{collector}/pos/{pos}/qrs");
    let key = match admit(&shared, "POST", path, &headers, body.clone()).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut books = shared.books.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(reply) = key.as_ref().and_then(|k| books.replies.get(k)) {
        return answer(reply.clone());
    }
    if books.failures_left > 0 {
        books.failures_left -= 1;
        return answer(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error",
        ));
    }
    let reply = match check_qr_order(&body) {
        Err(message) => problem(StatusCode::BAD_REQUEST, "bad_request", &message),
        Ok(total_amount) => {
            let reference = body["external_reference"].as_str().unwrap_or_default();
            let in_store_order_id = format!("{:x}", fastrand::u64(..));
            let qr_data = format!(
                "00020101021243650016COM.MERCADOLIBRE02013063638{in_store_order_id}5204970053039865802BR5909Lanchonete6009SAO PAULO62070503***6304{:04X}",
                fastrand::u16(..)
            );
            books.qr_orders.push(QrOrder {
                in_store_order_id: in_store_order_id.clone(),
                collector,
                pos,
                external_reference: reference.to_string(),
                total_amount,
                notification_url: body["notification_url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                qr_data: qr_data.clone(),
                body: body.clone(),
                cancelled: false,
            });
            (
                StatusCode::CREATED,
                json!({"in_store_order_id": in_store_order_id, "qr_data": qr_data}),
            )
        }
    };
    if let Some(k) = key {
        books.replies.insert(k, reply.clone());
    }
    answer(reply)
}

/// The checks Mercado Pago makes on a QR order; the total it charges.
fn check_qr_order(body: &Value) -> Result<f64, String> {
    for field in [
        "external_reference",
        "title",
        "notification_url",
        "expiration_date",
    ] {
        if body[field].as_str().is_none_or(str::is_empty) {
            return Err(format!("{field} is required"));
        }
    }
    let items = body["items"].as_array().filter(|i| !i.is_empty());
    let items = items.ok_or("items must hold at least one item")?;
    let mut sum = 0.0;
    for item in items {
        let unit = item["unit_price"]
            .as_f64()
            .ok_or("items[].unit_price is required")?;
        let quantity = item["quantity"]
            .as_f64()
            .ok_or("items[].quantity is required")?;
        let total = item["total_amount"]
            .as_f64()
            .ok_or("items[].total_amount is required")?;
        if (unit * quantity - total).abs() > 0.001 {
            return Err("items[].total_amount must be unit_price × quantity".into());
        }
        sum += total;
    }
    let total = body["total_amount"]
        .as_f64()
        .ok_or("total_amount is required")?;
    if (sum - total).abs() > 0.001 {
        return Err(format!(
            "total_amount {total} is not the sum of the items ({sum})"
        ));
    }
    Ok(total)
}

async fn cancel_qr_order(
    State(shared): State<Shared>,
    Path((collector, pos)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/instore/qr/seller/collectors/{collector}/pos/{pos}/orders");
    if let Err(r) = admit(&shared, "DELETE", path, &headers, Value::Null).await {
        return r;
    }
    let mut books = shared.books.lock().unwrap_or_else(|p| p.into_inner());
    // The point of sale's current order is the latest one still open.
    if let Some(order) = books
        .qr_orders
        .iter_mut()
        .rev()
        .find(|o| o.pos == pos && !o.cancelled)
    {
        order.cancelled = true;
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn get_payment(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(
        &shared,
        "GET",
        format!("/v1/payments/{id}"),
        &headers,
        Value::Null,
    )
    .await
    {
        return r;
    }
    let books = shared.books.lock().unwrap_or_else(|p| p.into_inner());
    match id
        .parse::<u64>()
        .ok()
        .and_then(|id| books.payments.get(&id))
    {
        Some(p) => answer((StatusCode::OK, p.clone())),
        None => answer(problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "Payment not found",
        )),
    }
}

async fn search_payments(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let reference = query.get("external_reference").cloned().unwrap_or_default();
    let path = format!("/v1/payments/search?external_reference={reference}");
    if let Err(r) = admit(&shared, "GET", path, &headers, Value::Null).await {
        return r;
    }
    let books = shared.books.lock().unwrap_or_else(|p| p.into_inner());
    let mut results: Vec<&Value> = books
        .payments
        .values()
        .filter(|p| p["external_reference"] == reference.as_str())
        .collect();
    results.sort_by_key(|p| p["id"].as_u64());
    answer((
        StatusCode::OK,
        json!({"results": results, "paging": {"total": results.len(), "limit": 30, "offset": 0}}),
    ))
}

async fn refund(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payments/{id}/refunds");
    let key = match admit(&shared, "POST", path, &headers, parse_body(&body)).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let mut books = shared.books.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(reply) = key.as_ref().and_then(|k| books.replies.get(k)) {
        return answer(reply.clone());
    }
    let Some(payment) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| books.payments.get_mut(&id))
    else {
        return answer(problem(
            StatusCode::NOT_FOUND,
            "not_found",
            "Payment not found",
        ));
    };
    let reply = if payment["status"] != "approved" {
        problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "only approved payments can be refunded",
        )
    } else {
        payment["status"] = json!("refunded");
        let amount = payment["transaction_amount"].clone();
        (
            StatusCode::CREATED,
            json!({"id": fastrand::u64(1..1_000_000_000), "payment_id": id.parse::<u64>().unwrap_or_default(), "amount": amount, "status": "approved"}),
        )
    };
    if let Some(k) = key {
        books.replies.insert(k, reply.clone());
    }
    answer(reply)
}
