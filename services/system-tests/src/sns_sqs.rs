//! The services' events on SNS and SQS in moto, behind the strict proxy,
//! wired as `techctl up` wires them: a topic per producer, a queue and a
//! dead-letter queue per consumer, raw subscriptions filtered on
//! `event_name`, a redrive policy that allows every retry.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sqs::types::QueueAttributeName;
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
        let config = aws.sdk_config().await;
        let queues = service_messaging::sqs::wire(
            &config,
            "system",
            max_receive,
            ("us-east-1", "123456789012"),
        )
        .await
        .expect("the topics and queues");
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
