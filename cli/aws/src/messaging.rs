//! The saga's transport: one SNS topic per producing service
//! (`STACK-SERVICE-events`), one SQS queue per consuming service
//! (`STACK-SERVICE`) with its dead-letter queue (`STACK-SERVICE-dlq`), and
//! the subscriptions between them, raw and filtered on the `event_name`
//! message attribute the services publish with.
//!
//! Topics are known by ARN, queues by URL, subscriptions by ARN. A
//! subscription carries no tags; it is known by its topic and its queue.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Value, json};

use super::{Aws, AwsError, all_pages, in_stack, observed, policy, tag_map};
use crate::{Ctx, Step};
use engine::plan::expand::ids;
use engine::plan::resource::{DeadLetter, Output};
use engine::plan::{LogicalId, Observed, Resource, Spec};

/// The message attribute subscriptions filter on.
pub const EVENT_NAME_ATTRIBUTE: &str = "event_name";

/// The last segment of an ARN or a URL: a topic's or a queue's name.
fn last_segment(s: &str) -> &str {
    s.rsplit([':', '/']).next().unwrap_or(s)
}

/// `STACK-SERVICE-events` → `SERVICE`.
fn producer_of(stack: &str, topic_name: &str) -> Option<String> {
    topic_name
        .strip_prefix(&format!("{stack}-"))?
        .strip_suffix("-events")
        .map(str::to_string)
}

/// `STACK-SERVICE` → `SERVICE`.
fn consumer_of(stack: &str, queue_name: &str) -> Option<String> {
    queue_name
        .strip_prefix(&format!("{stack}-"))
        .filter(|s| !s.ends_with("-dlq"))
        .map(str::to_string)
}

pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let (topics, queues) =
        tokio::try_join!(observe_topics(aws, stack), observe_queues(aws, stack))?;
    Ok(topics.into_iter().chain(queues).collect())
}

async fn observe_topics(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let sns = &aws.sns;
    let arns = all_pages(|token| async move {
        let page = sdk!("ListTopics", sns.list_topics().set_next_token(token).send())?;
        let ours = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .filter(|arn| last_segment(arn).starts_with(&format!("{stack}-")))
            .map(str::to_string)
            .collect();
        Ok((ours, page.next_token().map(str::to_string)))
    })
    .await?;
    let mut out = Vec::new();
    for arn in arns {
        let tags = sdk!(
            "ListTagsForResource",
            sns.list_tags_for_resource().resource_arn(&arn).send()
        )?;
        let tags = tag_map(tags.tags().iter().map(|t| (t.key(), t.value())));
        if !in_stack(&tags, stack) {
            continue;
        }
        let name = last_segment(&arn).to_string();
        out.extend(observe_subscriptions(aws, stack, &arn, &name).await?);
        out.push(observed(&arn, tags, Spec::Topic { name }, None));
    }
    Ok(out)
}

async fn observe_subscriptions(
    aws: &Aws,
    stack: &str,
    topic_arn: &str,
    topic_name: &str,
) -> Result<Vec<Observed>, AwsError> {
    let sns = &aws.sns;
    let subscriptions = all_pages(|token| async move {
        let page = sdk!(
            "ListSubscriptionsByTopic",
            sns.list_subscriptions_by_topic()
                .topic_arn(topic_arn)
                .set_next_token(token)
                .send()
        )?;
        Ok((
            page.subscriptions().to_vec(),
            page.next_token().map(str::to_string),
        ))
    })
    .await?;
    let mut out = Vec::new();
    for sub in &subscriptions {
        let (Some(arn), Some(endpoint)) = (sub.subscription_arn(), sub.endpoint()) else {
            continue;
        };
        // Not yet confirmed: nothing to read or delete.
        if sub.protocol() != Some("sqs") || arn == "PendingConfirmation" {
            continue;
        }
        let attributes = sdk!(
            "GetSubscriptionAttributes",
            sns.get_subscription_attributes()
                .subscription_arn(arn)
                .send()
        )?;
        let attributes = attributes.attributes().cloned().unwrap_or_default();
        let events = attributes
            .get("FilterPolicy")
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| p.get(EVENT_NAME_ATTRIBUTE).cloned())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let id = match (
            consumer_of(stack, last_segment(endpoint)),
            producer_of(stack, topic_name),
        ) {
            (Some(consumer), Some(producer)) => ids::subscription(&consumer, &producer),
            _ => crate::logical_id(&BTreeMap::new(), arn),
        };
        out.push(Observed {
            id,
            physical_id: arn.to_string(),
            spec: Spec::Subscription {
                topic: LogicalId::foreign(topic_arn),
                // The queue is known by its URL; its ARN is an attribute.
                queue: LogicalId::foreign(endpoint),
                events,
                raw_delivery: attributes.get("RawMessageDelivery").map(String::as_str)
                    == Some("true"),
            },
            tags: BTreeMap::new(),
            state: None,
            attributes: BTreeMap::new(),
        });
    }
    Ok(out)
}

