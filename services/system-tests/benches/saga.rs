//! The saga's throughput and latency on the PostgreSQL transport, all five
//! services in process over loopback sockets, with the fake Mercado Pago.
//!
//! - orders per second end to end: POST /orders → QR code → approved
//!   payment (signed webhook) → order RECEIVED, with CLIENTS customers at
//!   once;
//! - p50/p99 from the start of POST /orders to the moment the payment
//!   service wrote `payment.created` (its `occurred_at`).
//!
//! `ORDERS` and `CLIENTS` override the defaults. Run by `cargo test` (no
//! `--bench` argument) it makes a handful of orders, as a smoke test.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;
use system_tests::{Options, System};
use testkit::mercadopago::Signature;
use time::OffsetDateTime;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn poll_until(system: &System, id: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let order = system.get_order(id).await;
        if done(&order) {
            return;
        }
        assert!(Instant::now() < deadline, "order {id} stuck: {order}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn run() {
    let benching = std::env::args().any(|a| a == "--bench");
    let orders = env_or("ORDERS", if benching { 400 } else { 6 });
    let clients = env_or("CLIENTS", if benching { 16 } else { 2 }).clamp(1, orders.max(1));
    let system = Arc::new(System::start(Options::new()).await);
    let burger = system.product("X-Burger", "Lanche", 2590).await;
    let fries = system.product("Batata frita", "Acompanhamento", 1200).await;
    let mut tokens = Vec::new();
    for _ in 0..clients {
        tokens.push(system.guest_token().await);
    }
    let items =
        json!([{"product_id": burger, "quantity": 2}, {"product_id": fries, "quantity": 1}]);

    // Warm-up: one order through the whole path.
    run_one(&system, &tokens[0], &items).await;

    let started = Instant::now();
    let per_client = orders / clients;
    let mut tasks = Vec::new();
    for token in tokens {
        let (system, items) = (system.clone(), items.clone());
        tasks.push(tokio::spawn(async move {
            let mut posted = Vec::new();
            for _ in 0..per_client {
                posted.push(run_one(&system, &token, &items).await);
            }
            posted
        }));
    }
    let mut posted_at: HashMap<String, OffsetDateTime> = HashMap::new();
    for task in tasks {
        posted_at.extend(task.await.expect("a client"));
    }
    let elapsed = started.elapsed();
    let total = posted_at.len();

    let payments = system.service_pool("payment").await;
    let created: Vec<(String,)> =
        sqlx::query_as("SELECT envelope FROM outbox WHERE event_name = 'payment.created'")
            .fetch_all(&payments)
            .await
            .expect("the payment outbox");
    let mut latencies: Vec<Duration> = created
        .iter()
        .filter_map(|(text,)| {
            let envelope = contracts::Envelope::parse(text).ok()?;
            let posted = posted_at.get(&envelope.meta.correlation_id)?;
            Some(
                (envelope.meta.occurred_at - *posted)
                    .try_into()
                    .unwrap_or(Duration::ZERO),
            )
        })
        .collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "saga benchmark: {total} orders, {clients} concurrent customers, PostgreSQL transport"
    );
    println!(
        "  end to end (POST /orders -> QR -> signed approval -> RECEIVED): {:.1} orders/s ({:.2} s)",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  POST /orders -> payment.created: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        pick(0.50).as_secs_f64() * 1e3,
        pick(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len()
    );
}

/// One customer's order, paid as soon as its QR code shows; returns its id
/// and when it was posted.
async fn run_one(
    system: &System,
    token: &str,
    items: &serde_json::Value,
) -> (String, OffsetDateTime) {
    let posted = OffsetDateTime::now_utc();
    let (status, order) = system
        .call(
            "order",
            Method::POST,
            "/orders",
            Some(token),
            Some(json!({ "items": items })),
        )
        .await;
    assert!(status.is_success(), "{order}");
    let id = order["id"].as_str().expect("an id").to_string();
    poll_until(system, &id, |o| o["payment"]["qr_data"].is_string()).await;
    let paid = system.mp.pay(&id, "approved");
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    poll_until(system, &id, |o| o["status"] == "RECEIVED").await;
    (id, posted)
}
