//! A Mercado Pago sandbox on a local port, following the public shapes of
//! the **Orders API** for in-person QR payments that the payment service
//! uses: `POST /v1/orders` (type `qr`), `GET /v1/orders/{id}`,
//! `POST /v1/orders/{id}/cancel` and `POST /v1/orders/{id}/refund`. It
//! refuses what the real API refuses, as far as its reference says: no
//! `X-Idempotency-Key`, a key reused for another request, an unknown point
//! of sale, properties it does not know, amounts that are not strings with
//! two decimals or do not add up, a second open order on a point of sale in
//! static mode, a cancel of an order that is not open or whose payment is
//! under way, a refund of an order not paid. It records every request, and
//! a test or a person decides what the customer does: pay, have the
//! payment rejected, or nothing; then it sends the order's notification
//! (topic `order`) to the webhook URL the application configured, signed
//! as Mercado Pago signs it, or not.
//!
//! People drive it over HTTP (what `techctl dev pay` calls):
//! `GET /sandbox/orders` lists the QR orders, and
//! `POST /sandbox/orders/{order_id}/approve` (or `/reject`) pays one and
//! sends the signed notification, retrying while the service does not take
//! it, as Mercado Pago does.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::Sha256;

/// The points of sale (their external ids) a sandbox knows from its start:
/// four kiosks and the counter, as a store's Mercado Pago account has them.
pub const POINTS_OF_SALE: [&str; 5] = ["TOTEM01", "TOTEM02", "TOTEM03", "TOTEM04", "CAIXA01"];

/// The sandbox account's user id: whose the orders are (`user_id`), the
/// collector the payment service expects.
pub const USER_ID: &str = "123456789";

/// The properties of `POST /v1/orders` this sandbox knows; any other is
/// refused with `unsupported_properties`, as Mercado Pago does.
const ORDER_PROPERTIES: [&str; 9] = [
    "type",
    "total_amount",
    "external_reference",
    "description",
    "expiration_time",
    "processing_mode",
    "config",
    "transactions",
    "items",
];

/// An order's QR, as the payment service created it and as it stands.
#[derive(Debug, Clone)]
pub struct QrOrder {
    /// Mercado Pago's id (`ORD…`).
    pub id: String,
    pub external_reference: String,
    pub pos: String,
    /// `static`, `dynamic` or `hybrid`.
    pub mode: String,
    /// `created`, `processed`, `canceled`, `expired`, `refunded`, `failed`…
    pub status: String,
    pub total_cents: i64,
    pub qr_data: String,
    /// The whole body the service sent.
    pub body: Value,
    /// Withdrawn by a cancel.
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

/// How a notification is signed.
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

/// An order as Mercado Pago keeps it: its document, as `GET` answers it.
struct Order {
    doc: Value,
    body: Value,
    pos: String,
    mode: String,
    /// The customer is paying: a cancel is refused meanwhile.
    paying: bool,
}

impl Order {
    fn id(&self) -> String {
        self.doc["id"].as_str().unwrap_or_default().to_string()
    }

    fn status(&self) -> &str {
        self.doc["status"].as_str().unwrap_or_default()
    }

    fn reference(&self) -> &str {
        self.doc["external_reference"].as_str().unwrap_or_default()
    }

    /// The order's and its payment's status and detail, at once.
    fn set(&mut self, status: &str, detail: &str, payment: (&str, &str)) {
        let now = now_iso();
        self.doc["status"] = json!(status);
        self.doc["status_detail"] = json!(detail);
        self.doc["last_updated_date"] = json!(now);
        let transaction = &mut self.doc["transactions"]["payments"][0];
        transaction["status"] = json!(payment.0);
        transaction["status_detail"] = json!(payment.1);
    }

    fn view(&self) -> QrOrder {
        QrOrder {
            id: self.id(),
            external_reference: self.reference().to_string(),
            pos: self.pos.clone(),
            mode: self.mode.clone(),
            status: self.status().to_string(),
            total_cents: self.doc["total_amount"]
                .as_str()
                .and_then(|a| cents(a).ok())
                .unwrap_or_default(),
            qr_data: self.doc["type_response"]["qr_data"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            body: self.body.clone(),
            cancelled: self.status() == "canceled",
        }
    }
}

#[derive(Default)]
struct Books {
    orders: Vec<Order>,
    points_of_sale: HashSet<String>,
    requests: Vec<Recorded>,
    /// Idempotency key → the request it came with and the answer given.
    replies: HashMap<String, (Value, (StatusCode, Value))>,
    /// Where notifications go: the webhook URL the application configured.
    webhook_url: Option<String>,
    failures_left: u32,
    /// Until then, every API call answers 500.
    down_until: Option<std::time::Instant>,
    delay: Duration,
}

impl Books {
    fn order(&self, id: &str) -> Option<&Order> {
        self.orders.iter().find(|o| o.id() == id)
    }

