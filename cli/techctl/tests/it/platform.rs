//! The rest of the stack against moto: load balancer, gateway, ECS, IAM,
//! logs, RDS, ECR and messaging, each read back through the SDK with its
//! attributes, tags and the stack outputs that name it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use engine::apply::{self, Ctx, Options};
use engine::plan::Action;
use serde_json::Value;
use techctl::stack;
use testkit::Fault;

const STACK: &str = "techchallenge";

fn full_platform() -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("load-balancer", 1),
        ("target-group", 5),
        ("listener", 1),
        // The user service has four prefixes (eight patterns) and the
        // product service four (the root is one pattern: seven): two rules
        // each.
        ("listener-rule", 7),
        ("http-api", 1),
        ("api-integration", 1),
        ("api-route", 1),
        ("api-stage", 1),
        ("vpc-link", 1),
        ("ecs-cluster", 1),
        // The services' execution role, the database set-up task's, and
        // one task role per service.
        ("iam-role", 7),
        // One per service and the database set-up task's.
        ("log-group", 6),
        ("db-instance", 1),
        ("db-subnet-group", 1),
        ("ecr-repository", 5),
        // user, order, payment and production publish.
        ("sns-topic", 4),
        // order ← payment, order ← production, order ← user, payment ←
        // order, production ← order.
        ("sns-subscription", 5),
        // A queue and a dead-letter queue per consuming service.
        ("sqs-queue", 6),
        // An alarm on each dead-letter queue.
        ("cloudwatch-alarm", 3),
    ])
}

fn tags_of(pairs: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    pairs.into_iter().collect()
}

