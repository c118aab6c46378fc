//! `up` against a real moto server: what it creates, that it converges, and
//! that it repairs drift. Every assertion reads AWS back through the SDK.

use std::collections::BTreeMap;

use crate::common::*;
use aws_sdk_ec2::types::{Filter, VpcAttributeName};
use engine::plan::{Action, Kind};
use testkit::Strictness;

fn expected_counts(nat_gateways: usize, route_tables: usize) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("vpc", 1),
        ("subnet", 4),
        ("internet-gateway", 1),
        ("elastic-ip", nat_gateways),
        ("nat-gateway", nat_gateways),
        ("route-table", route_tables),
        ("security-group", 4),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_from_nothing_creates_the_network_and_the_stack_secret() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    let (report, _) = h.up(&bp).await;
    assert_done(&report);

    let aws = h.direct().await;
    let ec2 = &aws.ec2;
    assert_eq!(
        count_tagged(&aws, "techchallenge").await,
        expected_counts(1, 3)
    );

    // Every resource carries the stack, logical id and Name tags.
    let vpcs = ec2
        .describe_vpcs()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    let vpc = &vpcs.vpcs()[0];
    let vpc_id = vpc.vpc_id().unwrap();
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    let tags: BTreeMap<_, _> = vpc
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags["techctl:stack"], "techchallenge");
    assert_eq!(tags["techctl:id"], "network/vpc");
    assert_eq!(tags["Name"], "techchallenge/network/vpc");
    for attribute in [
        VpcAttributeName::EnableDnsSupport,
        VpcAttributeName::EnableDnsHostnames,
    ] {
        let out = ec2
            .describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(attribute.clone())
            .send()
            .await
            .unwrap();
        let on = out
            .enable_dns_support()
            .or(out.enable_dns_hostnames())
            .and_then(|v| v.value());
        assert_eq!(on, Some(true), "{attribute:?} is off");
    }

    // Subnets: one public and one private per zone, with the blueprint's CIDRs.
    let subnets = ec2
        .describe_subnets()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    let mut layout: Vec<(String, String, String)> = subnets
        .subnets()
        .iter()
        .map(|s| {
            let id = s
                .tags()
                .iter()
                .find(|t| t.key() == Some("techctl:id"))
                .and_then(|t| t.value())
                .unwrap();
            (
                id.to_string(),
                s.cidr_block().unwrap().to_string(),
                s.availability_zone().unwrap().to_string(),
            )
        })
        .collect();
    layout.sort();
    assert_eq!(
        layout,
        vec![
            (
                "network/subnet/private-a".into(),
                "10.0.10.0/24".into(),
                "us-east-1a".into()
            ),
            (
                "network/subnet/private-b".into(),
                "10.0.11.0/24".into(),
                "us-east-1b".into()
            ),
            (
                "network/subnet/public-a".into(),
                "10.0.0.0/24".into(),
                "us-east-1a".into()
            ),
            (
                "network/subnet/public-b".into(),
                "10.0.1.0/24".into(),
                "us-east-1b".into()
            ),
        ]
    );
    let subnet_id = |name: &str| {
        subnets
            .subnets()
            .iter()
            .find(|s| s.tags().iter().any(|t| t.value() == Some(name)))
            .and_then(|s| s.subnet_id())
            .unwrap()
            .to_string()
    };

    // The internet gateway is attached; the NAT gateway sits in the first
    // public subnet with the stack's Elastic IP.
    let igws = ec2
        .describe_internet_gateways()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    let igw = &igws.internet_gateways()[0];
    assert_eq!(igw.attachments()[0].vpc_id(), Some(vpc_id));
    let nats = ec2
        .describe_nat_gateways()
        .filter(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    let nat = &nats.nat_gateways()[0];
    assert_eq!(
        nat.subnet_id(),
        Some(subnet_id("network/subnet/public-a").as_str())
    );
    let eips = ec2
        .describe_addresses()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        nat.nat_gateway_addresses()[0].allocation_id(),
        eips.addresses()[0].allocation_id()
    );

    // Routes: public subnets go out through the internet gateway, private
    // ones through the NAT gateway, each subnet associated with its table.
    let tables = ec2
        .describe_route_tables()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    for table in tables.route_tables() {
        let default_route = table
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .unwrap();
        let associated: Vec<&str> = table
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id())
            .collect();
        let name = table
            .tags()
            .iter()
            .find(|t| t.key() == Some("techctl:id"))
            .and_then(|t| t.value())
            .unwrap();
        match name {
            "network/route-table/public" => {
                assert_eq!(default_route.gateway_id(), igw.internet_gateway_id());
                let mut want = vec![
                    subnet_id("network/subnet/public-a"),
                    subnet_id("network/subnet/public-b"),
                ];
                want.sort();
                let mut got: Vec<String> = associated.iter().map(|s| s.to_string()).collect();
                got.sort();
                assert_eq!(got, want);
            }
            "network/route-table/private-a" | "network/route-table/private-b" => {
                assert_eq!(default_route.nat_gateway_id(), nat.nat_gateway_id());
                let zone = &name[name.len() - 1..];
                assert_eq!(
                    associated,
                    vec![subnet_id(&format!("network/subnet/private-{zone}")).as_str()]
                );
            }
            other => panic!("unexpected route table {other}"),
        }
    }

    // The stack secret holds the outputs and the master password, and no
    // key: what the services read is in secrets of its own.
    let secret = secret_json(&aws, "techchallenge")
        .await
        .expect("stack secret");
    assert_eq!(secret["vpc_id"], vpc_id);
    assert_eq!(secret["region"], "us-east-1");
    assert_eq!(secret["private_subnet_ids"].as_array().unwrap().len(), 2);
    assert_eq!(secret["nat_gateway_ids"][0], nat.nat_gateway_id().unwrap());
    assert_eq!(secret["db_password"].as_str().unwrap().len(), 40);
    assert!(
        secret
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("jwt_")),
        "{secret}"
    );
    // The signing keys: a key published under its thumbprint.
    let ring = signing_keys_json(&aws, "techchallenge")
        .await
        .expect("the signing keys secret");
    let jwk = &ring["jwt_jwks"]["keys"][0];
    assert_eq!(jwk["kid"], ring["jwt_kid"]);
    assert_eq!(
        keys::thumbprint(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()),
        ring["jwt_kid"].as_str().unwrap()
    );
    assert!(
        ring["jwt_private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        ring["jwt_public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    // The public set: the same keys, public halves only.
    let public = named_secret_json(&aws, "techctl/techchallenge/public-keys")
        .await
        .expect("the public keys secret");
    assert_eq!(public["jwt_jwks"], ring["jwt_jwks"]);
    assert_eq!(public.as_object().unwrap().len(), 1, "{public}");
    assert!(public["jwt_jwks"]["keys"][0].get("d").is_none());
    // Each service's secret: its own database password, a different one.
    let mut passwords = std::collections::BTreeSet::new();
    for service in ["user", "product", "order", "payment", "production"] {
        let own = named_secret_json(&aws, &format!("techctl/techchallenge/service/{service}"))
            .await
            .unwrap_or_else(|| panic!("no secret for {service}"));
        passwords.insert(own["db_password"].as_str().unwrap().to_string());
    }
    passwords.insert(secret["db_password"].as_str().unwrap().to_string());
    assert_eq!(passwords.len(), 6, "every role has its own password");
    let described = aws
        .secrets
        .describe_secret()
        .secret_id("techctl/techchallenge")
        .send()
        .await
        .unwrap();
    assert!(
        described
            .tags()
            .iter()
            .any(|t| t.key() == Some("techctl:stack") && t.value() == Some("techchallenge"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_are_least_privilege() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let aws = h.direct().await;
    let groups = aws
        .ec2
        .describe_security_groups()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    let id_of = |role: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| g.group_name() == Some(&format!("techchallenge-{role}")))
            .and_then(|g| g.group_id())
            .unwrap()
            .to_string()
    };
    let (vpc_link, alb, services, database) = (
        id_of("vpc-link"),
        id_of("alb"),
        id_of("services"),
        id_of("database"),
    );
    // (direction, protocol, from, to, peer) per group.
    let rules = |group: &str| -> Vec<(&'static str, String, i32, i32, String)> {
        let g = groups
            .security_groups()
            .iter()
            .find(|g| g.group_id() == Some(group))
            .unwrap();
        let mut out = Vec::new();
        for (direction, perms) in [
            ("in", g.ip_permissions()),
            ("out", g.ip_permissions_egress()),
        ] {
            for p in perms {
                let peers = p
                    .user_id_group_pairs()
                    .iter()
                    .filter_map(|x| x.group_id().map(str::to_string))
                    .chain(
                        p.ip_ranges()
                            .iter()
                            .filter_map(|r| r.cidr_ip().map(str::to_string)),
                    );
                for peer in peers {
                    out.push((
                        direction,
                        p.ip_protocol().unwrap().to_string(),
                        p.from_port().unwrap_or(-1),
                        p.to_port().unwrap_or(-1),
                        peer,
                    ));
                }
            }
        }
        out.sort();
        out
    };
    let tcp = |d: &'static str, port: i32, peer: &str| {
        (d, "tcp".to_string(), port, port, peer.to_string())
    };

    assert_eq!(rules(&vpc_link), vec![tcp("out", 80, &alb)]);
    // The order service reaches the product service through the listener:
    // both sides of that pair are open, and nothing wider.
    let mut want_alb = vec![tcp("in", 80, &vpc_link), tcp("in", 80, &services)];
    want_alb.extend((4001..=4005).map(|p| tcp("out", p, &services)));
    want_alb.sort();
    assert_eq!(rules(&alb), want_alb);
    let mut want_services: Vec<_> = (4001..=4005).map(|p| tcp("in", p, &alb)).collect();
    want_services.extend([
        tcp("out", 443, "0.0.0.0/0"),
        tcp("out", 5432, &database),
        tcp("out", 80, &alb),
    ]);
    want_services.sort();
    assert_eq!(rules(&services), want_services);
    assert_eq!(rules(&database), vec![tcp("in", 5432, &services)]);

    // Nothing in the stack accepts traffic from the whole internet.
    for g in groups.security_groups() {
        for p in g.ip_permissions() {
            assert!(
                p.ip_ranges()
                    .iter()
                    .all(|r| r.cidr_ip() != Some("0.0.0.0/0")),
                "{:?} is open to the world",
                g.group_name()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_up_makes_no_mutating_call_and_keeps_the_keys() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let direct = h.direct().await;
    let kid = signing_keys_json(&direct, "techchallenge").await.unwrap()["jwt_kid"].clone();

    let plan = h.plan(&bp).await;
    assert!(
        !plan.has_changes(),
        "plan after up: {:#?}",
        plan.changes
            .iter()
            .filter(|c| c.action != Action::NoOp)
            .collect::<Vec<_>>()
    );

    let ops_before = h.proxy.operations().len();
    let (report, aws) = h.up(&bp).await;
    assert_done(&report);
    assert_eq!(aws.calls.mutating(), 0, "calls: {:?}", aws.calls.snapshot());
    let ops: Vec<String> = h.proxy.operations()[ops_before..].to_vec();
    assert!(
        ops.iter().all(|op| ["Describe", "Get", "List", "BatchGet"]
            .iter()
            .any(|read| op.starts_with(read))),
        "the proxy saw {ops:?}"
    );
    assert_eq!(
        signing_keys_json(&direct, "techchallenge").await.unwrap()["jwt_kid"],
        kid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_made_by_hand_is_planned_and_repaired() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let aws = h.direct().await;
    let ec2 = &aws.ec2;

    // By hand: delete a NAT gateway's default route in one private table,
    // revoke the database rule, and delete a whole subnet (a public one:
    // AWS refuses to delete a private subnet while the load balancer, the
    // VPC link and the database hold interfaces in it).
    let tables = ec2
        .describe_route_tables()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    let private_a = tables
        .route_tables()
        .iter()
        .find(|t| {
            t.tags()
                .iter()
                .any(|x| x.value() == Some("network/route-table/private-a"))
        })
        .unwrap();
    ec2.delete_route()
        .route_table_id(private_a.route_table_id().unwrap())
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let groups = ec2
        .describe_security_groups()
        .filters(
            Filter::builder()
                .name("tag:techctl:id")
                .values("network/security-group/database")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let db = &groups.security_groups()[0];
    ec2.revoke_security_group_ingress()
        .group_id(db.group_id().unwrap())
        .set_ip_permissions(Some(db.ip_permissions().to_vec()))
        .send()
        .await
        .unwrap();
    let subnets = ec2
        .describe_subnets()
        .filters(
            Filter::builder()
                .name("tag:techctl:id")
                .values("network/subnet/public-b")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let old_subnet = subnets.subnets()[0].subnet_id().unwrap().to_string();
    // AWS wants the association gone before the subnet; so do we.
    let assoc = tables
        .route_tables()
        .iter()
        .flat_map(|t| t.associations())
        .find(|a| a.subnet_id() == Some(old_subnet.as_str()))
        .and_then(|a| a.route_table_association_id())
        .unwrap();
    ec2.disassociate_route_table()
        .association_id(assoc)
        .send()
        .await
        .unwrap();
    ec2.delete_subnet()
        .subnet_id(&old_subnet)
        .send()
        .await
        .unwrap();

    let plan = h.plan(&bp).await;
    let action = |id: &str| {
        plan.changes
            .iter()
            .find(|c| c.id.as_str() == id)
            .map(|c| c.action)
    };
    assert_eq!(
        action("network/route-table/private-a"),
        Some(Action::Update)
    );
    assert_eq!(
        action("network/security-group-rules/database"),
        Some(Action::Update)
    );
    assert_eq!(action("network/subnet/public-b"), Some(Action::Create));
    assert_eq!(
        action("network/route-table-association/public-b"),
        Some(Action::Create)
    );
    // The secret still names the deleted subnet, so its outputs change.
    assert_eq!(action("secret/outputs"), Some(Action::Update));
    let routes = plan
        .changes
        .iter()
        .find(|c| c.id.as_str() == "network/route-table/private-a")
        .unwrap();
    assert_eq!(routes.fields[0].field, "routes");

    assert_done(&h.up(&bp).await.0);
    let after = h.plan(&bp).await;
    assert!(
        !after.has_changes(),
        "{}",
        techctl::render::text(&after, false)
    );
    assert_eq!(
        count_tagged(&aws, "techchallenge").await,
        expected_counts(1, 3)
    );
    let secret = secret_json(&aws, "techchallenge").await.unwrap();
    assert!(
        !secret["public_subnet_ids"]
            .to_string()
            .contains(&old_subnet)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blueprint_changes_show_as_update_replace_and_delete() {
    let h = Harness::start().await;
    assert_done(&h.up(&blueprint_with(&[])).await.0);
    let aws = h.direct().await;

    // per-az: a second NAT gateway and its address; private-b's route moves to it.
    let per_az = blueprint_with(&[("nat = \"single\"", "nat = \"per-az\"")]);
    let plan = h.plan(&per_az).await;
    let action = |plan: &engine::plan::Plan, id: &str| {
        plan.changes
            .iter()
            .find(|c| c.id.as_str() == id)
            .map(|c| c.action)
    };
    assert_eq!(action(&plan, "network/nat-gateway/b"), Some(Action::Create));
    assert_eq!(action(&plan, "network/nat-ip/b"), Some(Action::Create));
    assert_eq!(
        action(&plan, "network/route-table/private-b"),
        Some(Action::Update)
    );
    assert_eq!(
        action(&plan, "network/route-table/private-a"),
        Some(Action::NoOp)
    );
    assert_done(&h.up(&per_az).await.0);
    assert_eq!(
        count_tagged(&aws, "techchallenge").await,
        expected_counts(2, 3)
    );

    // A subnet's CIDR cannot change in place: the subnet and its
    // association are replaced; nothing else is. (A public one: AWS refuses
    // to replace a private subnet that the database and the load balancer
    // still hold.)
    // Back to one NAT gateway (in zone a), so the moved subnet holds none:
    // zone b's gateway and address go.
    let moved = blueprint_with(&[("10.0.1.0/24", "10.0.2.0/24")]);
    let plan = h.plan(&moved).await;
    assert_eq!(action(&plan, "network/nat-gateway/b"), Some(Action::Delete));
    assert_eq!(action(&plan, "network/nat-ip/b"), Some(Action::Delete));
    let subnet = plan
        .changes
        .iter()
        .find(|c| c.id.as_str() == "network/subnet/public-b")
        .unwrap();
    assert_eq!(subnet.action, Action::Replace);
    assert_eq!(subnet.fields[0].field, "cidr");
    assert!(subnet.fields[0].forces_replacement);
    assert_eq!(
        action(&plan, "network/route-table-association/public-b"),
        Some(Action::Replace)
    );
    assert_eq!(action(&plan, "network/vpc"), Some(Action::NoOp));
    assert_done(&h.up(&moved).await.0);
    let subnets = aws
        .ec2
        .describe_subnets()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    assert!(
        subnets
            .subnets()
            .iter()
            .any(|s| s.cidr_block() == Some("10.0.2.0/24"))
    );
    assert!(
        subnets
            .subnets()
            .iter()
            .all(|s| s.cidr_block() != Some("10.0.1.0/24"))
    );

    // Back to a NAT gateway per zone: zone b's comes back, in the public
    // subnet that was just replaced, and private-b's route moves to it.
    // (The blueprint refuses `nat = "none"`: tasks without a way out cannot
    // start. The last gateway goes only with the stack.)
    let per_az_again = blueprint_with(&[
        ("nat = \"single\"", "nat = \"per-az\""),
        ("10.0.1.0/24", "10.0.2.0/24"),
    ]);
    let plan = h.plan(&per_az_again).await;
    assert_eq!(action(&plan, "network/nat-gateway/b"), Some(Action::Create));
    assert_eq!(action(&plan, "network/nat-ip/b"), Some(Action::Create));
    assert_eq!(
        action(&plan, "network/route-table/private-b"),
        Some(Action::Update)
    );
    assert_eq!(action(&plan, "network/nat-gateway/a"), Some(Action::NoOp));
    assert_done(&h.up(&per_az_again).await.0);
    assert_eq!(
        count_tagged(&aws, "techchallenge").await,
        expected_counts(2, 3)
    );
    let new_public_b = subnets
        .subnets()
        .iter()
        .find(|s| s.cidr_block() == Some("10.0.2.0/24"))
        .and_then(|s| s.subnet_id())
        .unwrap();
    let nats = aws
        .ec2
        .describe_nat_gateways()
        .filter(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    assert!(
        nats.nat_gateways()
            .iter()
            .any(|n| n.subnet_id() == Some(new_public_b)),
        "zone b's NAT gateway is in the replaced public subnet"
    );
    assert!(!h.plan(&per_az_again).await.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_restores_a_secret_scheduled_for_deletion_with_its_keys() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let aws = h.direct().await;
    let kid = signing_keys_json(&aws, "techchallenge").await.unwrap()["jwt_kid"].clone();

    assert_done(&h.down(&bp, false).await.0);
    let described = aws
        .secrets
        .describe_secret()
        .secret_id("techctl/techchallenge")
        .send()
        .await
        .unwrap();
    assert!(
        described.deleted_date().is_some(),
        "down schedules the secret's deletion"
    );

    let plan = h.plan(&bp).await;
    let secret = plan
        .changes
        .iter()
        .find(|c| c.kind == Kind::StackSecret)
        .unwrap();
    assert_eq!(secret.action, Action::Update);
    assert!(
        secret
            .fields
            .iter()
            .any(|f| f.field == "scheduled_for_deletion")
    );

    assert_done(&h.up(&bp).await.0);
    let described = aws
        .secrets
        .describe_secret()
        .secret_id("techctl/techchallenge")
        .send()
        .await
        .unwrap();
    assert!(described.deleted_date().is_none(), "up restores the secret");
    let secret = secret_json(&aws, "techchallenge").await.unwrap();
    assert_eq!(
        signing_keys_json(&aws, "techchallenge").await.unwrap()["jwt_kid"],
        kid,
        "the keys survive down and up"
    );
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(stack_filter("techchallenge"))
        .send()
        .await
        .unwrap();
    assert_eq!(secret["vpc_id"], vpcs.vpcs()[0].vpc_id().unwrap());
}

/// HTTP API VPC links are not offered in every zone, and zone names map to
/// physical zones per account: a blueprint naming such a zone is refused
/// before anything is made, with the zones that would work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_without_vpc_links_is_refused_at_plan_naming_the_zones_that_work() {
    let h = Harness::start().await;
    // In moto's account, us-east-1e is the physical zone use1-az3.
    let bp = blueprint_with(&[("\"us-east-1b\"]", "\"us-east-1e\"]")]);
    let error = techctl::stack::plan(&h.aws().await, &bp)
        .await
        .expect_err("a zone without VPC links is refused");
    let message = error.to_string();
    assert!(
        message.contains("us-east-1e is use1-az3 in this account"),
        "{message}"
    );
    assert!(message.contains("us-east-1b (use1-az1)"), "{message}");
    assert!(!message.contains("(use1-az3)"), "{message}");
    let cli = techctl::error::CliError::from(error);
    assert!(matches!(cli, techctl::error::CliError::User(_)), "exit 1");
    assert!(
        h.proxy
            .operations()
            .iter()
            .all(|op| !op.starts_with("Create")),
        "nothing is made"
    );
}

/// The blueprint names a major (or least minor) PostgreSQL version: a new
/// instance gets the newest the region offers, a minor upgrade RDS made by
/// itself is in sync, a newer major is never taken back, and a version the
/// region does not offer is refused at plan naming those it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_version_is_a_floor_that_the_region_must_offer() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let aws = h.direct().await;
    let instance = aws
        .rds
        .describe_db_instances()
        .send()
        .await
        .unwrap()
        .db_instances()[0]
        .clone();
    let created = instance.engine_version().unwrap().to_string();
    let newest_16 = testkit::strict::POSTGRES_VERSIONS
        .iter()
        .rfind(|v| v.starts_with("16."))
        .unwrap();
    assert_eq!(&created, newest_16, "the newest offered 16.x");
    assert!(!h.plan(&bp).await.has_changes());

    // RDS upgraded the minor version, or someone the major one: in sync.
    for upgraded in ["16.99", "17.1"] {
        let from = format!("<EngineVersion>{created}</EngineVersion>");
        let to: &'static str =
            Box::leak(format!("<EngineVersion>{upgraded}</EngineVersion>").into_boxed_str());
        let from: &'static str = Box::leak(from.into_boxed_str());
        h.proxy.set_policy(move |seen| {
            if seen.operation == "DescribeDBInstances" {
                testkit::Fault::Rewrite(from, to)
            } else {
                testkit::Fault::Pass
            }
        });
        let plan = h.plan(&bp).await;
        assert!(
            !plan.has_changes(),
            "{upgraded}: {:?}",
            plan.changes
                .iter()
                .filter(|c| c.action != Action::NoOp)
                .collect::<Vec<_>>()
        );
    }
    h.proxy.set_policy(|_| testkit::Fault::Pass);

    let old = blueprint_with(&[("engine_version = \"16\"", "engine_version = \"11\"")]);
    let message = techctl::stack::plan(&h.aws().await, &old)
        .await
        .expect_err("PostgreSQL 11 is not offered")
        .to_string();
    assert!(
        message.contains("PostgreSQL 11 is not offered"),
        "{message}"
    );
    assert!(message.contains("16"), "names what is offered: {message}");
}

/// ListSecrets is eventually consistent on AWS: right after an `up`, the
/// secrets it made may not be listed yet. A plan then finds each by the ARN
/// the stack secret records, and an `up` makes none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_not_listed_yet_are_found_by_their_recorded_arns_and_never_made_twice() {
    let h = Harness::start_with(Strictness {
        secret_list_lag: std::time::Duration::from_secs(600),
        ..Strictness::new()
    })
    .await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let made = h.proxy.bodies("CreateSecret").len();
    assert_eq!(
        made, 8,
        "the stack secret, two key secrets, one per service"
    );
    // The listing lags, but the stack secret records every other secret's
    // ARN: described by it, none looks missing to a plan.
    let plan = h.plan(&bp).await;
    let changes: Vec<_> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| (c.id.to_string(), c.action))
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    assert_done(&h.up(&bp).await.0);
    assert_eq!(
        h.proxy.bodies("CreateSecret").len(),
        made,
        "none made twice"
    );
    let aws = h.direct().await;
    let listed = aws
        .secrets
        .list_secrets()
        .send()
        .await
        .unwrap()
        .secret_list()
        .len();
    assert_eq!(listed, 8);
}

/// A stack made when the API's route was `ANY /{proxy+}` (which does not
/// take the root, where the kiosk opens) gets `$default` by `UpdateRoute`:
/// a replacement would leave the API without a route for a moment.
#[tokio::test(flavor = "multi_thread")]
async fn the_old_route_key_is_changed_in_place() {
    let h = Harness::start().await;
    let bp = blueprint_with(&[]);
    assert_done(&h.up(&bp).await.0);
    let aws = h.direct().await;
    let api = aws.apigw.get_apis().send().await.unwrap().items()[0]
        .api_id()
        .unwrap()
        .to_string();
    let routes = |api: String| {
        let apigw = aws.apigw.clone();
        async move {
            apigw
                .get_routes()
                .api_id(api)
                .send()
                .await
                .unwrap()
                .items()
                .iter()
                .map(|r| {
                    (
                        r.route_id().unwrap().to_string(),
                        r.route_key().unwrap().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let before = routes(api.clone()).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].1, "$default");
    aws.apigw
        .update_route()
        .api_id(&api)
        .route_id(&before[0].0)
        .route_key("ANY /{proxy+}")
        .send()
        .await
        .unwrap();

    let plan = h.plan(&bp).await;
    let route = plan
        .changes
        .iter()
        .find(|c| c.id.as_str() == "gateway/route")
        .unwrap();
    assert_eq!(route.action, Action::Update);
    assert_eq!(route.fields[0].field, "route_key");
    let made_before = h.proxy.operations().len();
    assert_done(&h.up(&bp).await.0);
    let calls = h.proxy.operations()[made_before..].to_vec();
    assert!(calls.iter().any(|op| op == "UpdateRoute"), "{calls:?}");
    assert!(
        !calls
            .iter()
            .any(|op| op == "DeleteRoute" || op == "CreateRoute"),
        "{calls:?}"
    );
    assert_eq!(
        routes(api).await,
        vec![(before[0].0.clone(), "$default".to_string())]
    );
}
