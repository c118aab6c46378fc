//! The evaluator on hand-built stacks: one that is right, then each kind
//! of rule, route and statement taken away or widened.

use serde_json::{Value, json};

use super::iam::{self, Decision};
use super::network;
use super::*;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/shop-AbCdEf";
const PUBLIC_KEYS: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/shop/public-keys-AbCdEf";
const SIGNING_KEYS: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/shop/signing-keys-AbCdEf";

fn service_secret(name: &str) -> String {
    format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/shop/service/{name}-AbCdEf"
    )
}

fn tcp(port: u16, peer: Peer) -> SgRule {
    SgRule {
        protocol: "tcp".into(),
        from_port: i32::from(port),
        to_port: i32::from(port),
        peer,
    }
}

fn group(id: &str) -> Peer {
    Peer::Group(id.into())
}

fn cidr(c: &str) -> Peer {
    Peer::Cidr(c.into())
}

fn default_route(target: RouteTarget) -> Route {
    Route {
        destination: Destination::Cidr("0.0.0.0/0".into()),
        target,
        active: true,
    }
}

fn sg(id: &str, role: &str, ingress: Vec<SgRule>, egress: Vec<SgRule>) -> SecurityGroup {
    SecurityGroup {
        id: id.into(),
        name: format!("shop-{role}"),
        role: Some(role.into()),
        in_stack: true,
        ingress,
        egress,
    }
}

fn arn(service: &str, resource: &str) -> String {
    format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}")
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/techctl/shop/{name}")
}

fn ecs_trust() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"},
            "Action": "sts:AssumeRole"
        }]
    })
}

fn role(name: &str, statements: Value) -> Role {
    Role {
        name: name.into(),
        arn: role_arn(name),
        path: "/techctl/shop/".into(),
        trust_policy: ecs_trust(),
        policies: vec![Policy {
            name: "inline techctl".into(),
            document: json!({"Version": "2012-10-17", "Statement": statements}),
        }],
        boundary: Some(Policy {
            name: format!("boundary {BOUNDARY}"),
            document: json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}),
        }),
        boundary_arn: Some(BOUNDARY.into()),
    }
}

const BOUNDARY: &str = "arn:aws:iam::123456789012:policy/techctl/shop/shop-boundary";

/// (name, port, publishes and consumes)
const SERVICES: [(&str, u16, bool); 3] = [
    ("product", 4002, false),
    ("order", 4003, true),
    ("payment", 4004, true),
];

fn service(name: &str, port: u16, messaging: bool) -> Service {
    Service {
        name: name.into(),
        source: ServiceSource::StackOutputs,
        port,
        task_role_arn: Some(role_arn(&format!("shop-{name}-task"))),
        execution_role_arn: Some(role_arn("shop-task-execution")),
        security_groups: vec!["sg-svc".into()],
        subnets: vec!["subnet-priv-a".into(), "subnet-priv-b".into()],
        assign_public_ip: false,
        target_group_arn: Some(arn(
            "elasticloadbalancing",
            &format!("targetgroup/shop-{name}/1"),
        )),
        repository_arn: Some(arn("ecr", &format!("repository/shop/{name}"))),
        log_group_arn: Some(arn("logs", &format!("log-group:/techctl/shop/{name}:*"))),
        topic_arn: messaging.then(|| arn("sns", &format!("shop-{name}-events"))),
        queue_arn: messaging.then(|| arn("sqs", &format!("shop-{name}"))),
        dead_letter_queue_arn: messaging.then(|| arn("sqs", &format!("shop-{name}-dlq"))),
        secret_arn: Some(service_secret(name)),
    }
}

