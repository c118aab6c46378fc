//! Security groups and routes, evaluated the way EC2 applies them. A
//! connection between two groups needs both sides: the source's egress
//! and the destination's ingress (groups are stateful, so the answer
//! needs nothing). A rule covers a TCP port when its protocol is `tcp`
//! (6) or all (-1) and its range holds the port, and a peer when it names
//! the peer's group or a CIDR that holds every subnet the peer sits in.

use ipnet::IpNet;

use super::Trace;
use super::snapshot::{
    Destination, EndpointKind, Peer, RouteTarget, Service, SgRule, Snapshot, VpcEndpoint,
};

pub const ANYWHERE_V4: &str = "0.0.0.0/0";
pub const HTTPS: u16 = 443;

/// One end of a connection: the groups it is in and where it sits.
#[derive(Clone, Debug)]
pub struct Side {
    pub label: String,
    pub groups: Vec<String>,
    pub cidrs: Vec<String>,
}

impl Side {
    pub fn new(snapshot: &Snapshot, label: &str, groups: &[String], subnets: &[String]) -> Side {
        Side {
            label: label.to_string(),
            groups: groups.to_vec(),
            cidrs: snapshot.subnet_cidrs(subnets),
        }
    }
}

pub fn covers_tcp_port(rule: &SgRule, port: u16) -> bool {
    let port = i32::from(port);
    match rule.protocol.to_ascii_lowercase().as_str() {
        "-1" | "all" => true,
        "tcp" | "6" => rule.from_port <= port && port <= rule.to_port,
        _ => false,
    }
}

/// Whether `outer` holds every network of `inner` (none: no).
pub fn cidr_holds_all(outer: &str, inner: &[String]) -> bool {
    let Ok(outer) = outer.parse::<IpNet>() else {
        return false;
    };
    !inner.is_empty()
        && inner
            .iter()
            .all(|c| c.parse::<IpNet>().is_ok_and(|c| outer.contains(&c)))
}

pub fn is_anywhere(cidr: &str) -> bool {
    cidr.parse::<IpNet>().is_ok_and(|n| n.prefix_len() == 0)
}

fn is_anywhere_v4(cidr: &str) -> bool {
    matches!(cidr.parse::<IpNet>(), Ok(IpNet::V4(n)) if n.prefix_len() == 0)
}

fn peer_covers(peer: &Peer, side: &Side) -> bool {
    match peer {
        Peer::Group(g) => side.groups.contains(g),
        Peer::Cidr(c) => cidr_holds_all(c, &side.cidrs),
        Peer::PrefixList(_) => false,
    }
}

pub fn describe_ports(rule: &SgRule) -> String {
    match rule.protocol.as_str() {
        "-1" => "all traffic".to_string(),
        p if rule.from_port == rule.to_port => format!("{p} {}", rule.from_port),
        p => format!("{p} {}-{}", rule.from_port, rule.to_port),
    }
}

pub fn describe_peer(snapshot: &Snapshot, peer: &Peer) -> String {
    match peer {
        Peer::Group(g) => snapshot.group_label(g),
        Peer::Cidr(c) => c.clone(),
        Peer::PrefixList(p) => p.clone(),
    }
}

pub fn describe_egress(snapshot: &Snapshot, group: &str, rule: &SgRule) -> String {
    format!(
        "{} egress {} → {}",
        snapshot.group_label(group),
        describe_ports(rule),
        describe_peer(snapshot, &rule.peer)
    )
}

pub fn describe_ingress(snapshot: &Snapshot, group: &str, rule: &SgRule) -> String {
    format!(
        "{} ingress {} ← {}",
        snapshot.group_label(group),
        describe_ports(rule),
        describe_peer(snapshot, &rule.peer)
    )
}

fn labels(snapshot: &Snapshot, groups: &[String]) -> String {
    if groups.is_empty() {
        return "(no security group)".to_string();
    }
    groups
        .iter()
        .map(|g| snapshot.group_label(g))
        .collect::<Vec<_>>()
        .join("+")
}

/// The rule of a `from` group that lets `port` out to `to`.
pub fn egress_rule(snapshot: &Snapshot, from: &Side, to: &Side, port: u16) -> Option<String> {
    from.groups.iter().find_map(|g| {
        let group = snapshot.group(g)?;
        group
            .egress
            .iter()
            .find(|r| covers_tcp_port(r, port) && peer_covers(&r.peer, to))
            .map(|r| describe_egress(snapshot, g, r))
    })
}