    fn order_mut(&mut self, id: &str) -> Option<&mut Order> {
        self.orders.iter_mut().find(|o| o.id() == id)
    }

    /// The latest order of `reference`.
    fn latest_mut(&mut self, reference: &str) -> Option<&mut Order> {
        self.orders
            .iter_mut()
            .rev()
            .find(|o| o.reference() == reference)
    }
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

    fn webhook_url(&self) -> Option<String> {
        self.books().webhook_url.clone()
    }

    /// Sends the correctly signed notification of an order; the status
    /// answered (0 when nothing is configured or nothing answered).
    async fn deliver(&self, order_id: &str) -> u16 {
        let Some(target) = self.webhook_url() else {
            return 0;
        };
        send_webhook(&self.webhook_secret, &target, order_id, Signature::Valid).await
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

/// `"25.90"` in cents; Brazil's amounts are strings with two decimals.
fn cents(amount: &str) -> Result<i64, String> {
    let refused = || {
        format!(
            "{amount:?} is not an amount: write it as a string with two decimals, such as \"25.90\""
        )
    };
    let (whole, fraction) = amount.split_once('.').ok_or_else(refused)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.len() != 2 || !digits(fraction) {
        return Err(refused());
    }
    let whole: i64 = whole.parse().map_err(|_| refused())?;
    let fraction: i64 = fraction.parse().map_err(|_| refused())?;
    Ok(whole * 100 + fraction)
}

fn amount_text(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Seconds in an ISO-8601 duration such as `PT15M` or `P1DT2H`.
fn duration_seconds(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = 0u64;
    let mut take = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
            } else {
                let (_, seconds) = units.iter().find(|(u, _)| *u == c)?;
                total += number.parse::<u64>().ok()? * seconds;
                number.clear();
            }
        }
        number.is_empty().then_some(())
    };
    take(days, &[('D', 86_400)])?;
    take(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    (days.len() + time.len() > 0).then_some(total)
}

/// An id as Mercado Pago makes them: a prefix and 26 characters.
fn made_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let tail: String = (0..26)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

impl Sandbox {
    /// A sandbox on a free loopback port, for tests.
    pub async fn start(access_token: &str, webhook_secret: &str) -> Sandbox {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the Mercado Pago sandbox");
        Sandbox::serve(listener, access_token, webhook_secret, None)
    }

