//! `down` against moto: nothing tagged with the stack is left, and deletes
//! follow AWS's real dependency order, which moto does not enforce.

use crate::common::*;
use aws_sdk_ec2::types::Filter;

fn position(ops: &[String], op: &str) -> usize {
    ops.iter()
        .position(|o| o == op)
        .unwrap_or_else(|| panic!("{op} was never called: {ops:?}"))
}

fn last(ops: &[String], op: &str) -> usize {
    ops.iter()
        .rposition(|o| o == op)
        .unwrap_or_else(|| panic!("{op} was never called: {ops:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_leaves_nothing_tagged_with_the_stack() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[("nat = \"single\"", "nat = \"per-az\"")]);
    assert_done(&h.up(&bp).await.0);
    // Something the blueprint does not list, tagged with the stack by hand:
    // down deletes it too.
    let aws = h.direct().await;
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    let stray = aws
        .ec2
        .create_security_group()
        .group_name("stray")
        .description("made by hand")
        .vpc_id(vpcs.vpcs()[0].vpc_id().unwrap())
        .send()
        .await
        .unwrap();
    aws.ec2
        .create_tags()
        .resources(stray.group_id().unwrap())
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("techctl:stack")
                .value("techchallenge")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let (report, _) = h.down(&bp, false).await;
    assert_done(&report);
    assert_nothing_left(&aws, "techchallenge").await;
    // Nothing of the stack's VPC is left either, tagged or not.
    let in_vpc = aws
        .ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("vpc-id")
                .values(vpcs.vpcs()[0].vpc_id().unwrap())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(in_vpc.subnets().is_empty());
    // The secret is kept for its recovery window, not left behind.
    let secret = aws
        .secrets
        .describe_secret()
        .secret_id("techctl/techchallenge")
        .send()
        .await
        .unwrap();
    assert!(secret.deleted_date().is_some());

    // A second down finds nothing to do and calls nothing that changes AWS.
    let (report, aws_again) = h.down(&bp, false).await;
    assert!(report.results.is_empty(), "{:?}", report.results);
    assert_eq!(aws_again.calls.mutating(), 0);

    // --force-delete-secrets removes the secret at once.
    assert_done(&h.down(&bp, true).await.0);
    let gone = aws
        .secrets
        .describe_secret()
        .secret_id("techctl/techchallenge")
        .send()
        .await;
    assert!(gone.is_err(), "the secret should be gone: {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_deletes_in_aws_dependency_order() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    // A service running in the cluster, as `deploy` leaves one: it must
    // be drained before the cluster goes.
    let direct = h.direct().await;
    let outputs = secret_json(&direct, "techchallenge").await.unwrap();
    run_a_service(&direct, &outputs).await;
    let before = h.proxy.operations().len();
    let (report, aws) = h.down(&bp, true).await;
    assert_done(&report);

    // techctl's own call log and the proxy's recording hold the same calls
    // (parallel requests may reach the proxy in another order).
    let ops: Vec<String> = aws.calls.operations();
    let mut logged = ops.clone();
    let mut recorded = h.proxy.operations()[before..].to_vec();
    logged.sort();
    recorded.sort();
    assert_eq!(logged, recorded);

    // The NAT gateway is deleted, then waited for, before its address goes.
    let nat_deleted = position(&ops, "DeleteNatGateway");
    let released = position(&ops, "ReleaseAddress");
    assert!(nat_deleted < released);
    assert!(
        ops[nat_deleted..released]
            .iter()
            .any(|o| o == "DescribeNatGateways"),
        "no wait between {ops:?}"
    );
    // Addresses are released before the internet gateway is detached.
    assert!(released < position(&ops, "DetachInternetGateway"));
    assert!(position(&ops, "DetachInternetGateway") < position(&ops, "DeleteInternetGateway"));
    // Rules are revoked before any group is deleted; route tables are let
    // go of before subnets and tables go; subnets, tables and gateways go
    // before the VPC, the stack secret last (the secrets the services read
    // go once the roles that name them are gone). (A subnet need not wait
    // for a route table or a gateway it has nothing to do with.)
    assert!(last(&ops, "RevokeSecurityGroupIngress") < position(&ops, "DeleteSecurityGroup"));
    assert!(last(&ops, "DisassociateRouteTable") < position(&ops, "DeleteRouteTable"));
    assert!(last(&ops, "DisassociateRouteTable") < position(&ops, "DeleteSubnet"));
    assert!(last(&ops, "DeleteRouteTable") < position(&ops, "DeleteVpc"));
    assert!(last(&ops, "DeleteInternetGateway") < position(&ops, "DeleteVpc"));
    assert!(last(&ops, "DeleteSubnet") < position(&ops, "DeleteVpc"));
    assert!(position(&ops, "DeleteVpc") < last(&ops, "DeleteSecret"));
    assert!(last(&ops, "DeleteRole") < last(&ops, "DeleteSecret"));
    // Detached interfaces are swept from each group before it is deleted.
    assert!(position(&ops, "DescribeNetworkInterfaces") < position(&ops, "DeleteSecurityGroup"));

    // Gateway: the route before the integration, the integration before
    // the VPC link, and the link waited out before its subnets and group.
    assert!(position(&ops, "DeleteRoute") < position(&ops, "DeleteIntegration"));
    assert!(position(&ops, "DeleteIntegration") < position(&ops, "DeleteVpcLink"));
    let link = position(&ops, "DeleteVpcLink");
    assert!(
        ops[link..].iter().any(|o| o == "GetVpcLink"),
        "no wait for the link"
    );
    // Which group or subnet each delete was for, from the proxy's record.
    let requests = h.proxy.requests()[before..].to_vec();
    let names: Vec<String> = requests.iter().map(|(op, _)| op.clone()).collect();
    let delete_of = |op: &str, id: &str| {
        requests
            .iter()
            .position(|(o, body)| o == op && body.contains(&format!("={id}")))
            .unwrap_or_else(|| panic!("no {op} of {id}"))
    };
    let group = |name: &str| outputs[name].as_str().unwrap().to_string();
    let private: Vec<String> = outputs["private_subnet_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let link_gone = last(&names, "GetVpcLink");
    assert!(link_gone < delete_of("DeleteSecurityGroup", &group("vpc_link_security_group_id")));
    for subnet in &private {
        assert!(link_gone < delete_of("DeleteSubnet", subnet));
    }
    // Load balancer: rules, listener, balancer; its interfaces waited out
    // before any group or subnet goes.
    assert!(last(&ops, "DeleteRule") < position(&ops, "DeleteListener"));
    assert!(position(&ops, "DeleteListener") < position(&ops, "DeleteLoadBalancer"));
    let balancer = position(&names, "DeleteLoadBalancer");
    let interfaces = balancer
        + requests[balancer..]
            .iter()
            .position(|(o, body)| o == "DescribeNetworkInterfaces" && body.contains("description"))
            .expect("a wait for the balancer's interfaces");
    assert!(interfaces < delete_of("DeleteSecurityGroup", &group("alb_security_group_id")));
    for subnet in &private {
        assert!(interfaces < delete_of("DeleteSubnet", subnet));
    }
    // The database, waited out, before its subnet group, group and subnets.
    let database = position(&ops, "DeleteDBInstance");
    assert!(
        ops[database..position(&ops, "DeleteDBSubnetGroup")]
            .iter()
            .any(|o| o == "DescribeDBInstances")
    );
    let database = position(&names, "DeleteDBInstance");
    assert!(database < delete_of("DeleteSecurityGroup", &group("database_security_group_id")));
    for subnet in &private {
        assert!(position(&names, "DeleteDBSubnetGroup") < delete_of("DeleteSubnet", subnet));
    }
    // ECS: the service scaled to zero, deleted and drained before the
    // cluster; target groups, roles and log groups after it.
    assert!(position(&ops, "UpdateService") < position(&ops, "DeleteService"));
    let cluster = position(&ops, "DeleteCluster");
    assert!(
        ops[position(&ops, "DeleteService")..cluster]
            .iter()
            .any(|o| o == "DescribeServices")
    );
    assert!(cluster < position(&ops, "DeleteTargetGroup"));
    assert!(cluster < position(&ops, "DeleteRole"));
    assert!(cluster < position(&ops, "DeleteLogGroup"));
    assert!(cluster < position(&ops, "DeleteSecurityGroup"));
    // Subscriptions before topics and the queues they deliver to (a
    // dead-letter queue has none to wait for).
    assert!(last(&ops, "Unsubscribe") < position(&ops, "DeleteTopic"));
    let subscribed_queue_gone = requests
        .iter()
        .position(|(o, body)| o == "DeleteQueue" && !body.contains("-dlq"))
        .expect("a subscribed queue deleted");
    assert!(last(&names, "Unsubscribe") < subscribed_queue_gone);
    // The stack secret after every other delete (the other secrets go once
    // the roles that name them are gone).
    let secret = last(&ops, "DeleteSecret");
    for op in ops
        .iter()
        .filter(|o| o.starts_with("Delete") && *o != "DeleteSecret")
    {
        assert!(last(&ops, op) < secret, "{op} after the secret");
    }
    assert_nothing_left(&direct, "techchallenge").await;
}

/// Registers a task definition and runs one Fargate service of it in the
/// stack's cluster, behind the user target group.
async fn run_a_service(aws: &aws::Aws, outputs: &serde_json::Value) {
    use aws_sdk_ecs::types::{
        AwsVpcConfiguration, Compatibility, ContainerDefinition, LaunchType, NetworkConfiguration,
        NetworkMode,
    };
    let text = |k: &str| outputs[k].as_str().unwrap().to_string();
    aws.ecs
        .register_task_definition()
        .family("techchallenge-user")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .container_definitions(
            ContainerDefinition::builder()
                .name("user")
                .image("user:1")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let subnets: Vec<String> = outputs["private_subnet_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    aws.ecs
        .create_service()
        .cluster(text("cluster_arn"))
        .service_name("user")
        .task_definition("techchallenge-user")
        .desired_count(1)
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .set_subnets(Some(subnets))
                        .security_groups(text("services_security_group_id"))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// RDS refuses to delete an instance that is busy (here backing up, as it
/// is for a while after its creation): `down` waits for a state RDS takes
/// the delete in and asks again, rather than assume a delete under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_delete_refused_while_backing_up_is_asked_again() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let refusals = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = refusals.clone();
    h.proxy.set_policy(move |seen| {
        use std::sync::atomic::Ordering::SeqCst;
        let busy = counted.load(SeqCst) < 2;
        match seen.operation.as_str() {
            "DeleteDBInstance" if busy => {
                counted.fetch_add(1, SeqCst);
                testkit::Fault::QueryError("InvalidDBInstanceState")
            }
            "DescribeDBInstances" if busy => testkit::Fault::Rewrite(
                "<DBInstanceStatus>available</DBInstanceStatus>",
                "<DBInstanceStatus>backing-up</DBInstanceStatus>",
            ),
            _ => testkit::Fault::Pass,
        }
    });
    let (report, aws) = h.down(&bp, false).await;
    assert_done(&report);
    let ops = aws.calls.operations();
    assert_eq!(
        ops.iter().filter(|o| *o == "DeleteDBInstance").count(),
        3,
        "refused twice, then taken: {ops:?}"
    );
    let left = h
        .direct()
        .await
        .rds
        .describe_db_instances()
        .send()
        .await
        .unwrap();
    assert!(left.db_instances().is_empty(), "the instance is gone");
}

/// SQS holds a deleted queue's name for 60 s and Secrets Manager a
/// force-deleted secret's for a while: an `up` right after a `down` waits
/// both out (saying why) instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_right_after_a_down_waits_for_the_names_aws_still_holds() {
    let strictness = testkit::Strictness {
        queue_name_hold: std::time::Duration::from_secs(8),
        secret_name_hold: std::time::Duration::from_secs(4),
        ..testkit::Strictness::new()
    };
    let h = Harness::start_with(strictness).await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    assert_done(&h.down(&bp, true).await.0);
    assert_done(&h.up(&bp).await.0);
    let refused = h.refused();
    for expected in [
        "CreateQueue AWS.SimpleQueueService.QueueDeletedRecently",
        "CreateSecret InvalidRequestException",
    ] {
        assert!(
            refused.iter().any(|r| r == expected),
            "{expected} was not met: {refused:?}"
        );
    }
    let queues = h.direct().await.sqs.list_queues().send().await.unwrap();
    assert_eq!(queues.queue_urls().len(), 6, "every queue is back");
}
