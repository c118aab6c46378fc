//! Every kind of blueprint mistake, with the message a user reads.

use std::path::Path;

use super::{BlueprintError, parse};

const SHIPPED: &str = include_str!("../../../blueprints/techchallenge.toml");

fn with(from: &str, to: &str) -> String {
    assert!(
        SHIPPED.contains(from),
        "the shipped blueprint lacks {from:?}"
    );
    SHIPPED.replacen(from, to, 1)
}

fn problems(text: &str) -> BlueprintError {
    parse(Path::new("blueprints/bad.toml"), text).expect_err("the blueprint should be refused")
}

/// The rendered error, which names the file, line and column.
fn message(text: &str) -> String {
    problems(text).to_string()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in text")
        + 1
}

#[test]
fn the_shipped_blueprint_is_valid() {
    let bp = parse(Path::new("techchallenge.toml"), SHIPPED).expect("valid");
    assert_eq!(bp.stack_name(), "techchallenge");
    let ports: Vec<u16> = bp.service_ports();
    assert_eq!(ports.len(), 5);
    for (name, port) in [
        ("user", 4001),
        ("product", 4002),
        ("order", 4003),
        ("payment", 4004),
        ("production", 4005),
    ] {
        let (_, svc) = bp.services().find(|(n, _)| *n == name).expect(name);
        assert_eq!(*svc.port.get_ref(), port);
    }
}

#[test]
fn a_bad_cidr_is_named_with_its_line() {
    let text = with("vpc_cidr = \"10.0.0.0/16\"", "vpc_cidr = \"10.0.0/16\"");
    let err = problems(&text);
    let p = &err.problems[0];
    assert_eq!(p.field, "network.vpc_cidr");
    assert_eq!(p.line, line_of(&text, "vpc_cidr"));
    assert!(
        p.message.contains("\"10.0.0/16\" is not a CIDR block"),
        "{}",
        p.message
    );
    let rendered = err.to_string();
    assert!(
        rendered.contains(&format!("blueprints/bad.toml:{}:", p.line)),
        "{rendered}"
    );
    assert!(
        rendered.contains("allowed: an IPv4 network in CIDR notation"),
        "{rendered}"
    );
    assert!(rendered.contains("nothing was sent to AWS"), "{rendered}");
}

#[test]
fn a_subnet_outside_the_vpc_is_refused() {
    let text = with("\"10.0.1.0/24\"", "\"10.1.1.0/24\"");
    let m = message(&text);
    assert!(
        m.contains("network.public_subnets[1]: 10.1.1.0/24 lies outside the VPC 10.0.0.0/16"),
        "{m}"
    );
    assert!(
        m.contains(&format!(":{}:", line_of(&text, "public_subnets"))),
        "{m}"
    );
}

#[test]
fn overlapping_subnets_are_refused() {
    let text = with(
        "private_subnets = [\"10.0.10.0/24\"",
        "private_subnets = [\"10.0.0.0/23\"",
    );
    let m = message(&text);
    assert!(m.contains("network.private_subnets[0]: 10.0.0.0/23 overlaps network.public_subnets[0] (10.0.0.0/24)"), "{m}");
    assert!(m.contains("allowed: subnets that share no address"), "{m}");
}

#[test]
fn fewer_than_two_zones_are_refused() {
    let text = with(
        "availability_zones = [\"us-east-1a\", \"us-east-1b\"]",
        "availability_zones = [\"us-east-1a\"]",
    );
    let m = message(&text);
    assert!(m.contains("network.availability_zones: 1 availability zone is given; the ALB and RDS need subnets in at least 2"), "{m}");
    // And the subnet lists no longer match the zones.
    assert!(
        m.contains("network.public_subnets: 2 subnets for 1 availability zones"),
        "{m}"
    );
}

#[test]
fn a_zone_of_another_region_is_refused() {
    let m = message(&with("\"us-east-1b\"]", "\"eu-west-1b\"]"));
    assert!(
        m.contains("\"eu-west-1b\" is not a zone of region us-east-1"),
        "{m}"
    );
}

