//! Blueprint → the resources the stack should have. This file lays out the
//! network; `platform` what runs on it (load balancer, gateway, ECS, IAM,
//! logs, registry) and `data` what keeps state (database, messaging, the
//! stack secret and its outputs).

mod data;
pub mod deploy;
mod platform;
pub mod policies;

use std::collections::{BTreeMap, BTreeSet};

use blueprint::{Blueprint, NatMode};

use super::resource::{LogicalId, Peer, Resource, Rule, Spec};

pub use data::{DATABASE_NAME, DATABASE_USER, service_database};
pub use platform::{ECS_TASKS, HEALTH_CHECK_PATH, log_group_name, role_path, task_policy};

pub const ANYWHERE: &str = "0.0.0.0/0";
const HTTPS: u16 = 443;
pub const ALB_LISTENER_PORT: u16 = 80;

/// The API's one route: `$default` takes every request, the root `/`
/// (where the kiosk opens) included, which `ANY /{proxy+}` does not.
pub const API_ROUTE_KEY: &str = "$default";
/// The route key stacks made before had; found under that key, the
/// route is replaced by the one above.
pub const LEGACY_API_ROUTE_KEY: &str = "ANY /{proxy+}";

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
    pub fn load_balancer() -> LogicalId {
        LogicalId::new(&["load-balancing", "load-balancer"])
    }
    pub fn listener() -> LogicalId {
        LogicalId::new(&["load-balancing", "listener"])
    }
    pub fn target_group(service: &str) -> LogicalId {
        LogicalId::new(&["load-balancing", "target-group", service])
    }
    pub fn listener_rule(service: &str, n: usize) -> LogicalId {
        LogicalId::new(&["load-balancing", "listener-rule", &format!("{service}-{n}")])
    }
    pub fn vpc_link() -> LogicalId {
        LogicalId::new(&["gateway", "vpc-link"])
    }
    pub fn api() -> LogicalId {
        LogicalId::new(&["gateway", "api"])
    }
    pub fn integration() -> LogicalId {
        LogicalId::new(&["gateway", "integration"])
    }
    pub fn api_route() -> LogicalId {
        LogicalId::new(&["gateway", "route"])
    }
    pub fn api_stage() -> LogicalId {
        LogicalId::new(&["gateway", "stage"])
    }
    pub fn cluster() -> LogicalId {
        LogicalId::new(&["ecs", "cluster"])
    }
    pub fn execution_role() -> LogicalId {
        LogicalId::new(&["iam", "role", "task-execution"])
    }
    pub fn db_init_role() -> LogicalId {
        LogicalId::new(&["iam", "role", "db-init-execution"])
    }
    pub fn db_init_log_group() -> LogicalId {
        LogicalId::new(&["logs", "group", "db-init"])
    }
    pub fn boundary() -> LogicalId {
        LogicalId::new(&["iam", "policy", "boundary"])
    }
    pub fn deploy_role() -> LogicalId {
        LogicalId::new(&["iam", "role", "deploy"])
    }
    pub fn task_role(service: &str) -> LogicalId {
        LogicalId::new(&["iam", "role", &format!("task-{service}")])
    }
    pub fn log_group(service: &str) -> LogicalId {
        LogicalId::new(&["logs", "group", service])
    }
    pub fn db_subnet_group() -> LogicalId {
        LogicalId::new(&["database", "subnet-group"])
    }
    pub fn db_instance() -> LogicalId {
        LogicalId::new(&["database", "instance"])
    }
    pub fn repository(service: &str) -> LogicalId {
        LogicalId::new(&["registry", "repository", service])
    }
    pub fn topic(service: &str) -> LogicalId {
        LogicalId::new(&["messaging", "topic", service])
    }
    pub fn queue(service: &str) -> LogicalId {
        LogicalId::new(&["messaging", "queue", service])
    }
    pub fn dead_letter_queue(service: &str) -> LogicalId {
        LogicalId::new(&["messaging", "dead-letter-queue", service])
    }
    pub fn dead_letter_alarm(service: &str) -> LogicalId {
        LogicalId::new(&["messaging", "dead-letter-alarm", service])
    }
    pub fn subscription(consumer: &str, producer: &str) -> LogicalId {
        LogicalId::new(&[
            "messaging",
            "subscription",
            &format!("{consumer}-from-{producer}"),
        ])
    }
    pub fn stack_secret() -> LogicalId {
        LogicalId::new(&["secret", "stack"])
    }
    pub fn stack_outputs() -> LogicalId {
        LogicalId::new(&["secret", "outputs"])
    }
    pub fn signing_keys() -> LogicalId {
        LogicalId::new(&["secret", "signing-keys"])
    }
    pub fn public_keys() -> LogicalId {
        LogicalId::new(&["secret", "public-keys"])
    }
    pub fn service_secret(service: &str) -> LogicalId {
        LogicalId::new(&["secret", "service", service])
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

/// Name of the Secrets Manager secret that holds a stack's outputs and the
/// database's master password: the operators' record of the stack, which
/// no service reads.
pub fn secret_name(stack: &str) -> String {
    format!("techctl/{stack}")
}

/// The secret with the token signing key ring (the user service's).
pub fn signing_keys_name(stack: &str) -> String {
    format!("techctl/{stack}/signing-keys")
}

/// The secret with the ring's public JWK set (every service's).
pub fn public_keys_name(stack: &str) -> String {
    format!("techctl/{stack}/public-keys")
}

/// The secret with one service's credentials (its own and its tasks').
pub fn service_secret_name(stack: &str, service: &str) -> String {
    format!("techctl/{stack}/service/{service}")
}

/// Every secret name of the stack starts with this (the stack secret's
/// own name and a slash).
pub fn secret_prefix(stack: &str) -> String {
    format!("techctl/{stack}/")
}

/// The secret that is the stack's lock (one `up`, `down`, `deploy` or
/// `keys` at a time): outside the stack's prefix, so that `down` and the
/// stack's own roles never touch it.
pub fn lock_secret_name(stack: &str) -> String {
    format!("techctl-lock/{stack}")
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
    let nat_zones: Vec<&String> = match *bp.network.nat.get_ref() {
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
    out.extend(platform::load_balancing(bp, &zones));
    out.extend(platform::gateway(bp, &zones));
    out.extend(platform::compute(bp));
    out.extend(platform::registry(bp));
    out.extend(data::database(bp, &zones));
    out.extend(data::messaging(bp));
    out.extend(data::secret(bp, &zones, &nat_zones));
    out.extend(data::secrets(bp));
    out.extend(deploy::role(bp));
    out
}

/// The private subnets, one per zone: where everything of the stack runs.
fn private_subnets(zones: &[String]) -> BTreeSet<LogicalId> {
    zones.iter().map(|z| ids::subnet("private", z)).collect()
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
            // The services call each other through the listener too (the
            // order service prices orders at the product service).
            vec![
                Rule::tcp(ALB_LISTENER_PORT, group("vpc-link")),
                Rule::tcp(ALB_LISTENER_PORT, group("services")),
            ],
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
            // HTTPS out through the NAT gateway: AWS APIs, ECR and Mercado
            // Pago; the listener for calls to another service.
            vec![
                Rule::tcp(db_port, group("database")),
                Rule::tcp(ALB_LISTENER_PORT, group("alb")),
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

/// The tag that names the stack a resource belongs to.
pub const TAG_STACK: &str = "techctl:stack";
/// The tag that holds a resource's logical id.
pub const TAG_ID: &str = "techctl:id";

/// The tags every resource of a stack carries; the cloud is the only state
/// store.
pub fn tags(stack: &str, id: &LogicalId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_STACK.to_string(), stack.to_string()),
        (TAG_ID.to_string(), id.to_string()),
        ("Name".to_string(), format!("{stack}/{id}")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../../blueprints/techchallenge.toml");

    #[test]
    fn the_names_checked_are_the_names_the_expansion_gives() {
        use crate::plan::Spec;
        use blueprint::names;
        use std::collections::BTreeSet;

        let bp =
            blueprint::parse(std::path::Path::new("techchallenge.toml"), SHIPPED).expect("valid");
        let stack = bp.stack_name();
        let given: BTreeSet<(&str, String)> = desired(&bp)
            .into_iter()
            .filter_map(|r| match r.spec {
                Spec::LoadBalancer { name, .. } => Some(("load balancer", name)),
                Spec::TargetGroup { name, .. } => Some(("target group", name)),
                Spec::DbInstance { identifier, .. } => Some(("db instance", identifier)),
                Spec::DbSubnetGroup { name, .. } => Some(("db subnet group", name)),
                Spec::Queue { name, .. } => Some(("queue", name)),
                Spec::Role { name, .. } => Some(("role", name)),
                Spec::Alarm { name, .. } => Some(("alarm", name)),
                _ => None,
            })
            .collect();
        let mut checked = BTreeSet::from([
            ("load balancer", names::load_balancer(stack)),
            ("db instance", names::db_instance(stack)),
            ("db subnet group", names::db_subnet_group(stack)),
            ("role", names::execution_role(stack)),
            ("role", names::db_init_role(stack)),
        ]);
        for (service, definition) in bp.services() {
            checked.insert(("target group", names::target_group(stack, service)));
            checked.insert(("role", names::task_role(stack, service)));
            if !definition.consumes.is_empty() {
                checked.insert(("queue", names::queue(stack, service)));
                checked.insert(("queue", names::dead_letter_queue(stack, service)));
                checked.insert(("alarm", names::dead_letter_alarm(stack, service)));
            }
        }
        assert_eq!(given, checked);
    }
}
