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
    let text = with("engine_version = \"16.4\"\n", "");
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
        "memory = 512\ndesired = 1\nmin = 1\nmax = 3",
        "memory = 4096\ndesired = 5\nmin = 1\nmax = 3",
    );
    let m = message(&text);
    assert!(
        m.contains("services.user.memory: 4096 MiB does not go with 256 CPU units on Fargate"),
        "{m}"
    );
    assert!(m.contains("allowed: 512, 1024, 2048"), "{m}");
    assert!(
        m.contains("services.user.desired: desired 5 is outside min 1 .. max 3"),
        "{m}"
    );
}

#[test]
fn consumed_events_must_have_a_producer() {
    let m = message(&with(
        "consumes = [\"order.paid\"]",
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