/// The rule of a `to` group that lets `port` in from `from`.
pub fn ingress_rule(snapshot: &Snapshot, from: &Side, to: &Side, port: u16) -> Option<String> {
    to.groups.iter().find_map(|g| {
        let group = snapshot.group(g)?;
        group
            .ingress
            .iter()
            .find(|r| covers_tcp_port(r, port) && peer_covers(&r.peer, from))
            .map(|r| describe_ingress(snapshot, g, r))
    })
}

/// Both sides of a TCP connection from one side to the other.
pub fn pair(snapshot: &Snapshot, from: &Side, to: &Side, port: u16, trace: &mut Trace) {
    match egress_rule(snapshot, from, to, port) {
        Some(rule) => trace.allow(rule),
        None => trace.block(format!(
            "{} egress tcp {port} → {}",
            labels(snapshot, &from.groups),
            labels(snapshot, &to.groups)
        )),
    }
    match ingress_rule(snapshot, from, to, port) {
        Some(rule) => trace.allow(rule),
        None => trace.block(format!(
            "{} ingress tcp {port} ← {}",
            labels(snapshot, &to.groups),
            labels(snapshot, &from.groups)
        )),
    }
}

/// The egress rule that lets HTTPS out to any IPv4 address.
pub fn egress_to_internet(snapshot: &Snapshot, groups: &[String], port: u16) -> Option<String> {
    groups.iter().find_map(|g| {
        let group = snapshot.group(g)?;
        group
            .egress
            .iter()
            .find(|r| {
                covers_tcp_port(r, port) && matches!(&r.peer, Peer::Cidr(c) if is_anywhere_v4(c))
            })
            .map(|r| describe_egress(snapshot, g, r))
    })
}

fn default_route(snapshot: &Snapshot, subnet: &str) -> Result<(String, RouteTarget), String> {
    let table = snapshot
        .route_table_of(subnet)
        .ok_or_else(|| format!("subnet {subnet} has no route table"))?;
    let route = table
        .routes
        .iter()
        .find(|r| r.active && r.destination == Destination::Cidr(ANYWHERE_V4.to_string()))
        .ok_or_else(|| {
            format!(
                "route table {} (subnet {subnet}) has no {ANYWHERE_V4} route",
                table.name
            )
        })?;
    Ok((table.name.clone(), route.target.clone()))
}

/// The path from a subnet out to the internet: a default route to an
/// available NAT gateway that sits in a subnet whose default route goes
/// to an internet gateway of the VPC (or, for a task with a public
/// address, the internet gateway itself).
pub fn internet_path(
    snapshot: &Snapshot,
    subnet: &str,
    public_ip: bool,
) -> Result<Vec<String>, String> {
    let (table, target) = default_route(snapshot, subnet)?;
    match target {
        RouteTarget::NatGateway(nat_id) => {
            let nat = snapshot
                .nat_gateways
                .iter()
                .find(|n| n.id == nat_id)
                .ok_or_else(|| {
                    format!("route table {table} sends {ANYWHERE_V4} to {nat_id}, which is gone")
                })?;
            if !nat.state.eq_ignore_ascii_case("available") {
                return Err(format!("NAT gateway {nat_id} is {}", nat.state));
            }
            let (nat_table, nat_target) = default_route(snapshot, &nat.subnet)
                .map_err(|e| format!("NAT gateway {nat_id} cannot reach the internet: {e}"))?;
            match nat_target {
                RouteTarget::InternetGateway(igw) if snapshot.internet_gateways.contains(&igw) => {
                    Ok(vec![
                        format!(
                            "route table {table} {ANYWHERE_V4} → {nat_id} (in {})",
                            nat.subnet
                        ),
                        format!("route table {nat_table} {ANYWHERE_V4} → {igw}"),
                    ])
                }
                other => Err(format!(
                    "NAT gateway {nat_id} sits in subnet {} whose route table {nat_table} sends {ANYWHERE_V4} to {}, not to an internet gateway of the VPC",
                    nat.subnet,
                    target_label(&other)
                )),
            }
        }
        RouteTarget::InternetGateway(igw)
            if public_ip && snapshot.internet_gateways.contains(&igw) =>
        {
            Ok(vec![format!("route table {table} {ANYWHERE_V4} → {igw}")])
        }
        other => Err(format!(
            "route table {table} (subnet {subnet}) sends {ANYWHERE_V4} to {}, not to a NAT gateway",
            target_label(&other)
        )),
    }
}

fn target_label(target: &RouteTarget) -> String {
    match target {
        RouteTarget::Local => "local".into(),
        RouteTarget::InternetGateway(id)
        | RouteTarget::NatGateway(id)
        | RouteTarget::VpcEndpoint(id)
        | RouteTarget::Other(id) => id.clone(),
    }
}

