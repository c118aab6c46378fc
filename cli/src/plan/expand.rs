//! Blueprint → the resources the stack should have.

use std::collections::{BTreeMap, BTreeSet};

use crate::blueprint::{Blueprint, NatMode};

use super::resource::{KeysState, LogicalId, Output, Peer, Resource, Rule, Spec};

pub const ANYWHERE: &str = "0.0.0.0/0";
const HTTPS: u16 = 443;
const ALB_LISTENER_PORT: u16 = 80;

/// Logical ids of the resources other parts of the engine refer to by name.
pub mod ids {
    use super::LogicalId;

    pub fn vpc() -> LogicalId {
        LogicalId::new(&["network", "vpc"])
    }
    pub fn internet_gateway() -> LogicalId {
        LogicalId::new(&["network", "internet-gateway"])
    }
    pub fn subnet(tier: &str, zone: &str) -> LogicalId {
        LogicalId::new(&["network", "subnet", &format!("{tier}-{zone}")])
    }
    pub fn nat_gateway(zone: &str) -> LogicalId {
        LogicalId::new(&["network", "nat-gateway", zone])
    }
    pub fn nat_ip(zone: &str) -> LogicalId {
        LogicalId::new(&["network", "nat-ip", zone])
    }
    pub fn route_table(name: &str) -> LogicalId {
        LogicalId::new(&["network", "route-table", name])
    }
    pub fn association(subnet_name: &str) -> LogicalId {
        LogicalId::new(&["network", "route-table-association", subnet_name])
    }
    pub fn security_group(role: &str) -> LogicalId {
        LogicalId::new(&["network", "security-group", role])
    }
    pub fn security_group_rules(role: &str) -> LogicalId {
        LogicalId::new(&["network", "security-group-rules", role])
    }
    pub fn stack_secret() -> LogicalId {
        LogicalId::new(&["secret", "stack"])
    }
}

/// The security groups of the stack, in the order traffic crosses them.
pub const SECURITY_GROUPS: [(&str, &str); 4] = [
    ("vpc-link", "API Gateway VPC link: reaches the ALB only"),
    (
        "alb",
        "Internal ALB: reached from the VPC link, reaches the services",
    ),
    (
        "services",
        "ECS services: reached from the ALB, reach the database and HTTPS",
    ),
    ("database", "RDS PostgreSQL: reached from the services only"),
];

/// Name of the Secrets Manager secret that holds a stack's outputs and keys.
pub fn secret_name(stack: &str) -> String {
    format!("techctl/{stack}")
}

/// The short name of an availability zone within its region: `us-east-1a` → `a`.
pub fn zone_suffix(region: &str, zone: &str) -> String {
    let suffix = zone.strip_prefix(region).unwrap_or(zone);
    let cleaned: String = suffix
        .trim_start_matches('-')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "zone".into()
    } else {
        cleaned
    }
}

/// Every resource the blueprint asks for.
pub fn desired(bp: &Blueprint) -> Vec<Resource> {
    let mut out = Vec::new();
    let vpc = ids::vpc();
    let igw = ids::internet_gateway();
    out.push(Resource::new(
        vpc.clone(),
        Spec::Vpc {
            cidr: bp.network.vpc_cidr.get_ref().clone(),
            dns_support: true,
            dns_hostnames: true,
        },
    ));
    out.push(Resource::new(
        igw.clone(),
        Spec::InternetGateway { vpc: vpc.clone() },
    ));

    let zones: Vec<String> = bp
        .availability_zones()
        .iter()
        .map(|z| zone_suffix(bp.region(), z))
        .collect();
    let public_rt = ids::route_table("public");
    out.push(Resource::new(
        public_rt.clone(),
        Spec::RouteTable {
            vpc: vpc.clone(),
            routes: BTreeMap::from([(ANYWHERE.to_string(), igw.clone())]),
        },
    ));

    let tiers = [
        ("public", &bp.network.public_subnets),
        ("private", &bp.network.private_subnets),
    ];
    for (tier, cidrs) in tiers {
        for ((zone, az), cidr) in zones
            .iter()
            .zip(bp.availability_zones())
            .zip(cidrs.get_ref())
        {
            let subnet = ids::subnet(tier, zone);
            out.push(Resource::new(
                subnet.clone(),
                Spec::Subnet {
                    vpc: vpc.clone(),
                    cidr: cidr.get_ref().clone(),
                    availability_zone: az.to_string(),
                },
            ));
            let route_table = if tier == "public" {
                public_rt.clone()
            } else {
                ids::route_table(&format!("private-{zone}"))
            };
            out.push(Resource::new(
                ids::association(&format!("{tier}-{zone}")),
                Spec::RouteTableAssociation {
                    route_table,
                    subnet,
                },
            ));
        }
    }

    // NAT gateways live in public subnets; each private route table sends
    // internet traffic to the NAT gateway of its own zone (per-az) or to the
    // single one.
    let nat_zones: Vec<&String> = match bp.network.nat {
        NatMode::Single => zones.iter().take(1).collect(),
        NatMode::PerAz => zones.iter().collect(),
        NatMode::Disabled => Vec::new(),
    };
    for zone in &nat_zones {
        out.push(Resource::new(ids::nat_ip(zone), Spec::ElasticIp {}));
        let mut nat = Resource::new(
            ids::nat_gateway(zone),
            Spec::NatGateway {
                subnet: ids::subnet("public", zone),
                elastic_ip: ids::nat_ip(zone),
            },
        );
        nat.after.push(igw.clone());
        out.push(nat);
    }
    for zone in &zones {
        let routes = match nat_zones.iter().find(|z| *z == &zone).or(nat_zones.first()) {
            Some(nat_zone) => BTreeMap::from([(ANYWHERE.to_string(), ids::nat_gateway(nat_zone))]),
            None => BTreeMap::new(),
        };
        out.push(Resource::new(
            ids::route_table(&format!("private-{zone}")),
            Spec::RouteTable {
                vpc: vpc.clone(),
                routes,
            },
        ));
    }

    out.extend(security_groups(bp));
    out.push(stack_secret(bp, &zones, &nat_zones));
    out
}

