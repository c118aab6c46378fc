//! CloudWatch through the strict proxy with the real SDK: its RPC v2 CBOR
//! reaches moto as JSON and comes back as CBOR, timestamps included, and
//! what PutMetricAlarm, DescribeAlarms and DeleteAlarms refuse on AWS is
//! refused here.

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, StateValue, Statistic, Tag};
use testkit::StrictAws;

fn alarm(
    client: &Client,
    name: &str,
) -> aws_sdk_cloudwatch::operation::put_metric_alarm::builders::PutMetricAlarmFluentBuilder {
    client
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/SQS")
        .metric_name("ApproximateNumberOfMessagesVisible")
        .dimensions(
            Dimension::builder()
                .name("QueueName")
                .value("shop-order-dlq")
                .build(),
        )
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(1)
        .threshold(0.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data("notBreaching")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_go_through_in_the_sdk_s_protocol_and_what_aws_refuses_is_refused() {
    let aws = StrictAws::start().await;
    let client = Client::new(&aws.sdk_config().await);

    let tag = Tag::builder().key("techctl:stack").value("shop").build();
    alarm(&client, "shop-order-dead-letters")
        .tags(tag)
        .send()
        .await
        .expect("a valid alarm is put");
    let described = client
        .describe_alarms()
        .alarm_name_prefix("shop-")
        .max_records(100)
        .send()
        .await
        .expect("the alarms are described");
    let found = &described.metric_alarms()[0];
    assert_eq!(found.alarm_name(), Some("shop-order-dead-letters"));
    assert_eq!(found.period(), Some(60));
    assert_eq!(found.threshold(), Some(0.0));
    assert_eq!(found.dimensions()[0].value(), Some("shop-order-dlq"));
    // A timestamp survives CBOR's tag 1.
    let updated = found.state_updated_timestamp().expect("a state time");
    assert!(updated.secs() > 1_700_000_000, "{updated:?}");
    let arn = found.alarm_arn().unwrap();
    let tags = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].value(), Some("shop"));

    client
        .set_alarm_state()
        .alarm_name("shop-order-dead-letters")
        .state_value(StateValue::Alarm)
        .state_reason("a parked event")
        .send()
        .await
        .unwrap();
    let raised = client
        .describe_alarms()
        .alarm_names("shop-order-dead-letters")
        .send()
        .await
        .unwrap();
    assert_eq!(
        raised.metric_alarms()[0].state_value(),
        Some(&StateValue::Alarm)
    );

    // Refused as AWS refuses them, with the code the SDK reads.
    let refused = |e: &dyn ProvideErrorMetadata| e.code().map(str::to_string);
    let odd_period = alarm(&client, "shop-odd")
        .period(45)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused(&odd_period).as_deref(),
        Some("InvalidParameterValue")
    );
    let control = alarm(&client, "shop\u{7}bell").send().await.unwrap_err();
    assert_eq!(refused(&control).as_deref(), Some("InvalidParameterValue"));
    let long = alarm(&client, &"a".repeat(256)).send().await.unwrap_err();
    assert_eq!(refused(&long).as_deref(), Some("InvalidParameterValue"));
    let page = client
        .describe_alarms()
        .max_records(101)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused(&page).as_deref(), Some("InvalidParameterValue"));
    let many = client
        .delete_alarms()
        .set_alarm_names(Some((0..101).map(|i| format!("a{i}")).collect()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused(&many).as_deref(), Some("InvalidParameterValue"));
    let refusals = aws.proxy.strict_refusals();
    assert_eq!(refusals.len(), 5, "{refusals:?}");
    assert!(refusals.iter().all(|r| r.code == "InvalidParameterValue"));

    // Names it does not know are passed over; the rest are deleted.
    client
        .delete_alarms()
        .alarm_names("shop-order-dead-letters")
        .alarm_names("shop-never-made")
        .send()
        .await
        .expect("unknown names do not fail a delete");
    let left = client.describe_alarms().send().await.unwrap();
    assert!(left.metric_alarms().is_empty());
}
