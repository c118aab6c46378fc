//! `techctl verify` against a real moto server: the stack `up` makes
//! passes, and each defect put back by hand — through moto directly, as
//! someone at the console would — fails verify with the flow it breaks
//! and the rule behind it. Moto enforces none of these rules; verify is
//! what notices.

use crate::common::*;
use aws::Aws;
use aws::verify::{Flow, Report, ServiceSource};
use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};

const STACK: &str = "techchallenge";

async fn verify(aws: &Aws) -> Report {
    let snapshot = aws::verify::read::snapshot(aws, STACK)
        .await
        .expect("read the stack for verify");
    aws::verify::evaluate(&snapshot)
}

fn failing(report: &Report) -> Vec<String> {
    report.failures().map(Flow::line).collect()
}

/// Verify fails, and the flow named by `words` is among the failures
/// with a problem that names `rule`.
fn assert_fails_naming(report: &Report, words: &[&str], rule: &str) {
    assert!(!report.ok(), "verify passed a broken stack");
    let flow = report
        .failures()
        .find(|f| words.iter().all(|w| f.flow.contains(w)))
        .unwrap_or_else(|| panic!("no failing flow named {words:?}: {:#?}", failing(report)));
    assert!(
        flow.problems.iter().any(|p| p.contains(rule)),
        "{:?} does not name {rule:?}: {:#?}",
        flow.flow,
        flow.problems
    );
}

fn output(secret: &serde_json::Value, key: &str) -> String {
    secret[key]
        .as_str()
        .unwrap_or_else(|| panic!("no output {key}"))
        .to_string()
}

fn tcp_to_group(port: i32, group: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build())
        .build()
}

fn tcp_from_anywhere(port: i32) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

