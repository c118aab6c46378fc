//! `down` against moto: nothing tagged with the stack is left, and deletes
//! follow AWS's real dependency order, which moto does not enforce.

mod common;

use aws_sdk_ec2::types::Filter;
use common::*;

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
    // Rules are revoked before any group is deleted; groups, routes and
    // gateways go before subnets, subnets before the VPC, the secret last.
    assert!(last(&ops, "RevokeSecurityGroupIngress") < position(&ops, "DeleteSecurityGroup"));
    assert!(last(&ops, "DisassociateRouteTable") < position(&ops, "DeleteRouteTable"));
    assert!(last(&ops, "DeleteSecurityGroup") < position(&ops, "DeleteSubnet"));
    assert!(last(&ops, "DeleteRouteTable") < position(&ops, "DeleteSubnet"));
    assert!(last(&ops, "DeleteInternetGateway") < position(&ops, "DeleteSubnet"));
    assert!(last(&ops, "DeleteSubnet") < position(&ops, "DeleteVpc"));
    assert!(position(&ops, "DeleteVpc") < position(&ops, "DeleteSecret"));
    // Detached interfaces are swept from each group before it is deleted.
    assert!(position(&ops, "DescribeNetworkInterfaces") < position(&ops, "DeleteSecurityGroup"));
}