    /// A sandbox on `listener` knowing [`POINTS_OF_SALE`], telling `log`
    /// what customers do.
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
                points_of_sale: POINTS_OF_SALE.iter().map(|p| p.to_string()).collect(),
                ..Books::default()
            })),
            log,
        };
        let app = Router::new()
            .route("/v1/orders", post(create_order))
            .route("/v1/orders/{id}", get(get_order))
            .route("/v1/orders/{id}/cancel", post(cancel_order))
            .route("/v1/orders/{id}/refund", post(refund_order))
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

    /// The application's webhook URL, as configured in Mercado Pago's panel
    /// (Your integrations → Webhooks, event "Order").
    pub fn notify_to(&self, url: &str) {
        self.books().webhook_url = Some(url.to_string());
    }

    /// Adds a point of sale to the account.
    pub fn add_point_of_sale(&self, external_id: &str) {
        self.books().points_of_sale.insert(external_id.to_string());
    }

    pub fn qr_orders(&self) -> Vec<QrOrder> {
        self.books().orders.iter().map(Order::view).collect()
    }

    /// The latest order whose `external_reference` is `reference`.
    pub fn qr_order(&self, reference: &str) -> Option<QrOrder> {
        let mut books = self.books();
        books.latest_mut(reference).map(|o| o.view())
    }

    /// An order's document, as `GET /v1/orders/{id}` answers it.
    pub fn order(&self, id: &str) -> Option<Value> {
        self.books().order(id).map(|o| o.doc.clone())
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

    /// The next `n` order creations answer 500.
    pub fn fail_next_qr_orders(&self, n: u32) {
        self.books().failures_left = n;
    }

    /// Mercado Pago has an incident: for `how_long`, every API call
    /// answers 500 (notifications can still be sent from here).
    pub fn fail_all_for(&self, how_long: Duration) {
        self.books().down_until = Some(std::time::Instant::now() + how_long);
    }

    /// Mercado Pago goes down: its API stops answering (notifications can
    /// still be sent from here).
    pub fn go_down(&self) {
        self.server.abort();
    }

    /// Every answer waits this long first.
    pub fn delay_answers(&self, delay: Duration) {
        self.books().delay = delay;
    }

    /// The customer scanned the QR of `reference` and is paying: until
    /// [`Sandbox::pay`], a cancel is refused (`instore_order_locked_error`).
    pub fn start_paying(&self, reference: &str) {
        if let Some(order) = self.books().latest_mut(reference) {
            order.paying = true;
        }
    }

    /// The customer pays the latest order of `reference` and Mercado Pago
    /// decides `outcome`: `approved` (the order is processed), `rejected`
    /// (it failed) or `pending`. A payment under way when the order was
    /// cancelled (see [`Sandbox::start_paying`]) goes through all the same.
    /// Returns the order's id, which its notification names.
    pub fn pay(&self, reference: &str, outcome: &str) -> String {
        let mut books = self.books();
        let order = books
            .latest_mut(reference)
            .unwrap_or_else(|| panic!("no order for {reference}: pay after it has its QR"));
        settle(order, outcome);
        order.id()
    }

    /// Changes what Mercado Pago reports of an order: `amount` (what was
    /// paid), or any top-level field (`currency`, `user_id`): what the
    /// payment service must not take as paid.
    pub fn alter_order(&self, id: &str, field: &str, value: Value) {
        if let Some(order) = self.books().order_mut(id) {
            if field == "amount" {
                order.doc["total_paid_amount"] = value.clone();
                order.doc["transactions"]["payments"][0]["amount"] = value;
            } else {
                order.doc[field] = value;
            }
        }
    }

    /// Sends the order's notification to the configured webhook URL; the
    /// HTTP status the service answered.
    pub async fn notify(&self, order_id: &str, signature: Signature) -> u16 {
        let target = self
            .shared
            .webhook_url()
            .expect("a webhook URL: call notify_to first");
        self.send_webhook(&target, order_id, signature).await
    }

    /// Sends an order notification for `data_id` to `notification_url`;
    /// the HTTP status the service answered, 0 when it could not be reached.
    pub async fn send_webhook(
        &self,
        notification_url: &str,
        data_id: &str,
        signature: Signature,
    ) -> u16 {
        send_webhook(&self.webhook_secret, notification_url, data_id, signature).await
    }
}

