//! The messaging layer on both transports: the same tests run against the
//! PostgreSQL queue tables and against SNS/SQS on moto, wired the way
//! techctl wires them (a topic per producer, a queue and a dead-letter
//! queue per consumer, raw subscriptions filtered on `event_name`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contracts::events::{OrderCancelled, OrderPaid};
use contracts::{Envelope, Event};
use service_messaging::consumer::Attempt;
use service_messaging::postgres::PgTransport;
use service_messaging::sqs::SqsTransport;
use service_messaging::{
    self as messaging, BoxFuture, HandleError, Handler, Relay, Settings, Transport, spawn_consumer,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(1);

fn cancelled() -> Envelope {
    Envelope::new(
        "order",
        &OrderCancelled {
            order_id: Uuid::now_v7(),
            reason: "test".into(),
        },
    )
}

fn paid() -> Envelope {
    Envelope::new(
        "order",
        &OrderPaid {
            order_id: Uuid::now_v7(),
            number: 7,
            customer_name: "Ana".into(),
            items: vec![],
        },
    )
}

fn settings(max_receive: u32) -> Settings {
    let mut s = Settings::postgres("");
    s.max_receive = max_receive;
    s.retry_delay = Duration::from_millis(50);
    s
}

type Buses = HashMap<&'static str, Arc<dyn Transport>>;

async fn postgres_buses(max_receive: u32) -> Buses {
    let url = tokio::task::spawn_blocking(|| testkit::postgres().fresh_database("bus"))
        .await
        .unwrap();
    let mut buses: Buses = HashMap::new();
    for service in ["order", "payment", "production"] {
        let t = PgTransport::connect(&url, service, max_receive, Duration::from_secs(30))
            .await
            .unwrap();
        buses.insert(service, Arc::new(t));
    }
    buses
}

/// SNS topics and SQS queues on moto, as techctl makes them, reached
/// through the strict proxy so that what AWS refuses (a receive of more
/// than ten, a batch over its limits) is refused here too.
async fn sqs_buses(aws: &testkit::StrictAws, max_receive: u32) -> Buses {
    let config = aws.sdk_config().await;
    let queues =
        service_messaging::sqs::wire(&config, "test", max_receive, ("us-east-1", "123456789012"))
            .await
            .unwrap();
    let mut buses: Buses = HashMap::new();
    for (service, queues) in queues {
        buses.insert(
            service,
            Arc::new(SqsTransport::new(
                &config,
                queues,
                max_receive,
                Duration::from_secs(30),
            )),
        );
    }
    buses
}

async fn receive_one(bus: &dyn Transport) -> messaging::Delivery {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(d) = bus.receive(1, WAIT).await.unwrap().pop() {
            return d;
        }
        assert!(Instant::now() < deadline, "nothing arrived");
    }
}

/// Events reach exactly the queues subscribed to their names; a message
/// put back comes again, counted; a dead letter keeps its reason.
async fn delivery_semantics(buses: &Buses) {
    buses["order"].publish(&cancelled()).await.unwrap();
    buses["order"].publish(&paid()).await.unwrap();
    let to_payment = receive_one(buses["payment"].as_ref()).await;
    assert_eq!(
        Envelope::parse(&to_payment.body).unwrap().name(),
        OrderCancelled::NAME
    );
    assert_eq!(to_payment.receive_count, 1);
    let to_production = receive_one(buses["production"].as_ref()).await;
    assert_eq!(
        Envelope::parse(&to_production.body).unwrap().name(),
        OrderPaid::NAME
    );
    assert!(
        buses["order"].receive(10, WAIT).await.unwrap().is_empty(),
        "order consumes neither"
    );
    assert!(
        buses["payment"].receive(10, WAIT).await.unwrap().is_empty(),
        "order.paid is not payment's"
    );

    // Not acknowledged: hidden, then back with its count.
    buses["payment"]
        .retry_later(&to_payment, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        buses["payment"]
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "hidden while it waits"
    );
    let again = receive_one(buses["payment"].as_ref()).await;
    assert_eq!(again.body, to_payment.body);
    assert_eq!(again.receive_count, 2);
    buses["payment"].ack(&again).await.unwrap();

    buses["production"]
        .dead_letter(&to_production, "cannot be applied: test")
        .await
        .unwrap();
    let dead = buses["production"].dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, to_production.body);
    assert_eq!(dead[0].reason, "cannot be applied: test");
    assert!(
        buses["production"]
            .receive(10, WAIT)
            .await
            .unwrap()
            .is_empty()
    );

    // An erasure rewrites the dead letter of the erased customer's order,
    // reason and all, and leaves another order's alone.
    let other = paid();
    buses["order"].publish(&other).await.unwrap();
    let other = receive_one(buses["production"].as_ref()).await;
    buses["production"]
        .dead_letter(&other, "another reason")
        .await
        .unwrap();
    let order = Envelope::parse(&to_production.body)
        .unwrap()
        .meta
        .correlation_id;
    let order_id: Uuid = order.parse().unwrap();
    let erased = contracts::events::OrderAnonymized {
        order_id,
        number: 7,
    };
    assert_eq!(
        messaging::scrub_order(buses["production"].as_ref(), &erased)
            .await
            .unwrap(),
        1
    );
    let mut dead = buses["production"].dead_letters().await.unwrap();
    dead.sort_by_key(|d| d.body.contains(&order));
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].body, other.body, "another order's stays as it was");
    assert!(!dead[1].body.contains("Ana") && dead[1].body.contains("Order #7"));
    assert_eq!(dead[1].reason, "cannot be applied: test");
    assert_eq!(
        messaging::scrub_order(buses["production"].as_ref(), &erased)
            .await
            .unwrap(),
        0,
        "nothing left to scrub"
    );
    assert!(
        buses["payment"].receive(10, WAIT).await.unwrap().is_empty(),
        "acknowledged for good"
    );
}