/// A stack as `up` makes it, with the order service's call to the product
/// service open.
fn stack() -> Snapshot {
    let services: Vec<Service> = SERVICES
        .iter()
        .map(|(n, p, m)| service(n, *p, *m))
        .collect();
    let mut roles = vec![role(
        "shop-task-execution",
        json!([
            {"Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": ["*"]},
            {"Effect": "Allow",
             "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
             "Resource": services.iter().map(|s| s.repository_arn.clone().unwrap()).collect::<Vec<_>>()},
            {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": services.iter().map(|s| s.log_group_arn.clone().unwrap()).collect::<Vec<_>>()},
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": services.iter().map(|s| s.secret_arn.clone().unwrap()).collect::<Vec<_>>()}
        ]),
    )];
    roles.push(role(
        "shop-db-init-execution",
        json!([{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                "Resource": services.iter().map(|s| s.secret_arn.clone().unwrap())
                    .chain([SECRET.to_string()]).collect::<Vec<_>>()}]),
    ));
    for s in &services {
        let mut statements = vec![json!({
            "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [PUBLIC_KEYS]
        })];
        if let (Some(topic), Some(queue), Some(dlq)) =
            (&s.topic_arn, &s.queue_arn, &s.dead_letter_queue_arn)
        {
            statements
                .push(json!({"Effect": "Allow", "Action": ["sns:Publish"], "Resource": [topic]}));
            statements.push(json!({"Effect": "Allow", "Action": [
                "sqs:ChangeMessageVisibility", "sqs:DeleteMessage",
                "sqs:GetQueueAttributes", "sqs:ReceiveMessage"], "Resource": [queue]}));
            statements
                .push(json!({"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"], "Resource": [dlq]}));
        }
        roles.push(role(
            &format!("shop-{}-task", s.name),
            Value::Array(statements),
        ));
    }
    let target_groups = services
        .iter()
        .map(|s| TargetGroup {
            arn: s.target_group_arn.clone().unwrap(),
            name: format!("shop-{}", s.name),
            port: s.port,
            vpc_id: "vpc-1".into(),
        })
        .collect();
    let mut rules: Vec<ListenerRule> = services
        .iter()
        .enumerate()
        .map(|(i, s)| ListenerRule {
            arn: format!("rule-{}", s.name),
            priority: Some((i as u32 + 1) * 10),
            path_patterns: vec![format!("/{}s", s.name), format!("/{}s/*", s.name)],
            other_conditions: 0,
            forward_to: vec![s.target_group_arn.clone().unwrap()],
        })
        .collect();
    rules.push(ListenerRule {
        arn: "rule-default".into(),
        priority: None,
        ..ListenerRule::default()
    });
    let private = || vec!["subnet-priv-a".to_string(), "subnet-priv-b".to_string()];
    Snapshot {
        stack: "shop".into(),
        region: REGION.into(),
        vpc_id: Some("vpc-1".into()),
        subnets: vec![
            Subnet {
                id: "subnet-pub-a".into(),
                cidr: "10.0.0.0/24".into(),
            },
            Subnet {
                id: "subnet-priv-a".into(),
                cidr: "10.0.10.0/24".into(),
            },
            Subnet {
                id: "subnet-priv-b".into(),
                cidr: "10.0.11.0/24".into(),
            },
        ],
        route_tables: vec![
            RouteTable {
                id: "rtb-main".into(),
                name: "rtb-main".into(),
                main: true,
                subnets: vec![],
                routes: vec![],
            },
            RouteTable {
                id: "rtb-pub".into(),
                name: "public".into(),
                main: false,
                subnets: vec!["subnet-pub-a".into()],
                routes: vec![default_route(RouteTarget::InternetGateway("igw-1".into()))],
            },
            RouteTable {
                id: "rtb-priv".into(),
                name: "private-a".into(),
                main: false,
                subnets: private(),
                routes: vec![default_route(RouteTarget::NatGateway("nat-1".into()))],
            },
        ],
        internet_gateways: vec!["igw-1".into()],
        nat_gateways: vec![NatGateway {
            id: "nat-1".into(),
            subnet: "subnet-pub-a".into(),
            state: "available".into(),
        }],
        vpc_endpoints: vec![],
        security_groups: vec![
            sg(
                "sg-link",
                "vpc-link",
                vec![],
                vec![tcp(80, group("sg-alb"))],
            ),
            sg(
                "sg-alb",
                "alb",
                vec![tcp(80, group("sg-link")), tcp(80, group("sg-svc"))],
                SERVICES
                    .iter()
                    .map(|(_, p, _)| tcp(*p, group("sg-svc")))
                    .collect(),
            ),
            sg(
                "sg-svc",
                "services",
                SERVICES
                    .iter()
                    .map(|(_, p, _)| tcp(*p, group("sg-alb")))
                    .collect(),
                vec![
                    tcp(5432, group("sg-db")),
                    tcp(80, group("sg-alb")),
                    tcp(443, cidr("0.0.0.0/0")),
                ],
            ),
            sg(
                "sg-db",
                "database",
                vec![tcp(5432, group("sg-svc"))],
                vec![],
            ),
        ],
        load_balancer: Some(LoadBalancer {
            arn: "alb-arn".into(),
            name: "shop".into(),
            internal: true,
            security_groups: vec!["sg-alb".into()],
            subnets: private(),
            listeners: vec![Listener {
                arn: "listener-arn".into(),
                port: 80,
                rules,
            }],
        }),
        target_groups,
        api: Some(HttpApi {
            id: "api1".into(),
            routes: vec![ApiRoute {
                id: "r1".into(),
                key: "$default".into(),
                target: Some("integrations/i1".into()),
            }],
            integrations: vec![Integration {
                id: "i1".into(),
                integration_type: "HTTP_PROXY".into(),
                connection_type: "VPC_LINK".into(),
                connection_id: Some("link1".into()),
                uri: Some("listener-arn".into()),
            }],
        }),
        vpc_links: vec![VpcLink {
            id: "link1".into(),
            status: "AVAILABLE".into(),
            security_groups: vec!["sg-link".into()],
            subnets: private(),
        }],
        services,
        database: Some(Database {
            id: "shop".into(),
            port: 5432,
            security_groups: vec!["sg-db".into()],
            subnets: private(),
            publicly_accessible: false,
        }),
        roles,
        secret_arn: Some(SECRET.into()),
        signing_keys_arn: Some(SIGNING_KEYS.into()),
        public_keys_arn: Some(PUBLIC_KEYS.into()),
        db_init_role_arn: Some(role_arn("shop-db-init-execution")),
        deploy_role: None,
        deploy_subject: None,
    }
}

