//! The event bus on AWS: a service publishes to its SNS topic with the
//! event's name as the `event_name` message attribute (the subscriptions
//! techctl makes filter on it, with raw delivery), and consumes its own SQS
//! queue with long polling. A message it gives up on is sent to its
//! dead-letter queue with the reason as a message attribute; the queue's
//! redrive policy catches what a crashing consumer never settles.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_sns::types::MessageAttributeValue as SnsAttribute;
use aws_sdk_sqs::types::{MessageAttributeValue as SqsAttribute, MessageSystemAttributeName};

use super::{BoxFuture, DeadLetter, Delivery, Envelope, Scrub, Transport};

/// The message attribute SNS subscriptions filter on.
pub const EVENT_NAME_ATTRIBUTE: &str = "event_name";
/// The message attribute that says why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "dead_letter_reason";
/// SQS's longest long poll.
const LONGEST_WAIT: Duration = Duration::from_secs(20);
/// How long a scrub holds the dead letters it read: longer than it takes
/// to read them all, so none is read twice.
const SCRUB_HOLD_SECONDS: i32 = 300;
/// The most dead letters one scrub reads; the queue holds far fewer.
const SCRUB_MOST: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Queues {
    pub topic_arn: String,
    pub queue_url: String,
    pub dead_letter_queue_url: String,
}

pub struct SqsTransport {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    queues: Queues,
    max_receive: u32,
    visibility: Duration,
}

