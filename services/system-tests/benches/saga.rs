//! The saga's throughput and latency on the PostgreSQL transport, all five
//! services in process over loopback sockets, with the fake Mercado Pago.
//!
//! - orders per second end to end: POST /orders → QR code → approved
//!   payment (signed webhook) → order RECEIVED, with CLIENTS customers at
//!   once;
//! - p50/p99 from the start of POST /orders to the moment the payment
//!   service wrote `payment.created` (its `occurred_at`).
//!
//! It then says where the time went: how busy the machine's cores were,
//! the CPU an order cost (PostgreSQL's and the services' and customers'),
//! the PostgreSQL transactions an order took, and the orders per second
//! that CPU allows.
//!
//! `ORDERS`, `CLIENTS` and `POLL_MS` override the defaults. Run by `cargo test` (no
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

/// How often a customer's screen looks at the order: `POLL_MS`, default
/// 5 (a screen that looks far more often than a kiosk would: its reads are
/// part of what is measured).
fn poll_every() -> Duration {
    Duration::from_millis(env_or("POLL_MS", 5) as u64)
}

async fn poll_until(system: &System, id: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let order = system.get_order(id).await;
        if done(&order) {
            return;
        }
        assert!(Instant::now() < deadline, "order {id} stuck: {order}");
        tokio::time::sleep(poll_every()).await;
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

    let before = Profile::take(&system).await;
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
    let spent = Profile::take(&system).await.since(&before);

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
    spent.print(total, elapsed);
}

/// Where the machine's time goes: CPU of the whole machine, of PostgreSQL
/// and of this process (the five services and the customers), and the
/// transactions PostgreSQL committed.
#[derive(Default)]
struct Profile {
    machine_busy_ms: f64,
    machine_total_ms: f64,
    postgres_ms: f64,
    this_process_ms: f64,
    commits: i64,
}

/// Clock ticks in milliseconds (the kernel's USER_HZ is 100).
const TICK_MS: f64 = 10.0;

fn ticks(stat: &str) -> f64 {
    // After the command name, which may hold spaces: utime is the 12th
    // field, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(11) + field(12)) * TICK_MS
}

impl Profile {
    async fn take(system: &System) -> Profile {
        let cpu: Vec<f64> = std::fs::read_to_string("/proc/stat")
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let idle = cpu.get(3).copied().unwrap_or(0.0) + cpu.get(4).copied().unwrap_or(0.0);
        let total: f64 = cpu.iter().take(8).sum();
        let mut postgres_ms = 0.0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if stat.contains("(postgres)") {
                postgres_ms += ticks(&stat);
            }
        }
        let pool = system.service_pool("order").await;
        let commits: i64 =
            sqlx::query_scalar("SELECT sum(xact_commit)::bigint FROM pg_stat_database")
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
        pool.close().await;
        Profile {
            machine_busy_ms: (total - idle) * TICK_MS,
            machine_total_ms: total * TICK_MS,
            postgres_ms,
            this_process_ms: ticks(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default()),
            commits,
        }
    }

    fn since(&self, before: &Profile) -> Profile {
        Profile {
            machine_busy_ms: self.machine_busy_ms - before.machine_busy_ms,
            machine_total_ms: self.machine_total_ms - before.machine_total_ms,
            // Backends that ended meanwhile take their time along: a floor.
            postgres_ms: (self.postgres_ms - before.postgres_ms).max(0.0),
            this_process_ms: self.this_process_ms - before.this_process_ms,
            commits: self.commits - before.commits,
        }
    }

    fn print(&self, orders: usize, elapsed: Duration) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = |ms: f64| ms / orders.max(1) as f64;
        println!(
            "  profile: the machine's {cores} cores {:.0}% busy; per order {:.1} ms of CPU \
             (PostgreSQL at least {:.1} ms, the services and customers {:.1} ms) and {:.1} \
             PostgreSQL transactions",
            100.0 * self.machine_busy_ms / self.machine_total_ms.max(1.0),
            per(self.machine_busy_ms),
            per(self.postgres_ms),
            per(self.this_process_ms),
            self.commits as f64 / orders.max(1) as f64,
        );
        let bound = cores as f64 * 1000.0 / per(self.machine_busy_ms).max(0.001);
        println!(
            "  bound: at {:.1} ms of CPU an order, {cores} cores carry at most {bound:.0} orders/s; \
             300 orders/s would need {:.1} ms",
            per(self.machine_busy_ms),
            cores as f64 * 1000.0 / 300.0,
        );
        println!(
            "  measured {:.1} orders/s: {:.0}% of what the CPU allows",
            orders as f64 / elapsed.as_secs_f64(),
            100.0 * orders as f64 / elapsed.as_secs_f64() / bound
        );
    }
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