fn group_mut<'a>(s: &'a mut Snapshot, id: &str) -> &'a mut SecurityGroup {
    s.security_groups.iter_mut().find(|g| g.id == id).unwrap()
}

fn role_mut<'a>(s: &'a mut Snapshot, name: &str) -> &'a mut Role {
    s.roles.iter_mut().find(|r| r.name == name).unwrap()
}

/// The one flow whose name contains all of `words`.
fn flow<'a>(report: &'a Report, words: &[&str]) -> &'a Flow {
    let found: Vec<&Flow> = report
        .flows
        .iter()
        .filter(|f| words.iter().all(|w| f.flow.contains(w)))
        .collect();
    assert_eq!(found.len(), 1, "flows named {words:?}: {found:#?}");
    found[0]
}

fn failing(report: &Report) -> Vec<String> {
    report.failures().map(Flow::line).collect()
}

fn assert_problem(flow: &Flow, needle: &str) {
    assert!(
        flow.problems.iter().any(|p| p.contains(needle)),
        "{:?} does not name {needle:?}: {:#?}",
        flow.flow,
        flow.problems
    );
}

#[test]
fn verify_passes_the_stack_as_up_makes_it() {
    let report = evaluate(&stack());
    assert!(report.ok(), "{:#?}", failing(&report));
    // Every needed flow says what lets it through.
    for f in report.flows.iter().filter(|f| f.kind == FlowKind::Needed) {
        assert!(!f.allowed_by.is_empty(), "{} names nothing", f.flow);
    }
    let order = flow(&report, &["order → ALB", "product"]);
    assert!(
        order
            .allowed_by
            .contains(&"services egress tcp 80 → alb".to_string()),
        "{order:#?}"
    );
    assert!(
        order
            .allowed_by
            .contains(&"alb ingress tcp 80 ← services".to_string())
    );
    assert!(
        order
            .allowed_by
            .iter()
            .any(|a| a.contains("rule 10") && a.contains("shop-product")),
        "{order:#?}"
    );
}

#[test]
fn verify_blocks_the_order_call_without_either_side_of_the_pair() {
    let mut s = stack();
    group_mut(&mut s, "sg-svc")
        .egress
        .retain(|r| r.peer != group("sg-alb"));
    let report = evaluate(&s);
    let f = flow(&report, &["order → ALB", "product"]);
    assert_eq!(f.status(), "blocked");
    assert_problem(f, "services egress tcp 80 → alb");
    // Only that flow is affected: the clients still reach every service.
    assert_eq!(failing(&report).len(), 1, "{:#?}", failing(&report));

    let mut s = stack();
    group_mut(&mut s, "sg-alb")
        .ingress
        .retain(|r| r.peer != group("sg-svc"));
    let report = evaluate(&s);
    let f = flow(&report, &["order → ALB", "product"]);
    assert_problem(f, "alb ingress tcp 80 ← services");
    assert!(!f.problems.iter().any(|p| p.contains("egress")), "{f:#?}");
}

#[test]
fn verify_checks_both_sides_from_the_vpc_link_to_each_service() {
    let mut s = stack();
    group_mut(&mut s, "sg-link").egress.clear();
    let report = evaluate(&s);
    for (name, port, _) in SERVICES {
        let f = flow(&report, &["client", &format!("{name} :{port}")]);
        assert_problem(f, "vpc-link egress tcp 80 → alb");
    }

    let mut s = stack();
    group_mut(&mut s, "sg-svc")
        .ingress
        .retain(|r| r.from_port != 4004);
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["client", "payment :4004"]),
        "services ingress tcp 4004 ← alb",
    );
    assert!(flow(&report, &["client", "order :4003"]).ok());
}