/// The private route tables and the NAT gateway they send the internet to.
async fn private_routes(aws: &Aws) -> Vec<(String, String)> {
    let tables = aws
        .ec2
        .describe_route_tables()
        .filters(stack_filter(STACK))
        .send()
        .await
        .unwrap();
    tables
        .route_tables()
        .iter()
        .filter(|t| {
            t.tags().iter().any(|tag| {
                tag.key() == Some("techctl:id")
                    && tag
                        .value()
                        .is_some_and(|v| v.starts_with("network/route-table/private"))
            })
        })
        .map(|t| {
            let nat = t
                .routes()
                .iter()
                .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
                .and_then(|r| r.nat_gateway_id())
                .expect("a private table routes to the NAT gateway");
            (t.route_table_id().unwrap().to_string(), nat.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_after_up_and_names_each_defect_put_back_by_hand() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let aws = h.direct().await;
    let secret = secret_json(&aws, STACK).await.expect("stack outputs");
    let services_sg = output(&secret, "services_security_group_id");
    let alb_sg = output(&secret, "alb_security_group_id");
    let database_sg = output(&secret, "database_security_group_id");

    // Right after `up`, before any deploy: every flow passes, the services
    // read from the outputs.
    let report = verify(&aws).await;
    assert!(report.ok(), "{:#?}", failing(&report));
    let names: Vec<&str> = report.services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["order", "payment", "product", "production", "user"]);
    assert!(
        report
            .services
            .iter()
            .all(|(_, source)| *source == ServiceSource::StackOutputs)
    );
    let order_call = report
        .flows
        .iter()
        .find(|f| f.flow.starts_with("order → ALB :80 → product"))
        .expect("the order → product flow");
    assert!(
        order_call
            .allowed_by
            .contains(&"services egress tcp 80 → alb".to_string()),
        "{order_call:#?}"
    );

    // The binary: exit 0 and one JSON document that says so.
    let url = h.proxy.url.clone();
    let out = techctl_async(&url, &["verify", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", said(&out));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(doc["ok"], true);
    assert!(doc["flows"].as_array().unwrap().len() > 20);

    // 1. The services' egress to the ALB removed: the order service can no
    //    longer call the product service.
    aws.ec2
        .revoke_security_group_egress()
        .group_id(&services_sg)
        .ip_permissions(tcp_to_group(80, &alb_sg))
        .send()
        .await
        .unwrap();
    let report = verify(&aws).await;
    assert_fails_naming(
        &report,
        &["order → ALB :80 → product"],
        "services egress tcp 80 → alb",
    );
    // Every service's read of the revocation list is cut off too.
    for service in ["order", "payment", "product", "production"] {
        assert_fails_naming(
            &report,
            &[&format!("{service} → ALB :80 → user (/auth/revocations)")],
            "services egress tcp 80 → alb",
        );
    }
    assert_eq!(failing(&report).len(), 5, "{:#?}", failing(&report));
    let out = techctl_async(&url, &["verify"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("order → ALB :80 → product")
                && l.ends_with("| blocked: services egress tcp 80 → alb")),
        "{text}"
    );
    aws.ec2
        .authorize_security_group_egress()
        .group_id(&services_sg)
        .ip_permissions(tcp_to_group(80, &alb_sg))
        .send()
        .await
        .unwrap();

    // 2. The database's rule widened to the whole internet.
    aws.ec2
        .authorize_security_group_ingress()
        .group_id(&database_sg)
        .ip_permissions(tcp_from_anywhere(5432))
        .send()
        .await
        .unwrap();
    let report = verify(&aws).await;
    assert_fails_naming(
        &report,
        &["internet → anything in the stack"],
        "database ingress tcp 5432 ← 0.0.0.0/0",
    );
    assert_fails_naming(
        &report,
        &["anything but the services → database"],
        "database ingress tcp 5432 ← 0.0.0.0/0",
    );
    aws.ec2
        .revoke_security_group_ingress()
        .group_id(&database_sg)
        .ip_permissions(tcp_from_anywhere(5432))
        .send()
        .await
        .unwrap();

    // 3. The private subnets' route to the NAT gateway removed: no image
    //    pull, no logs, no secret, no messaging, no Mercado Pago.
    let routes = private_routes(&aws).await;
    assert!(!routes.is_empty());
    for (table, _) in &routes {
        aws.ec2
            .delete_route()
            .route_table_id(table)
            .destination_cidr_block("0.0.0.0/0")
            .send()
            .await
            .unwrap();
    }
    let report = verify(&aws).await;
    for words in [
        &["order task → ECR"][..],
        &["user task → CloudWatch Logs"],
        &["payment → the internet"],
        &["production → its SQS queue"],
    ] {
        assert_fails_naming(&report, words, "has no 0.0.0.0/0 route");
    }
    for (table, nat) in &routes {
        aws.ec2
            .create_route()
            .route_table_id(table)
            .destination_cidr_block("0.0.0.0/0")
            .nat_gateway_id(nat)
            .send()
            .await
            .unwrap();
    }

    // 4. A task role given every SQS action on every queue.
    let order_role = "techchallenge-order-task";
    aws.iam
        .put_role_policy()
        .role_name(order_role)
        .policy_name("extra")
        .policy_document(
            serde_json::json!({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let report = verify(&aws).await;
    assert_fails_naming(
        &report,
        &["IAM statements with wildcard"],
        "role techchallenge-order-task policy inline extra statement 1: Action sqs:*, Resource *",
    );
    assert_fails_naming(
        &report,
        &["another service's topic or queues"],
        "role techchallenge-order-task may sqs:SendMessage",
    );
    assert_fails_naming(
        &report,
        &["another service's topic or queues"],
        "techchallenge-payment of the payment service",
    );
    // `up` does not own that policy, so it cannot put the role back; it
    // ends with verify, and verify's failure is up's.
    let out = techctl_async(&url, &["--yes", "up", "--no-deploy"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", said(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("IAM statements with wildcard") && l.contains("| open:")),
        "{}",
        said(&out)
    );
    assert!(said(&out).contains("is yours to change"), "{}", said(&out));
    aws.iam
        .delete_role_policy()
        .role_name(order_role)
        .policy_name("extra")
        .send()
        .await
        .unwrap();

    // Each defect undone, the stack passes again.
    let report = verify(&aws).await;
    assert!(report.ok(), "{:#?}", failing(&report));
}

/// A service registered with ECS by hand, as `techctl deploy` would: verify
/// reads it from its ECS service and task definition, not from the outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_a_deployed_service_from_ecs() {
    use aws_sdk_ecs::types::{
        AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, KeyValuePair,
        LaunchType, LoadBalancer, LogConfiguration, LogDriver, NetworkConfiguration, NetworkMode,
        PortMapping,
    };

    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let aws = h.direct().await;
    let secret = secret_json(&aws, STACK).await.expect("stack outputs");
    let out = |key: &str| output(&secret, key);

    let container = ContainerDefinition::builder()
        .name("order")
        .image(format!(
            "{}@sha256:{}",
            out("order_repository_uri"),
            "0".repeat(64)
        ))
        .essential(true)
        .port_mappings(PortMapping::builder().container_port(4003).build())
        .environment(
            KeyValuePair::builder()
                .name("EVENTS_TOPIC_ARN")
                .value(out("order_topic_arn"))
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("EVENTS_QUEUE_URL")
                .value(out("order_queue_url"))
                .build(),
        )
        .environment(
            KeyValuePair::builder()
                .name("EVENTS_DLQ_URL")
                .value(out("order_dead_letter_queue_url"))
                .build(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", out("order_log_group"))
                .options("awslogs-region", REGION)
                .build()
                .unwrap(),
        )
        .build();
    let definition = aws
        .ecs
        .register_task_definition()
        .family("techchallenge-order")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .execution_role_arn(out("task_execution_role_arn"))
        .task_role_arn(out("order_task_role_arn"))
        .container_definitions(container)
        .send()
        .await
        .unwrap();
    let definition = definition
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .unwrap()
        .to_string();
    let subnets: Vec<String> = secret["private_subnet_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let network = |group: &str| {
        NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(subnets.clone()))
                    .security_groups(group)
                    .assign_public_ip(AssignPublicIp::Disabled)
                    .build()
                    .unwrap(),
            )
            .build()
    };
    aws.ecs
        .create_service()
        .cluster(out("cluster_name"))
        .service_name("order")
        .task_definition(&definition)
        .desired_count(1)
        .launch_type(LaunchType::Fargate)
        .network_configuration(network(&out("services_security_group_id")))
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(out("order_target_group_arn"))
                .container_name("order")
                .container_port(4003)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let report = verify(&aws).await;
    assert!(report.ok(), "{:#?}", failing(&report));
    for (name, source) in &report.services {
        let want = if name == "order" {
            ServiceSource::EcsService
        } else {
            ServiceSource::StackOutputs
        };
        assert_eq!(*source, want, "{name}");
    }

    // The running service moved into a group of its own, made by hand with
    // EC2's default egress: the database and the ALB no longer let it in,
    // and it may go anywhere on the internet.
    let stray = aws
        .ec2
        .create_security_group()
        .group_name("techchallenge-stray")
        .description("made by hand")
        .vpc_id(out("vpc_id"))
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    aws.ecs
        .update_service()
        .cluster(out("cluster_name"))
        .service("order")
        .network_configuration(network(&stray))
        .send()
        .await
        .unwrap();
    let report = verify(&aws).await;
    assert_fails_naming(
        &report,
        &["order → database"],
        "database ingress tcp 5432 ← techchallenge-stray",
    );
    assert_fails_naming(
        &report,
        &["client", "order :4003"],
        "techchallenge-stray ingress tcp 4003 ← alb",
    );
    assert_fails_naming(
        &report,
        &["anything but HTTPS from the services"],
        "techchallenge-stray egress all traffic → 0.0.0.0/0",
    );
    // The services still read from the outputs are unaffected.
    assert!(
        report
            .flows
            .iter()
            .filter(|f| f.flow.starts_with("payment"))
            .all(Flow::ok),
        "{:#?}",
        failing(&report)
    );
}

/// After `up`, each role's policies evaluated as AWS would (verify's
/// evaluator, on what IAM in moto holds): who may read which secret,
/// action by action and secret by secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_reads_only_the_secrets_it_needs() {
    use aws::verify::iam::{Decision, decide};
    let h = Harness::start().await;
    assert_done(&h.up(&blueprint_with(&[])).await.0);
    let aws = h.direct().await;
    let snapshot = aws::verify::read::snapshot(&aws, STACK).await.unwrap();
    let outputs = secret_json(&aws, STACK).await.unwrap();
    let arn = |key: &str| output(&outputs, key);
    let role = |name: &str| {
        snapshot
            .roles
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no role {name}: {:?}", snapshot.roles))
    };
    let stack_secret = snapshot.secret_arn.clone().unwrap();
    let signing = arn("signing_keys_secret_arn");
    let public = arn("public_keys_secret_arn");
    let services = ["user", "product", "order", "payment", "production"];
    let own = |service: &str| arn(&format!("{service}_secret_arn"));

    // Every secret of the stack, and whether each role may read it.
    let mut secrets = vec![
        ("the stack secret (master password)", stack_secret.clone()),
        ("the signing keys", signing.clone()),
        ("the public keys", public.clone()),
    ];
    for service in services {
        secrets.push((
            Box::leak(format!("the {service} secret").into_boxed_str()),
            own(service),
        ));
    }
    let may = |role_name: &str, secret: &str| {
        let decision = decide(role(role_name), "secretsmanager:GetSecretValue", secret);
        matches!(decision, Decision::Allowed(_))
    };
    for service in services {
        let task_role = format!("{STACK}-{service}-task");
        for (label, secret) in &secrets {
            let expected = match &label[..] {
                "the public keys" => service != "user",
                "the signing keys" => service == "user",
                _ => false,
            };
            assert_eq!(
                may(&task_role, secret),
                expected,
                "{task_role} reading {label}"
            );
            // Nothing else either: no write, no listing of versions.
            for action in [
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecret",
                "secretsmanager:DeleteSecret",
                "secretsmanager:DescribeSecret",
            ] {
                assert!(
                    !matches!(
                        decide(role(&task_role), action, secret),
                        Decision::Allowed(_)
                    ),
                    "{task_role} may {action} on {label}"
                );
            }
        }
    }
    // The services' execution role hands each task its own secret and
    // never the master password or the keys.
    let execution = format!("{STACK}-task-execution");
    for (label, secret) in &secrets {
        let expected = label.ends_with(" secret") && !label.starts_with("the stack");
        assert_eq!(
            may(&execution, secret),
            expected,
            "{execution} reading {label}"
        );
    }
    // The set-up task's role alone reads the master password (and the
    // services' secrets, for their roles' passwords).
    let db_init = format!("{STACK}-db-init-execution");
    for (label, secret) in &secrets {
        let expected = !label.contains("keys");
        assert_eq!(may(&db_init, secret), expected, "{db_init} reading {label}");
    }
    let readers: Vec<&str> = snapshot
        .roles
        .iter()
        .filter(|r| {
            matches!(
                decide(r, "secretsmanager:GetSecretValue", &stack_secret),
                Decision::Allowed(_)
            )
        })
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(readers, [db_init.as_str()]);
    // And verify holds it as a flow of its own.
    let report = aws::verify::evaluate(&snapshot);
    let guarded = report
        .flows
        .iter()
        .find(|f| f.flow == "a role → a secret it does not need")
        .expect("the secrets flow");
    assert!(guarded.ok(), "{guarded:#?}");
}