#[test]
fn a_duplicate_port_names_both_services() {
    let text = with("port = 4002", "port = 4001");
    let err = problems(&text);
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.field, "services.product.port");
    assert_eq!(
        p.line,
        line_of(SHIPPED, "port = 4002"),
        "reported where the port is repeated"
    );
    assert_eq!(p.message, "port 4001 is also used by service \"user\"");
    assert_eq!(p.allowed.as_deref(), Some("a port no other service uses"));
}

#[test]
fn a_duplicate_path_names_both_services() {
    let m = message(&with("paths = [\"/orders\"]", "paths = [\"/products\"]"));
    assert!(
        m.contains("services.order.paths[0]: path /products is also routed to service \"product\""),
        "{m}"
    );
}

#[test]
fn an_unknown_field_lists_what_is_allowed() {
    let text = with("nat = \"single\"", "nat = \"single\"\nnat_gateways = 2");
    let err = problems(&text);
    let p = &err.problems[0];
    assert_eq!(p.line, line_of(&text, "nat_gateways"));
    assert!(
        p.message.contains("unknown field `nat_gateways`"),
        "{}",
        p.message
    );
    assert!(
        p.allowed.as_deref().unwrap_or("").contains("`vpc_cidr`"),
        "{:?}",
        p.allowed
    );
}

#[test]
fn a_missing_field_is_named() {
    let text = with("engine_version = \"16\"\n", "");
    let p = &problems(&text).problems[0];
    assert!(
        p.message.contains("missing field `engine_version`"),
        "{}",
        p.message
    );
    assert_eq!(p.line, line_of(&text, "[database]"));
}

#[test]
fn a_bad_nat_mode_lists_the_choices() {
    let p = &problems(&with("nat = \"single\"", "nat = \"two\"")).problems[0];
    assert!(p.message.contains("unknown variant `two`"), "{}", p.message);
    assert_eq!(p.field, "network.nat");
    assert_eq!(
        p.allowed.as_deref(),
        Some("one of `single`, `per-az`, `none`")
    );
}

#[test]
fn fargate_sizes_and_counts_are_checked() {
    let text = with(
        "memory = 512\ndesired = 1\nmin = 1\nmax = 2",
        "memory = 4096\ndesired = 5\nmin = 1\nmax = 2",
    );
    let m = message(&text);
    assert!(
        m.contains("services.user.memory: 4096 MiB does not go with 256 CPU units on Fargate"),
        "{m}"
    );
    assert!(m.contains("allowed: 512, 1024, 2048"), "{m}");
    assert!(
        m.contains("services.user.desired: desired 5 is outside min 1 .. max 2"),
        "{m}"
    );
}

#[test]
fn consumed_events_must_have_a_producer() {
    let m = message(&with(
        "consumes = [\"order.paid\", \"order.anonymized\"]",
        "consumes = [\"order.shipped\"]",
    ));
    assert!(
        m.contains("services.production.consumes[0]: no service publishes \"order.shipped\""),
        "{m}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = with("vpc_cidr = \"10.0.0.0/16\"", "vpc_cidr = \"10.0.0.0/33\"").replacen(
        "port = 4002",
        "port = 4001",
        1,
    );
    let err = problems(&text);
    assert!(err.problems.len() >= 2, "{err}");
    assert!(
        err.to_string()
            .starts_with("the blueprint blueprints/bad.toml has"),
        "{err}"
    );
}

#[test]
fn invalid_toml_points_at_the_spot() {
    let p = &problems("[stack]\nname = \"x\nregion = \"us-east-1\"\n").problems[0];
    assert_eq!(p.line, 2);
}

// What AWS would refuse halfway through `up`: names, subnet sizes, NAT, and
// the database's connections.