fn security_groups(bp: &Blueprint) -> Vec<Resource> {
    let group = |role: &str| Peer::Group(ids::security_group(role));
    let service_ports = bp.service_ports();
    let db_port = *bp.database.port.get_ref();
    let rules: [(&str, Vec<Rule>, Vec<Rule>); 4] = [
        (
            "vpc-link",
            vec![],
            vec![Rule::tcp(ALB_LISTENER_PORT, group("alb"))],
        ),
        (
            "alb",
            vec![Rule::tcp(ALB_LISTENER_PORT, group("vpc-link"))],
            service_ports
                .iter()
                .map(|p| Rule::tcp(*p, group("services")))
                .collect(),
        ),
        (
            "services",
            service_ports
                .iter()
                .map(|p| Rule::tcp(*p, group("alb")))
                .collect(),
            // HTTPS out through the NAT gateway: AWS APIs, ECR and Mercado Pago.
            vec![
                Rule::tcp(db_port, group("database")),
                Rule::tcp(HTTPS, Peer::Cidr(ANYWHERE.into())),
            ],
        ),
        (
            "database",
            vec![Rule::tcp(db_port, group("services"))],
            vec![],
        ),
    ];

    let mut out = Vec::new();
    for (role, description) in SECURITY_GROUPS {
        out.push(Resource::new(
            ids::security_group(role),
            Spec::SecurityGroup {
                vpc: ids::vpc(),
                group_name: format!("{}-{role}", bp.stack_name()),
                description: description.to_string(),
            },
        ));
    }
    for (role, ingress, egress) in rules {
        out.push(Resource::new(
            ids::security_group_rules(role),
            Spec::SecurityGroupRules {
                group: ids::security_group(role),
                ingress: BTreeSet::from_iter(ingress),
                egress: BTreeSet::from_iter(egress),
            },
        ));
    }
    out
}

fn stack_secret(bp: &Blueprint, zones: &[String], nat_zones: &[&String]) -> Resource {
    let subnets = |tier: &str| Output::Ids(zones.iter().map(|z| ids::subnet(tier, z)).collect());
    let mut outputs = BTreeMap::from([
        ("stack".to_string(), Output::Text(bp.stack_name().into())),
        ("region".to_string(), Output::Text(bp.region().into())),
        ("vpc_id".to_string(), Output::Id(ids::vpc())),
        ("public_subnet_ids".to_string(), subnets("public")),
        ("private_subnet_ids".to_string(), subnets("private")),
        (
            "nat_gateway_ids".to_string(),
            Output::Ids(nat_zones.iter().map(|z| ids::nat_gateway(z)).collect()),
        ),
    ]);
    for (role, _) in SECURITY_GROUPS {
        outputs.insert(
            format!("{}_security_group_id", role.replace('-', "_")),
            Output::Id(ids::security_group(role)),
        );
    }
    Resource::new(
        ids::stack_secret(),
        Spec::StackSecret {
            name: secret_name(bp.stack_name()),
            outputs,
            jwt_keys: KeysState::Present,
            scheduled_for_deletion: false,
        },
    )
}

/// The tags every resource of a stack carries; AWS is the only state store.
pub fn tags(stack: &str, id: &LogicalId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (crate::aws::TAG_STACK.to_string(), stack.to_string()),
        (crate::aws::TAG_ID.to_string(), id.to_string()),
        ("Name".to_string(), format!("{stack}/{id}")),
    ])
}