fn assert_stack_tags(tags: &BTreeMap<String, String>, id: &str) {
    assert_eq!(
        tags.get("techctl:stack").map(String::as_str),
        Some(STACK),
        "{id}: {tags:?}"
    );
    assert_eq!(
        tags.get("techctl:id").map(String::as_str),
        Some(id),
        "{tags:?}"
    );
    assert_eq!(
        tags.get("Name").map(String::as_str),
        Some(format!("{STACK}/{id}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_creates_every_platform_resource_with_its_attributes() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    // The whole stack was made through AWS's refusals, not around them: a
    // first cluster before ECS's service-linked role exists, and calls that
    // named a new VPC, gateway or group before EC2 knew it.
    let refused = h.refused();
    assert!(
        refused
            .iter()
            .any(|r| r == "CreateCluster InvalidParameterException"),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("ModifyVpcAttribute InvalidVpcID.NotFound")),
        "{refused:?}"
    );
    let aws = h.direct().await;
    assert_eq!(count_platform(&aws, STACK).await, full_platform());
    let out = secret_json(&aws, STACK).await.expect("the stack secret");
    let text = |key: &str| {
        out[key]
            .as_str()
            .unwrap_or_else(|| panic!("output {key}"))
            .to_string()
    };

    let groups = aws
        .ec2
        .describe_security_groups()
        .filters(stack_filter(STACK))
        .send()
        .await
        .unwrap();
    let group = |role: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| g.group_name() == Some(&format!("{STACK}-{role}")))
            .and_then(|g| g.group_id())
            .unwrap()
            .to_string()
    };
    let private: BTreeSet<String> = out["private_subnet_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();

    // Load balancer: internal, in the private subnets, behind its own group.
    let lb = aws
        .elb
        .describe_load_balancers()
        .load_balancer_arns(text("alb_arn"))
        .send()
        .await
        .unwrap();
    let lb = &lb.load_balancers()[0];
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internal"));
    assert_eq!(lb.security_groups(), [group("alb")]);
    let lb_subnets: BTreeSet<String> = lb
        .availability_zones()
        .iter()
        .filter_map(|z| z.subnet_id().map(str::to_string))
        .collect();
    assert_eq!(lb_subnets, private);
    assert_eq!(lb.dns_name().unwrap(), text("alb_dns_name"));
    let described = aws
        .elb
        .describe_tags()
        .resource_arns(text("alb_arn"))
        .resource_arns(text("user_target_group_arn"))
        .send()
        .await
        .unwrap();
    let tags = |i: usize| {
        tags_of(
            described.tag_descriptions()[i]
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())),
        )
    };
    assert_stack_tags(&tags(0), "load-balancing/load-balancer");
    assert_stack_tags(&tags(1), "load-balancing/target-group/user");

    // Target groups: ip targets on the service port, checked on /health/ready,
    // released quickly.
    for (service, port) in [("user", 4001), ("order", 4003), ("production", 4005)] {
        let arn = text(&format!("{service}_target_group_arn"));
        let tg = aws
            .elb
            .describe_target_groups()
            .target_group_arns(&arn)
            .send()
            .await
            .unwrap();
        let tg = &tg.target_groups()[0];
        assert_eq!(tg.port(), Some(port));
        assert_eq!(tg.target_type().map(|t| t.as_str()), Some("ip"));
        assert_eq!(tg.health_check_path(), Some("/health/ready"));
        let attributes = aws
            .elb
            .describe_target_group_attributes()
            .target_group_arn(&arn)
            .send()
            .await
            .unwrap();
        let delay = attributes
            .attributes()
            .iter()
            .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
            .and_then(|a| a.value());
        assert_eq!(delay, Some("15"));
    }

    // Listener: port 80, 404 by default; one rule set per service.
    let listener = aws
        .elb
        .describe_listeners()
        .listener_arns(text("listener_arn"))
        .send()
        .await
        .unwrap();
    let listener = &listener.listeners()[0];
    assert_eq!(listener.port(), Some(80));
    let default = listener.default_actions()[0]
        .fixed_response_config()
        .unwrap();
    assert_eq!(default.status_code(), Some("404"));
    let rules = aws
        .elb
        .describe_rules()
        .listener_arn(text("listener_arn"))
        .send()
        .await
        .unwrap();
    let mut routed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in rules
        .rules()
        .iter()
        .filter(|r| r.is_default() != Some(true))
    {
        let target = rule.actions()[0].target_group_arn().unwrap().to_string();
        let paths = rule.conditions()[0].path_pattern_config().unwrap().values();
        assert!(paths.len() <= 5, "AWS allows five values per rule");
        routed
            .entry(target)
            .or_default()
            .extend(paths.iter().cloned());
    }
    assert_eq!(
        routed[&text("user_target_group_arn")],
        BTreeSet::from(
            [
                "/users",
                "/users/*",
                "/auth",
                "/auth/*",
                "/employees",
                "/employees/*",
                "/.well-known",
                "/.well-known/*"
            ]
            .map(String::from)
        )
    );
    assert_eq!(
        routed[&text("payment_target_group_arn")],
        BTreeSet::from(["/payments", "/payments/*", "/webhooks", "/webhooks/*"].map(String::from))
    );
    // The root alone (where the kiosk opens), not `/*`, which would take
    // every path from the other services.
    assert_eq!(
        routed[&text("product_target_group_arn")],
        BTreeSet::from(
            [
                "/products",
                "/products/*",
                "/categories",
                "/categories/*",
                "/screens",
                "/screens/*",
                "/"
            ]
            .map(String::from)
        )
    );

    // API Gateway: HTTP API with the blueprint's CORS, a VPC link in the
    // private subnets, one proxy integration to the listener, one route,
    // the auto-deployed default stage.
    let api = aws
        .apigw
        .get_api()
        .api_id(text("api_id"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.protocol_type().map(|p| p.as_str()), Some("HTTP"));
    assert_eq!(api.api_endpoint(), Some(text("api_endpoint").as_str()));
    let cors = api.cors_configuration().unwrap();
    assert_eq!(cors.allow_origins(), ["*"]);
    assert_eq!(cors.max_age(), Some(600));
    assert!(
        cors.allow_headers()
            .contains(&"idempotency-key".to_string())
    );
    assert_stack_tags(&tags_of(api.tags().unwrap().clone()), "gateway/api");
    let link = aws
        .apigw
        .get_vpc_link()
        .vpc_link_id(text("vpc_link_id"))
        .send()
        .await
        .unwrap();
    assert_eq!(link.security_group_ids(), [group("vpc-link")]);
    assert_eq!(
        link.subnet_ids().iter().cloned().collect::<BTreeSet<_>>(),
        private
    );
    let integrations = aws
        .apigw
        .get_integrations()
        .api_id(text("api_id"))
        .send()
        .await
        .unwrap();
    let integration = &integrations.items()[0];
    assert_eq!(
        integration.integration_type().map(|t| t.as_str()),
        Some("HTTP_PROXY")
    );
    assert_eq!(
        integration.connection_type().map(|t| t.as_str()),
        Some("VPC_LINK")
    );
    assert_eq!(
        integration.connection_id(),
        Some(text("vpc_link_id").as_str())
    );
    assert_eq!(
        integration.integration_uri(),
        Some(text("listener_arn").as_str())
    );
    let routes = aws
        .apigw
        .get_routes()
        .api_id(text("api_id"))
        .send()
        .await
        .unwrap();
    assert_eq!(routes.items().len(), 1);
    assert_eq!(routes.items()[0].route_key(), Some("$default"));
    assert_eq!(
        routes.items()[0].target(),
        Some(format!("integrations/{}", integration.integration_id().unwrap()).as_str())
    );
    let stages = aws
        .apigw
        .get_stages()
        .api_id(text("api_id"))
        .send()
        .await
        .unwrap();
    assert_eq!(stages.items()[0].stage_name(), Some("$default"));
    assert_eq!(stages.items()[0].auto_deploy(), Some(true));
    // The blueprint's throttling on every route, in front of the services.
    let throttling = stages.items()[0].default_route_settings().unwrap();
    assert_eq!(throttling.throttling_rate_limit(), Some(100.0));
    assert_eq!(throttling.throttling_burst_limit(), Some(200));

    // ECS cluster with Container Insights.
    let clusters = aws
        .ecs
        .describe_clusters()
        .clusters(text("cluster_arn"))
        .include(aws_sdk_ecs::types::ClusterField::Settings)
        .send()
        .await
        .unwrap();
    let settings = clusters.clusters()[0].settings();
    assert_eq!(settings[0].value(), Some("enabled"));

    // Roles: assumed by ECS tasks only, each with exactly its resources.
    let secret_arn = aws
        .secrets
        .describe_secret()
        .secret_id("techctl/techchallenge")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    // Only the database set-up task's role may read the stack secret.
    let db_init = role_policy(&aws, "techchallenge-db-init-execution").await;
    assert!(
        db_init.iter().any(|(_, r)| r.contains(&secret_arn)),
        "{db_init:?}"
    );
    for name in [
        "techchallenge-task-execution",
        "techchallenge-user-task",
        "techchallenge-order-task",
    ] {
        let policy = role_policy(&aws, name).await;
        assert!(
            policy.iter().all(|(_, r)| !r.contains(&secret_arn)),
            "{name} names the stack secret: {policy:?}"
        );
    }
    // The user service reads its signing keys and publishes its events
    // (an erasure), and nothing more: it consumes nothing, and never sees
    // the stack secret.
    let user = role_policy(&aws, "techchallenge-user-task").await;
    assert_eq!(
        user,
        vec![
            (
                BTreeSet::from(["secretsmanager:GetSecretValue".to_string()]),
                BTreeSet::from([text("signing_keys_secret_arn")])
            ),
            (
                BTreeSet::from(["sns:Publish".to_string()]),
                BTreeSet::from([text("user_topic_arn")])
            ),
        ],
    );
    let payment = role_policy(&aws, "techchallenge-payment-task").await;
    let resources: BTreeSet<String> = payment.iter().flat_map(|(_, r)| r.clone()).collect();
    let queue_arn = |url: &str| {
        format!(
            "arn:aws:sqs:us-east-1:123456789012:{}",
            url.rsplit('/').next().unwrap()
        )
    };
    assert_eq!(
        resources,
        BTreeSet::from([
            text("public_keys_secret_arn"),
            text("payment_topic_arn"),
            queue_arn(&text("payment_queue_url")),
            queue_arn(&text("payment_dead_letter_queue_url")),
        ])
    );
    assert!(payment.iter().all(|(_, r)| !r.contains("*")));
    let execution = role_policy(&aws, "techchallenge-task-execution").await;
    let actions: BTreeSet<String> = execution.iter().flat_map(|(a, _)| a.clone()).collect();
    assert!(actions.contains("ecr:BatchGetImage") && actions.contains("logs:PutLogEvents"));
    let role = aws
        .iam
        .get_role()
        .role_name("techchallenge-task-execution")
        .send()
        .await
        .unwrap();
    assert_eq!(role.role().unwrap().arn(), text("task_execution_role_arn"));
    // Every role trusts ECS tasks of this account only (the confused-deputy
    // guard): the account of the credentials, moto's 123456789012.
    for name in [
        "techchallenge-task-execution",
        "techchallenge-user-task",
        "techchallenge-order-task",
    ] {
        let role = aws.iam.get_role().role_name(name).send().await.unwrap();
        let trust: Value = serde_json::from_str(&decode(
            role.role().unwrap().assume_role_policy_document().unwrap(),
        ))
        .unwrap();
        let statement = &trust["Statement"][0];
        assert_eq!(statement["Principal"]["Service"], "ecs-tasks.amazonaws.com");
        assert_eq!(
            statement["Condition"]["StringEquals"]["aws:SourceAccount"], "123456789012",
            "{name}: {trust}"
        );
        assert_eq!(
            statement["Condition"]["ArnLike"]["aws:SourceArn"],
            "arn:aws:ecs:us-east-1:123456789012:*",
            "{name}: {trust}"
        );
    }

    // Log groups keep the blueprint's retention.
    let logs = aws
        .logs
        .describe_log_groups()
        .log_group_name_prefix("/techctl/techchallenge/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        logs.log_groups().len(),
        6,
        "one per service, one for db-init"
    );
    assert!(
        logs.log_groups()
            .iter()
            .all(|g| g.retention_in_days() == Some(14))
    );

    // RDS: private, encrypted, backed up, reachable from the services only,
    // in the private subnets; its password only in the stack secret.
    let db = aws
        .rds
        .describe_db_instances()
        .db_instance_identifier(STACK)
        .send()
        .await
        .unwrap();
    let db = &db.db_instances()[0];
    assert_eq!(db.engine(), Some("postgres"));
    // The blueprint names major version 16: the newest 16.x on offer.
    assert!(
        db.engine_version().is_some_and(|v| v.starts_with("16.")),
        "{:?}",
        db.engine_version()
    );
    assert_eq!(db.db_instance_class(), Some("db.t4g.micro"));
    assert_eq!(db.allocated_storage(), Some(20));
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(db.publicly_accessible(), Some(false));
    assert_eq!(db.backup_retention_period(), Some(7));
    assert_eq!(db.master_username(), Some("techctl"));
    assert_eq!(
        db.vpc_security_groups()[0].vpc_security_group_id(),
        Some(group("database").as_str())
    );
    let db_subnets: BTreeSet<String> = db
        .db_subnet_group()
        .unwrap()
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_identifier().map(str::to_string))
        .collect();
    assert_eq!(db_subnets, private);
    assert_eq!(
        db.endpoint().unwrap().address(),
        Some(text("db_host").as_str())
    );
    assert_eq!(text("db_port"), "5432");
    assert_eq!(text("order_database"), "order_service");
    assert_eq!(text("db_password").len(), 40);
    assert_stack_tags(
        &tags_of(
            db.tag_list()
                .iter()
                .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())),
        ),
        "database/instance",
    );

    // ECR: one repository per service, scanned on push, keeping ten images.
    let repo = aws
        .ecr
        .describe_repositories()
        .repository_names("techchallenge/order")
        .send()
        .await
        .unwrap();
    let repo = &repo.repositories()[0];
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    assert_eq!(
        repo.repository_uri(),
        Some(text("order_repository_uri").as_str())
    );
    let lifecycle = aws
        .ecr
        .get_lifecycle_policy()
        .repository_name("techchallenge/order")
        .send()
        .await
        .unwrap();
    let lifecycle: Value =
        serde_json::from_str(lifecycle.lifecycle_policy_text().unwrap()).unwrap();
    assert_eq!(lifecycle["rules"][0]["selection"]["countNumber"], 10);

    // Messaging: the payment queue dead-letters after five receives, lets
    // only the order topic send, and gets exactly the events it consumes.
    let attributes = aws
        .sqs
        .get_queue_attributes()
        .queue_url(text("payment_queue_url"))
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    let attribute = |name: &str| {
        attributes
            .get(&aws_sdk_sqs::types::QueueAttributeName::from(name))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(attribute("VisibilityTimeout"), "30");
    let redrive: Value = serde_json::from_str(&attribute("RedrivePolicy")).unwrap();
    // Five unsettled receives, and the 65 retries an hour of backoff makes.
    assert_eq!(redrive["maxReceiveCount"], 70);
    assert_eq!(
        redrive["deadLetterTargetArn"],
        queue_arn(&text("payment_dead_letter_queue_url"))
    );
    let queue_policy: Value = serde_json::from_str(&attribute("Policy")).unwrap();
    assert_eq!(
        queue_policy["Statement"][0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        serde_json::json!([text("order_topic_arn")])
    );
    let subscriptions = aws
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(text("order_topic_arn"))
        .send()
        .await
        .unwrap();
    let mut filters = BTreeMap::new();
    for s in subscriptions.subscriptions() {
        let a = aws
            .sns
            .get_subscription_attributes()
            .subscription_arn(s.subscription_arn().unwrap())
            .send()
            .await
            .unwrap();
        let a = a.attributes().unwrap();
        assert_eq!(a["RawMessageDelivery"], "true");
        let filter: Value = serde_json::from_str(&a["FilterPolicy"]).unwrap();
        filters.insert(
            s.endpoint()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .to_string(),
            filter,
        );
    }
    assert_eq!(
        filters["techchallenge-payment"]["event_name"],
        serde_json::json!(["order.anonymized", "order.cancelled", "order.created"])
    );
    assert_eq!(
        filters["techchallenge-production"]["event_name"],
        serde_json::json!(["order.anonymized", "order.paid"])
    );

    // Each dead-letter queue has its alarm: raised by one visible message,
    // the maximum over a minute, quiet when the queue sends no data.
    let alarms = aws
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix("techchallenge-")
        .send()
        .await
        .unwrap();
    let watched: BTreeMap<&str, &str> = alarms
        .metric_alarms()
        .iter()
        .map(|a| {
            assert_eq!(a.namespace(), Some("AWS/SQS"));
            assert_eq!(a.metric_name(), Some("ApproximateNumberOfMessagesVisible"));
            assert_eq!(a.statistic().map(|s| s.as_str()), Some("Maximum"));
            assert_eq!((a.period(), a.evaluation_periods()), (Some(60), Some(1)));
            assert_eq!(a.threshold(), Some(0.0));
            assert_eq!(
                a.comparison_operator().map(|c| c.as_str()),
                Some("GreaterThanThreshold")
            );
            assert_eq!(a.treat_missing_data(), Some("notBreaching"));
            let queue = a.dimensions()[0].value().unwrap();
            (a.alarm_name().unwrap(), queue)
        })
        .collect();
    assert_eq!(
        watched,
        BTreeMap::from([
            (
                "techchallenge-order-dead-letters",
                "techchallenge-order-dlq"
            ),
            (
                "techchallenge-payment-dead-letters",
                "techchallenge-payment-dlq"
            ),
            (
                "techchallenge-production-dead-letters",
                "techchallenge-production-dlq"
            ),
        ])
    );
}

type Statements = Vec<(BTreeSet<String>, BTreeSet<String>)>;

/// A role's inline policy as (actions, resources) per statement.
async fn role_policy(aws: &aws::Aws, role: &str) -> Statements {
    let doc = aws
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name("techctl")
        .send()
        .await
        .unwrap();
    let doc: Value = serde_json::from_str(&decode(doc.policy_document())).unwrap();
    let set = |v: &Value| -> BTreeSet<String> {
        match v {
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect(),
            other => BTreeSet::from([other.as_str().unwrap().to_string()]),
        }
    };
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["Effect"], "Allow");
            (set(&s["Action"]), set(&s["Resource"]))
        })
        .collect()
}