/// Records what it applies; refuses, for ever, orders cancelled "never".
struct Recorder;

impl Handler for Recorder {
    fn events(&self) -> &'static [&'static str] {
        &[OrderCancelled::NAME]
    }

    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        envelope: &'a Envelope,
        _attempt: Attempt,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let event: OrderCancelled = envelope.decode()?;
            if event.reason == "never" {
                return Err(HandleError::Retry("this one never fits".into()));
            }
            sqlx::query("INSERT INTO applied (order_id) VALUES ($1)")
                .bind(event.order_id)
                .execute(tx)
                .await?;
            Ok(())
        })
    }
}

async fn applied(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM applied")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// An event of a name the consumer does not handle, on the same queue.
#[derive(serde::Serialize, serde::Deserialize)]
struct OrderCreatedLike {
    order_id: Uuid,
}

impl Event for OrderCreatedLike {
    const NAME: &'static str = "order.created";
    const VERSION: u32 = 1;
    fn correlation_id(&self) -> Uuid {
        self.order_id
    }
}

/// A consumer applies each event once, however often it arrives; dead-
/// letters what can never apply and what never fits, with the reason;
/// acknowledges what it does not handle; and keeps going.
/// A consumer's own database: its inbox and outbox, and a table of what
/// it applied; with its URL.
async fn consumer_database(prefix: &'static str) -> (String, PgPool) {
    let url = tokio::task::spawn_blocking(move || testkit::postgres().fresh_database(prefix))
        .await
        .unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    messaging::install(&pool).await.unwrap();
    sqlx::query("CREATE TABLE applied (order_id uuid NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    (url, pool)
}

async fn exactly_once(buses: &Buses, max_receive: u32) {
    let (_, pool) = consumer_database("consumer").await;
    let consumer = spawn_consumer(
        pool.clone(),
        buses["payment"].clone(),
        Arc::new(Recorder),
        Relay::default(),
        settings(max_receive),
    );
    let once = cancelled();
    let never = Envelope::new(
        "order",
        &OrderCancelled {
            order_id: Uuid::now_v7(),
            reason: "never".into(),
        },
    );
    let mut unknown_version = cancelled();
    unknown_version.meta.event_version = 9;
    let unhandled = Envelope::new(
        "order",
        &OrderCreatedLike {
            order_id: Uuid::now_v7(),
        },
    );
    for envelope in [&once, &once, &never, &unknown_version, &unhandled, &once] {
        buses["order"].publish(envelope).await.unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = buses["payment"].dead_letters().await.unwrap();
        if dead.len() >= 2 && applied(&pool).await >= 1 {
            break dead;
        }
        assert!(Instant::now() < deadline, "dead letters: {dead:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Whatever else was in flight has settled by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    consumer.abort();
    assert_eq!(applied(&pool).await, 1, "three deliveries, one effect");
    let mut reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with(&format!(
            "gave up after {max_receive} attempts: this one never fits"
        )),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("version 9 is not understood"),
        "{reasons:?}"
    );
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(inbox, 1, "only what was applied is in the inbox");
    assert!(
        buses["payment"]
            .receive(10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "nothing left behind"
    );
}

#[tokio::test]
async fn the_postgres_transport_delivers_like_sqs() {
    delivery_semantics(&postgres_buses(3).await).await;
}

#[tokio::test]
async fn the_sns_sqs_transport_delivers_on_moto() {
    let aws = testkit::StrictAws::start().await;
    delivery_semantics(&sqs_buses(&aws, 3).await).await;
}

#[tokio::test]
async fn a_consumer_on_postgres_applies_each_event_once() {
    exactly_once(&postgres_buses(3).await, 3).await;
}

#[tokio::test]
async fn a_consumer_on_sns_sqs_applies_each_event_once() {
    let aws = testkit::StrictAws::start().await;
    exactly_once(&sqs_buses(&aws, 3).await, 3).await;
}

#[tokio::test]
async fn a_message_received_too_often_is_set_aside_by_the_postgres_transport() {
    // A consumer that dies on a message never settles it; the transport
    // moves it aside once it was received max_receive times.
    let buses = postgres_buses(2).await;
    buses["order"].publish(&cancelled()).await.unwrap();
    for _ in 0..2 {
        let d = receive_one(buses["payment"].as_ref()).await;
        buses["payment"]
            .retry_later(&d, Duration::ZERO)
            .await
            .unwrap();
    }
    assert!(
        buses["payment"]
            .receive(10, Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty()
    );
    let dead = buses["payment"].dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].reason,
        "received 2 times without being acknowledged"
    );
}

/// Not ready while `until` is in the future (a provider away) for orders
/// cancelled "outage", never for "never"; panics on "panic".
struct Outage {
    until: Instant,
    attempts: Arc<std::sync::atomic::AtomicU32>,
}

impl Handler for Outage {
    fn events(&self) -> &'static [&'static str] {
        &[OrderCancelled::NAME]
    }

    fn handle<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        envelope: &'a Envelope,
        _attempt: Attempt,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            let event: OrderCancelled = envelope.decode()?;
            match event.reason.as_str() {
                "panic" => panic!("a bug in the handler"),
                "never" => return Err(HandleError::Retry("the menu has no such item".into())),
                _ => {}
            }
            self.attempts
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if Instant::now() < self.until {
                return Err(HandleError::Retry("Mercado Pago answers 500".into()));
            }
            sqlx::query("INSERT INTO applied (order_id) VALUES ($1)")
                .bind(event.order_id)
                .execute(tx)
                .await?;
            Ok(())
        })
    }
}