#[test]
fn verify_matches_ports_by_protocol_and_range() {
    let rule = |protocol: &str, from, to| SgRule {
        protocol: protocol.into(),
        from_port: from,
        to_port: to,
        peer: cidr("10.0.0.0/16"),
    };
    assert!(network::covers_tcp_port(&rule("tcp", 4000, 4010), 4003));
    assert!(network::covers_tcp_port(&rule("6", 80, 80), 80));
    assert!(network::covers_tcp_port(&rule("-1", -1, -1), 5432));
    assert!(!network::covers_tcp_port(&rule("tcp", 4000, 4002), 4003));
    assert!(!network::covers_tcp_port(&rule("udp", 0, 65535), 53));

    // A range on the database side lets the services in, and is too wide.
    let mut s = stack();
    group_mut(&mut s, "sg-db").ingress = vec![SgRule {
        protocol: "tcp".into(),
        from_port: 5000,
        to_port: 6000,
        peer: group("sg-svc"),
    }];
    let report = evaluate(&s);
    assert!(flow(&report, &["order → database"]).ok());
    let wide = flow(&report, &["anything but the services → database"]);
    assert_eq!(wide.status(), "open");
    assert_problem(wide, "opens more than tcp 5432");
}

#[test]
fn verify_takes_a_cidr_peer_only_when_it_holds_every_subnet() {
    let mut s = stack();
    let svc = group_mut(&mut s, "sg-svc");
    svc.egress.retain(|r| r.from_port != 5432);
    svc.egress.push(tcp(5432, cidr("10.0.0.0/16")));
    let report = evaluate(&s);
    assert!(
        flow(&report, &["order → database"]).ok(),
        "{:#?}",
        failing(&report)
    );

    let svc = group_mut(&mut s, "sg-svc");
    svc.egress.retain(|r| r.from_port != 5432);
    svc.egress.push(tcp(5432, cidr("10.0.10.0/24")));
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["order → database"]),
        "services egress tcp 5432 → database",
    );

    // On the database side, a CIDR lets in more than the services.
    let mut s = stack();
    group_mut(&mut s, "sg-db")
        .ingress
        .push(tcp(5432, cidr("10.0.0.0/16")));
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["anything but the services → database"]),
        "database ingress tcp 5432 ← 10.0.0.0/16 lets in something other than the services",
    );
}

#[test]
fn verify_reports_ingress_from_anywhere() {
    for anywhere in ["0.0.0.0/0", "::/0"] {
        let mut s = stack();
        group_mut(&mut s, "sg-alb")
            .ingress
            .push(tcp(80, cidr(anywhere)));
        let report = evaluate(&s);
        let f = flow(&report, &["internet → anything"]);
        assert_eq!(f.status(), "open");
        assert_problem(f, &format!("alb ingress tcp 80 ← {anywhere}"));
        assert_eq!(failing(&report).len(), 1, "{:#?}", failing(&report));
    }

    let mut s = stack();
    s.load_balancer.as_mut().unwrap().internal = false;
    s.database.as_mut().unwrap().publicly_accessible = true;
    let f = evaluate(&s);
    let f = flow(&f, &["internet → anything"]);
    assert_problem(f, "internet-facing");
    assert_problem(f, "publicly accessible");
}

#[test]
fn verify_allows_internet_egress_only_for_https_from_the_services() {
    let mut s = stack();
    group_mut(&mut s, "sg-alb").egress.push(SgRule {
        protocol: "-1".into(),
        from_port: -1,
        to_port: -1,
        peer: cidr("0.0.0.0/0"),
    });
    group_mut(&mut s, "sg-svc")
        .egress
        .push(tcp(80, cidr("0.0.0.0/0")));
    let report = evaluate(&s);
    let f = flow(&report, &["anything but HTTPS"]);
    assert_problem(f, "alb egress all traffic → 0.0.0.0/0");
    assert_problem(f, "services egress tcp 80 → 0.0.0.0/0");
}

#[test]
fn verify_follows_the_private_route_through_the_nat_to_the_internet_gateway() {
    // The private route to the NAT gateway removed.
    let mut s = stack();
    s.route_tables[2].routes.clear();
    let report = evaluate(&s);
    for words in [
        &["order task → ECR"][..],
        &["order task → CloudWatch Logs"],
        &["order task → Secrets Manager"],
        &["order → its SQS queue"],
        &["payment → the internet"],
    ] {
        assert_problem(
            flow(&report, words),
            "route table private-a (subnet subnet-priv-a) has no 0.0.0.0/0 route",
        );
    }
    assert_problem(
        flow(&report, &["order task → ECR"]),
        "no VPC endpoint com.amazonaws.us-east-1.ecr.api",
    );

    // A NAT gateway whose own subnet has no way out.
    let mut s = stack();
    s.route_tables[1].routes.clear();
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["payment → the internet"]),
        "NAT gateway nat-1 cannot reach the internet",
    );

    // A NAT gateway that is not available.
    let mut s = stack();
    s.nat_gateways[0].state = "pending".into();
    assert_problem(
        flow(&evaluate(&s), &["payment → the internet"]),
        "NAT gateway nat-1 is pending",
    );

    // A subnet without an association falls to the main table.
    let mut s = stack();
    s.route_tables[2].subnets = vec!["subnet-priv-a".into()];
    assert_problem(
        flow(&evaluate(&s), &["payment → the internet"]),
        "route table rtb-main (subnet subnet-priv-b) has no 0.0.0.0/0 route",
    );

    // No HTTPS out.
    let mut s = stack();
    group_mut(&mut s, "sg-svc")
        .egress
        .retain(|r| r.from_port != 443);
    assert_problem(
        flow(&evaluate(&s), &["payment → the internet"]),
        "services egress tcp 443 → 0.0.0.0/0",
    );
}

