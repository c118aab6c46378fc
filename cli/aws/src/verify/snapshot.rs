//! What the evaluator reads: the stack as AWS holds it, as plain data.
//!
//! Everything is known by its AWS id or ARN. Nothing here comes from the
//! blueprint; `crate::verify::read` fills it from AWS, and tests build it
//! by hand.

use serde_json::Value;

/// The stack as AWS holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub stack: String,
    pub region: String,
    pub vpc_id: Option<String>,
    pub subnets: Vec<Subnet>,
    pub route_tables: Vec<RouteTable>,
    /// Internet gateways attached to the VPC.
    pub internet_gateways: Vec<String>,
    pub nat_gateways: Vec<NatGateway>,
    pub vpc_endpoints: Vec<VpcEndpoint>,
    pub security_groups: Vec<SecurityGroup>,
    pub load_balancer: Option<LoadBalancer>,
    pub target_groups: Vec<TargetGroup>,
    pub api: Option<HttpApi>,
    pub vpc_links: Vec<VpcLink>,
    pub services: Vec<Service>,
    pub database: Option<Database>,
    /// The stack's roles (IAM path `/techctl/<stack>/`) and any other role
    /// a service runs with.
    pub roles: Vec<Role>,
    /// The stack secret: the outputs and the database's master password.
    pub secret_arn: Option<String>,
    /// The token signing key ring (the user service's alone).
    pub signing_keys_arn: Option<String>,
    /// The ring's public set (every service's).
    pub public_keys_arn: Option<String>,
    /// The role the database set-up task starts with: the only one that
    /// may read the master password.
    pub db_init_role_arn: Option<String>,
    /// The role GitHub Actions deploys with, if there is one.
    pub deploy_role: Option<Role>,
    /// The GitHub token subject the blueprint lets deploy
    /// (`repo:OWNER/REPO:ref:refs/heads/BRANCH`), if it lets one.
    pub deploy_subject: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub cidr: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteTable {
    pub id: String,
    /// The `techctl:id` tag, when it has one; otherwise the id.
    pub name: String,
    /// The VPC's main table serves every subnet without an association.
    pub main: bool,
    /// Subnets explicitly associated with the table.
    pub subnets: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub destination: Destination,
    pub target: RouteTarget,
    /// False for a blackhole route (its target is gone).
    pub active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    Cidr(String),
    /// A managed prefix list, as gateway endpoints (S3) route to.
    PrefixList(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    Local,
    InternetGateway(String),
    NatGateway(String),
    VpcEndpoint(String),
    Other(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NatGateway {
    pub id: String,
    pub subnet: String,
    /// `available` when it forwards traffic.
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    Interface,
    Gateway,
    Other(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct VpcEndpoint {
    pub id: String,
    /// `com.amazonaws.<region>.<service>`.
    pub service_name: String,
    pub kind: EndpointKind,
    pub state: String,
    /// Interface endpoints: whether the service's usual name resolves to
    /// the endpoint, which the tasks rely on (they use default endpoints).
    pub private_dns: bool,
    pub subnets: Vec<String>,
    pub route_tables: Vec<String>,
    pub security_groups: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    /// The stack's role of the group (`vpc-link`, `alb`, `services`,
    /// `database`) from its `techctl:id` tag.
    pub role: Option<String>,
    /// Tagged with the stack.
    pub in_stack: bool,
    pub ingress: Vec<SgRule>,
    pub egress: Vec<SgRule>,
}

/// One permission of a group for one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgRule {
    /// `tcp`, `udp`, `icmp`, a protocol number, or `-1` for all.
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Group(String),
    /// IPv4 or IPv6.
    Cidr(String),
    PrefixList(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub internal: bool,
    pub security_groups: Vec<String>,
    pub subnets: Vec<String>,
    pub listeners: Vec<Listener>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listener {
    pub arn: String,
    pub port: u16,
    pub rules: Vec<ListenerRule>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListenerRule {
    pub arn: String,
    /// `None` for the listener's default rule.
    pub priority: Option<u32>,
    pub path_patterns: Vec<String>,
    /// Conditions other than the path (host, header, …): a request only
    /// matches when it meets them too, which verify cannot promise.
    pub other_conditions: usize,
    /// Target groups the rule forwards to; empty for a fixed response or
    /// a redirect.
    pub forward_to: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    pub port: u16,
    pub vpc_id: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpApi {
    pub id: String,
    pub routes: Vec<ApiRoute>,
    pub integrations: Vec<Integration>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiRoute {
    pub id: String,
    pub key: String,
    /// `integrations/<id>`.
    pub target: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Integration {
    pub id: String,
    /// `HTTP_PROXY`, `AWS_PROXY`, …
    pub integration_type: String,
    /// `VPC_LINK` or `INTERNET`.
    pub connection_type: String,
    pub connection_id: Option<String>,
    /// For a private integration: the ALB listener's ARN.
    pub uri: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct VpcLink {
    pub id: String,
    pub status: String,
    pub security_groups: Vec<String>,
    pub subnets: Vec<String>,
}

/// Where a service's facts were read from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceSource {
    /// The running ECS service and its task definition.
    EcsService,
    /// Not deployed yet: what the stack outputs say its tasks will get
    /// (the same values `techctl deploy` uses).
    #[default]
    StackOutputs,
}

/// A service of the stack, with what its tasks run as and reach.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    pub name: String,
    pub source: ServiceSource,
    /// The port the tasks listen on, which the ALB sends traffic to.
    pub port: u16,
    pub task_role_arn: Option<String>,
    pub execution_role_arn: Option<String>,
    pub security_groups: Vec<String>,
    pub subnets: Vec<String>,
    pub assign_public_ip: bool,
    pub target_group_arn: Option<String>,
    pub repository_arn: Option<String>,
    /// As DescribeLogGroups gives it (ending in `:*`) or without the suffix.
    pub log_group_arn: Option<String>,
    pub topic_arn: Option<String>,
    pub queue_arn: Option<String>,
    pub dead_letter_queue_arn: Option<String>,
    /// The service's own secret (its database password, operators' values).
    pub secret_arn: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Database {
    pub id: String,
    pub port: u16,
    pub security_groups: Vec<String>,
    pub subnets: Vec<String>,
    pub publicly_accessible: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Role {
    pub name: String,
    pub arn: String,
    pub path: String,
    pub trust_policy: Value,
    /// Inline and attached policies.
    pub policies: Vec<Policy>,
    /// The permissions boundary, if the role has one (named `boundary
    /// <arn>`), and its ARN.
    pub boundary: Option<Policy>,
    pub boundary_arn: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// `inline <name>` or `managed <arn>`: how a result names it.
    pub name: String,
    pub document: Value,
}

impl Snapshot {
    pub fn group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups.iter().find(|g| g.id == id)
    }

    /// How results name a group: its stack role, else its name, else its id.
    pub fn group_label(&self, id: &str) -> String {
        match self.group(id) {
            Some(g) => g
                .role
                .clone()
                .or_else(|| (!g.name.is_empty()).then(|| g.name.clone()))
                .unwrap_or_else(|| id.to_string()),
            None => id.to_string(),
        }
    }

    pub fn subnet_cidrs(&self, subnets: &[String]) -> Vec<String> {
        subnets
            .iter()
            .filter_map(|id| self.subnets.iter().find(|s| &s.id == id))
            .map(|s| s.cidr.clone())
            .collect()
    }

    pub fn role_by_arn(&self, arn: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.arn == arn)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The route table that serves a subnet: its explicit association,
    /// else the VPC's main table.
    pub fn route_table_of(&self, subnet: &str) -> Option<&RouteTable> {
        self.route_tables
            .iter()
            .find(|t| t.subnets.iter().any(|s| s == subnet))
            .or_else(|| self.route_tables.iter().find(|t| t.main))
    }
}