#[test]
fn a_load_balancer_name_beginning_with_internal_is_refused() {
    let text = with("name = \"techchallenge\"", "name = \"internal-shop\"");
    let err = problems(&text);
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.field, "stack.name");
    assert_eq!(p.line, line_of(&text, "name = \"internal-shop\""));
    assert!(
        p.message.starts_with(
            "the load balancer name \"internal-shop\" begins with \"internal-\", so AWS would refuse it (CreateLoadBalancer:"
        ),
        "{}",
        p.message
    );
    assert_eq!(
        p.allowed.as_deref(),
        Some("a stack.name that does not begin with \"internal-\"")
    );
}

#[test]
fn a_long_stack_name_overflows_the_target_group_names() {
    // 29 characters: a valid stack name and load balancer name, but
    // "{stack}-{service}" passes the 32 target groups may have.
    let stack = "lanchonete-techchallenge-prod";
    let text = with("name = \"techchallenge\"", &format!("name = \"{stack}\""));
    let err = problems(&text);
    assert_eq!(
        err.problems.len(),
        5,
        "one per service's target group: {err}"
    );
    assert!(
        err.problems
            .iter()
            .all(|p| p.field.starts_with("services.")),
        "{err}"
    );
    let p = err
        .problems
        .iter()
        .find(|p| p.field == "services.production")
        .expect("production's target group");
    assert_eq!(p.line, line_of(&text, "[services.production]"));
    assert!(
        p.message.starts_with(&format!(
            "the target group name \"{stack}-production\" is 40 characters long, 8 over the 32 allowed, so AWS would refuse it (CreateTargetGroup:"
        )),
        "{}",
        p.message
    );
    assert_eq!(
        p.allowed.as_deref(),
        Some(
            "a shorter stack.name or service name, so that the target group name fits in 32 characters"
        )
    );
}

#[test]
fn a_db_instance_identifier_with_two_hyphens_in_a_row_is_refused() {
    let text = with("name = \"techchallenge\"", "name = \"tech--challenge\"");
    let err = problems(&text);
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.field, "stack.name");
    assert_eq!(p.line, line_of(&text, "tech--challenge"));
    assert!(
        p.message.starts_with(
            "the DB instance identifier \"tech--challenge\" has two hyphens in a row, so AWS would refuse it (CreateDBInstance:"
        ),
        "{}",
        p.message
    );
    assert_eq!(
        p.allowed.as_deref(),
        Some("a stack.name without two hyphens in a row")
    );
}

#[test]
fn the_longest_names_allowed_make_queues_and_roles_aws_accepts() {
    // A 32-character stack and a 20-character consuming service: only the
    // target groups are too long; queues ("…-dlq", 57) and roles
    // ("…-task", 58) stay within SQS's 80 and IAM's 64.
    let stack = format!("s{}", "t".repeat(31));
    let text = with("name = \"techchallenge\"", &format!("name = \"{stack}\"")).replacen(
        "[services.production]",
        "[services.production-kitchen-x]",
        1,
    );
    let err = problems(&text);
    assert!(
        err.problems
            .iter()
            .all(|p| p.message.starts_with("the target group name")),
        "{err}"
    );
}

