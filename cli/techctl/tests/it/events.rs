//! `techctl events`: the dead letters of the stack's services, listed with
//! why, shown whole and sent back to their queue, on SQS behind the strict
//! proxy.

use serde_json::Value;

use crate::common::*;

const STACK: &str = "techchallenge";

/// Writes a dead letter the way a consumer does: the body, and why.
async fn dead_letter(aws: &aws::Aws, queue: &str, body: &str, reason: &str) {
    aws.sqs
        .send_message()
        .queue_url(queue)
        .message_body(body)
        .message_attributes(
            "dead_letter_reason",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(reason)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

fn json_of(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", said(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", said(out)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_and_sent_back_once_their_cause_is_fixed() {
    let h = Harness::start().await;
    assert_done(&h.up(&blueprint_with(&[])).await.0);
    let aws = h.direct().await;
    let outputs = secret_json(&aws, STACK).await.unwrap();
    let dlq = outputs["payment_dead_letter_queue_url"].as_str().unwrap();
    let queue = outputs["payment_queue_url"].as_str().unwrap();
    let event = r#"{"meta":{"event_id":"0193a0b0-0000-7000-8000-00000000e001","event_name":"order.created","event_version":2,"occurred_at":"2026-11-30T10:00:00Z","source":"order","correlation_id":"0193a0b0-0000-7000-8000-0000000000aa"},"payload":{}}"#;
    dead_letter(
        &aws,
        dlq,
        event,
        "order.created version 2 is not understood here (this consumer reads version 1)",
    )
    .await;
    dead_letter(
        &aws,
        dlq,
        "{not json",
        "not an event envelope: key must be a string",
    )
    .await;

    let listed = json_of(&techctl(
        &h.proxy.url,
        &["--output", "json", "events", "list"],
    ));
    let letters = listed["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "{listed}");
    let versioned = letters
        .iter()
        .find(|l| l["event"] == "order.created")
        .expect("the event, by name");
    assert_eq!(versioned["service"], "payment");
    assert_eq!(
        versioned["correlation_id"],
        "0193a0b0-0000-7000-8000-0000000000aa"
    );
    assert!(versioned["reason"].as_str().unwrap().contains("version 2"));
    assert!(versioned["age_seconds"].as_u64().unwrap() < 600);
    let id = versioned["id"].as_str().unwrap().to_string();

    // For people: a table with why, and what to do next.
    let text = techctl(&h.proxy.url, &["events", "list", "payment"]);
    let said_text = said(&text);
    assert!(text.status.success(), "{said_text}");
    assert!(said_text.contains("2 dead letters"), "{said_text}");
    assert!(
        said_text.contains("techctl events redrive SERVICE ID"),
        "{said_text}"
    );

    let shown = json_of(&techctl(
        &h.proxy.url,
        &["--output", "json", "events", "show", "payment", &id],
    ));
    assert_eq!(shown["message"]["meta"]["event_version"], 2);

    // The consumer now reads version 2: the event goes back, once.
    let sent = json_of(&techctl(
        &h.proxy.url,
        &["--output", "json", "events", "redrive", "payment", &id],
    ));
    assert_eq!(sent["sent_back"], serde_json::json!([id]));
    let back = aws
        .sqs
        .receive_message()
        .queue_url(queue)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = back.messages().iter().filter_map(|m| m.body()).collect();
    assert_eq!(bodies, [event]);
    // The other stays, visible at once (the scans let go of what they kept).
    let left = json_of(&techctl(
        &h.proxy.url,
        &["--output", "json", "events", "list", "payment"],
    ));
    assert_eq!(left["dead_letters"].as_array().unwrap().len(), 1, "{left}");

    // Mistakes are named, and change nothing.
    let unknown = techctl(
        &h.proxy.url,
        &["events", "redrive", "payment", "no-such-id"],
    );
    assert_eq!(unknown.status.code(), Some(1), "{}", said(&unknown));
    assert!(
        said(&unknown).contains("has no dead letter no-such-id"),
        "{}",
        said(&unknown)
    );
    let publisher = techctl(&h.proxy.url, &["events", "list", "user"]);
    assert_eq!(publisher.status.code(), Some(1));
    assert!(
        said(&publisher).contains("consumes no events"),
        "{}",
        said(&publisher)
    );
    let left = json_of(&techctl(
        &h.proxy.url,
        &["--output", "json", "events", "list", "payment"],
    ));
    assert_eq!(left["dead_letters"].as_array().unwrap().len(), 1, "{left}");
}
