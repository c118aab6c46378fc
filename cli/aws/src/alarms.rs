//! CloudWatch alarms: one per dead-letter queue, raised while the queue
//! holds a visible message, so a parked event is seen in minutes rather
//! than when a customer asks where their order is.
//!
//! An alarm is known by its name (`DeleteAlarms` takes names), its tags
//! live on its ARN. `PutMetricAlarm` creates and updates alike, but it
//! ignores `Tags` when the alarm exists: tags are put with `TagResource`.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricAlarm, StandardUnit, Statistic, Tag,
};

use super::{Aws, AwsError, all_pages, in_stack, observed, tag_map};
use crate::{Ctx, Step};
use engine::plan::{Observed, Resource, Spec};

/// The SQS metric of messages available for retrieval.
const METRIC: &str = "ApproximateNumberOfMessagesVisible";
const NAMESPACE: &str = "AWS/SQS";
/// `DescribeAlarms` answers at most 100 alarms a page.
const PAGE: i32 = 100;
/// A quiet queue sends no metric; no data then means no dead letter. A
/// queue that holds messages counts as active and keeps reporting them.
const MISSING_DATA: &str = "notBreaching";

pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let cloudwatch = &aws.cloudwatch;
    // The prefix narrows the listing; the stack tag decides (the stack
    // `shop` must not take the alarms of `shop-staging`).
    let alarms = all_pages(|token| async move {
        let page = sdk!(
            "DescribeAlarms",
            cloudwatch
                .describe_alarms()
                .alarm_name_prefix(format!("{stack}-"))
                .max_records(PAGE)
                .set_next_token(token)
                .send()
        )?;
        Ok((
            page.metric_alarms().to_vec(),
            page.next_token().map(str::to_string),
        ))
    })
    .await?;
    let mut out = Vec::new();
    for alarm in alarms {
        let (Some(name), Some(arn)) = (alarm.alarm_name(), alarm.alarm_arn()) else {
            continue;
        };
        let tags = match sdk!(
            "ListTagsForResource",
            cloudwatch.list_tags_for_resource().resource_arn(arn).send()
        ) {
            Ok(answer) => tag_map(
                answer
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?, t.value()?))),
            ),
            // Deleted since it was listed.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        if !in_stack(&tags, stack) {
            continue;
        }
        let spec = Spec::Alarm {
            name: name.to_string(),
            queue_name: watched_queue(&alarm).unwrap_or_default(),
            period_seconds: alarm.period().unwrap_or(0).max(0) as u32,
        };
        let state = alarm.state_value().map(|s| s.as_str().to_string());
        out.push(observed(name, tags, spec, state).with_attribute("arn", arn));
    }
    Ok(out)
}

/// The queue an alarm watches, if it watches one the way ours do.
fn watched_queue(alarm: &MetricAlarm) -> Option<String> {
    (alarm.namespace() == Some(NAMESPACE) && alarm.metric_name() == Some(METRIC))
        .then(|| {
            alarm
                .dimensions()
                .iter()
                .find(|d| d.name() == Some("QueueName"))
                .and_then(|d| d.value())
                .map(str::to_string)
        })
        .flatten()
}

fn cloudwatch_tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Puts the alarm as the spec says; `tags` only count when it is new.
async fn put(ctx: &Ctx<'_>, resource: &Resource, tags: Option<Vec<Tag>>) -> Result<(), AwsError> {
    let Spec::Alarm {
        name,
        queue_name,
        period_seconds,
    } = &resource.spec
    else {
        return Err(AwsError::new("PutMetricAlarm", "not an alarm"));
    };
    let dimension = Dimension::builder()
        .name("QueueName")
        .value(queue_name)
        .build();
    sdk!(
        "PutMetricAlarm",
        ctx.aws
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .alarm_description(format!(
                "Events are parked in {queue_name}: `techctl events list` shows them and why."
            ))
            .namespace(NAMESPACE)
            .metric_name(METRIC)
            .dimensions(dimension)
            .statistic(Statistic::Maximum)
            .unit(StandardUnit::Count)
            .period(*period_seconds as i32)
            .evaluation_periods(1)
            .threshold(0.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .treat_missing_data(MISSING_DATA)
            .set_tags(tags)
            .send()
    )
    .map(|_| ())
}

/// The alarm's ARN, for tagging: made from its name rather than asked of
/// CloudWatch, which may not list an alarm put a moment ago.
async fn arn(ctx: &Ctx<'_>, name: &str) -> Result<String, AwsError> {
    let aws = ctx.aws;
    Ok(format!(
        "arn:{}:cloudwatch:{}:{}:alarm:{name}",
        super::partition(&aws.region),
        aws.region,
        aws.account_id().await?
    ))
}

pub async fn create(ctx: &Ctx<'_>, _step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let Spec::Alarm { name, .. } = &resource.spec else {
        return Err(AwsError::new("create", "not an alarm"));
    };
    // A put is idempotent: a retry after a lost answer puts the same alarm.
    put(
        ctx,
        resource,
        Some(cloudwatch_tags(&ctx.tags(&resource.id))),
    )
    .await?;
    let arn = arn(ctx, name).await?;
    ctx.remember_attribute(&resource.id, "arn", &arn);
    Ok(name.clone())
}

pub async fn update(
    ctx: &Ctx<'_>,
    _step: &Step,
    resource: &Resource,
    physical: &str,
) -> Result<(), AwsError> {
    put(ctx, resource, None).await?;
    let arn = match ctx.attribute(&resource.id, "arn") {
        Ok(arn) => arn,
        Err(_) => arn(ctx, physical).await?,
    };
    sdk!(
        "TagResource",
        ctx.aws
            .cloudwatch
            .tag_resource()
            .resource_arn(arn)
            .set_tags(Some(cloudwatch_tags(&ctx.tags(&resource.id))))
            .send()
    )
    .map(|_| ())
}

pub async fn delete(ctx: &Ctx<'_>, _step: &Step, observed: &Observed) -> Result<(), AwsError> {
    // DeleteAlarms passes over names it does not know: a second delete
    // of the same alarm succeeds.
    super::gone(
        sdk!(
            "DeleteAlarms",
            ctx.aws
                .cloudwatch
                .delete_alarms()
                .alarm_names(&observed.physical_id)
                .send()
        )
        .map(|_| ()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_alarm_on_visible_sqs_messages_names_a_queue() {
        let dimension = Dimension::builder()
            .name("QueueName")
            .value("shop-order-dlq")
            .build();
        let ours = MetricAlarm::builder()
            .namespace(NAMESPACE)
            .metric_name(METRIC)
            .dimensions(dimension.clone())
            .build();
        assert_eq!(watched_queue(&ours).as_deref(), Some("shop-order-dlq"));
        let other = MetricAlarm::builder()
            .namespace("AWS/SQS")
            .metric_name("NumberOfMessagesSent")
            .dimensions(dimension)
            .build();
        assert_eq!(watched_queue(&other), None);
    }
}