#[test]
fn queue_role_and_db_name_rules_are_aws_rules() {
    use super::names::{self, Broken};
    assert_eq!(names::QUEUE.broken(&"q".repeat(80)), None);
    assert_eq!(
        names::QUEUE.broken(&"q".repeat(81)),
        Some(Broken::TooLong {
            length: 81,
            max: 80
        })
    );
    assert_eq!(
        names::QUEUE.broken("shop.orders"),
        Some(Broken::Character('.'))
    );
    assert_eq!(names::ROLE.broken("shop_+=,.@-task"), None);
    assert_eq!(
        names::ROLE.broken(&"r".repeat(65)),
        Some(Broken::TooLong {
            length: 65,
            max: 64
        })
    );
    assert_eq!(
        names::ROLE.broken("shop/task"),
        Some(Broken::Character('/'))
    );
    assert_eq!(names::TARGET_GROUP.broken(&"t".repeat(32)), None);
    assert_eq!(
        names::TARGET_GROUP.broken("-shop"),
        Some(Broken::Begins("a hyphen"))
    );
    assert_eq!(names::DB_INSTANCE.broken(&"d".repeat(63)), None);
    assert_eq!(
        names::DB_INSTANCE.broken("1shop"),
        Some(Broken::NoLetterFirst)
    );
    assert_eq!(
        names::DB_INSTANCE.broken("shop-"),
        Some(Broken::Ends("a hyphen"))
    );
    assert_eq!(names::DB_SUBNET_GROUP.broken("shop-private"), None);
    assert_eq!(
        names::DB_SUBNET_GROUP.broken("default"),
        Some(Broken::Reserved("default"))
    );
}

#[test]
fn a_private_subnet_smaller_than_a_27_is_refused_for_the_load_balancer() {
    let text = with(
        "private_subnets = [\"10.0.10.0/24\"",
        "private_subnets = [\"10.0.10.0/28\"",
    );
    let err = problems(&text);
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.field, "network.private_subnets[0]");
    assert_eq!(p.line, line_of(&text, "private_subnets"));
    assert!(
        p.message
            .starts_with("10.0.10.0/28 is too small for the internal load balancer"),
        "{}",
        p.message
    );
    assert!(
        p.message.contains("at least a /27 with 8 free addresses"),
        "{}",
        p.message
    );
    assert_eq!(
        p.allowed.as_deref(),
        Some("a larger block: prefix /16 to /27, such as \"10.0.10.0/27\"")
    );
    // A /27 is enough, and the public subnets hold no load balancer.
    parse(
        Path::new("ok.toml"),
        &with("\"10.0.10.0/24\"", "\"10.0.10.0/27\""),
    )
    .expect("a /27 private subnet");
    parse(
        Path::new("ok.toml"),
        &with(
            "public_subnets = [\"10.0.0.0/24\"",
            "public_subnets = [\"10.0.0.0/28\"",
        ),
    )
    .expect("a /28 public subnet");
}

#[test]
fn nat_none_is_refused_with_why_and_what_instead() {
    let text = with("nat = \"single\"", "nat = \"none\"");
    let err = problems(&text);
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.field, "network.nat");
    assert_eq!(p.line, line_of(&text, "nat = \"none\""));
    for why in [
        "ECR",
        "CloudWatch Logs",
        "ResourceInitializationError",
        "Mercado Pago",
    ] {
        assert!(p.message.contains(why), "{}", p.message);
    }
    let allowed = p.allowed.as_deref().unwrap_or("");
    assert!(
        allowed.starts_with("\"single\" (one NAT gateway for the stack) or \"per-az\""),
        "{allowed}"
    );
}

#[test]
fn pools_are_sized_from_the_instance_class() {
    use super::connections::{ConnectionBudget, max_connections};
    // LEAST(DBInstanceClassMemory / 9531392, 5000), with the memory the
    // OS and RDS keep taken off the class's.
    assert_eq!(max_connections("db.t4g.micro"), Some(82));
    assert_eq!(max_connections("db.t3.small"), Some(192));
    assert_eq!(max_connections("db.m6g.large"), Some(855));
    assert_eq!(max_connections("db.r6g.16xlarge"), Some(5000));
    assert_eq!(max_connections("db.x9.huge"), None);

    let bp = parse(Path::new("techchallenge.toml"), SHIPPED).expect("valid");
    // 2 + 2 + 6 + 4 + 2 tasks at the maxima, twice over during a rollout.
    assert_eq!(bp.peak_tasks(), 32);
    assert_eq!(
        bp.connection_budget(),
        Some(ConnectionBudget {
            instance_class: "db.t4g.micro".into(),
            max_connections: 82,
            reserved: 14,
            peak_tasks: 32,
        })
    );
    assert_eq!(bp.db_pool_size(), 2);
    let on = |class: &str| {
        parse(
            Path::new("bp.toml"),
            &with(
                "instance_class = \"db.t4g.micro\"",
                &format!("instance_class = \"{class}\""),
            ),
        )
        .expect("valid")
        .db_pool_size()
    };
    assert_eq!(on("db.t4g.small"), 5);
    assert_eq!(on("db.r6g.large"), 10, "capped at service-kit's default");
}