fn cancelled_because(reason: &str) -> Envelope {
    Envelope::new(
        "order",
        &OrderCancelled {
            order_id: Uuid::now_v7(),
            reason: reason.into(),
        },
    )
}

/// An event rides out a 4 s outage of the handler's provider and, in the
/// middle of it, of the consumer's own database; one that stays
/// inapplicable is dead-lettered once the time allowed has passed, and a
/// panic at once.
async fn outages_strand_nothing(buses: &Buses) {
    let (url, pool) = consumer_database("outage").await;
    let database = url.rsplit('/').next().unwrap().to_string();
    let mut settings = settings(70);
    settings.retry_delay = Duration::from_millis(20);
    settings.retry_max_delay = Duration::from_millis(200);
    settings.retry_for = Duration::from_secs(8);
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let outage = Duration::from_secs(4);
    let started = Instant::now();
    let consumer = spawn_consumer(
        pool.clone(),
        buses["payment"].clone(),
        Arc::new(Outage {
            until: started + outage,
            attempts: attempts.clone(),
        }),
        Relay::default(),
        settings,
    );
    let admin = PgPool::connect(&url.replace(&format!("/{database}"), "/postgres"))
        .await
        .unwrap();
    for reason in ["outage", "panic", "never"] {
        buses["order"]
            .publish(&cancelled_because(reason))
            .await
            .unwrap();
    }
    // The database itself goes away for a second: new connections
    // refused, the open ones cut.
    tokio::time::sleep(Duration::from_secs(1)).await;
    sqlx::query(&format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false"
    ))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    sqlx::query(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();

    let deadline = started + Duration::from_secs(40);
    let dead = loop {
        let dead = buses["payment"].dead_letters().await.unwrap();
        if dead.len() >= 2 && applied(&pool).await >= 1 {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "applied {}, dead letters: {dead:?}",
            applied(&pool).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    consumer.abort();
    let tried = attempts.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "applied after {tried} attempts through a {outage:?} outage; all settled {:?} after",
        started.elapsed()
    );
    // SQS delays in whole seconds, so it tries fewer times; either way it
    // tried until the outage was over.
    assert!(tried >= 4, "retried through the outage: {tried}");
    assert_eq!(applied(&pool).await, 1);
    let mut reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "only these two: {reasons:?}");
    assert!(
        reasons[0].starts_with("gave up within the 8 s allowed, after "),
        "{reasons:?}"
    );
    assert!(
        reasons[0].ends_with("the menu has no such item"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1], "the handler panicked: a bug in the handler");
}

#[tokio::test]
async fn outages_on_postgres_strand_nothing() {
    outages_strand_nothing(&postgres_buses(70).await).await;
}

#[tokio::test]
async fn outages_on_sns_sqs_strand_nothing() {
    let aws = testkit::StrictAws::start().await;
    outages_strand_nothing(&sqs_buses(&aws, 70).await).await;
}
