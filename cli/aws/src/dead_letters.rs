//! A service's dead letters on SQS: read them all, and send the chosen
//! ones back to the service's queue once their cause is fixed.
//!
//! SQS has no "list": a scan receives every message of the dead-letter
//! queue, holding each out of sight for [`HOLD_SECONDS`] so none is read
//! twice, then lets the ones it keeps go at once. A message sent back is
//! sent first and deleted from the dead-letter queue after, so a failure in
//! between leaves a copy behind, never none; the consumer's inbox keeps
//! the copy from applying twice.

use std::collections::BTreeSet;

use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName};

use crate::{Aws, AwsError};

/// The message attribute the services' consumers give a dead letter: why.
pub const REASON_ATTRIBUTE: &str = "dead_letter_reason";
/// How long a scan holds what it read: longer than any scan takes.
const HOLD_SECONDS: i32 = 300;
/// The most messages one scan reads.
const SCAN_MOST: usize = 10_000;
/// SQS's largest batch.
const BATCH: usize = 10;

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// SQS's message id.
    pub id: String,
    pub body: String,
    pub reason: String,
    /// When it was sent to the dead-letter queue, in milliseconds since the
    /// Unix epoch.
    pub sent_at_ms: Option<u64>,
}

/// Every dead letter of the queue at `dead_letter_queue`.
pub async fn list(aws: &Aws, dead_letter_queue: &str) -> Result<Vec<DeadLetter>, AwsError> {
    scan(aws, dead_letter_queue, None, &|_| false).await
}

/// Sends the dead letters `chosen` picks back to `queue`, and deletes them
/// from `dead_letter_queue`; answers those moved.
pub async fn redrive(
    aws: &Aws,
    dead_letter_queue: &str,
    queue: &str,
    chosen: &(dyn Fn(&DeadLetter) -> bool + Sync),
) -> Result<Vec<DeadLetter>, AwsError> {
    scan(aws, dead_letter_queue, Some(queue), chosen).await
}

async fn scan(
    aws: &Aws,
    dead_letter_queue: &str,
    send_to: Option<&str>,
    chosen: &(dyn Fn(&DeadLetter) -> bool + Sync),
) -> Result<Vec<DeadLetter>, AwsError> {
    let sqs = &aws.sqs;
    let mut seen = BTreeSet::new();
    let (mut found, mut held) = (Vec::new(), Vec::new());
    let outcome: Result<(), AwsError> = async {
        while seen.len() < SCAN_MOST {
            let answer = sdk!(
                "ReceiveMessage",
                sqs.receive_message()
                    .queue_url(dead_letter_queue)
                    .max_number_of_messages(BATCH as i32)
                    .visibility_timeout(HOLD_SECONDS)
                    // A long poll asks every server: an empty answer is an
                    // empty queue, where a short one may just be unlucky.
                    .wait_time_seconds(1)
                    .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                    .message_attribute_names(REASON_ATTRIBUTE)
                    .send()
            )?;
            let messages = answer.messages.unwrap_or_default();
            if messages.is_empty() {
                return Ok(());
            }
            for m in messages {
                let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else {
                    continue;
                };
                if !seen.insert(id.to_string()) {
                    continue;
                }
                let letter = DeadLetter {
                    id: id.to_string(),
                    body: m.body().unwrap_or_default().to_string(),
                    reason: m
                        .message_attributes()
                        .and_then(|a| a.get(REASON_ATTRIBUTE))
                        .and_then(|v| v.string_value())
                        .unwrap_or("moved by the queue's redrive policy: received too often")
                        .to_string(),
                    sent_at_ms: m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                        .and_then(|t| t.parse().ok()),
                };
                match send_to {
                    Some(queue) if chosen(&letter) => {
                        sdk!(
                            "SendMessage",
                            sqs.send_message()
                                .queue_url(queue)
                                .message_body(&letter.body)
                                .send()
                        )?;
                        sdk!(
                            "DeleteMessage",
                            sqs.delete_message()
                                .queue_url(dead_letter_queue)
                                .receipt_handle(handle)
                                .send()
                        )?;
                        found.push(letter);
                    }
                    Some(_) => held.push(handle.to_string()),
                    None => {
                        held.push(handle.to_string());
                        found.push(letter);
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    release(aws, dead_letter_queue, &held).await;
    outcome.map(|()| found)
}

/// Makes the messages a scan held visible again at once.
async fn release(aws: &Aws, queue: &str, handles: &[String]) {
    for batch in handles.chunks(BATCH) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .ok()
            })
            .collect();
        // Not let go, a message comes back by itself when the hold ends.
        let _ = sdk!(
            "ChangeMessageVisibilityBatch",
            aws.sqs
                .change_message_visibility_batch()
                .queue_url(queue)
                .set_entries(Some(entries))
                .send()
        );
    }
}