#[test]
fn maxima_the_instance_cannot_serve_are_refused_with_the_numbers() {
    // The maxima before pools were sized: 3 + 3 + 6 + 6 + 3 = 21 tasks, 42
    // at the rollout peak, on a class that takes 82 connections.
    let text = SHIPPED
        .replacen("max = 2", "max = 3", 3)
        .replacen("max = 4", "max = 6", 1);
    let err = problems(&text);
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.field, "database.instance_class");
    assert_eq!(p.line, line_of(&text, "instance_class"));
    assert_eq!(
        p.message,
        "db.t4g.micro takes 82 connections (RDS's default max_connections); with 14 kept for \
         RDS and operators, 68 are left for 42 tasks (every service at its max, twice over \
         while a rollout runs the new tasks beside the old): 1 each, and a task needs at least 2"
    );
    assert_eq!(
        p.allowed.as_deref(),
        Some(
            "a larger instance_class such as db.t4g.small (192 connections, 4 per task), \
             or services whose max add up to at most 17 (now 21)"
        )
    );
}

#[test]
fn an_unknown_instance_class_names_the_known_ones() {
    let text = with(
        "instance_class = \"db.t4g.micro\"",
        "instance_class = \"db.x9.huge\"",
    );
    let err = problems(&text);
    assert_eq!(err.problems.len(), 1, "{err}");
    let p = &err.problems[0];
    assert_eq!(p.field, "database.instance_class");
    assert_eq!(p.line, line_of(&text, "db.x9.huge"));
    assert!(
        p.message
            .starts_with("\"db.x9.huge\" is not an instance class techctl knows"),
        "{}",
        p.message
    );
    let allowed = p.allowed.as_deref().unwrap_or("");
    for class in [
        "db.t3.micro",
        "db.t4g.micro",
        "db.m5.large",
        "db.m6g.large",
        "db.m7g.large",
        "db.r5.large",
        "db.r6g.16xlarge",
    ] {
        assert!(allowed.contains(class), "{class} in {allowed}");
    }
}

#[test]
fn the_redrive_policy_leaves_room_for_every_retry() {
    assert_eq!(crate::model::retries_within(1), 1);
    // 1 + 2 + 4 + 8 + 16 + 32 s, then a minute at a time.
    assert_eq!(crate::model::retries_within(63), 6);
    assert_eq!(crate::model::retries_within(3600), 65);
    let bp = parse(Path::new("blueprints/techchallenge.toml"), SHIPPED).unwrap();
    assert_eq!(bp.messaging.retry_for_seconds(), 3600);
    assert_eq!(bp.messaging.redrive_max_receive_count(), 70);
    // The longest retry allowed still fits in SQS's 1000 receives.
    assert!(100 + crate::model::retries_within(43200) <= 1000);
    let m = message(&with(
        "retry_for_seconds = 3600",
        "retry_for_seconds = 86400",
    ));
    assert!(m.contains("messaging.retry_for_seconds"), "{m}");
}

fn for_environment(text: &str, environment: &str) -> Result<super::Blueprint, BlueprintError> {
    super::parse_in(
        Path::new("blueprints/techchallenge.toml"),
        text,
        Some(environment),
    )
}