/// A service's tasks out to the internet on `port`, from every subnet they
/// may run in.
pub fn internet(snapshot: &Snapshot, service: &Service, port: u16, trace: &mut Trace) {
    if service.subnets.is_empty() {
        trace.block(format!("the {} service has no subnets", service.name));
    }
    for subnet in &service.subnets {
        match internet_path(snapshot, subnet, service.assign_public_ip) {
            Ok(steps) => steps.into_iter().for_each(|s| trace.allow(s)),
            Err(e) => trace.block(e),
        }
    }
    match egress_to_internet(snapshot, &service.security_groups, port) {
        Some(rule) => trace.allow(rule),
        None => trace.block(format!(
            "{} egress tcp {port} → {ANYWHERE_V4}",
            labels(snapshot, &service.security_groups)
        )),
    }
}

fn endpoint_name(snapshot: &Snapshot, aws_service: &str) -> String {
    format!("com.amazonaws.{}.{aws_service}", snapshot.region)
}

fn usable_interface<'a>(snapshot: &'a Snapshot, aws_service: &str) -> Option<&'a VpcEndpoint> {
    let name = endpoint_name(snapshot, aws_service);
    snapshot.vpc_endpoints.iter().find(|e| {
        e.service_name == name
            && e.kind == EndpointKind::Interface
            && e.private_dns
            && e.state.eq_ignore_ascii_case("available")
    })
}

/// A service's tasks to an AWS API (`ecr.api`, `ecr.dkr`, `s3`, `logs`,
/// `secretsmanager`, `sns`, `sqs`) on HTTPS. Where an interface endpoint
/// with private DNS exists, the API's name resolves to it and only that
/// path counts; for S3, a gateway endpoint in the subnet's route table
/// takes S3's traffic. Otherwise the path is through a NAT gateway.
pub fn aws_api(snapshot: &Snapshot, service: &Service, aws_service: &str, trace: &mut Trace) {
    let from = Side::new(
        snapshot,
        &service.name,
        &service.security_groups,
        &service.subnets,
    );
    if let Some(endpoint) = usable_interface(snapshot, aws_service) {
        trace.allow(format!(
            "VPC endpoint {} ({})",
            endpoint.id, endpoint.service_name
        ));
        let to = Side::new(
            snapshot,
            &endpoint.id,
            &endpoint.security_groups,
            &endpoint.subnets,
        );
        pair(snapshot, &from, &to, HTTPS, trace);
        return;
    }
    let name = endpoint_name(snapshot, aws_service);
    let mut through_nat = Vec::new();
    for subnet in &service.subnets {
        let table = snapshot.route_table_of(subnet);
        let gateway = table.and_then(|t| {
            t.routes
                .iter()
                .find_map(|r| match (&r.destination, &r.target) {
                    (Destination::PrefixList(pl), RouteTarget::VpcEndpoint(id)) if r.active => {
                        snapshot
                            .vpc_endpoints
                            .iter()
                            .find(|e| {
                                &e.id == id
                                    && e.service_name == name
                                    && e.kind == EndpointKind::Gateway
                            })
                            .map(|e| (pl.clone(), e.id.clone()))
                    }
                    _ => None,
                })
        });
        match (gateway, table) {
            (Some((prefix_list, endpoint)), Some(table)) => {
                trace.allow(format!(
                    "route table {} {prefix_list} → {endpoint} ({name})",
                    table.name
                ));
                let rule = service.security_groups.iter().find_map(|g| {
                    let group = snapshot.group(g)?;
                    group
                        .egress
                        .iter()
                        .find(|r| {
                            covers_tcp_port(r, HTTPS)
                                && match &r.peer {
                                    Peer::PrefixList(p) => p == &prefix_list,
                                    Peer::Cidr(c) => is_anywhere_v4(c),
                                    Peer::Group(_) => false,
                                }
                        })
                        .map(|r| describe_egress(snapshot, g, r))
                });
                match rule {
                    Some(rule) => trace.allow(rule),
                    None => trace.block(format!(
                        "{} egress tcp {HTTPS} → {prefix_list}",
                        labels(snapshot, &service.security_groups)
                    )),
                }
            }
            _ => through_nat.push(subnet.clone()),
        }
    }
    if through_nat.is_empty() && !service.subnets.is_empty() {
        return;
    }
    let mut nat_trace = Trace::default();
    let nat_service = Service {
        subnets: through_nat,
        ..service.clone()
    };
    internet(snapshot, &nat_service, HTTPS, &mut nat_trace);
    for a in nat_trace.allowed {
        trace.allow(a);
    }
    for b in nat_trace.blocked {
        trace.block(format!("{b} (and no VPC endpoint {name})"));
    }
}