fn aws_error(e: impl std::error::Error + Send + Sync + 'static) -> anyhow::Error {
    anyhow::anyhow!(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
}

impl SqsTransport {
    pub fn new(
        config: &aws_config::SdkConfig,
        queues: Queues,
        max_receive: u32,
        visibility: Duration,
    ) -> SqsTransport {
        SqsTransport {
            sns: aws_sdk_sns::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            queues,
            max_receive,
            visibility,
        }
    }

    /// Writes `body` to the dead-letter queue with `reason`.
    async fn send_dead_letter(&self, body: &str, reason: &str) -> anyhow::Result<()> {
        let reason_attribute = SqsAttribute::builder()
            .data_type("String")
            .string_value(reason)
            .build()?;
        self.sqs
            .send_message()
            .queue_url(&self.queues.dead_letter_queue_url)
            .message_body(body)
            .message_attributes(REASON_ATTRIBUTE, reason_attribute)
            .send()
            .await
            .map_err(aws_error)
            .context("cannot write to the dead-letter queue")?;
        Ok(())
    }

    /// Sends a raw body to this service's own queue (tests use it for
    /// messages no producer would write).
    pub async fn send_raw(&self, body: &str) -> anyhow::Result<()> {
        self.sqs
            .send_message()
            .queue_url(&self.queues.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(aws_error)?;
        Ok(())
    }
}

impl Transport for SqsTransport {
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let name = SnsAttribute::builder()
                .data_type("String")
                .string_value(envelope.name())
                .build()?;
            self.sns
                .publish()
                .topic_arn(&self.queues.topic_arn)
                .message(envelope.to_json())
                .message_attributes(EVENT_NAME_ATTRIBUTE, name)
                .send()
                .await
                .map_err(aws_error)
                .with_context(|| format!("cannot publish to {}", self.queues.topic_arn))?;
            Ok(())
        })
    }

    fn receive(&self, max: usize, wait: Duration) -> BoxFuture<'_, anyhow::Result<Vec<Delivery>>> {
        Box::pin(async move {
            let answer = self
                .sqs
                .receive_message()
                .queue_url(&self.queues.queue_url)
                .max_number_of_messages(max.clamp(1, 10) as i32)
                .wait_time_seconds(wait.min(LONGEST_WAIT).as_secs() as i32)
                .visibility_timeout(self.visibility.as_secs() as i32)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await
                .map_err(aws_error)
                .with_context(|| format!("cannot receive from {}", self.queues.queue_url))?;
            let mut deliveries = Vec::new();
            for message in answer.messages.unwrap_or_default() {
                let receive_count = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                // Milliseconds since the epoch; a visibility change keeps it.
                let sent_at = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse::<u64>().ok())
                    .map_or_else(std::time::SystemTime::now, |ms| {
                        std::time::UNIX_EPOCH + Duration::from_millis(ms)
                    });
                let delivery = Delivery {
                    body: message.body.unwrap_or_default(),
                    receive_count,
                    handle: message.receipt_handle.unwrap_or_default(),
                    sent_at,
                };
                if delivery.receive_count > self.max_receive {
                    let reason = format!(
                        "received {} times without being acknowledged",
                        self.max_receive
                    );
                    self.dead_letter(&delivery, &reason).await?;
                } else {
                    deliveries.push(delivery);
                }
            }
            Ok(deliveries)
        })
    }

    fn ack<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.sqs
                .delete_message()
                .queue_url(&self.queues.queue_url)
                .receipt_handle(&delivery.handle)
                .send()
                .await
                .map_err(aws_error)?;
            Ok(())
        })
    }

    fn retry_later<'a>(
        &'a self,
        delivery: &'a Delivery,
        delay: Duration,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.queues.queue_url)
                .receipt_handle(&delivery.handle)
                .visibility_timeout(delay.as_secs().max(1) as i32)
                .send()
                .await
                .map_err(aws_error)?;
            Ok(())
        })
    }

    fn dead_letter<'a>(
        &'a self,
        delivery: &'a Delivery,
        reason: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.send_dead_letter(&delivery.body, reason).await?;
            // Only once it is safe in the dead-letter queue.
            self.ack(delivery).await
        })
    }

    fn dead_letters(&self) -> BoxFuture<'_, anyhow::Result<Vec<DeadLetter>>> {
        Box::pin(async move {
            // Peeks: received with no visibility so they stay for others.
            let answer = self
                .sqs
                .receive_message()
                .queue_url(&self.queues.dead_letter_queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .message_attribute_names(REASON_ATTRIBUTE)
                .send()
                .await
                .map_err(aws_error)?;
            Ok(answer
                .messages
                .unwrap_or_default()
                .into_iter()
                .map(|m| DeadLetter {
                    reason: m
                        .message_attributes()
                        .and_then(|a| a.get(REASON_ATTRIBUTE))
                        .and_then(|v| v.string_value())
                        .unwrap_or("moved by the queue's redrive policy")
                        .to_string(),
                    body: m.body.unwrap_or_default(),
                })
                .collect())
        })
    }

    /// SQS changes no message in place: each dead letter `scrub` changes is
    /// written anew, with its reason, and the old one deleted. Every one is
    /// read (held meanwhile, then let go); messages still on the live queue
    /// are left to the consumer, which scrubs what it applies.
    fn scrub<'a>(
        &'a self,
        about: &'a str,
        scrub: &'a Scrub,
    ) -> BoxFuture<'a, anyhow::Result<usize>> {
        Box::pin(async move {
            let dlq = &self.queues.dead_letter_queue_url;
            let (mut rewritten, mut read, mut held) = (0, 0, Vec::new());
            let outcome: anyhow::Result<()> = async {
                while read < SCRUB_MOST {
                    let answer = self
                        .sqs
                        .receive_message()
                        .queue_url(dlq)
                        .max_number_of_messages(10)
                        .visibility_timeout(SCRUB_HOLD_SECONDS)
                        // A long poll asks every server, so an empty answer
                        // means an empty queue.
                        .wait_time_seconds(1)
                        .message_attribute_names(REASON_ATTRIBUTE)
                        .send()
                        .await
                        .map_err(aws_error)
                        .context("cannot read the dead-letter queue")?;
                    let messages = answer.messages.unwrap_or_default();
                    if messages.is_empty() {
                        return Ok(());
                    }
                    read += messages.len();
                    for m in messages {
                        let (Some(body), Some(handle)) = (m.body(), m.receipt_handle()) else {
                            continue;
                        };
                        let clean = body.contains(about).then(|| scrub(body)).flatten();
                        let Some(clean) = clean else {
                            held.push(handle.to_string());
                            continue;
                        };
                        let reason = m
                            .message_attributes()
                            .and_then(|a| a.get(REASON_ATTRIBUTE))
                            .and_then(|v| v.string_value())
                            .unwrap_or("moved by the queue's redrive policy");
                        self.send_dead_letter(&clean, reason).await?;
                        self.sqs
                            .delete_message()
                            .queue_url(dlq)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map_err(aws_error)?;
                        rewritten += 1;
                    }
                }
                Ok(())
            }
            .await;
            // The others are visible again at once, for operators.
            for handle in held {
                let _ = self
                    .sqs
                    .change_message_visibility()
                    .queue_url(dlq)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await;
            }
            outcome.map(|()| rewritten)
        })
    }
}