#[test]
fn an_environment_is_the_base_with_its_values_over_it_in_a_stack_of_its_own() {
    let base = parse(Path::new("techchallenge.toml"), SHIPPED).expect("valid");
    assert!(base.environment.is_none());
    let prod = for_environment(SHIPPED, "prod").expect("prod is valid");
    assert_eq!(prod.stack_name(), "techchallenge-prod");
    assert_eq!(*prod.network.nat.get_ref(), super::NatMode::PerAz);
    assert_eq!(prod.database.instance_class.get_ref(), "db.t4g.small");
    assert_eq!(*prod.logs.retention_days.get_ref(), 30);
    let order = |bp: &super::Blueprint| {
        let (_, order) = bp.services().find(|(n, _)| *n == "order").unwrap();
        (
            *order.desired.get_ref(),
            *order.max.get_ref(),
            *order.port.get_ref(),
        )
    };
    assert_eq!(
        order(&prod),
        (3, 8, 4003),
        "the rest of the service is the base's"
    );
    assert_eq!(order(&base).2, 4003);
    // What it did not set is the base's.
    assert_eq!(
        prod.database.engine_version.get_ref(),
        base.database.engine_version.get_ref()
    );
    assert_eq!(prod.region(), "us-east-1");

    let environment = prod.environment.as_ref().unwrap();
    let fields: Vec<&str> = environment
        .overrides
        .iter()
        .map(|o| o.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "network.nat",
            "database.instance_class",
            "database.backup_retention_days",
            "gateway.cors_allow_origins",
            "logs.retention_days",
            "services.order.desired",
            "services.order.min",
            "services.order.max",
        ]
    );
    assert_eq!(
        environment.overrides[0].line,
        line_of(SHIPPED, "network.nat = \"per-az\"")
    );

    let staging = for_environment(SHIPPED, "staging").expect("staging is valid");
    assert_eq!(staging.stack_name(), "techchallenge-staging");
    assert_eq!(*staging.network.nat.get_ref(), super::NatMode::Single);
    assert_eq!(*staging.logs.retention_days.get_ref(), 7);
}

#[test]
fn a_bad_value_in_an_environment_is_named_with_the_environment_and_its_line() {
    let text = with("logs.retention_days = 7", "logs.retention_days = 8");
    let err = for_environment(&text, "staging").expect_err("8 days is not a retention");
    let p = &err.problems[0];
    assert_eq!(p.field, "logs.retention_days");
    assert_eq!(p.line, line_of(&text, "logs.retention_days = 8"));
    let shown = err.to_string();
    assert!(shown.contains("(environment staging)"), "{shown}");
    // The base, which does not use that value, is fine.
    parse(Path::new("techchallenge.toml"), &text).expect("the base is valid");

    // An unknown field is named inside the environment's table.
    let text = with("tokens.lifetime_seconds = 900", "tokens.lifetime = 900");
    let err = for_environment(&text, "staging").expect_err("unknown field");
    assert_eq!(
        err.problems[0].line,
        line_of(&text, "tokens.lifetime = 900")
    );
    assert!(err.to_string().contains("lifetime"), "{err}");
}

#[test]
fn an_environment_the_blueprint_does_not_declare_is_refused_naming_those_it_does() {
    let err = for_environment(SHIPPED, "qa").expect_err("no qa");
    let shown = err.to_string();
    assert!(
        shown.contains("the environment `qa` is not in the blueprint: it declares staging, prod")
            || shown.contains("it declares prod, staging"),
        "{shown}"
    );
    assert!(shown.contains("add an [env.qa] table"), "{shown}");
    let err = for_environment(SHIPPED, "Prod!").expect_err("not a name");
    assert!(
        err.to_string().contains("is not an environment name"),
        "{err}"
    );
    // A blueprint without environments says so.
    let base_only = &SHIPPED[..SHIPPED.find("# Environments:").unwrap()];
    let err = for_environment(base_only, "prod").expect_err("none declared");
    assert!(err.to_string().contains("it declares none"), "{err}");
}