/// The customer's payment of `order` ends as `outcome`.
fn settle(order: &mut Order, outcome: &str) {
    order.paying = false;
    let amount = order.doc["total_amount"].clone();
    match outcome {
        "approved" => {
            order.set("processed", "accredited", ("processed", "accredited"));
            order.doc["total_paid_amount"] = amount;
        }
        "rejected" => order.set("failed", "failed", ("failed", "rejected_by_issuer")),
        _ => order.set("processing", "in_process", ("processing", "in_process")),
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
    // The manifest takes an alphanumeric id in lower case.
    let v1 = sign(secret, &data_id.to_lowercase(), &request_id, ts);
    let separator = if notification_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{notification_url}{separator}data.id={data_id}&type=order");
    let body = json!({
        "action": "order.updated",
        "api_version": "v1",
        "data": {"id": data_id},
        "date_created": now_iso(),
        "live_mode": false,
        "type": "order",
        "user_id": USER_ID,
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

type Answer = (StatusCode, Value);

/// Records the request, waits the set delay and checks the token; the
/// idempotency key, or the answer to give at once.
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
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    let (delay, down) = {
        let mut books = shared.books();
        books.requests.push(Recorded {
            method: method.to_string(),
            path,
            idempotency_key: key.clone(),
            body,
        });
        let down = books
            .down_until
            .is_some_and(|until| std::time::Instant::now() < until);
        (books.delay, down)
    };
    tokio::time::sleep(delay).await;
    if down {
        return Err(answer(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error",
        )));
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", shared.access_token));
    if !authorized {
        return Err(answer(problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "invalid access token",
        )));
    }
    Ok(key)
}

/// A write's idempotency key, required as Mercado Pago requires it.
fn required_key(key: Option<String>) -> Result<String, Answer> {
    key.ok_or_else(|| {
        problem(
            StatusCode::BAD_REQUEST,
            "empty_required_header",
            "The header X-Idempotency-Key is required",
        )
    })
}

/// The answer already given to `key`, when it came with the same request;
/// a refusal when it came with another.
fn replayed(books: &Books, key: &str, request: &Value) -> Option<Response> {
    let (first, reply) = books.replies.get(key)?;
    Some(if first == request {
        answer(reply.clone())
    } else {
        answer(problem(
            StatusCode::CONFLICT,
            "idempotency_key_already_used",
            "The idempotency key was used for another request",
        ))
    })
}

fn answer((status, body): Answer) -> Response {
    (status, axum::Json(body)).into_response()
}

fn parse_body(body: &Bytes) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or(Value::Null)
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

async fn create_order(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let body = parse_body(&body);
    let key = match admit(&shared, "POST", "/v1/orders".into(), &headers, body.clone()).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let key = match required_key(key) {
        Ok(k) => k,
        Err(refused) => return answer(refused),
    };
    let mut books = shared.books();
    if let Some(replay) = replayed(&books, &key, &body) {
        return replay;
    }
    if books.failures_left > 0 {
        books.failures_left -= 1;
        return answer(problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal server error",
        ));
    }
    let reply = match check_order(&books, &body) {
        Err(refusal) => refusal,
        Ok(checked) => {
            let order = open_order(&body, checked);
            let reply = (StatusCode::CREATED, order.doc.clone());
            books.orders.push(order);
            reply
        }
    };
    // Refusals are not kept: the same key may try again once fixed.
    if reply.0.is_success() {
        books.replies.insert(key, (body, reply.clone()));
    }
    answer(reply)
}

/// What a valid order asks for.
struct Checked {
    total_cents: i64,
    pos: String,
    mode: String,
    expiration: String,
}

fn bad(error: &str, message: &str) -> Answer {
    problem(StatusCode::BAD_REQUEST, error, message)
}

/// The checks Mercado Pago makes on a QR order.
fn check_order(books: &Books, body: &Value) -> Result<Checked, Answer> {
    let object = body
        .as_object()
        .ok_or_else(|| bad("bad_request", "the body must be a JSON object"))?;
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|k| !ORDER_PROPERTIES.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(bad(
            "unsupported_properties",
            &format!("unsupported properties: {}", unknown.join(", ")),
        ));
    }
    if body["type"] != "qr" {
        return Err(bad("property_value", "type must be qr"));
    }
    let reference = body["external_reference"].as_str().unwrap_or_default();
    let reference_ok = !reference.is_empty()
        && reference.len() <= 64
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !reference_ok {
        return Err(bad(
            "property_value",
            "external_reference must be 1 to 64 letters, digits, - or _",
        ));
    }
    fn text<'a>(value: &'a Value, name: &str) -> Result<&'a str, Answer> {
        value
            .as_str()
            .ok_or_else(|| bad("property_type", &format!("{name} must be a string")))
    }
    let total_cents = cents(text(&body["total_amount"], "total_amount")?)
        .map_err(|e| bad("property_value", &format!("total_amount: {e}")))?;
    let payments = body["transactions"]["payments"]
        .as_array()
        .filter(|p| p.len() == 1)
        .ok_or_else(|| {
            bad(
                "property_value",
                "transactions.payments must hold one payment",
            )
        })?;
    let paid = cents(text(
        &payments[0]["amount"],
        "transactions.payments[0].amount",
    )?)
    .map_err(|e| {
        bad(
            "property_value",
            &format!("transactions.payments[0].amount: {e}"),
        )
    })?;
    if paid != total_cents {
        return Err(bad(
            "invalid_total_amount",
            "total_amount is not equivalent to the sum of the transactions' amounts",
        ));
    }
    if let Some(items) = body["items"].as_array() {
        let mut sum = 0;
        for (n, item) in items.iter().enumerate() {
            let unit = cents(text(
                &item["unit_price"],
                &format!("items[{n}].unit_price"),
            )?)
            .map_err(|e| bad("property_value", &format!("items[{n}].unit_price: {e}")))?;
            let quantity = item["quantity"]
                .as_i64()
                .filter(|q| *q >= 1)
                .ok_or_else(|| {
                    bad(
                        "property_value",
                        &format!("items[{n}].quantity must be a whole number from 1"),
                    )
                })?;
            if item["title"].as_str().is_none_or(str::is_empty) {
                return Err(bad(
                    "property_value",
                    &format!("items[{n}].title is required"),
                ));
            }
            sum += unit * quantity;
        }
        if sum != total_cents {
            return Err(bad(
                "order_items_total_amount_mismatch",
                &format!(
                    "the items add up to {}, total_amount is {}",
                    amount_text(sum),
                    amount_text(total_cents)
                ),
            ));
        }
    }
    let expiration = body["expiration_time"].as_str().unwrap_or("PT15M");
    let seconds = duration_seconds(expiration).ok_or_else(|| {
        bad(
            "property_value",
            "expiration_time must be an ISO 8601 duration, such as PT15M",
        )
    })?;
    if !(30..=3600 * 3600).contains(&seconds) {
        return Err(bad(
            "property_value",
            "expiration_time must be from 30 seconds to 3600 hours",
        ));
    }
    let qr = &body["config"]["qr"];
    let pos = qr["external_pos_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !books.points_of_sale.contains(&pos) {
        return Err(problem(
            StatusCode::NOT_FOUND,
            "pos_not_found",
            &format!("no point of sale with external id {pos:?}"),
        ));
    }
    let mode = qr["mode"].as_str().unwrap_or("static").to_string();
    if !["static", "dynamic", "hybrid"].contains(&mode.as_str()) {
        return Err(bad(
            "property_value",
            "config.qr.mode must be static, dynamic or hybrid",
        ));
    }
    // A static QR shows one order at a time.
    let busy = books
        .orders
        .iter()
        .any(|o| o.pos == pos && o.mode != "dynamic" && o.status() == "created");
    if mode != "dynamic" && busy {
        return Err(problem(
            StatusCode::CONFLICT,
            "pos_with_open_order",
            &format!("the point of sale {pos} already has an open order"),
        ));
    }
    // Static QRs live ten minutes at most, whatever is asked.
    let expiration = if mode == "static" && seconds > 600 {
        "PT10M".to_string()
    } else {
        expiration.to_string()
    };
    Ok(Checked {
        total_cents,
        pos,
        mode,
        expiration,
    })
}