fn endpoint(id: &str, service: &str, kind: EndpointKind) -> VpcEndpoint {
    VpcEndpoint {
        id: id.into(),
        service_name: format!("com.amazonaws.{REGION}.{service}"),
        kind,
        state: "available".into(),
        private_dns: true,
        subnets: vec!["subnet-priv-a".into(), "subnet-priv-b".into()],
        route_tables: vec![],
        security_groups: vec!["sg-vpce".into()],
    }
}

#[test]
fn verify_takes_vpc_endpoints_instead_of_the_nat_gateway() {
    let mut s = stack();
    s.route_tables[2].routes = vec![Route {
        destination: Destination::PrefixList("pl-s3".into()),
        target: RouteTarget::VpcEndpoint("vpce-s3".into()),
        active: true,
    }];
    for api in ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "sns", "sqs"] {
        s.vpc_endpoints.push(endpoint(
            &format!("vpce-{api}"),
            api,
            EndpointKind::Interface,
        ));
    }
    let mut s3 = endpoint("vpce-s3", "s3", EndpointKind::Gateway);
    s3.route_tables = vec!["rtb-priv".into()];
    s3.security_groups.clear();
    s.vpc_endpoints.push(s3);
    s.security_groups.push(SecurityGroup {
        id: "sg-vpce".into(),
        name: "endpoints".into(),
        role: None,
        in_stack: false,
        ingress: vec![tcp(443, group("sg-svc"))],
        egress: vec![],
    });
    let report = evaluate(&s);
    let pull = flow(&report, &["order task → ECR"]);
    assert!(pull.ok(), "{pull:#?}");
    assert!(
        pull.allowed_by
            .iter()
            .any(|a| a.contains("pl-s3 → vpce-s3")),
        "{pull:#?}"
    );
    assert!(
        pull.allowed_by
            .contains(&"endpoints ingress tcp 443 ← services".to_string())
    );
    // Mercado Pago is on the internet: endpoints do not take it there.
    assert_eq!(
        flow(&report, &["payment → the internet"]).status(),
        "blocked"
    );
    assert_eq!(failing(&report).len(), 1, "{:#?}", failing(&report));

    // The endpoints' group must let the tasks in.
    group_mut(&mut s, "sg-vpce").ingress.clear();
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["order task → CloudWatch Logs"]),
        "endpoints ingress tcp 443 ← services",
    );
}

#[test]
fn verify_matches_iam_actions_and_resources_with_wildcards() {
    assert!(iam::action_matches("sqs:*", "sqs:SendMessage"));
    assert!(iam::action_matches("*", "sns:Publish"));
    assert!(iam::action_matches("SQS:sendmessage", "sqs:SendMessage"));
    assert!(iam::action_matches("s?s:Publish", "sns:Publish"));
    assert!(iam::action_matches(
        "ecr:Get*",
        "ecr:GetDownloadUrlForLayer"
    ));
    assert!(!iam::action_matches("sqs:Get*", "sqs:SendMessage"));
    assert!(!iam::action_matches("sqs:*", "sns:Publish"));

    let queue = arn("sqs", "shop-order");
    assert!(iam::resource_matches("*", &queue));
    assert!(iam::resource_matches(&arn("sqs", "shop-*"), &queue));
    assert!(iam::resource_matches("arn:aws:sqs:*:*:shop-order", &queue));
    assert!(iam::resource_matches(
        "arn:aws:sqs:us-east-?:*:shop-order",
        &queue
    ));
    assert!(!iam::resource_matches(&arn("sqs", "shop-payment"), &queue));
    assert!(!iam::resource_matches(
        &arn("sqs", "shop-order"),
        &format!("{queue}-dlq")
    ));
    // A wildcard that ends a segment runs across colons (log streams of a
    // group); one inside a segment does not.
    let stream = arn(
        "logs",
        "log-group:/techctl/shop/order:log-stream:order/order/t",
    );
    assert!(iam::resource_matches(
        &arn("logs", "log-group:/techctl/shop/order:*"),
        &stream
    ));
    assert!(!iam::resource_matches(
        &arn("logs", "log-group:/techctl/shop/o*t"),
        &stream
    ));
    assert!(!iam::resource_matches(
        &arn("logs", "log-group:/techctl/shop/order"),
        &stream
    ));
}

