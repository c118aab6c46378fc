//! The services' events on SNS and SQS in moto, behind the strict proxy,
//! wired as `techctl up` wires them: a topic per producer, a queue and a
//! dead-letter queue per consumer, raw subscriptions filtered on
//! `event_name`, a redrive policy that allows every retry.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sqs::types::QueueAttributeName;
use contracts::CONSUMERS;
use service_messaging::sqs::{Queues, SqsTransport};
use testkit::{Fault, StrictAws};

pub struct SnsSqs {
    pub aws: StrictAws,
    config: aws_config::SdkConfig,
    queues: HashMap<&'static str, Queues>,
}

impl SnsSqs {
    /// Moto with every producer's topic and every consumer's queues.
    pub async fn start(max_receive: u32) -> Arc<SnsSqs> {
        let aws = StrictAws::start().await;
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(aws.url())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .load()
            .await;
        let (sns, sqs) = (
            aws_sdk_sns::Client::new(&config),
            aws_sdk_sqs::Client::new(&config),
        );
        let mut queues: HashMap<&'static str, Queues> = HashMap::new();
        for producer in crate::SERVICES {
            let topic = sns
                .create_topic()
                .name(format!("system-{producer}-events"))
                .send()
                .await
                .expect("a topic");
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
            format!("arn:aws:sqs:us-east-1:123456789012:{name}")
        };
        for (consumer, events) in CONSUMERS {
            let make = |name: String| {
                let sqs = sqs.clone();
                async move {
                    let made = sqs.create_queue().queue_name(name).send().await;
                    made.expect("a queue").queue_url.unwrap_or_default()
                }
            };
            let dlq = make(format!("system-{consumer}-dlq")).await;
            let queue = make(format!("system-{consumer}")).await;
            let redrive = serde_json::json!({
                "deadLetterTargetArn": arn_of(&dlq),
                "maxReceiveCount": max_receive + 1,
            });
            sqs.set_queue_attributes()
                .queue_url(&queue)
                .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
                .send()
                .await
                .expect("the redrive policy");
            let mut by_producer: HashMap<&str, Vec<&str>> = HashMap::new();
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
                        serde_json::json!({ "event_name": names }).to_string(),
                    )
                    .send()
                    .await
                    .expect("a subscription");
            }
            let own = queues.get_mut(consumer).expect("every consumer produces");
            own.queue_url = queue;
            own.dead_letter_queue_url = dlq;
        }
        Arc::new(SnsSqs {
            aws,
            config,
            queues,
        })
    }

    /// `service`'s transport, as the service gets it.
    pub fn transport(&self, service: &str, settings: &service_messaging::Settings) -> SqsTransport {
        SqsTransport::new(
            &self.config,
            self.queues[service].clone(),
            settings.max_receive,
            settings.visibility,
        )
    }

    /// The broker stops answering (every connection cut), or answers again.
    pub fn unreachable(&self, down: bool) {
        if down {
            self.aws.proxy.set_policy(|_| Fault::Drop);
        } else {
            self.aws.proxy.set_policy(|_| Fault::Pass);
        }
    }

    /// Messages in the consumers' queues, waiting or in flight; and in
    /// their dead-letter queues.
    pub async fn backlog(&self) -> (i64, i64) {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let count = |url: String| {
            let sqs = sqs.clone();
            async move {
                let attributes = sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send()
                    .await
                    .expect("the queue's attributes");
                attributes
                    .attributes()
                    .map(|a| {
                        a.values()
                            .filter_map(|v| v.parse::<i64>().ok())
                            .sum::<i64>()
                    })
                    .unwrap_or_default()
            }
        };
        let (mut waiting, mut dead) = (0, 0);
        for queues in self.queues.values().filter(|q| !q.queue_url.is_empty()) {
            waiting += count(queues.queue_url.clone()).await;
            dead += count(queues.dead_letter_queue_url.clone()).await;
        }
        (waiting, dead)
    }
}