/// Makes, directly, the topics and queues `techctl up` makes for the
/// saga: a topic per producer (`{prefix}-{service}-events`), a queue and a
/// dead-letter queue per consumer with a redrive policy that allows
/// `max_receive` receives, and raw subscriptions filtered on
/// `event_name`. For tests and local runs against an emulator in
/// `region` and `account`; every service's queues, by name.
pub async fn wire(
    config: &aws_config::SdkConfig,
    prefix: &str,
    max_receive: u32,
    (region, account): (&str, &str),
) -> anyhow::Result<std::collections::HashMap<&'static str, Queues>> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let (sns, sqs) = (
        aws_sdk_sns::Client::new(config),
        aws_sdk_sqs::Client::new(config),
    );
    let producers: std::collections::BTreeSet<&'static str> = contracts::CONSUMERS
        .iter()
        .flat_map(|(_, events)| events.iter().map(|e| contracts::producer_of(e)))
        .chain(contracts::CONSUMERS.iter().map(|(consumer, _)| *consumer))
        .collect();
    let mut queues = std::collections::HashMap::new();
    for producer in producers {
        let topic = sns
            .create_topic()
            .name(format!("{prefix}-{producer}-events"))
            .send()
            .await
            .context("create a topic")?;
        queues.insert(
            producer,
            Queues {
                topic_arn: topic.topic_arn.unwrap_or_default(),
                queue_url: String::new(),
                dead_letter_queue_url: String::new(),
            },
        );
    }
    let arn_of = |url: &str| {
        let name = url.rsplit('/').next().unwrap_or_default();
        format!("arn:aws:sqs:{region}:{account}:{name}")
    };
    for (consumer, events) in contracts::CONSUMERS {
        let mut urls = Vec::new();
        for name in [
            format!("{prefix}-{consumer}-dlq"),
            format!("{prefix}-{consumer}"),
        ] {
            let made = sqs.create_queue().queue_name(name).send().await;
            urls.push(
                made.context("create a queue")?
                    .queue_url
                    .unwrap_or_default(),
            );
        }
        let (dlq, queue) = (urls[0].clone(), urls[1].clone());
        let redrive = serde_json::json!({
            "deadLetterTargetArn": arn_of(&dlq),
            "maxReceiveCount": max_receive + 1,
        });
        sqs.set_queue_attributes()
            .queue_url(&queue)
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .send()
            .await
            .context("set the redrive policy")?;
        let mut by_producer: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for event in *events {
            by_producer
                .entry(contracts::producer_of(event))
                .or_default()
                .push(event);
        }
        for (producer, names) in by_producer {
            sns.subscribe()
                .topic_arn(&queues[producer].topic_arn)
                .protocol("sqs")
                .endpoint(arn_of(&queue))
                .attributes("RawMessageDelivery", "true")
                .attributes(
                    "FilterPolicy",
                    serde_json::json!({ EVENT_NAME_ATTRIBUTE: names }).to_string(),
                )
                .send()
                .await
                .context("subscribe a queue")?;
        }
        let own = queues
            .get_mut(consumer)
            .expect("every consumer has its topic");
        own.queue_url = queue;
        own.dead_letter_queue_url = dlq;
    }
    Ok(queues)
}