#[test]
fn verify_evaluates_allow_deny_and_the_not_elements() {
    let queue = arn("sqs", "shop-order");
    let mut r = role(
        "r",
        json!({"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}),
    );
    assert!(iam::decide(&r, "sqs:SendMessage", &queue).is_allowed());
    assert_eq!(iam::decide(&r, "sns:Publish", &queue), Decision::NotAllowed);

    r.policies.push(Policy {
        name: "inline guard".into(),
        document: json!({"Statement": [
            {"Sid": "NoPurge", "Effect": "Deny", "Action": ["sqs:PurgeQueue"], "Resource": [queue.clone()]}
        ]}),
    });
    match iam::decide(&r, "sqs:PurgeQueue", &queue) {
        Decision::Denied(at) => {
            assert_eq!(
                at.to_string(),
                "role r policy inline guard statement 1 (NoPurge)"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(iam::decide(&r, "sqs:ReceiveMessage", &queue).is_allowed());

    let r = role(
        "r",
        json!([
            {"Effect": "Allow", "NotAction": "iam:*", "Resource": queue.clone()},
            {"Effect": "Allow", "Action": "sns:Publish", "NotResource": [arn("sns", "secret-topic")]}
        ]),
    );
    assert!(iam::decide(&r, "sqs:DeleteMessage", &queue).is_allowed());
    assert!(!iam::decide(&r, "iam:PassRole", &queue).is_allowed());
    assert!(iam::decide(&r, "sns:Publish", &arn("sns", "shop-order-events")).is_allowed());
    assert!(!iam::decide(&r, "sns:Publish", &arn("sns", "secret-topic")).is_allowed());

    // A statement IAM would refuse grants nothing.
    let r = role("r", json!({"Action": "sqs:*", "Resource": "*"}));
    assert!(!iam::decide(&r, "sqs:SendMessage", &queue).is_allowed());
}

#[test]
fn verify_requires_each_permission_the_tasks_use() {
    let mut s = stack();
    // The execution role loses the log statement; the order role its queue.
    let exec = role_mut(&mut s, "shop-task-execution");
    let doc = &mut exec.policies[0].document["Statement"];
    doc.as_array_mut().unwrap().remove(2);
    let order = role_mut(&mut s, "shop-order-task");
    order.policies.push(Policy {
        name: "inline guard".into(),
        document: json!({"Statement": {"Effect": "Deny", "Action": "sqs:DeleteMessage", "Resource": "*"}}),
    });
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["product task → CloudWatch Logs"]),
        "execution role shop-task-execution has no statement allowing logs:CreateLogStream on log group /techctl/shop/product",
    );
    assert_problem(
        flow(&report, &["order → its SQS queue"]),
        "role shop-order-task policy inline guard statement 1 denies sqs:DeleteMessage on queue shop-order",
    );
    assert!(flow(&report, &["payment → its SQS queue"]).ok());
}

#[test]
fn verify_reports_wildcard_statements_and_foreign_queues() {
    let mut s = stack();
    role_mut(&mut s, "shop-order-task").policies.push(Policy {
        name: "inline extra".into(),
        document: json!({"Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}),
    });
    let report = evaluate(&s);
    let wide = flow(&report, &["IAM statements with wildcard"]);
    assert_eq!(wide.status(), "open");
    assert_problem(
        wide,
        "role shop-order-task policy inline extra statement 1: Action sqs:*, Resource * for sqs:*",
    );
    let foreign = flow(&report, &["another service's topic or queues"]);
    assert_problem(
        foreign,
        "role shop-order-task may sqs:SendMessage, sqs:ReceiveMessage",
    );
    assert_problem(foreign, "on shop-payment of the payment service");
    assert_problem(foreign, "on shop-payment-dlq of the payment service");
    // Its own queues are its own.
    assert!(
        !foreign
            .problems
            .iter()
            .any(|p| p.contains("on shop-order of")),
        "{foreign:#?}"
    );
}

#[test]
fn verify_allows_any_resource_only_for_actions_that_need_it() {
    let statement = |doc: Value| {
        iam::statements(&json!({"Statement": doc}))[0]
            .clone()
            .unwrap()
    };
    assert!(
        iam::breadth(&statement(json!({
            "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"
        })))
        .is_empty()
    );
    assert_eq!(
        iam::breadth(&statement(json!({
            "Effect": "Allow",
            "Action": ["ecr:GetAuthorizationToken", "ecr:BatchGetImage"],
            "Resource": "*"
        }))),
        vec!["Resource * for ecr:BatchGetImage".to_string()]
    );
    assert_eq!(
        iam::breadth(&statement(json!({
            "Effect": "Allow", "Action": "sns:Publish", "Resource": "arn:aws:sns:*:*:*"
        }))),
        vec!["Resource arn:aws:sns:*:*:* for sns:Publish".to_string()]
    );
    assert_eq!(
        iam::breadth(&statement(json!({
            "Effect": "Allow", "Action": "*", "Resource": arn("sqs", "q")
        }))),
        vec!["Action *".to_string()]
    );
    assert_eq!(
        iam::breadth(&statement(json!({
            "Effect": "Allow", "NotAction": "iam:*", "Resource": arn("sqs", "q")
        }))),
        vec!["NotAction [iam:*] allows every other action".to_string()]
    );
    // A deny may be as wide as it likes.
    assert!(
        iam::breadth(&statement(
            json!({"Effect": "Deny", "Action": "*", "Resource": "*"})
        ))
        .is_empty()
    );
}

#[test]
fn verify_checks_who_may_assume_the_roles() {
    let mut s = stack();
    role_mut(&mut s, "shop-payment-task").trust_policy = json!({"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    ]});
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["anyone but ecs-tasks.amazonaws.com"]),
        "role shop-payment-task can be assumed by more than ECS tasks (trust statement 1: AWS principal *)",
    );
    assert_problem(
        flow(&report, &["payment tasks → their roles"]),
        "task role shop-payment-task does not let ecs-tasks.amazonaws.com assume it",
    );
}

#[test]
fn verify_routes_each_path_by_rule_priority() {
    let mut s = stack();
    let listener = &mut s.load_balancer.as_mut().unwrap().listeners[0];
    listener.rules.push(ListenerRule {
        arn: "rule-early".into(),
        priority: Some(5),
        path_patterns: vec!["/products/*".into()],
        other_conditions: 0,
        forward_to: vec![arn("elasticloadbalancing", "targetgroup/shop-order/1")],
    });
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["order → ALB", "product"]),
        "listener :80 sends /products/lookup by rule 5 to shop-order instead of target group shop-product",
    );
    // `/products` itself still reaches the product service.
    assert!(flow(&report, &["client", "product :4002"]).ok());
}

#[test]
fn verify_follows_the_api_route_to_the_listener() {
    let mut s = stack();
    s.api.as_mut().unwrap().integrations[0].connection_type = "INTERNET".into();
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["client", "order :4003"]),
        "integration i1 is HTTP_PROXY over INTERNET, not HTTP_PROXY over VPC_LINK",
    );

    let mut s = stack();
    s.api.as_mut().unwrap().integrations[0].uri = Some("elsewhere".into());
    assert_problem(
        flow(&evaluate(&s), &["client", "order :4003"]),
        "sends to elsewhere, which is no listener of the ALB shop",
    );

    let mut s = stack();
    s.api.as_mut().unwrap().routes[0].key = "GET /".into();
    assert_problem(
        flow(&evaluate(&s), &["client", "order :4003"]),
        "API api1 has no route $default",
    );
}

#[test]
fn verify_reads_a_deployed_service_by_its_own_groups() {
    let mut s = stack();
    let order = s.services.iter_mut().find(|x| x.name == "order").unwrap();
    order.source = ServiceSource::EcsService;
    order.security_groups = vec!["sg-other".into()];
    s.security_groups.push(SecurityGroup {
        id: "sg-other".into(),
        name: "hand-made".into(),
        ..SecurityGroup::default()
    });
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["order → database"]),
        "hand-made egress tcp 5432 → database",
    );
    assert_problem(
        flow(&report, &["order → database"]),
        "database ingress tcp 5432 ← hand-made",
    );
    assert!(report.to_text().contains("(order), else the stack outputs"));
}