async fn observe_queues(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let sqs = &aws.sqs;
    let urls = all_pages(|token| async move {
        let page = sdk!(
            "ListQueues",
            sqs.list_queues()
                .queue_name_prefix(format!("{stack}-"))
                .set_next_token(token)
                .send()
        )?;
        Ok((
            page.queue_urls().to_vec(),
            page.next_token().map(str::to_string),
        ))
    })
    .await?;
    let mut out = Vec::new();
    for url in urls {
        let tags = match sdk!(
            "ListQueueTags",
            sqs.list_queue_tags().queue_url(&url).send()
        ) {
            Ok(answer) => answer.tags().cloned().unwrap_or_default(),
            // Deleted since it was listed.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let tags = tag_map(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if !in_stack(&tags, stack) {
            continue;
        }
        let attributes = sdk!(
            "GetQueueAttributes",
            sqs.get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::All)
                .send()
        )?;
        let attributes: HashMap<String, String> = attributes
            .attributes()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
            .collect();
        let number = |key: &str| {
            attributes
                .get(key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let dead_letter = attributes
            .get("RedrivePolicy")
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| {
                Some(DeadLetter {
                    queue: Output::Text(p.get("deadLetterTargetArn")?.as_str()?.to_string()),
                    max_receive_count: p
                        .get("maxReceiveCount")
                        .and_then(|n| n.as_u64().or_else(|| n.as_str()?.parse().ok()))
                        .unwrap_or(0) as u32,
                })
            });
        let senders = attributes
            .get("Policy")
            .map(|p| senders_of(p))
            .unwrap_or_default();
        let spec = Spec::Queue {
            name: last_segment(&url).to_string(),
            visibility_timeout_seconds: number("VisibilityTimeout"),
            retention_seconds: number("MessageRetentionPeriod"),
            dead_letter,
            senders,
        };
        let arn = attributes.get("QueueArn").cloned().unwrap_or_default();
        out.push(observed(&url, tags, spec, None).with_attribute("arn", arn));
    }
    Ok(out)
}

/// The topics a queue policy lets send to the queue.
fn senders_of(document: &str) -> BTreeSet<Output> {
    let Ok(document) = serde_json::from_str::<Value>(document) else {
        return BTreeSet::new();
    };
    policy::statements(&document)
        .into_iter()
        .flat_map(|s| policy::strings(s.pointer("/Condition/ArnEquals/aws:SourceArn")))
        .map(Output::Text)
        .collect()
}

fn queue_policy(queue_arn: &str, topics: &[String]) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "saga-topics",
            "Effect": "Allow",
            "Principal": { "Service": "sns.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": topics } },
        }]
    })
    .to_string()
}

fn filter_policy(events: &BTreeSet<String>) -> String {
    json!({ EVENT_NAME_ATTRIBUTE: events }).to_string()
}

/// How long SQS holds a deleted queue's name, with room to spare.
const NAME_HELD_DEADLINE: Duration = Duration::from_secs(120);
const NAME_HELD_POLL: Duration = Duration::from_secs(5);

/// SQS refuses a queue name for 60 s after a queue of that name was deleted.
fn is_deleted_recently(e: &AwsError) -> bool {
    e.code
        .as_deref()
        .is_some_and(|c| c.ends_with("QueueDeletedRecently"))
}

pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let tags = ctx.tags(&resource.id);
    match &resource.spec {
        Spec::Topic { name } => {
            // CreateTopic returns the existing topic of the same name.
            sdk!(
                "CreateTopic",
                ctx.aws
                    .sns
                    .create_topic()
                    .name(name)
                    .set_tags(Some(sns_tags(&tags)))
                    .send()
            )?
            .topic_arn()
            .map(str::to_string)
            .ok_or_else(|| AwsError::new("CreateTopic", "no topic ARN in the answer"))
        }
        Spec::Queue { name, .. } => {
            // CreateQueue returns the existing queue of the same name and
            // settings; the settings are put in place right after.
            // SQS keeps a deleted queue's name for 60 s (a `down` then an
            // `up`, or a replaced queue): wait until it lets go.
            let url = step
                .wait_until(
                    &format!("SQS to free the name {name}: a queue of that name was deleted less than 60 s ago"),
                    ctx.steady(NAME_HELD_POLL, NAME_HELD_DEADLINE),
                    || async {
                        let created = sdk!(
                            "CreateQueue",
                            ctx.aws
                                .sqs
                                .create_queue()
                                .queue_name(name)
                                .set_tags(Some(tags.clone().into_iter().collect()))
                                .send()
                        );
                        match created {
                            Ok(answer) => answer.queue_url().map(|u| Some(u.to_string())).ok_or_else(
                                || AwsError::new("CreateQueue", "no queue URL in the answer"),
                            ),
                            Err(e) if is_deleted_recently(&e) => Ok(None),
                            Err(e) => Err(e),
                        }
                    },
                )
                .await?;
            let arn = queue_arn(ctx, &url).await?;
            ctx.remember_attribute(&resource.id, "arn", &arn);
            update(ctx, step, resource, &url).await?;
            Ok(url)
        }
        Spec::Subscription {
            topic,
            queue,
            events,
            raw_delivery,
        } => {
            let topic = ctx.resolve(topic)?;
            let queue = ctx.attribute(queue, "arn")?;
            let lookup = || super::find(observe(ctx.aws, &ctx.stack), &resource.id);
            ctx.aws
                .create_once(
                    || async {
                        sdk!(
                            "Subscribe",
                            ctx.aws
                                .sns
                                .subscribe()
                                .topic_arn(&topic)
                                .protocol("sqs")
                                .endpoint(&queue)
                                .attributes("RawMessageDelivery", raw_delivery.to_string())
                                .attributes("FilterPolicyScope", "MessageAttributes")
                                .attributes("FilterPolicy", filter_policy(events))
                                .return_subscription_arn(true)
                                .customize()
                                .config_override(no_retry!(aws_sdk_sns))
                                .send()
                        )?
                        .subscription_arn()
                        .map(str::to_string)
                        .ok_or_else(|| {
                            AwsError::new("Subscribe", "no subscription ARN in the answer")
                        })
                    },
                    lookup,
                )
                .await
        }
        _ => Err(AwsError::new("create", "not a messaging resource")),
    }
}