/// A new open order for `body`, with its QR.
fn open_order(body: &Value, checked: Checked) -> Order {
    let id = made_id("ORD");
    let now = now_iso();
    let total = amount_text(checked.total_cents);
    let qr_data = format!(
        "00020101021243650016COM.MERCADOLIBRE020130636{id}5204970053039865802BR5909Lanchonete6009SAO PAULO62070503***6304{:04X}",
        fastrand::u16(..)
    );
    let doc = json!({
        "id": id,
        "type": "qr",
        "user_id": USER_ID,
        "external_reference": body["external_reference"],
        "description": body["description"],
        "expiration_time": checked.expiration,
        "processing_mode": "automatic",
        "country_code": "BRA",
        "currency": "BRL",
        "total_amount": total,
        "total_paid_amount": null,
        "status": "created",
        "status_detail": "created",
        "created_date": now,
        "last_updated_date": now,
        "config": {"qr": {"external_pos_id": checked.pos, "mode": checked.mode}},
        "transactions": {"payments": [{
            "id": made_id("PAY"),
            "amount": total,
            "status": "created",
            "status_detail": "created",
        }]},
        "items": body["items"],
        "type_response": {"qr_data": qr_data},
    });
    Order {
        doc,
        body: body.clone(),
        pos: checked.pos,
        mode: checked.mode,
        paying: false,
    }
}

fn no_order(id: &str) -> Answer {
    problem(
        StatusCode::NOT_FOUND,
        "order_not_found",
        &format!("order {id} not found"),
    )
}

async fn get_order(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/orders/{id}");
    if let Err(r) = admit(&shared, "GET", path, &headers, Value::Null).await {
        return r;
    }
    let books = shared.books();
    answer(match books.order(&id) {
        Some(order) => (StatusCode::OK, order.doc.clone()),
        None => no_order(&id),
    })
}

/// What a write on one order (a cancel, a refund) does to it.
type Change = fn(&mut Order) -> Answer;

/// Applies `change` to order `id` under an idempotency key.
async fn change_order(
    shared: Shared,
    id: String,
    action: &str,
    headers: HeaderMap,
    body: Bytes,
    change: Change,
) -> Response {
    let body = parse_body(&body);
    let path = format!("/v1/orders/{id}/{action}");
    let key = match admit(&shared, "POST", path.clone(), &headers, body).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let key = match required_key(key) {
        Ok(k) => k,
        Err(refused) => return answer(refused),
    };
    let mut books = shared.books();
    let request = json!(path);
    if let Some(replay) = replayed(&books, &key, &request) {
        return replay;
    }
    let reply = match books.order_mut(&id) {
        Some(order) => change(order),
        None => no_order(&id),
    };
    if reply.0.is_success() {
        books.replies.insert(key, (request, reply.clone()));
    }
    answer(reply)
}

