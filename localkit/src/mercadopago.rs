//! A Mercado Pago sandbox on a local port, following the public API shapes
//! the payment service uses: dynamic QR orders for a point of sale, payment
//! lookup and search, refunds, QR cancellation. It records every request,
//! and a test or a person decides what the customer does: pay, have the
//! payment rejected, or do nothing; then it sends the webhook, correctly
//! signed or not.
//!
//! People drive it over HTTP (what `techctl dev pay` calls):
//! `GET /sandbox/orders` lists the QR orders, and
//! `POST /sandbox/orders/{order_id}/approve` (or `/reject`) pays one and
//! sends the signed webhook, retrying while the service does not take it,
//! as Mercado Pago does.

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

/// Something the sandbox did that a person watching may want to know.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone)]
struct Shared {
    access_token: String,
    webhook_secret: String,
    books: Arc<Mutex<Books>>,
    log: Option<Log>,
}

impl Shared {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self, line: &str) {
        if let Some(log) = &self.log {
            log(line);
        }
    }

    /// Sends the correctly signed webhook of a payment; the status answered.
    async fn deliver(&self, target: &str, payment_id: u64) -> u16 {
        send_webhook(
            &self.webhook_secret,
            target,
            &payment_id.to_string(),
            Signature::Valid,
        )
        .await
    }
}