#[test]
fn verify_without_services_fails() {
    let mut s = stack();
    s.services.clear();
    let report = evaluate(&s);
    assert_problem(
        flow(&report, &["the stack's services"]),
        "the stack outputs name no service",
    );
}

#[test]
fn verify_prints_one_line_per_flow_and_one_json_document() {
    let mut s = stack();
    group_mut(&mut s, "sg-svc")
        .egress
        .retain(|r| r.peer != group("sg-alb"));
    let report = evaluate(&s);
    let text = report.to_text();
    let lines: Vec<&str> = text.lines().take(report.flows.len()).collect();
    assert!(lines.iter().all(|l| l.contains(" | allowed by: ")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("order → ALB :80 → product")
                && l.ends_with("| blocked: services egress tcp 80 → alb")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "{} of {} flows pass",
        report.flows.len() - 1,
        report.flows.len()
    )));

    let doc = report.to_json();
    assert_eq!(doc["ok"], false);
    let flows = doc["flows"].as_array().unwrap();
    assert_eq!(flows.len(), report.flows.len());
    let blocked: Vec<&Value> = flows.iter().filter(|f| f["ok"] == false).collect();
    assert_eq!(blocked.len(), 1);
    assert_eq!(blocked[0]["status"], "blocked");
    assert_eq!(blocked[0]["kind"], "needed");
    assert_eq!(doc["services"][0]["source"], "stack-outputs");
}

