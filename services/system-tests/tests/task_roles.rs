//! The saga on SNS/SQS with each service holding only its task role's
//! credentials (the policy the stack gives its tasks), through the proxy
//! that evaluates IAM as AWS does: an order goes from payment to the
//! counter with no call refused, and a service that reaches for another's
//! queue, topic or secret is refused.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use serde_json::json;
use system_tests::{Options, SnsSqs, System};
use testkit::mercadopago::Signature;

const CPF: &str = "52998224725";

/// The strict proxy's refusals that are IAM's.
fn denials(broker: &SnsSqs) -> Vec<String> {
    broker
        .aws
        .proxy
        .strict_refusals()
        .into_iter()
        .filter(|r| {
            matches!(
                r.code.as_str(),
                "AccessDenied" | "AccessDeniedException" | "AuthorizationError"
            )
        })
        .map(|r| format!("{} {}: {}", r.operation, r.code, r.reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_runs_the_saga_with_its_own_role_and_reaches_nothing_else() {
    let mut options = Options::new();
    let broker = SnsSqs::start(options.events.max_receive).await;
    options.sns_sqs = Some(broker.clone());
    let system = System::start(options).await;
    let burger = system.product("X-Burger", "Lanche", 2590).await;
    let token = system
        .customer_token("Maria Silva", CPF, "maria@example.com")
        .await;
    let placed = system
        .order(&token, json!([{"product_id": burger, "quantity": 1}]))
        .await;
    let id = placed["id"].as_str().unwrap().to_string();
    system.wait_qr(&id).await;
    let paid = system.mp.pay(&id, "approved");
    assert_eq!(system.mp.notify(&paid, Signature::Valid).await, 200);
    system.wait_status(&id, "RECEIVED").await;
    let ticket = system.ticket_of(&id).await;
    let ticket = ticket["id"].as_str().unwrap().to_string();
    for step in ["started", "completed", "delivered"] {
        let (status, body) = system.kitchen_step(&ticket, step).await;
        assert!(status.is_success(), "{step}: {status} {body}");
    }
    system.wait_status(&id, "FINISHED").await;
    assert_eq!(
        denials(&broker),
        Vec::<String>::new(),
        "the saga was refused a call"
    );

    // The order service, taken over, reaches for its neighbours: the
    // payment service's queue, topic and token keys.
    let order = broker.role_config("order");
    let sqs = aws_sdk_sqs::Client::new(order);
    let sns = aws_sdk_sns::Client::new(order);
    let secrets = aws_sdk_secretsmanager::Client::new(order);
    let payment = broker.queues("payment");
    let received = sqs
        .receive_message()
        .queue_url(&payment.queue_url)
        .send()
        .await
        .expect_err("another service's queue");
    assert_eq!(
        aws_sdk_sqs::error::ProvideErrorMetadata::code(&received),
        Some("AccessDenied")
    );
    let published = sns
        .publish()
        .topic_arn(&payment.topic_arn)
        .message("{}")
        .send()
        .await
        .expect_err("another service's topic");
    assert_eq!(
        aws_sdk_sns::error::ProvideErrorMetadata::code(&published),
        Some("AuthorizationError")
    );
    let read = secrets
        .get_secret_value()
        .secret_id(&broker.keys_secrets["payment"])
        .send()
        .await
        .expect_err("another service's secret");
    assert_eq!(read.code(), Some("AccessDeniedException"));
    // Its own keys it reads.
    secrets
        .get_secret_value()
        .secret_id(&broker.keys_secrets["order"])
        .send()
        .await
        .expect("its own keys");
    assert_eq!(denials(&broker).len(), 3, "{:#?}", denials(&broker));
}
