//! The saga end to end: five services over sockets, the PostgreSQL
//! transport, the fake Mercado Pago.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use contracts::Envelope;
use contracts::events::{KitchenStep, ProductionDelivered};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use service_messaging::{BoxFuture, DeadLetter, Delivery, Transport};
use system_tests::{Options, System};
use testkit::mercadopago::Signature;

const CPF: &str = "529.982.247-25";

struct Menu {
    burger: String,
    fries: String,
}

async fn menu(system: &System) -> Menu {
    Menu {
        burger: system.product("X-Burger", "Lanche", 2590).await,
        fries: system.product("Batata frita", "Acompanhamento", 1200).await,
    }
}

/// A one-line order; its id.
async fn place(system: &System, token: &str, product: &str, quantity: u32) -> String {
    let items = json!([{"product_id": product, "quantity": quantity}]);
    let order = system.order(token, items).await;
    order["id"].as_str().expect("an order id").to_string()
}

fn statuses(order: &Value) -> Vec<String> {
    order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_order_goes_from_payment_to_the_counter() {
    let system = System::start(Options::new()).await;
    let menu = menu(&system).await;
    let token = system
        .customer_token("Maria Silva", CPF, "maria@example.com")
        .await;
    let placed = system
        .order(
            &token,
            json!([
                {"product_id": menu.burger, "quantity": 2, "note": "sem cebola"},
                {"product_id": menu.fries, "quantity": 1}
            ]),
        )
        .await;
    assert_eq!(placed["status"], "AWAITING_PAYMENT");
    assert_eq!(placed["total_cents"], 2 * 2590 + 1200);
    assert_eq!(placed["items"][0]["name"], "X-Burger");
    let id = placed["id"].as_str().unwrap().to_string();

    // The customer sees the QR code on their own order.
    let order = system.wait_qr(&id).await;
    let qr = system.mp.qr_order(&id).expect("a QR order at Mercado Pago");
    assert_eq!(order["payment"]["qr_data"], qr.qr_data.as_str());
    assert_eq!(qr.total_cents, 6380);
    assert_eq!(qr.body["total_amount"], "63.80");
    assert_eq!(qr.body["items"].as_array().unwrap().len(), 2);
    assert!(qr.body["expiration_time"].is_string());
    // A QR of its own (dynamic mode), at the default point of sale: this
    // order named no kiosk.
    assert_eq!((qr.mode.as_str(), qr.pos.as_str()), ("dynamic", "CAIXA01"));
    let creations = system.mp.requests_to("POST", "/v1/orders");
    assert_eq!(
        creations[0].idempotency_key.as_deref(),
        Some(format!("qr-{id}").as_str())
    );
    let (status, mine) = system
        .call(
            "order",
            Method::GET,
            &format!("/orders/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["payment"]["qr_data"], qr.qr_data.as_str());

    // Mercado Pago approves, and says so in a signed webhook.
    let paid = system.mp.pay(&id, "approved");
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    system.wait_status(&id, "RECEIVED").await;
    assert_eq!(system.payment_of(&id).await["status"], "APPROVED");

    let ticket = system.ticket_of(&id).await;
    // The kitchen calls the order by its number: no name travels.
    assert_eq!(
        ticket["customer_name"],
        format!("Order #{}", placed["number"])
    );
    assert_eq!(ticket["order_number"], placed["number"]);
    assert_eq!(
        ticket["items"][0],
        json!({"name": "X-Burger", "quantity": 2, "note": "sem cebola"})
    );
    let ticket_id = ticket["id"].as_str().unwrap();

    // The kitchen screen lists it until it is finished.
    let (_, active) = system
        .call(
            "order",
            Method::GET,
            "/orders/active",
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert!(
        active
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == id.as_str())
    );
    let (_, one) = system
        .call(
            "order",
            Method::GET,
            "/orders/active?per_page=1",
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");

    for (step, status) in [
        ("started", "IN_PREPARATION"),
        ("completed", "READY"),
        ("delivered", "FINISHED"),
    ] {
        let (code, body) = system.kitchen_step(ticket_id, step).await;
        assert_eq!(code, StatusCode::OK, "{step}: {body}");
        system.wait_status(&id, status).await;
    }
    let finished = system.get_order(&id).await;
    assert_eq!(
        statuses(&finished),
        [
            "AWAITING_PAYMENT",
            "RECEIVED",
            "IN_PREPARATION",
            "READY",
            "FINISHED"
        ]
    );
    assert!(
        finished["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["at"].is_string() && h["cause"].is_string())
    );
    let (_, active) = system
        .call(
            "order",
            Method::GET,
            "/orders/active",
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert!(
        !active
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == id.as_str())
    );

    // The kitchen cannot go back or skip.
    let (code, body) = system.kitchen_step(ticket_id, "started").await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("is DELIVERED"),
        "{body}"
    );
}

#[tokio::test]
async fn orders_are_priced_from_the_catalog_and_checked() {
    let system = System::start(Options::new()).await;
    let menu = menu(&system).await;
    let token = system.guest_token().await;
    let gone = system.product("Milkshake", "Sobremesa", 1500).await;
    let (status, _) = system
        .call(
            "product",
            Method::DELETE,
            &format!("/products/{gone}"),
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert!(status.is_success());
    let unknown = uuid::Uuid::now_v7().to_string();

    let (status, body) = system
        .try_order(
            Some(&token),
            json!({"items": [
                {"product_id": menu.burger, "quantity": 1},
                {"product_id": unknown, "quantity": 1},
                {"product_id": gone, "quantity": 1},
                {"product_id": menu.fries, "quantity": 21}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["items[3].quantity"],
        "quantities are checked before the catalog"
    );

    let (status, body) = system
        .try_order(
            Some(&token),
            json!({"items": [
                {"product_id": menu.burger, "quantity": 1},
                {"product_id": unknown, "quantity": 1},
                {"product_id": gone, "quantity": 1}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(errors[0]["field"], "items[1].product_id");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("not a product")
    );
    assert_eq!(errors[1]["field"], "items[2].product_id");
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("not available")
    );

    let (status, body) = system.try_order(Some(&token), json!({"items": []})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "items");

    // A price sent by the client is refused, not used.
    let (status, _) = system
        .try_order(
            Some(&token),
            json!({"items": [{"product_id": menu.burger, "quantity": 1, "price_cents": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Staff do not order; nobody orders without a token.
    let (status, _) = system
        .try_order(
            Some(&system.employee_token()),
            json!({"items": [{"product_id": menu.burger, "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = system
        .try_order(
            None,
            json!({"items": [{"product_id": menu.burger, "quantity": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The same Idempotency-Key gives the first answer, and one order.
    let body = json!({"items": [{"product_id": menu.burger, "quantity": 1}]});
    let key = [("idempotency-key", "retry-1")];
    let (first_status, first) = system
        .call_with(
            "order",
            Method::POST,
            "/orders",
            Some(&token),
            &key,
            Some(body.clone()),
        )
        .await;
    let (again_status, again) = system
        .call_with(
            "order",
            Method::POST,
            "/orders",
            Some(&token),
            &key,
            Some(body),
        )
        .await;
    assert_eq!(
        (first_status, again_status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first["id"], again["id"]);
    let other = json!({"items": [{"product_id": menu.fries, "quantity": 1}]});
    let (status, body) = system
        .call_with(
            "order",
            Method::POST,
            "/orders",
            Some(&token),
            &key,
            Some(other),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, listed) = system
        .call(
            "order",
            Method::GET,
            "/orders",
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Another customer cannot see it; a bad status filter is named.
    let stranger = system.guest_token().await;
    let id = first["id"].as_str().unwrap();
    let (status, _) = system
        .call(
            "order",
            Method::GET,
            &format!("/orders/{id}"),
            Some(&stranger),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nor its payment, though the staff see one.
    system.wait_qr(id).await;
    assert!(system.payment_of(id).await["id"].is_string());
    let (status, payments) = system
        .call(
            "payment",
            Method::GET,
            &format!("/payments?order_id={id}"),
            Some(&stranger),
            None,
        )
        .await;
    assert_eq!((status, payments), (StatusCode::OK, json!([])));
    let (status, body) = system
        .call(
            "order",
            Method::GET,
            "/orders?status=LOST",
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["field"], "status");
    let (status, listed) = system
        .call(
            "order",
            Method::GET,
            "/orders?status=AWAITING_PAYMENT",
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_rejected_payment_cancels_the_order_and_its_qr_code() {
    let system = System::start(Options::new()).await;
    let menu = menu(&system).await;
    let token = system.guest_token().await;
    let id = place(&system, &token, &menu.burger, 1).await;
    system.wait_qr(&id).await;
    let attempt = system.mp.pay(&id, "rejected");
    assert_eq!(system.mp.notify(&attempt, Signature::Valid).await, 200);
    let order = system.wait_status(&id, "CANCELLED").await;
    assert!(
        order["history"][1]["cause"]
            .as_str()
            .unwrap()
            .contains("payment rejected"),
        "{order}"
    );
    system.quiesce().await;
    assert_eq!(system.payment_of(&id).await["status"], "REJECTED");
    // A failed order is closed at Mercado Pago: nothing to withdraw, and
    // the one cancel asked is answered so.
    let cancels = system
        .mp
        .requests_to("POST", &format!("/v1/orders/{attempt}/cancel"));
    assert_eq!(cancels.len(), 1);
    assert_eq!(system.mp.qr_order(&id).unwrap().status, "failed");
}

#[tokio::test]
async fn an_approval_that_is_not_the_order_s_is_refunded_and_cancels_the_order() {
    let system = System::start(Options::new()).await;
    let menu = menu(&system).await;
    // Each way a payment can fail to be this order's: the amount, the
    // currency, the account it was paid to.
    for (field, value, said) in [
        (
            "amount",
            json!("1.00"),
            "paid 100 cents, the order is 2590 cents",
        ),
        ("currency", json!("USD"), "currency USD instead of BRL"),
        ("user_id", json!(999), "paid to collector 999"),
    ] {
        let token = system.guest_token().await;
        let id = place(&system, &token, &menu.burger, 1).await;
        system.wait_qr(&id).await;
        let paid = system.mp.pay(&id, "approved");
        system.mp.alter_order(&paid, field, value);
        assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
        let order = system.wait_status(&id, "CANCELLED").await;
        assert!(
            order["history"][1]["cause"]
                .as_str()
                .unwrap()
                .contains(said),
            "{field}: {order}"
        );
        system.quiesce().await;
        let payment = system.payment_of(&id).await;
        assert_eq!(payment["status"], "REFUNDED", "{payment}");
        assert!(
            !system
                .mp
                .requests_to("POST", &format!("/v1/orders/{paid}/refund"))
                .is_empty(),
            "{field}: the money went back"
        );
        assert_eq!(system.mp.order(&paid).unwrap()["status"], "refunded");
        // Nothing reached the kitchen.
        let (_, tickets) = system
            .call(
                "production",
                Method::GET,
                "/production",
                Some(&system.employee_token()),
                None,
            )
            .await;
        assert!(
            tickets
                .as_array()
                .unwrap()
                .iter()
                .all(|t| t["order_id"] != id.as_str()),
            "{tickets}"
        );
    }
}

#[tokio::test]
async fn an_unpaid_code_expires_and_a_late_approval_is_refunded() {
    let mut options = Options::new();
    options.payment_expiry = Duration::from_millis(500);
    let system = System::start(options).await;
    let menu = menu(&system).await;
    let token = system.guest_token().await;
    let id = place(&system, &token, &menu.fries, 3).await;
    system.wait_qr(&id).await;
    let order = system.wait_status(&id, "CANCELLED").await;
    assert!(
        order["history"][1]["cause"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{order}"
    );
    system.quiesce().await;
    let payment = system.payment_of(&id).await;
    assert_eq!(payment["status"], "EXPIRED");
    // It was checked with Mercado Pago once more, by its order's id,
    // before expiring; then that order, and no other, was cancelled.
    let qr = system.mp.qr_order(&id).unwrap();
    let path = format!("/v1/orders/{}", qr.id);
    assert_eq!(system.mp.requests_to("GET", &path).len(), 1);
    assert!(qr.cancelled);
    assert_eq!(system.mp.requests_to("POST", "/v1/orders/").len(), 1);
    assert_eq!(
        system.mp.requests_to("POST", &format!("{path}/cancel"))[0]
            .idempotency_key
            .as_deref(),
        Some(format!("cancel-{}", qr.id).as_str())
    );
    payment_raced_the_cancel(&system, &menu).await;
}

/// A customer paying while the order expires: Mercado Pago refuses the
/// cancel (the payment is under way), the approval comes after the
/// payment expired, and the money goes back by the order's id.
async fn payment_raced_the_cancel(system: &System, menu: &Menu) {
    let token = system.guest_token().await;
    let id = place(system, &token, &menu.fries, 1).await;
    system.wait_qr(&id).await;
    system.mp.start_paying(&id);
    let order = system.wait_status(&id, "CANCELLED").await;
    system.quiesce().await;
    assert_eq!(system.payment_of(&id).await["status"], "EXPIRED", "{order}");
    let late = system.mp.pay(&id, "approved");
    assert_eq!(system.mp.notify(&late, Signature::Valid).await, 200);
    let payment = system.payment_of(&id).await;
    assert_eq!(payment["status"], "REFUNDED", "{payment}");
    assert_eq!(system.mp.order(&late).unwrap()["status"], "refunded");
    assert_eq!(
        system
            .mp
            .requests_to("POST", &format!("/v1/orders/{late}/refund"))
            .len(),
        1
    );
    system.quiesce().await;
    assert_eq!(system.get_order(&id).await["status"], "CANCELLED");
}

/// Places an order of one burger at `kiosk`; its id.
async fn place_at(system: &System, menu: &Menu, kiosk: &str) -> String {
    let token = system.guest_token().await;
    let body = json!({
        "items": [{"product_id": menu.burger, "quantity": 1}],
        "point_of_sale": kiosk,
    });
    let (status, placed) = system.try_order(Some(&token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["point_of_sale"], kiosk);
    placed["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn two_kiosks_paying_at_once_never_touch_each_other_s_qr() {
    let mut options = Options::new();
    options.payment_expiry = Duration::from_secs(2);
    let system = System::start(options).await;
    let menu = menu(&system).await;
    // A kiosk the system does not know is refused, naming those it knows.
    let token = system.guest_token().await;
    let body = json!({
        "items": [{"product_id": menu.burger, "quantity": 1}],
        "point_of_sale": "TOTEM99",
    });
    let (status, refused) = system.try_order(Some(&token), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "point_of_sale");
    assert!(refused.to_string().contains("TOTEM01"), "{refused}");

    // Two customers at two kiosks, each with a QR of its own there.
    let (expiring, paying) = (
        place_at(&system, &menu, "TOTEM01").await,
        place_at(&system, &menu, "TOTEM02").await,
    );
    system.wait_qr(&expiring).await;
    system.wait_qr(&paying).await;
    let (qr_a, qr_b) = (
        system.mp.qr_order(&expiring).unwrap(),
        system.mp.qr_order(&paying).unwrap(),
    );
    assert_eq!(
        (qr_a.pos.as_str(), qr_b.pos.as_str()),
        ("TOTEM01", "TOTEM02")
    );
    assert_ne!(qr_a.qr_data, qr_b.qr_data);

    // One pays; the other lets its code expire.
    let paid = system.mp.pay(&paying, "approved");
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    system.wait_status(&paying, "RECEIVED").await;
    system.wait_status(&expiring, "CANCELLED").await;
    system.quiesce().await;
    // The expired order's QR was cancelled by its own id; the paid one's
    // was never touched.
    let cancels: Vec<String> = system
        .mp
        .requests_to("POST", "/v1/orders/")
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.ends_with("/cancel"))
        .collect();
    assert_eq!(cancels, [format!("/v1/orders/{}/cancel", qr_a.id)]);
    assert!(system.mp.qr_order(&expiring).unwrap().cancelled);
    let kept = system.mp.qr_order(&paying).unwrap();
    assert_eq!((kept.status.as_str(), kept.cancelled), ("processed", false));
}

#[tokio::test]
async fn forged_stale_unsigned_and_repeated_webhooks_change_nothing() {
    let system = System::start(Options::new()).await;
    let menu = menu(&system).await;
    let token = system.guest_token().await;
    let id = place(&system, &token, &menu.burger, 1).await;
    system.wait_qr(&id).await;
    // Paid, but said by forged, stale and unsigned notifications.
    let paid = system.mp.pay(&id, "pending");
    for signature in [Signature::Forged, Signature::Stale, Signature::Missing] {
        assert_eq!(
            system.mp.notify(&paid, signature).await,
            401,
            "{signature:?}"
        );
    }
    // None of them was even looked up.
    assert!(system.mp.requests_to("GET", "/v1/orders/").is_empty());
    system.quiesce().await;
    assert_eq!(system.get_order(&id).await["status"], "AWAITING_PAYMENT");
    assert_eq!(system.payment_of(&id).await["status"], "PENDING");

    // A payment in process leaves the payment pending.
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    system.quiesce().await;
    assert_eq!(system.payment_of(&id).await["status"], "PENDING");

    // Approved: the real one, twice.
    assert_eq!(system.mp.pay(&id, "approved"), paid);
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    system.wait_status(&id, "RECEIVED").await;
    system.quiesce().await;
    let payment = system.payment_of(&id).await;
    let approvals = payment["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "APPROVED")
        .count();
    assert_eq!(approvals, 1, "{payment}");
    assert_eq!(
        statuses(&system.get_order(&id).await),
        ["AWAITING_PAYMENT", "RECEIVED"]
    );
    let (_, tickets) = system
        .call(
            "production",
            Method::GET,
            "/production",
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert_eq!(tickets.as_array().unwrap().len(), 1);
    // A webhook for a payment Mercado Pago does not know is acknowledged.
    let url = format!("{}/webhooks/mercadopago", system.url("payment"));
    assert_eq!(
        system.mp.send_webhook(&url, "999", Signature::Valid).await,
        200
    );
}

/// A service's transport with its publishing changed: every event sent
/// twice, or none while `down` is set (as if the process died right after
/// its commit).
struct Publishing {
    inner: Arc<dyn Transport>,
    twice: bool,
    down: Arc<AtomicBool>,
}

impl Transport for Publishing {
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                anyhow::bail!("the process is gone");
            }
            if self.twice {
                self.inner.publish(envelope).await?;
            }
            self.inner.publish(envelope).await
        })
    }
    fn receive(&self, max: usize, wait: Duration) -> BoxFuture<'_, anyhow::Result<Vec<Delivery>>> {
        self.inner.receive(max, wait)
    }
    fn ack<'a>(&'a self, d: &'a Delivery) -> BoxFuture<'a, anyhow::Result<()>> {
        self.inner.ack(d)
    }
    fn retry_later<'a>(
        &'a self,
        d: &'a Delivery,
        delay: Duration,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.inner.retry_later(d, delay)
    }
    fn dead_letter<'a>(
        &'a self,
        d: &'a Delivery,
        reason: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.inner.dead_letter(d, reason)
    }
    fn dead_letters(&self) -> BoxFuture<'_, anyhow::Result<Vec<DeadLetter>>> {
        self.inner.dead_letters()
    }
    fn scrub<'a>(
        &'a self,
        about: &'a str,
        scrub: &'a service_messaging::Scrub,
    ) -> BoxFuture<'a, anyhow::Result<usize>> {
        self.inner.scrub(about, scrub)
    }
}

#[tokio::test]
async fn every_event_delivered_twice_changes_nothing() {
    let mut options = Options::new();
    options.wrap = Some(Arc::new(|_, inner| {
        let down = Arc::new(AtomicBool::new(false));
        Arc::new(Publishing {
            inner,
            twice: true,
            down,
        }) as Arc<dyn Transport>
    }));
    let system = System::start(options).await;
    let menu = menu(&system).await;
    let token = system.guest_token().await;
    let id = place(&system, &token, &menu.burger, 1).await;
    system.wait_qr(&id).await;
    let paid = system.mp.pay(&id, "approved");
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    let ticket = system.ticket_of(&id).await;
    let ticket_id = ticket["id"].as_str().unwrap();
    for step in ["started", "completed", "delivered"] {
        assert_eq!(system.kitchen_step(ticket_id, step).await.0, StatusCode::OK);
    }
    system.wait_status(&id, "FINISHED").await;
    system.quiesce().await;
    assert_eq!(
        statuses(&system.get_order(&id).await),
        [
            "AWAITING_PAYMENT",
            "RECEIVED",
            "IN_PREPARATION",
            "READY",
            "FINISHED"
        ]
    );
    assert_eq!(system.mp.qr_orders().len(), 1, "one QR order");
    let (_, tickets) = system
        .call(
            "production",
            Method::GET,
            "/production?status=DELIVERED",
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert_eq!(tickets.as_array().unwrap().len(), 1, "one ticket");
    // Nothing was dead-lettered: the copies were recognised, not failed.
    for service in ["order", "payment", "production"] {
        assert!(
            system
                .bus(service)
                .await
                .dead_letters()
                .await
                .unwrap()
                .is_empty(),
            "{service}"
        );
    }
}

#[tokio::test]
async fn a_service_killed_between_commit_and_publish_loses_nothing() {
    let down = Arc::new(AtomicBool::new(true));
    let mut options = Options::new();
    let cut = down.clone();
    options.wrap = Some(Arc::new(move |service, inner| {
        if service == "order" {
            Arc::new(Publishing {
                inner,
                twice: false,
                down: cut.clone(),
            }) as Arc<dyn Transport>
        } else {
            inner
        }
    }));
    let mut system = System::start(options).await;
    let menu = menu(&system).await;
    let token = system.guest_token().await;
    let id = place(&system, &token, &menu.burger, 1).await;
    // Committed, not published: no QR order is asked for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(system.mp.qr_orders().is_empty());
    let orders = system.service_pool("order").await;
    assert_eq!(
        service_messaging::outbox::pending(&orders).await.unwrap(),
        1
    );

    system.kill("order").await;
    down.store(false, Ordering::SeqCst);
    system.start_service("order").await;
    let order = system.wait_qr(&id).await;
    assert_eq!(order["status"], "AWAITING_PAYMENT");
    assert_eq!(system.mp.qr_orders().len(), 1);
    assert_eq!(
        service_messaging::outbox::pending(&orders).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_and_the_queue_keeps_flowing() {
    let mut options = Options::new();
    options.events.max_receive = 3;
    let system = System::start(options).await;
    let menu = menu(&system).await;
    let payment_bus = system.bus("payment").await;
    payment_bus.send_raw("{not json").await.unwrap();
    let order_bus = system.bus("order").await;
    // An event that never fits here: a hand-over of an order never made.
    let token = system.guest_token().await;
    let id = place(&system, &token, &menu.burger, 1).await;
    let early = Envelope::new(
        "production",
        &ProductionDelivered(KitchenStep {
            order_id: id.parse().unwrap(),
            ticket_id: uuid::Uuid::now_v7(),
            at: time::OffsetDateTime::now_utc(),
        }),
    );
    order_bus.send_raw(&early.to_json()).await.unwrap();
    // The rest flows: the order gets its QR code, and can be paid.
    system.wait_qr(&id).await;
    let paid = system.mp.pay(&id, "approved");
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    system.wait_status(&id, "RECEIVED").await;
    system.quiesce().await;

    let dead = payment_bus.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "{not json");
    assert!(
        dead[0].reason.starts_with("not an event envelope"),
        "{}",
        dead[0].reason
    );
    // The stray step was retried, never applied, then set aside with why.
    let dead = order_bus.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].reason.contains("gave up after 3 attempts"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].reason.contains("needs READY"), "{}", dead[0].reason);
    assert_eq!(
        statuses(&system.get_order(&id).await),
        ["AWAITING_PAYMENT", "RECEIVED"]
    );
}

#[tokio::test]
async fn mercado_pago_down_is_retried_and_the_order_still_gets_its_code() {
    let system = System::start(Options::new()).await;
    let menu = menu(&system).await;
    system.mp.fail_next_qr_orders(2);
    let token = system.guest_token().await;
    let id = place(&system, &token, &menu.burger, 1).await;
    system.wait_qr(&id).await;
    let attempts = system.mp.requests_to("POST", "/v1/orders");
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts
            .iter()
            .all(|a| a.idempotency_key == attempts[0].idempotency_key)
    );
    assert_eq!(system.mp.qr_orders().len(), 1);
}

// ---- Staff access: an admin disabling an employee ----

/// An employee's token from their e-mail and password.
async fn sign_in(system: &System, email: &str, password: &str) -> (StatusCode, Value) {
    system
        .call(
            "user",
            Method::POST,
            "/auth/employee/token",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
}

/// What the order and production services answer a staff read with `token`.
async fn staff_reads(system: &System, token: &str) -> [StatusCode; 2] {
    let (order, _) = system
        .call("order", Method::GET, "/orders/active", Some(token), None)
        .await;
    let (production, _) = system
        .call("production", Method::GET, "/production", Some(token), None)
        .await;
    [order, production]
}

/// Polls until the order and production services answer `wanted`: within
/// one refresh interval, plus the list's read and the poll itself on a
/// loaded machine.
async fn until_staff_reads(system: &System, token: &str, wanted: StatusCode) -> Duration {
    let started = std::time::Instant::now();
    loop {
        if staff_reads(system, token).await == [wanted, wanted] {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < system_tests::REVOCATIONS_REFRESH * 3,
            "still not {wanted} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_disabled_employee_s_tokens_are_refused_everywhere_within_the_refresh() {
    let system = System::start(Options::new()).await;
    let (status, admin) = sign_in(
        &system,
        system_tests::ADMIN_EMAIL,
        system_tests::ADMIN_PASSWORD,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    let admin = admin["access_token"].as_str().unwrap().to_string();
    let hire = |email: &'static str| {
        let admin = admin.clone();
        let system = &system;
        async move {
            let (status, made) = system
                .call(
                    "user",
                    Method::POST,
                    "/employees",
                    Some(&admin),
                    Some(json!({"name": "Cozinha", "email": email, "password": "cozinha-senha-1", "role": "employee"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{made}");
            let (status, token) = sign_in(system, email, "cozinha-senha-1").await;
            assert_eq!(status, StatusCode::OK, "{token}");
            (
                made["id"].as_str().unwrap().to_string(),
                token["access_token"].as_str().unwrap().to_string(),
            )
        }
    };
    let (cook, cook_token) = hire("cozinha@system.test").await;
    let (_, other_token) = hire("balcao@system.test").await;
    assert_eq!(staff_reads(&system, &cook_token).await, [StatusCode::OK; 2]);
    // The kitchen's list comes a bounded page at a time.
    for query in ["per_page=201", "page=9223372036854775807", "page=0"] {
        let (status, problem) = system
            .call(
                "order",
                Method::GET,
                &format!("/orders/active?{query}"),
                Some(&cook_token),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
    }

    // Only an admin disables, and not themself.
    let (status, _) = system
        .call(
            "user",
            Method::POST,
            &format!("/employees/{cook}/disable"),
            Some(&other_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, disabled) = system
        .call(
            "user",
            Method::POST,
            &format!("/employees/{cook}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert_eq!(disabled["disabled"], true);

    // Within the refresh interval the cook's token is refused by the order
    // and production services; a colleague's still works.
    let took = until_staff_reads(&system, &cook_token, StatusCode::UNAUTHORIZED).await;
    println!("the disabled employee's token was refused everywhere {took:?} after");
    assert_eq!(
        staff_reads(&system, &other_token).await,
        [StatusCode::OK; 2]
    );
    let (_, refused) = system
        .call(
            "order",
            Method::GET,
            "/orders/active",
            Some(&cook_token),
            None,
        )
        .await;
    assert!(refused.to_string().contains("revoked"), "{refused}");
    // No new token either.
    let (status, _) = sign_in(&system, "cozinha@system.test", "cozinha-senha-1").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Enabled again, the cook signs in anew; the old token stays refused.
    let (status, _) = system
        .call(
            "user",
            Method::POST,
            &format!("/employees/{cook}/enable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, fresh) = sign_in(&system, "cozinha@system.test", "cozinha-senha-1").await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let fresh = fresh["access_token"].as_str().unwrap();
    until_staff_reads(&system, fresh, StatusCode::OK).await;
    assert_eq!(
        staff_reads(&system, &cook_token).await,
        [StatusCode::UNAUTHORIZED; 2]
    );
    // A disabled admin loses every admin power at once, on every replica:
    // the user service checks its database, not only the list.
    let (status, second) = system
        .call(
            "user",
            Method::POST,
            "/employees",
            Some(&admin),
            Some(json!({"name": "Gerente 2", "email": "gerente2@system.test", "password": "gerente-senha-2", "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (_, second_token) = sign_in(&system, "gerente2@system.test", "gerente-senha-2").await;
    let second_token = second_token["access_token"].as_str().unwrap().to_string();
    let second_id = second["id"].as_str().unwrap();
    let (status, _) = system
        .call(
            "user",
            Method::POST,
            &format!("/employees/{second_id}/enable"),
            Some(&second_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no admin enables themself");
    let (status, _) = system
        .call(
            "user",
            Method::POST,
            &format!("/employees/{second_id}/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = system
        .call(
            "user",
            Method::POST,
            "/employees",
            Some(&second_token),
            Some(json!({"name": "X", "email": "x@system.test", "password": "x-senha-12345", "role": "admin"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a disabled admin adds no one"
    );
    // The list names employees only by id, with the moment tokens count again.
    let (status, list) = system
        .call("user", Method::GET, "/auth/revocations", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list["revocations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["subject"] == cook.as_str()),
        "{list}"
    );
    assert!(!list.to_string().contains("cozinha@"), "{list}");
}

#[tokio::test]
async fn whoever_may_not_call_a_route_is_refused_before_anything_is_read() {
    let system = System::start(Options::new()).await;
    let customer = system.signer.token("someone", "customer");
    let guest = system.signer.token("someone-else", "guest");
    let id = uuid::Uuid::now_v7();
    // Staff and admin routes, each with a malformed body, a bad query or a
    // bad path: the wrong role is told 403, never what is wrong with the rest.
    let routes: Vec<(&str, Method, String)> = vec![
        ("product", Method::POST, "/products".into()),
        ("product", Method::PUT, format!("/products/{id}")),
        ("product", Method::DELETE, "/products/not-a-uuid".into()),
        ("order", Method::GET, "/orders?status=NOPE".into()),
        ("order", Method::GET, "/orders/active?page=abc".into()),
        ("production", Method::GET, "/production?x=1".into()),
        ("production", Method::GET, "/production/not-a-uuid".into()),
        (
            "production",
            Method::PUT,
            "/production/not-a-uuid/started".into(),
        ),
        (
            "production",
            Method::PUT,
            "/production/not-a-uuid/completed".into(),
        ),
        (
            "production",
            Method::PUT,
            "/production/not-a-uuid/delivered".into(),
        ),
        ("user", Method::GET, "/users?cpf=123".into()),
        ("user", Method::PATCH, "/users/not-a-uuid".into()),
        (
            "user",
            Method::POST,
            "/users/not-a-uuid/anonymization".into(),
        ),
        ("user", Method::POST, "/employees".into()),
        ("user", Method::POST, "/employees/not-a-uuid/disable".into()),
        ("user", Method::POST, "/employees/not-a-uuid/enable".into()),
    ];
    for token in [&customer, &guest] {
        for (service, method, path) in &routes {
            let url = format!("{}{path}", system.url(service));
            let bearer = format!("Bearer {token}");
            let answer = system
                .http
                .send(
                    method.clone(),
                    &url,
                    &[
                        ("authorization", bearer.as_str()),
                        ("content-type", "application/json"),
                    ],
                    bytes::Bytes::from_static(b"{"),
                )
                .await
                .unwrap();
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                answer.text()
            );
        }
    }
    // Staff may not place an order: the order route is the customers'.
    let staff = system.employee_token();
    let bearer = format!("Bearer {staff}");
    let answer = system
        .http
        .send(
            Method::POST,
            &format!("{}/orders", system.url("order")),
            &[
                ("authorization", bearer.as_str()),
                ("content-type", "application/json"),
            ],
            bytes::Bytes::from_static(b"{"),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text());
}

/// Counts the rows of `table` in `pool` whose `column` holds `text`.
async fn holding(pool: &sqlx::PgPool, table: &str, column: &str, text: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE strpos({column}::text, $1) > 0"
    ))
    .bind(text)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_erased_customer_s_name_leaves_every_service_and_their_tokens_stop() {
    let system = System::start(Options::new()).await;
    let menu = menu(&system).await;
    let token = system
        .customer_token("Joana Prado", CPF, "joana@example.com")
        .await;
    let (_, me) = system
        .call(
            "user",
            Method::POST,
            "/auth/token",
            None,
            Some(json!({"cpf": CPF})),
        )
        .await;
    let customer = me["subject"].as_str().unwrap().to_string();
    let order = place(&system, &token, &menu.burger, 1).await;
    system.wait_qr(&order).await;
    let paid = system.mp.pay(&order, "approved");
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    system.wait_status(&order, "RECEIVED").await;
    system.ticket_of(&order).await;
    system.quiesce().await;
    let number = system.get_order(&order).await["number"].as_i64().unwrap();

    // What a release that still put names in tokens left behind: the name
    // on the order, its ticket, the order's events, a dead letter of the
    // payment service, one of the kitchen and a message still waiting.
    const NAME: &str = "Joana Prado";
    let orders = system.service_pool("order").await;
    let production = system.service_pool("production").await;
    let bus = sqlx::PgPool::connect(&system.bus_url).await.unwrap();
    sqlx::query("UPDATE orders SET customer_name = $2 WHERE id = $1::uuid")
        .bind(&order)
        .bind(NAME)
        .execute(&orders)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE outbox SET envelope = CASE event_name \
           WHEN 'order.created' THEN jsonb_set(envelope::jsonb, '{payload,customer,name}', to_jsonb($2::text)) \
           ELSE jsonb_set(envelope::jsonb, '{payload,customer_name}', to_jsonb($2::text)) END::text \
         WHERE event_name IN ('order.created', 'order.paid') AND strpos(envelope, $1) > 0",
    )
    .bind(&order)
    .bind(NAME)
    .execute(&orders)
    .await
    .unwrap();
    assert_eq!(holding(&orders, "outbox", "envelope", NAME).await, 2);
    sqlx::query("UPDATE tickets SET customer_name = $2 WHERE order_id = $1::uuid")
        .bind(&order)
        .bind(NAME)
        .execute(&production)
        .await
        .unwrap();
    let (created, paid): (String, String) = sqlx::query_as(
        "SELECT max(envelope) FILTER (WHERE event_name = 'order.created'), \
                max(envelope) FILTER (WHERE event_name = 'order.paid') FROM outbox",
    )
    .fetch_one(&orders)
    .await
    .unwrap();
    for (id, queue, body) in [
        (9_000_001_i64, "payment", &created),
        (9_000_002, "production", &paid),
    ] {
        sqlx::query(
            "INSERT INTO bus_dead_letters (id, queue, body, reason, receive_count, sent_at) \
             VALUES ($1, $2, $3, 'a database outage', 5, now())",
        )
        .bind(id)
        .bind(queue)
        .bind(body)
        .execute(&bus)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO bus_messages (queue, body, visible_at) VALUES ('production', $1, now() + interval '1 hour')",
    )
    .bind(&paid)
    .execute(&bus)
    .await
    .unwrap();
    let (status, seen) = system
        .call(
            "order",
            Method::GET,
            &format!("/orders/{order}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");

    // Staff at the counter erase the customer, who showed a document.
    let (status, erased) = system
        .call(
            "user",
            Method::POST,
            &format!("/users/{customer}/anonymization"),
            Some(&system.employee_token()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{erased}");

    // The name leaves the order, the ticket, the events and every message,
    // by SQL; the order stays, for the books.
    let started = std::time::Instant::now();
    loop {
        let left = [
            holding(&orders, "orders", "customer_name", NAME).await,
            holding(&orders, "outbox", "envelope", NAME).await,
            holding(&production, "tickets", "customer_name", NAME).await,
            holding(&bus, "bus_dead_letters", "body", NAME).await,
            holding(&bus, "bus_messages", "body", NAME).await,
        ];
        if left == [0; 5] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the name is still in orders, outbox, tickets, dead letters, queue: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "the name left every service {:?} after the erasure",
        started.elapsed()
    );
    let ticket: String =
        sqlx::query_scalar("SELECT customer_name FROM tickets WHERE order_id = $1::uuid")
            .bind(&order)
            .fetch_one(&production)
            .await
            .unwrap();
    assert_eq!(ticket, format!("Order #{number}"));
    assert_eq!(system.get_order(&order).await["status"], "RECEIVED");
    let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM bus_dead_letters")
        .fetch_one(&bus)
        .await
        .unwrap();
    assert_eq!(
        dead, 2,
        "scrubbed, not lost: an operator can still replay them"
    );

    // The token the customer held is refused everywhere.
    let started = std::time::Instant::now();
    loop {
        let (status, _) = system
            .call(
                "order",
                Method::GET,
                &format!("/orders/{order}"),
                Some(&token),
                None,
            )
            .await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < system_tests::REVOCATIONS_REFRESH * 10,
            "the erased customer's token still works: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