fn sns_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_sns::types::Tag> {
    tags.iter()
        .filter_map(|(k, v)| {
            aws_sdk_sns::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

async fn queue_arn(ctx: &Ctx<'_>, url: &str) -> Result<String, AwsError> {
    sdk!(
        "GetQueueAttributes",
        ctx.aws
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
    )?
    .attributes()
    .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
    .ok_or_else(|| AwsError::new("GetQueueAttributes", "no queue ARN in the answer"))
}

pub async fn update(
    ctx: &Ctx<'_>,
    _step: &Step,
    resource: &Resource,
    physical: &str,
) -> Result<(), AwsError> {
    let tags = ctx.tags(&resource.id);
    match &resource.spec {
        Spec::Topic { .. } => sdk!(
            "TagResource",
            ctx.aws
                .sns
                .tag_resource()
                .resource_arn(physical)
                .set_tags(Some(sns_tags(&tags)))
                .send()
        )
        .map(|_| ()),
        Spec::Queue {
            visibility_timeout_seconds,
            retention_seconds,
            dead_letter,
            senders,
            ..
        } => {
            let arn = match ctx.attribute(&resource.id, "arn") {
                Ok(arn) => arn,
                Err(_) => queue_arn(ctx, physical).await?,
            };
            let redrive = match dead_letter {
                Some(d) => json!({
                    "deadLetterTargetArn": ctx.output_text(&d.queue)?,
                    "maxReceiveCount": d.max_receive_count,
                })
                .to_string(),
                None => String::new(),
            };
            let topics = senders
                .iter()
                .map(|s| ctx.output_text(s))
                .collect::<Result<Vec<_>, _>>()?;
            let policy = if topics.is_empty() {
                String::new()
            } else {
                queue_policy(&arn, &topics)
            };
            sdk!(
                "SetQueueAttributes",
                ctx.aws
                    .sqs
                    .set_queue_attributes()
                    .queue_url(physical)
                    .attributes(
                        QueueAttributeName::VisibilityTimeout,
                        visibility_timeout_seconds.to_string()
                    )
                    .attributes(
                        QueueAttributeName::MessageRetentionPeriod,
                        retention_seconds.to_string()
                    )
                    .attributes(QueueAttributeName::RedrivePolicy, redrive)
                    .attributes(QueueAttributeName::Policy, policy)
                    .send()
            )?;
            sdk!(
                "TagQueue",
                ctx.aws
                    .sqs
                    .tag_queue()
                    .queue_url(physical)
                    .set_tags(Some(tags.into_iter().collect()))
                    .send()
            )
            .map(|_| ())
        }
        Spec::Subscription {
            events,
            raw_delivery,
            ..
        } => {
            for (name, value) in [
                ("FilterPolicy", filter_policy(events)),
                ("RawMessageDelivery", raw_delivery.to_string()),
            ] {
                sdk!(
                    "SetSubscriptionAttributes",
                    ctx.aws
                        .sns
                        .set_subscription_attributes()
                        .subscription_arn(physical)
                        .attribute_name(name)
                        .attribute_value(value)
                        .send()
                )?;
            }
            Ok(())
        }
        _ => Err(AwsError::new("update", "not a messaging resource")),
    }
}

pub async fn delete(ctx: &Ctx<'_>, _step: &Step, observed: &Observed) -> Result<(), AwsError> {
    let physical = observed.physical_id.as_str();
    super::gone(match &observed.spec {
        Spec::Subscription { .. } => sdk!(
            "Unsubscribe",
            ctx.aws.sns.unsubscribe().subscription_arn(physical).send()
        )
        .map(|_| ()),
        Spec::Topic { .. } => sdk!(
            "DeleteTopic",
            ctx.aws.sns.delete_topic().topic_arn(physical).send()
        )
        .map(|_| ()),
        Spec::Queue { .. } => sdk!(
            "DeleteQueue",
            ctx.aws.sqs.delete_queue().queue_url(physical).send()
        )
        .map(|_| ()),
        _ => Err(AwsError::new("delete", "not a messaging resource")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tell_producer_and_consumer() {
        assert_eq!(
            producer_of("shop", "shop-order-events").as_deref(),
            Some("order")
        );
        assert_eq!(
            consumer_of("shop", "shop-payment").as_deref(),
            Some("payment")
        );
        assert_eq!(consumer_of("shop", "shop-payment-dlq"), None);
        assert_eq!(
            last_segment("https://sqs.us-east-1.amazonaws.com/1/shop-order"),
            "shop-order"
        );
        assert_eq!(
            last_segment("arn:aws:sns:us-east-1:1:shop-order-events"),
            "shop-order-events"
        );
    }

    #[test]
    fn a_queue_policy_reads_back_its_topics() {
        let policy = queue_policy("arn:q", &["arn:t1".into(), "arn:t2".into()]);
        let senders = senders_of(&policy);
        assert_eq!(
            senders,
            BTreeSet::from([Output::Text("arn:t1".into()), Output::Text("arn:t2".into())])
        );
    }
}