async fn cancel_order(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change_order(shared, id, "cancel", headers, body, |order| {
        if order.paying {
            return problem(
                StatusCode::CONFLICT,
                "instore_order_locked_error",
                "Cannot cancel an order while payment is in progress",
            );
        }
        match order.status() {
            "created" => {
                order.set("canceled", "canceled", ("canceled", "canceled_by_api"));
                (StatusCode::OK, order.doc.clone())
            }
            "canceled" => problem(
                StatusCode::CONFLICT,
                "order_already_canceled",
                "The order is already canceled",
            ),
            other => problem(
                StatusCode::CONFLICT,
                "order_status_conflict",
                &format!("An order that is {other} cannot be canceled"),
            ),
        }
    })
    .await
}

async fn refund_order(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change_order(shared, id, "refund", headers, body, |order| {
        if order.status() != "processed" {
            return problem(
                StatusCode::CONFLICT,
                "order_status_conflict",
                &format!("An order that is {} cannot be refunded", order.status()),
            );
        }
        order.set("refunded", "refunded", ("refunded", "refunded"));
        let payment = order.doc["transactions"]["payments"][0].clone();
        order.doc["transactions"]["refunds"] = json!([{
            "id": made_id("REF"),
            "transaction_id": payment["id"],
            "amount": payment["amount"],
            "status": "processed",
        }]);
        (StatusCode::CREATED, order.doc.clone())
    })
    .await
}

/// What a person sees of the orders: which wait for the customer, which
/// were paid or rejected, which were withdrawn.
async fn list_orders(State(shared): State<Shared>) -> Response {
    let books = shared.books();
    let orders: Vec<Value> = books
        .orders
        .iter()
        .map(|o| {
            let view = o.view();
            json!({
                "order_id": view.external_reference,
                "mercadopago_order_id": view.id,
                "point_of_sale": view.pos,
                "total_amount": o.doc["total_amount"],
                "description": o.doc["description"],
                "state": match view.status.as_str() {
                    "created" => "waiting",
                    "canceled" => "withdrawn",
                    other => other,
                },
            })
        })
        .collect();
    answer((StatusCode::OK, Value::Array(orders)))
}

