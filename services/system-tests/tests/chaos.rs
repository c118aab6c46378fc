//! The saga under the failures production sees, while 200 orders come in
//! at once from four kiosks and Mercado Pago answers 500 for 30 s: on the
//! PostgreSQL transport, the whole database gone for 20 s (every
//! service's and the event transport's: new connections refused, open
//! ones cut, as in an RDS failover); on SNS/SQS, the broker unreachable
//! for 20 s. Every paid order reaches the kitchen, none twice, and
//! nothing is dead-lettered.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{KIOSKS, Options, SnsSqs, System};
use testkit::mercadopago::Signature;

const ORDERS: usize = 200;
/// How long the database, or the broker, is gone.
const DOWN: Duration = Duration::from_secs(20);
const MERCADO_PAGO_DOWN: Duration = Duration::from_secs(30);
/// Long enough for the outages and the backlog after them.
const WITHIN: Duration = Duration::from_secs(240);

/// A kiosk places order `n` as a customer would: sending it again, with
/// the same idempotency key, until it is taken. Its id.
async fn place(system: &System, product: &str, n: usize, turned_away: &AtomicUsize) -> String {
    let token = system.signer.token(&format!("guest-{n}"), "guest");
    let key = format!("chaos-order-{n}");
    let body = json!({
        "items": [{"product_id": product, "quantity": 1 + n % 3}],
        "point_of_sale": KIOSKS[n % KIOSKS.len()],
    });
    let started = Instant::now();
    loop {
        let (status, placed) = system
            .call_with(
                "order",
                Method::POST,
                "/orders",
                Some(&token),
                &[("idempotency-key", &key)],
                Some(body.clone()),
            )
            .await;
        if status.is_success() {
            return placed["id"].as_str().expect("an order id").to_string();
        }
        assert!(
            status.is_server_error() && started.elapsed() < WITHIN,
            "order {n}: {status} {placed}"
        );
        turned_away.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The order as staff read it, once it passes `done`.
async fn until(system: &System, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    let staff = system.employee_token();
    loop {
        let (status, order) = system
            .call(
                "order",
                Method::GET,
                &format!("/orders/{id}"),
                Some(&staff),
                None,
            )
            .await;
        if status == StatusCode::OK && done(&order) {
            return order;
        }
        assert!(
            started.elapsed() < WITHIN,
            "order {id} never {what}: {status} {order}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The customer pays once the QR shows; Mercado Pago sends its
/// notification until the payment service takes it.
async fn pay(system: &System, id: &str) {
    until(system, id, "showed its QR", |o| {
        o["payment"]["qr_data"].is_string()
    })
    .await;
    let paid = system.mp.pay(id, "approved");
    let started = Instant::now();
    while system.mp.notify(&paid, Signature::Valid).await != 200 {
        assert!(
            started.elapsed() < WITHIN,
            "the notification of {id} never taken"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    until(system, id, "reached the kitchen", |o| {
        o["status"] == "RECEIVED"
    })
    .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// What goes away besides Mercado Pago.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outage {
    /// Every database of the system, on the PostgreSQL transport.
    Database,
    /// SNS and SQS, with the events on them.
    Broker,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_orders_ride_out_a_database_and_a_mercado_pago_outage() {
    two_hundred_orders_through(Outage::Database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sns_sqs_two_hundred_orders_ride_out_a_broker_and_a_mercado_pago_outage() {
    two_hundred_orders_through(Outage::Broker).await;
}

async fn two_hundred_orders_through(outage: Outage) {
    let mut options = Options::new();
    // Retried by cause the whole time, a couple of seconds apart at most.
    options.events.retry_max_delay = Duration::from_secs(2);
    if outage == Outage::Broker {
        options.sns_sqs = Some(SnsSqs::start(options.events.max_receive).await);
    }
    let system = Arc::new(System::start(options).await);
    let product = system.product("X-Burger", "Lanche", 2590).await;
    let turned_away = Arc::new(AtomicUsize::new(0));

    let started = Instant::now();
    let customers: Vec<_> = (0..ORDERS)
        .map(|n| {
            let (system, product) = (system.clone(), product.clone());
            let turned_away = turned_away.clone();
            tokio::spawn(async move {
                let id = place(&system, &product, n, &turned_away).await;
                pay(&system, &id).await;
                (id, started.elapsed())
            })
        })
        .collect();
    // Some orders are in; then both outages begin.
    tokio::time::sleep(Duration::from_millis(500)).await;
    system.mp.fail_all_for(MERCADO_PAGO_DOWN);
    let broker = system.options.sns_sqs.clone();
    match &broker {
        Some(broker) => broker.unreachable(true),
        None => system.databases_down().await,
    }
    tokio::time::sleep(DOWN).await;
    match &broker {
        Some(broker) => broker.unreachable(false),
        None => system.databases_up().await,
    }

    let mut took = Vec::new();
    let mut ids = Vec::new();
    for customer in customers {
        let (id, after) = customer.await.expect("a customer's order");
        ids.push(id);
        took.push(after);
    }
    system.quiesce().await;

    // Each paid order reached the kitchen once: one ticket each.
    let production = system.service_pool("production").await;
    let tickets: Vec<(uuid::Uuid, i64)> =
        sqlx::query_as("SELECT order_id, count(*) FROM tickets GROUP BY order_id")
            .fetch_all(&production)
            .await
            .unwrap();
    let tickets: HashMap<String, i64> = tickets
        .into_iter()
        .map(|(id, n)| (id.to_string(), n))
        .collect();
    for id in &ids {
        assert_eq!(tickets.get(id), Some(&1), "order {id}'s tickets");
    }
    assert_eq!(tickets.len(), ORDERS);
    // One Mercado Pago order each, at its kiosk, though creations were
    // refused while it was down.
    let qr_orders = system.mp.qr_orders();
    assert_eq!(qr_orders.len(), ORDERS);
    assert!(qr_orders.iter().all(|o| KIOSKS.contains(&o.pos.as_str())));
    let creations = system.mp.requests_to("POST", "/v1/orders").len();
    assert!(creations > ORDERS, "Mercado Pago's outage was never felt");
    // Nothing dead-lettered, anywhere.
    let dead = match &broker {
        Some(broker) => broker.backlog().await.1,
        None => {
            let bus = sqlx::PgPool::connect(&system.bus_url).await.unwrap();
            sqlx::query_scalar("SELECT count(*) FROM bus_dead_letters")
                .fetch_one(&bus)
                .await
                .unwrap()
        }
    };
    assert_eq!(dead, 0, "dead letters");
    let turned_away = turned_away.load(Ordering::SeqCst);
    match &broker {
        Some(broker) => assert!(
            broker.aws.proxy.faults() > 0,
            "the broker's outage was never felt"
        ),
        None => assert!(turned_away > 0, "the database outage was never felt"),
    }

    took.sort();
    println!(
        "{ORDERS} orders through a {DOWN:?} {outage:?} outage ({turned_away} placements turned \
         away and sent again) and a {MERCADO_PAGO_DOWN:?} Mercado Pago outage ({creations} order \
         creations for {ORDERS}): from the start to the kitchen p50 {:?}, p90 {:?}, slowest {:?}, all in {:?}",
        percentile(&took, 0.5),
        percentile(&took, 0.9),
        took[took.len() - 1],
        started.elapsed()
    );
}