#[test]
fn verify_refuses_a_task_role_that_reads_a_secret_it_does_not_need() {
    for (secret, label) in [
        (SECRET.to_string(), "the stack secret"),
        (SIGNING_KEYS.to_string(), "the signing keys"),
        (service_secret("payment"), "the payment secret"),
    ] {
        let mut s = stack();
        role_mut(&mut s, "shop-order-task").policies[0]
            .document["Statement"]
            .as_array_mut()
            .unwrap()
            .push(json!({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret}));
        let report = evaluate(&s);
        let f = flow(&report, &["a secret it does not need"]);
        assert_eq!(f.status(), "open", "{label}: {f:#?}");
        assert_problem(f, &format!("role shop-order-task may read {label}"));
        assert_eq!(failing(&report).len(), 1, "{:#?}", failing(&report));
    }
    // The services' execution role handing out the master password is
    // refused too: only the set-up task's role reads it.
    let mut s = stack();
    role_mut(&mut s, "shop-task-execution").policies[0]
        .document["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": SECRET}));
    let report = evaluate(&s);
    let f = flow(&report, &["a secret it does not need"]);
    assert_problem(f, "role shop-task-execution may read the stack secret");
    // Writing the public keys would let a role publish a key of its own.
    let mut s = stack();
    role_mut(&mut s, "shop-product-task").policies[0].document["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Allow", "Action": "secretsmanager:PutSecretValue", "Resource": PUBLIC_KEYS}));
    let report = evaluate(&s);
    let f = flow(&report, &["a secret it does not need"]);
    assert_problem(
        f,
        "role shop-product-task may secretsmanager:PutSecretValue on the public keys",
    );
}

#[test]
fn verify_needs_each_task_to_reach_its_own_secret_and_its_keys() {
    let mut s = stack();
    role_mut(&mut s, "shop-order-task").policies[0].document["Statement"]
        .as_array_mut()
        .unwrap()
        .remove(0);
    let report = evaluate(&s);
    let f = flow(&report, &["order task → Secrets Manager"]);
    assert_problem(f, "GetSecretValue on the public keys");
}

#[test]
fn verify_refuses_a_deploy_role_that_could_make_itself_more() {
    let mut s = stack();
    s.deploy_subject = Some("repo:o/r:environment:staging".into());
    let stack_roles = format!("arn:aws:iam::{ACCOUNT}:role/techctl/shop/*");
    let deploy = |statements: Value| {
        let mut r = role("shop-deploy", statements);
        r.arn = format!("arn:aws:iam::{ACCOUNT}:role/techctl-deploy/shop/shop-deploy");
        r.boundary = None;
        r.boundary_arn = None;
        r
    };
    // Unconditioned: any role, passed to anything.
    s.deploy_role = Some(deploy(json!([
        {"Effect": "Allow", "Action": ["iam:CreateRole", "iam:PutRolePolicy", "iam:PassRole"], "Resource": stack_roles}
    ])));
    let report = evaluate(&s);
    let wide = flow(&report, &["the deploy role"]);
    assert_eq!(wide.status(), "open");
    assert_problem(
        wide,
        "role shop-deploy may make a role without the stack's boundary",
    );
    assert_problem(
        wide,
        "may change the policy of a role without the stack's boundary",
    );
    assert_problem(
        wide,
        "may pass a stack role to a service other than ECS's tasks",
    );

    // Conditioned as the engine writes it: none of those.
    s.deploy_role = Some(deploy(json!([
        {"Effect": "Allow", "Action": ["iam:CreateRole", "iam:PutRolePolicy"], "Resource": stack_roles,
         "Condition": {"StringLike": {"iam:PermissionsBoundary": BOUNDARY}}},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": stack_roles,
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}}
    ])));
    let report = evaluate(&s);
    let bounded = flow(&report, &["the deploy role"]);
    assert!(bounded.ok(), "{bounded:#?}");
}

#[test]
fn verify_requires_every_role_to_hold_the_stack_s_boundary() {
    let mut s = stack();
    assert!(flow(&evaluate(&s), &["the stack's roles → bounded"]).ok());
    let order = role_mut(&mut s, "shop-order-task");
    order.boundary = None;
    order.boundary_arn = None;
    assert_problem(
        flow(&evaluate(&s), &["the stack's roles → bounded"]),
        "role shop-order-task has no permissions boundary",
    );
}