pub struct Sandbox {
    pub url: String,
    pub access_token: String,
    pub webhook_secret: String,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Sandbox {
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

impl Sandbox {
    /// A sandbox on a free loopback port, for tests.
    pub async fn start(access_token: &str, webhook_secret: &str) -> Sandbox {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the Mercado Pago sandbox");
        Sandbox::serve(listener, access_token, webhook_secret, None)
    }

    /// A sandbox on `listener`, telling `log` what customers do.
    pub fn serve(
        listener: tokio::net::TcpListener,
        access_token: &str,
        webhook_secret: &str,
        log: Option<Log>,
    ) -> Sandbox {
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let shared = Shared {
            access_token: access_token.to_string(),
            webhook_secret: webhook_secret.to_string(),
            books: Arc::new(Mutex::new(Books {
                next_id: 1_310_000_000,
                ..Books::default()
            })),
            log,
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
            .route("/sandbox/orders", get(list_orders))
            .route("/sandbox/orders/{reference}/{decision}", post(decide))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Sandbox {
            url,
            access_token: access_token.to_string(),
            webhook_secret: webhook_secret.to_string(),
            shared,
            server,
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.shared.books()
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
        self.shared.books().pay(reference, status)
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

    /// Changes a field of a payment as Mercado Pago would report it (an
    /// amount that is not the order's, another currency, another
    /// collector): what the payment service must not take as paid.
    pub fn alter_payment(&self, payment_id: u64, field: &str, value: Value) {
        if let Some(p) = self.books().payments.get_mut(&payment_id) {
            p[field] = value;
        }
    }

    pub fn payment(&self, payment_id: u64) -> Option<Value> {
        self.books().payments.get(&payment_id).cloned()
    }

    /// Sends the payment's webhook to the notification URL of its QR order;
    /// returns the HTTP status the service answered.
    pub async fn notify(&self, payment_id: u64, signature: Signature) -> u16 {
        let target = self
            .books()
            .notification_url_of(payment_id)
            .expect("notify a payment made with pay()");
        self.send_webhook(&target, &payment_id.to_string(), signature)
            .await
    }

    /// Sends a payment webhook for `data_id` to `notification_url`; the
    /// HTTP status the service answered, 0 when it could not be reached.
    pub async fn send_webhook(
        &self,
        notification_url: &str,
        data_id: &str,
        signature: Signature,
    ) -> u16 {
        send_webhook(&self.webhook_secret, notification_url, data_id, signature).await
    }
}

impl Books {
    /// Records a payment of the QR order of `reference`; its id.
    fn pay(&mut self, reference: &str, status: &str) -> u64 {
        let order = self
            .qr_orders
            .iter()
            .rev()
            .find(|o| o.external_reference == reference);
        let amount = order.map_or(0.0, |o| o.total_amount);
        // Mercado Pago reports the collector as a number.
        let collector: Value = order.map_or(Value::Null, |o| {
            o.collector
                .parse::<u64>()
                .map_or_else(|_| json!(o.collector), |c| json!(c))
        });
        self.next_id += 1;
        let id = self.next_id;
        let approved = (status == "approved").then(now_iso);
        self.payments.insert(
            id,
            json!({
                "id": id,
                "status": status,
                "status_detail": if status == "approved" { "accredited" } else { "cc_rejected_other_reason" },
                "external_reference": reference,
                "transaction_amount": amount,
                "currency_id": "BRL",
                "collector_id": collector,
                "payment_method_id": "pix",
                "date_created": now_iso(),
                "date_approved": approved,
            }),
        );
        id
    }

    fn notification_url_of(&self, payment_id: u64) -> Option<String> {
        let reference = self.payments.get(&payment_id)?["external_reference"]
            .as_str()?
            .to_string();
        self.qr_orders
            .iter()
            .rev()
            .find(|o| o.external_reference == reference)
            .map(|o| o.notification_url.clone())
    }

    /// The payments made for `reference`, oldest first.
    fn payments_of(&self, reference: &str) -> Vec<&Value> {
        let mut found: Vec<&Value> = self
            .payments
            .values()
            .filter(|p| p["external_reference"] == reference)
            .collect();
        found.sort_by_key(|p| p["id"].as_u64());
        found
    }
}

async fn send_webhook(
    secret: &str,
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
        "not-the-secret"
    } else {
        secret
    };
    let v1 = sign(secret, data_id, &request_id, ts);
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
    let Ok(request) = request.body(Full::new(Bytes::from(body.to_string()))) else {
        return 0;
    };
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            status
        }
        _ => 0,
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
        let mut books = shared.books();
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
    let mut books = shared.books();
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
    let mut books = shared.books();
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
    let books = shared.books();
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
    let books = shared.books();
    let results = books.payments_of(&reference);
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
    let mut books = shared.books();
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

/// What a person sees of the QR orders: which wait for the customer, which
/// were paid or rejected, which were withdrawn.
async fn list_orders(State(shared): State<Shared>) -> Response {
    let books = shared.books();
    let orders: Vec<Value> = books
        .qr_orders
        .iter()
        .map(|o| {
            let payments: Vec<Value> = books
                .payments_of(&o.external_reference)
                .into_iter()
                .map(|p| json!({"id": p["id"], "status": p["status"]}))
                .collect();
            let state = if o.cancelled {
                "withdrawn"
            } else {
                payments
                    .last()
                    .and_then(|p| p["status"].as_str())
                    .unwrap_or("waiting")
            };
            json!({
                "order_id": o.external_reference,
                "total_amount": o.total_amount,
                "title": o.body["title"],
                "state": state,
                "payments": payments,
            })
        })
        .collect();
    answer((StatusCode::OK, Value::Array(orders)))
}

/// The customer pays the QR order of an order (`approve`) or Mercado Pago
/// rejects the payment (`reject`); the signed webhook follows at once.
async fn decide(
    State(shared): State<Shared>,
    Path((reference, decision)): Path<(String, String)>,
) -> Response {
    let status = match decision.as_str() {
        "approve" => "approved",
        "reject" => "rejected",
        other => {
            return answer(problem(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!(
                    "no decision {other:?}: POST /sandbox/orders/{{order_id}}/approve or /reject"
                ),
            ));
        }
    };
    let (payment_id, target) = {
        let mut books = shared.books();
        let Some(order) = books
            .qr_orders
            .iter()
            .rev()
            .find(|o| o.external_reference == reference)
            .cloned()
        else {
            return answer(problem(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!(
                    "no QR order for order {reference}: place the order first and wait until it shows its QR code (payment.qr_data on GET /orders/{reference})"
                ),
            ));
        };
        if order.cancelled {
            return answer(problem(
                StatusCode::CONFLICT,
                "conflict",
                &format!(
                    "the QR code of order {reference} was withdrawn (the order was cancelled or its payment expired); place a new order"
                ),
            ));
        }
        if let Some(paid) = books
            .payments_of(&reference)
            .into_iter()
            .find(|p| p["status"] == "approved")
        {
            return answer(problem(
                StatusCode::CONFLICT,
                "conflict",
                &format!("order {reference} is paid already (payment {})", paid["id"]),
            ));
        }
        (books.pay(&reference, status), order.notification_url)
    };
    let delivered = shared.deliver(&target, payment_id).await;
    let taken = (200..300).contains(&delivered);
    shared.log(&format!(
        "order {reference}: payment {payment_id} {status}; webhook to {target} {}",
        describe_delivery(delivered)
    ));
    if !taken {
        tokio::spawn(redeliver(shared.clone(), target.clone(), payment_id));
    }
    let body = json!({
        "order_id": reference,
        "payment_id": payment_id,
        "status": status,
        "webhook": {
            "url": target,
            "answered": delivered,
            "delivered": taken,
        },
    });
    let code = if taken {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    answer((code, body))
}

fn describe_delivery(status: u16) -> String {
    match status {
        0 => "could not be delivered (nothing answered); retrying".into(),
        200..=299 => format!("answered {status}"),
        _ => format!("answered {status}; retrying"),
    }
}

/// Mercado Pago retries a webhook the service did not take, with growing
/// pauses, for a while.
async fn redeliver(shared: Shared, target: String, payment_id: u64) {
    for pause in [1, 2, 4, 8, 15, 30, 60, 120] {
        tokio::time::sleep(Duration::from_secs(pause)).await;
        let status = shared.deliver(&target, payment_id).await;
        if (200..300).contains(&status) {
            shared.log(&format!(
                "payment {payment_id}: webhook delivered on retry ({status})"
            ));
            return;
        }
    }
    shared.log(&format!(
        "payment {payment_id}: webhook never taken by {target}; gave up"
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payment service stand-in: records the webhooks it gets and answers
    /// with the statuses queued (then 200).
    async fn receiver(answers: Vec<u16>) -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
        let got: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let queue = Arc::new(Mutex::new(answers));
        let app = Router::new().route(
            "/webhooks/mercadopago",
            post({
                let got = got.clone();
                move |headers: HeaderMap| async move {
                    got.lock().unwrap().push(headers);
                    let mut queue = queue.lock().unwrap();
                    let status = if queue.is_empty() {
                        200
                    } else {
                        queue.remove(0)
                    };
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/webhooks/mercadopago",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, got)
    }

    async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = axum::http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .header("authorization", "Bearer token")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post_json(url: &str, body: Option<Value>) -> (u16, Value) {
        call("POST", url, body).await
    }

    async fn qr_order(sandbox: &Sandbox, reference: &str, notification_url: &str) {
        let (status, _) = post_json(
            &format!(
                "{}/instore/orders/qr/seller/collectors/1/pos/CAIXA01/qrs",
                sandbox.url
            ),
            Some(json!({
                "external_reference": reference, "title": "Pedido", "notification_url": notification_url,
                "expiration_date": "2030-01-01T00:00:00.000-03:00", "total_amount": 25.9,
                "items": [{"title": "X-Burger", "unit_price": 25.9, "quantity": 1, "total_amount": 25.9, "unit_measure": "unit"}],
            })),
        )
        .await;
        assert_eq!(status, 201);
    }

    #[tokio::test]
    async fn a_person_pays_a_qr_order_and_the_signed_webhook_follows() {
        let sandbox = Sandbox::start("token", "secret").await;
        let (hook, got) = receiver(vec![]).await;

        let (status, body) =
            post_json(&format!("{}/sandbox/orders/o-1/approve", sandbox.url), None).await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("no QR order for order o-1")
        );

        qr_order(&sandbox, "o-1", &hook).await;
        let (status, body) =
            post_json(&format!("{}/sandbox/orders/o-1/approve", sandbox.url), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "approved");
        assert_eq!(body["webhook"]["answered"], 200);
        let payment_id = body["payment_id"].as_u64().unwrap();
        assert_eq!(sandbox.payment(payment_id).unwrap()["status"], "approved");

        // The webhook carries Mercado Pago's signature over id, request id and ts.
        let headers = got.lock().unwrap()[0].clone();
        let signature = headers["x-signature"].to_str().unwrap();
        let (ts, v1) = signature
            .strip_prefix("ts=")
            .and_then(|rest| rest.split_once(",v1="))
            .unwrap();
        let request_id = headers["x-request-id"].to_str().unwrap();
        assert_eq!(
            v1,
            sign(
                "secret",
                &payment_id.to_string(),
                request_id,
                ts.parse().unwrap()
            )
        );

        let (status, body) =
            post_json(&format!("{}/sandbox/orders/o-1/reject", sandbox.url), None).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["message"].as_str().unwrap().contains("paid already"));
        let (_, listed) = get_json(&format!("{}/sandbox/orders", sandbox.url)).await;
        assert_eq!(listed[0]["order_id"], "o-1");
        assert_eq!(listed[0]["state"], "approved");
    }

    #[tokio::test]
    async fn a_webhook_the_service_refuses_is_sent_again() {
        let sandbox = Sandbox::start("token", "secret").await;
        let (hook, got) = receiver(vec![503]).await;
        qr_order(&sandbox, "o-2", &hook).await;
        let (status, body) =
            post_json(&format!("{}/sandbox/orders/o-2/reject", sandbox.url), None).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["webhook"]["answered"], 503);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.lock().unwrap().len() < 2 {
            assert!(std::time::Instant::now() < deadline, "never sent again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn get_json(url: &str) -> (u16, Value) {
        call("GET", url, None).await
    }
}