/// IAM answers with URL-encoded policy documents.
fn decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_cut_off_while_waiting_for_the_database_converges_on_rerun() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    // The instance never becomes available while the proxy says so.
    h.proxy.set_policy(|seen| {
        if seen.operation == "DescribeDBInstances" || seen.operation == "CreateDBInstance" {
            Fault::Rewrite(
                "<DBInstanceStatus>available</DBInstanceStatus>",
                "<DBInstanceStatus>creating</DBInstanceStatus>",
            )
        } else {
            Fault::Pass
        }
    });
    let aws = h.aws().await;
    let plan = stack::plan(&aws, &bp).await.unwrap();
    let ctx = Arc::new(Ctx::new(STACK, Options::default()));
    let run = tokio::spawn(async move {
        apply::apply(
            Arc::new(aws::AwsProvider::new(aws.clone())),
            ctx,
            &plan,
            Arc::new(Quiet),
        )
        .await;
    });
    // Wait until up is polling the instance, then cut it off.
    let direct = h.direct().await;
    let started = std::time::Instant::now();
    loop {
        let polls = h
            .proxy
            .operations()
            .iter()
            .filter(|o| *o == "DescribeDBInstances")
            .count();
        if polls >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "up never waited for RDS"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.abort();
    let _ = run.await;
    let password = secret_json(&direct, STACK).await.unwrap()["db_password"].clone();
    assert!(
        password.is_string(),
        "the password is stored before the instance exists"
    );

    // While AWS still reports the instance creating, plan says up will wait.
    let plan = h.plan(&bp).await;
    let db = plan
        .changes
        .iter()
        .find(|c| c.id.as_str() == "database/instance")
        .unwrap();
    assert_eq!(db.action, Action::Update);
    assert!(
        db.reason.as_deref().unwrap().contains("creating"),
        "{:?}",
        db.reason
    );

    h.proxy.set_policy(|_| Fault::Pass);
    assert_done(&h.up(&bp).await.0);
    let after = h.plan(&bp).await;
    let left: Vec<_> = after
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| (c.id.to_string(), c.action, c.reason.clone()))
        .collect();
    assert!(left.is_empty(), "the rerun left changes: {left:?}");
    assert_eq!(count_platform(&direct, STACK).await, full_platform());
    let out = secret_json(&direct, STACK).await.unwrap();
    assert_eq!(
        out["db_password"], password,
        "the instance's password is kept"
    );
    assert!(out["db_host"].as_str().unwrap().contains(".rds."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_states_the_monthly_cost_and_status_masks_the_secrets_and_shows_alarms() {
    let h = Harness::start().await;
    // From nothing, the plan's critical path is the database's.
    let fresh = techctl_at(&h.proxy.url).args(["plan"]).output().unwrap();
    let fresh = String::from_utf8_lossy(&fresh.stdout);
    assert!(
        fresh.contains("Critical path: database/instance (9 min): about 9 min on AWS"),
        "{fresh}"
    );
    assert_done(&h.up(&blueprint_with(&[])).await.0);
    let plan = techctl_at(&h.proxy.url).args(["plan"]).output().unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{text}");
    assert!(text.contains("No changes"), "{text}");
    assert!(
        text.contains("Estimated monthly cost while running (prices for us-east-1 as of"),
        "{text}"
    );
    assert!(text.contains("RDS PostgreSQL instance"), "{text}");
    // Nothing to do: nothing to wait for.
    assert!(!text.contains("Critical path"), "{text}");

    let status = techctl_at(&h.proxy.url)
        .args(["status", "--output", "json"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["in_sync"], true);
    let resources = json["resources"].as_array().unwrap();
    let state = |id: &str| {
        resources
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state("database/instance").as_deref(), Some("available"));
    assert_eq!(state("gateway/vpc-link").as_deref(), Some("available"));
    assert_eq!(
        state("load-balancing/load-balancer").as_deref(),
        Some("active")
    );
    assert_eq!(json["outputs"]["db_password"], "(secret, hidden)");
    assert!(
        json["outputs"]["api_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert_eq!(json["alarms_raised"], 0);
    assert_eq!(json["dead_letter_alarms"].as_array().unwrap().len(), 3);

    // A parked payment event: CloudWatch raises the payment queue's alarm,
    // and status says so and what to run.
    h.direct()
        .await
        .cloudwatch
        .set_alarm_state()
        .alarm_name("techchallenge-payment-dead-letters")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("Threshold Crossed: 1 datapoint [1.0] was greater than the threshold (0.0).")
        .send()
        .await
        .unwrap();
    let raised = techctl_at(&h.proxy.url).args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&raised.stdout);
    assert!(raised.status.success(), "{text}");
    assert!(
        text.contains(
            "payment      ALARM: events are parked in techchallenge-payment-dlq; \
             `techctl events list payment` shows them and why"
        ),
        "{text}"
    );
    assert!(text.contains("order        OK"), "{text}");
    let json: Value = serde_json::from_slice(
        &techctl_at(&h.proxy.url)
            .args(["status", "--output", "json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(json["alarms_raised"], 1);

    let raw = String::from_utf8_lossy(&status.stdout);
    let password = secret_json(&h.direct().await, STACK).await.unwrap()["db_password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!raw.contains(&password), "status leaks the password");
}