/// The customer pays the QR of an order (`approve`) or Mercado Pago
/// rejects the payment (`reject`); the signed notification follows at once.
async fn decide(
    State(shared): State<Shared>,
    Path((reference, decision)): Path<(String, String)>,
) -> Response {
    let outcome = match decision.as_str() {
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
    let order_id = {
        let mut books = shared.books();
        let Some(order) = books.latest_mut(&reference) else {
            return answer(problem(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!(
                    "no QR order for order {reference}: place the order first and wait until it shows its QR code (payment.qr_data on GET /orders/{reference})"
                ),
            ));
        };
        match order.status() {
            "created" | "failed" | "processing" => {}
            "processed" | "refunded" => {
                return answer(problem(
                    StatusCode::CONFLICT,
                    "conflict",
                    &format!("order {reference} is paid already ({})", order.id()),
                ));
            }
            _ => {
                return answer(problem(
                    StatusCode::CONFLICT,
                    "conflict",
                    &format!(
                        "the QR code of order {reference} was withdrawn (the order was cancelled or its payment expired); place a new order"
                    ),
                ));
            }
        }
        settle(order, outcome);
        order.id()
    };
    let target = shared.webhook_url().unwrap_or_default();
    let delivered = shared.deliver(&order_id).await;
    let taken = (200..300).contains(&delivered);
    shared.log(&format!(
        "order {reference}: {order_id} {outcome}; notification to {target} {}",
        describe_delivery(delivered)
    ));
    if !taken {
        tokio::spawn(redeliver(shared.clone(), order_id.clone()));
    }
    let body = json!({
        "order_id": reference,
        "mercadopago_order_id": order_id,
        "status": outcome,
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

/// Mercado Pago retries a notification the service did not take, with
/// growing pauses, for a while.
async fn redeliver(shared: Shared, order_id: String) {
    for pause in [1, 2, 4, 8, 15, 30, 60, 120] {
        tokio::time::sleep(Duration::from_secs(pause)).await;
        let status = shared.deliver(&order_id).await;
        if (200..300).contains(&status) {
            shared.log(&format!(
                "{order_id}: notification delivered on retry ({status})"
            ));
            return;
        }
    }
    shared.log(&format!("{order_id}: notification never taken; gave up"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payment service stand-in: records the notifications it gets and
    /// answers with the statuses queued (then 200).
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

    async fn call(method: &str, url: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .header("authorization", "Bearer token");
        if let Some(key) = key {
            request = request.header("x-idempotency-key", key);
        }
        let request = request
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

    fn order_body(reference: &str, pos: &str, mode: &str) -> Value {
        json!({
            "type": "qr", "external_reference": reference, "description": "Pedido 1",
            "total_amount": "25.90", "expiration_time": "PT15M",
            "config": {"qr": {"external_pos_id": pos, "mode": mode}},
            "transactions": {"payments": [{"amount": "25.90"}]},
            "items": [{"title": "X-Burger", "unit_price": "12.95", "quantity": 2, "unit_measure": "unit"}],
        })
    }

    async fn create(sandbox: &Sandbox, key: &str, body: Value) -> (u16, Value) {
        call(
            "POST",
            &format!("{}/v1/orders", sandbox.url),
            Some(key),
            Some(body),
        )
        .await
    }

    #[tokio::test]
    async fn a_person_pays_an_order_and_the_signed_notification_follows() {
        let sandbox = Sandbox::start("token", "secret").await;
        let (hook, got) = receiver(vec![]).await;
        sandbox.notify_to(&hook);

        let approve = format!("{}/sandbox/orders/o-1/approve", sandbox.url);
        let (status, body) = call("POST", &approve, None, None).await;
        assert_eq!(status, 404, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("no QR order for order o-1")
        );

        let (status, made) = create(&sandbox, "k-1", order_body("o-1", "TOTEM01", "dynamic")).await;
        assert_eq!(status, 201, "{made}");
        let id = made["id"].as_str().unwrap().to_string();
        assert!(id.starts_with("ORD") && id.len() == 29, "{id}");
        assert_eq!(made["status"], "created");
        assert!(
            made["type_response"]["qr_data"]
                .as_str()
                .unwrap()
                .starts_with("000201")
        );

        let (status, body) = call("POST", &approve, None, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["webhook"]["answered"], 200);
        let order = sandbox.order(&id).unwrap();
        assert_eq!(order["status"], "processed");
        assert_eq!(order["total_paid_amount"], "25.90");

        // The notification names the order and is signed over its id in
        // lower case, the request id and ts.
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
                &id.to_lowercase(),
                request_id,
                ts.parse().unwrap()
            )
        );

        let reject = format!("{}/sandbox/orders/o-1/reject", sandbox.url);
        let (status, body) = call("POST", &reject, None, None).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["message"].as_str().unwrap().contains("paid already"));
        let (_, listed) = call(
            "GET",
            &format!("{}/sandbox/orders", sandbox.url),
            None,
            None,
        )
        .await;
        assert_eq!(listed[0]["order_id"], "o-1");
        assert_eq!(listed[0]["state"], "processed");
        assert_eq!(listed[0]["point_of_sale"], "TOTEM01");
    }

    #[tokio::test]
    async fn a_notification_the_service_refuses_is_sent_again() {
        let sandbox = Sandbox::start("token", "secret").await;
        let (hook, got) = receiver(vec![503]).await;
        sandbox.notify_to(&hook);
        create(&sandbox, "k-2", order_body("o-2", "TOTEM02", "dynamic")).await;
        let reject = format!("{}/sandbox/orders/o-2/reject", sandbox.url);
        let (status, body) = call("POST", &reject, None, None).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["webhook"]["answered"], 503);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.lock().unwrap().len() < 2 {
            assert!(std::time::Instant::now() < deadline, "never sent again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn what_mercado_pago_refuses_is_refused() {
        let sandbox = Sandbox::start("token", "secret").await;
        let url = format!("{}/v1/orders", sandbox.url);
        let error = |answer: &(u16, Value)| {
            (
                answer.0,
                answer.1["error"].as_str().unwrap_or_default().to_string(),
            )
        };
        let refused = |status: u16, code: &str| (status, code.to_string());

        let keyless = call(
            "POST",
            &url,
            None,
            Some(order_body("o", "TOTEM01", "dynamic")),
        )
        .await;
        assert_eq!(error(&keyless), refused(400, "empty_required_header"));
        let mut numbers = order_body("o", "TOTEM01", "dynamic");
        numbers["total_amount"] = json!(25.9);
        assert_eq!(
            error(&create(&sandbox, "a", numbers).await),
            refused(400, "property_type")
        );
        let mut one_decimal = order_body("o", "TOTEM01", "dynamic");
        one_decimal["total_amount"] = json!("25.9");
        assert_eq!(
            error(&create(&sandbox, "b", one_decimal).await),
            refused(400, "property_value")
        );
        let mut unpaid = order_body("o", "TOTEM01", "dynamic");
        unpaid["transactions"]["payments"][0]["amount"] = json!("20.00");
        assert_eq!(
            error(&create(&sandbox, "c", unpaid).await),
            refused(400, "invalid_total_amount")
        );
        let mut items = order_body("o", "TOTEM01", "dynamic");
        items["items"][0]["quantity"] = json!(3);
        assert_eq!(
            error(&create(&sandbox, "d", items).await),
            refused(400, "order_items_total_amount_mismatch")
        );
        let mut extra = order_body("o", "TOTEM01", "dynamic");
        extra["notification_url"] = json!("https://example.com");
        assert_eq!(
            error(&create(&sandbox, "e", extra).await),
            refused(400, "unsupported_properties")
        );
        let unknown = order_body("o", "TOTEM99", "dynamic");
        assert_eq!(
            error(&create(&sandbox, "f", unknown).await),
            refused(404, "pos_not_found")
        );

        // Static mode: one open order on a point of sale; dynamic: many.
        assert_eq!(
            create(&sandbox, "g", order_body("s-1", "TOTEM03", "static"))
                .await
                .0,
            201
        );
        let second = create(&sandbox, "h", order_body("s-2", "TOTEM03", "static")).await;
        assert_eq!(error(&second), refused(409, "pos_with_open_order"));
        let (status, first) = create(&sandbox, "i", order_body("d-1", "TOTEM04", "dynamic")).await;
        assert_eq!(status, 201);
        assert_eq!(
            create(&sandbox, "j", order_body("d-2", "TOTEM04", "dynamic"))
                .await
                .0,
            201
        );

        // A key answers its request again, and refuses another.
        let again = create(&sandbox, "i", order_body("d-1", "TOTEM04", "dynamic")).await;
        assert_eq!(again, (201, first.clone()));
        let other = create(&sandbox, "i", order_body("d-3", "TOTEM04", "dynamic")).await;
        assert_eq!(error(&other), refused(409, "idempotency_key_already_used"));

        // Cancel: an open order once; not while its payment is under way.
        let id = first["id"].as_str().unwrap();
        let cancel = format!("{url}/{id}/cancel");
        let locked = {
            sandbox.start_paying("d-1");
            call("POST", &cancel, Some("c-1"), None).await
        };
        assert_eq!(error(&locked), refused(409, "instore_order_locked_error"));
        let paid = sandbox.pay("d-1", "approved");
        assert_eq!(paid, id);
        let processed = call("POST", &cancel, Some("c-2"), None).await;
        assert_eq!(error(&processed), refused(409, "order_status_conflict"));
        // Refund: a paid order, by its id.
        let refund = format!("{url}/{id}/refund");
        let (status, refunded) = call("POST", &refund, Some("r-1"), None).await;
        assert_eq!(
            (status, refunded["status"].as_str()),
            (201, Some("refunded"))
        );
        let twice = call("POST", &refund, Some("r-2"), None).await;
        assert_eq!(error(&twice), refused(409, "order_status_conflict"));
        let other_id = sandbox.qr_order("d-2").unwrap().id;
        let cancel_other = format!("{url}/{other_id}/cancel");
        assert_eq!(call("POST", &cancel_other, Some("c-3"), None).await.0, 200);
        let again = call("POST", &cancel_other, Some("c-4"), None).await;
        assert_eq!(error(&again), refused(409, "order_already_canceled"));
        assert!(sandbox.qr_order("d-2").unwrap().cancelled);
        let missing = call("GET", &format!("{url}/ORD0000"), None, None).await;
        assert_eq!(error(&missing), refused(404, "order_not_found"));
    }

    #[test]
    fn amounts_and_durations_read_as_mercado_pago_writes_them() {
        assert_eq!(cents("25.90"), Ok(2590));
        assert!(cents("25.9").is_err() && cents("25").is_err() && cents("-1.00").is_err());
        assert_eq!(amount_text(2590), "25.90");
        assert_eq!(duration_seconds("PT15M"), Some(900));
        assert_eq!(duration_seconds("P1DT1H30S"), Some(86_400 + 3600 + 30));
        assert_eq!(duration_seconds("15M"), None);
        assert_eq!(duration_seconds("PT15X"), None);
    }
}
