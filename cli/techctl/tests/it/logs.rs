//! `techctl logs`: a service's CloudWatch log lines, rendered, filtered
//! and followed, behind the strict proxy.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;

const STACK: &str = "techchallenge";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn log(aws: &aws::Aws, group: &str, stream: &str, lines: &[&str]) {
    let events = lines.iter().map(|line| {
        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(now_ms())
            .message(*line)
            .build()
            .unwrap()
    });
    aws.logs
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events.collect()))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_s_logs_are_rendered_filtered_and_followed() {
    let h = Harness::start().await;
    assert_done(&h.up(&blueprint_with(&[])).await.0);
    let aws = h.direct().await;
    let outputs = secret_json(&aws, STACK).await.unwrap();
    let group = outputs["order_log_group"].as_str().unwrap().to_string();
    let stream = "order/order/0123456789abcdef";
    aws.logs
        .create_log_stream()
        .log_group_name(&group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
    log(&aws, &group, stream, &[
        r#"{"timestamp":"2026-11-30T08:00:00.000001Z","level":"INFO","fields":{"message":"finished processing request","status":201},"span":{"method":"POST","path":"/orders","request_id":"req-1","name":"request"}}"#,
        r#"{"timestamp":"2026-11-30T08:00:01.000001Z","level":"WARN","fields":{"message":"cannot apply the event yet; retrying later","reason":"payment service away"},"span":{"request_id":"req-2","name":"event"}}"#,
    ])
    .await;

    let out = techctl(&h.proxy.url, &["logs", "order", "--since", "1h"]);
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("2026-11-30T08:00:00.000001Z INFO  [req-1] finished processing request status=201 method=POST path=/orders"),
        "{text}"
    );
    assert!(
        text.find("[req-1]") < text.find("[req-2]"),
        "oldest first: {text}"
    );

    let out = techctl(&h.proxy.url, &["logs", "order", "--filter", "retrying"]);
    let text = said(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("[req-2]") && !text.contains("[req-1]"),
        "{text}"
    );

    let out = techctl(&h.proxy.url, &["--output", "json", "logs", "order"]);
    let first: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["stream"], stream);
    assert_eq!(first["line"]["span"]["request_id"], "req-1");

    // Followed: a line written later shows up, and Ctrl-C ends it.
    let mut follow = techctl_at(&h.proxy.url)
        .args(["logs", "order", "--follow", "--since", "1h"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("[req-1]"));
    assert!(lines.next().unwrap().unwrap().contains("[req-2]"));
    log(&aws, &group, stream, &[
        r#"{"timestamp":"2026-11-30T08:00:02.000001Z","level":"INFO","fields":{"message":"applied"},"span":{"request_id":"req-3","name":"event"}}"#,
    ])
    .await;
    let started = Instant::now();
    let next = lines.next().unwrap().unwrap();
    assert!(next.contains("[req-3] applied"), "{next}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let _ = std::process::Command::new("kill")
        .args(["-INT", &follow.id().to_string()])
        .status();
    assert!(follow.wait().unwrap().success());

    let out = techctl(&h.proxy.url, &["logs", "kitchen"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(said(&out).contains("the blueprint has no service \"kitchen\""));
}