#[test]
fn an_environment_may_change_services_but_not_add_one() {
    let text = format!("{SHIPPED}\n[env.staging.services.kitchen]\nport = 4010\n");
    let err = for_environment(&text, "staging").expect_err("a new service");
    let p = &err.problems[0];
    assert_eq!(p.field, "env.staging.services.kitchen");
    assert!(p.message.contains("does not declare"), "{p:?}");
}

#[test]
fn an_environment_that_names_its_stack_keeps_that_name() {
    let text = with(
        "[env.staging]\n",
        "[env.staging]\nstack.name = \"shop-staging\"\n",
    );
    let staging = for_environment(&text, "staging").expect("valid");
    assert_eq!(staging.stack_name(), "shop-staging");
    // The names of its resources are checked with its name: this one fits
    // a stack's 32 characters, but `…-production` overflows a target
    // group's.
    let text = with(
        "[env.staging]\n",
        "[env.staging]\nstack.name = \"shop-staging-long-name\"\n",
    );
    let err = for_environment(&text, "staging").expect_err("too long");
    assert!(err.to_string().contains("target group"), "{err}");
    // A derived name that overflows says where it came from.
    let text = with(
        "name = \"techchallenge\"",
        "name = \"techchallenge-kiosk-a\"",
    );
    let err = for_environment(&text, "staging").expect_err("too long");
    assert!(
        err.to_string()
            .contains("the environment staging makes it techchallenge-kiosk-a-staging"),
        "{err}"
    );
}

#[test]
fn an_environment_cannot_be_the_stack_of_the_base_or_of_another() {
    for taken in ["techchallenge", "techchallenge-prod"] {
        let text = with(
            "[env.staging]\n",
            &format!("[env.staging]\nstack.name = \"{taken}\"\n"),
        );
        let err = for_environment(&text, "staging").expect_err("a stack taken");
        assert!(
            err.to_string()
                .contains(&format!("its stack {taken} is also the stack of")),
            "{err}"
        );
    }
    for bad in ["prod-", "a--b"] {
        let err = for_environment(SHIPPED, bad).expect_err("not a name");
        assert!(
            err.to_string().contains("is not an environment name"),
            "{err}"
        );
    }
}

#[test]
fn a_kiosk_is_a_point_of_sale_mercado_pago_would_take() {
    let text = with(
        "points_of_sale = [\"TOTEM01\", \"TOTEM02\", \"TOTEM03\", \"TOTEM04\"]",
        "points_of_sale = [\"TOTEM-01\", \"TOTEM02\", \"TOTEM02\"]",
    );
    let err = problems(&text);
    let found: Vec<(&str, &str)> = err
        .problems
        .iter()
        .map(|p| (p.field.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                "kiosks.points_of_sale",
                "\"TOTEM-01\" is not a Mercado Pago point of sale's external id"
            ),
            ("kiosks.points_of_sale", "\"TOTEM02\" is listed twice"),
        ]
    );
    assert_eq!(err.problems[0].line, line_of(&text, "TOTEM-01"));
    let shipped = parse(Path::new("techchallenge.toml"), SHIPPED).unwrap();
    assert_eq!(shipped.kiosks.points_of_sale().len(), 4);
}

#[test]
fn deploy_on_push_names_a_github_environment_and_a_branch_is_refused_with_the_fix() {
    let staging = for_environment(SHIPPED, "staging").expect("staging is valid");
    assert_eq!(
        staging.deploy_on_push.as_ref().unwrap().subject(),
        "repo:lanchonete/techchallenge:environment:staging"
    );
    let old = with("environment = \"staging\"\n", "branch = \"main\"\n");
    let refused = for_environment(&old, "staging").unwrap_err().to_string();
    assert!(refused.contains("deploy_on_push.branch"), "{refused}");
    assert!(refused.contains("environment = \"staging\""), "{refused}");
    let spaced = with("environment = \"staging\"", "environment = \"stag ing\"");
    let refused = for_environment(&spaced, "staging").unwrap_err().to_string();
    assert!(
        refused.contains("not a GitHub environment name"),
        "{refused}"
    );
}
