//! Resources as data: a stable logical id, a kind, and a spec whose
//! references to other resources are logical ids, so that what the blueprint
//! wants and what AWS holds can be compared without knowing physical ids.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Serialize, Serializer};

const FOREIGN: &str = "(not in stack: ";

/// A resource's name within its stack, such as `network/subnet/private-a`.
/// Stored on the resource as the `techctl:id` tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LogicalId(String);

impl LogicalId {
    /// Builds an id from lowercase segments; the engine builds these itself,
    /// so a malformed one is a bug.
    pub fn new(segments: &[&str]) -> Self {
        let id = segments.join("/");
        debug_assert!(Self::parse(&id).is_some(), "malformed logical id {id}");
        Self(id)
    }

    /// Accepts a tag value read back from AWS.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            });
        ok.then(|| Self(s.to_string()))
    }

    /// Stands for a physical resource the stack does not own (or no longer
    /// has), so that a reference to it never equals a desired reference.
    pub fn foreign(physical_id: &str) -> Self {
        Self(format!("{FOREIGN}{physical_id})"))
    }

    /// The physical id a [`LogicalId::foreign`] stands for.
    pub fn foreign_physical(&self) -> Option<&str> {
        self.0.strip_prefix(FOREIGN)?.strip_suffix(')')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogicalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Declares the kinds once, with the label people read.
macro_rules! kinds {
    ($($kind:ident => $label:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum Kind {
            $($kind,)*
        }

        impl Kind {
            pub const ALL: &[Kind] = &[$(Kind::$kind,)*];

            pub fn label(self) -> &'static str {
                match self {
                    $(Kind::$kind => $label,)*
                }
            }
        }
    };
}

kinds! {
    Vpc => "VPC",
    Subnet => "subnet",
    InternetGateway => "internet gateway",
    ElasticIp => "Elastic IP",
    NatGateway => "NAT gateway",
    RouteTable => "route table",
    RouteTableAssociation => "route table association",
    SecurityGroup => "security group",
    SecurityGroupRules => "security group rules",
    LoadBalancer => "load balancer",
    TargetGroup => "target group",
    Listener => "listener",
    ListenerRule => "listener rule",
    VpcLink => "VPC link",
    HttpApi => "HTTP API",
    Integration => "API integration",
    ApiRoute => "API route",
    ApiStage => "API stage",
    Cluster => "ECS cluster",
    Role => "IAM role",
    ManagedPolicy => "IAM managed policy",
    LogGroup => "log group",
    DbSubnetGroup => "DB subnet group",
    DbInstance => "RDS instance",
    Repository => "ECR repository",
    Topic => "SNS topic",
    Queue => "SQS queue",
    Subscription => "SNS subscription",
    Alarm => "CloudWatch alarm",
    StackSecret => "stack secret",
    StackOutputs => "stack outputs",
    Secret => "secret",
}

impl Kind {
    /// Fields AWS lets us change in place; a difference anywhere else means
    /// the resource is replaced.
    pub fn updatable(self, field: &str) -> bool {
        match self {
            Kind::Vpc => matches!(field, "dns_support" | "dns_hostnames"),
            Kind::RouteTable => field == "routes",
            Kind::SecurityGroupRules => matches!(field, "ingress" | "egress"),
            Kind::LoadBalancer | Kind::VpcLink => {
                matches!(field, "subnets" | "security_groups") && self == Kind::LoadBalancer
            }
            Kind::TargetGroup => {
                matches!(field, "health_check_path" | "deregistration_delay_seconds")
            }
            Kind::Listener => field == "default_status",
            Kind::ListenerRule => matches!(field, "paths" | "target_group"),
            Kind::HttpApi => field == "cors",
            Kind::Integration => matches!(field, "vpc_link" | "listener"),
            Kind::ApiRoute => matches!(field, "integration" | "route_key"),
            Kind::ApiStage => matches!(field, "auto_deploy" | "throttle"),
            Kind::Cluster => field == "container_insights",
            Kind::Role => matches!(field, "trust" | "policy" | "account_guard" | "boundary"),
            Kind::ManagedPolicy => field == "policy",
            Kind::LogGroup => field == "retention_days",
            Kind::DbSubnetGroup => field == "subnets",
            Kind::DbInstance => matches!(
                field,
                "engine_version"
                    | "instance_class"
                    | "allocated_storage_gb"
                    | "backup_retention_days"
                    | "security_group"
                    | "port"
            ),
            Kind::Repository => matches!(field, "scan_on_push" | "keep_images"),
            Kind::Queue => matches!(
                field,
                "visibility_timeout_seconds" | "retention_seconds" | "dead_letter" | "senders"
            ),
            Kind::Subscription => matches!(field, "events" | "raw_delivery"),
            // PutMetricAlarm replaces the whole alarm but its name.
            Kind::Alarm => field != "name",
            Kind::StackSecret => field != "name",
            Kind::StackOutputs => field == "outputs",
            Kind::Secret => matches!(field, "complete" | "scheduled_for_deletion"),
            Kind::Subnet
            | Kind::InternetGateway
            | Kind::ElasticIp
            | Kind::NatGateway
            | Kind::RouteTableAssociation
            | Kind::SecurityGroup
            | Kind::Topic => false,
        }
    }

    /// Whether AWS keeps tags on the resource itself; the rest live inside
    /// a tagged parent and are known by it.
    pub fn tagged(self) -> bool {
        !matches!(
            self,
            Kind::RouteTableAssociation
                | Kind::SecurityGroupRules
                | Kind::Integration
                | Kind::ApiRoute
                | Kind::Subscription
                | Kind::StackOutputs
        )
    }

    /// The kinds that must be gone before a resource of this kind can be
    /// deleted: AWS's real order, which moto does not enforce. Routes and
    /// integrations go before the VPC link, the VPC link, the load balancer,
    /// the database and the cluster's tasks before the subnets and security
    /// groups they hold network interfaces in, the NAT gateway before its
    /// Elastic IP, every public address before the internet gateway, and
    /// the VPC last. The stack secret outlives everything, so an
    /// interrupted `down` still has the keys and the database password.
    /// The walk holds a resource back only for those of these kinds that
    /// refer to it (see `apply::destroy_tasks`).
    pub fn deleted_after(self) -> &'static [Kind] {
        use Kind::*;
        match self {
            Integration => &[ApiRoute],
            HttpApi => &[ApiRoute, ApiStage, Integration],
            VpcLink => &[Integration, HttpApi],
            Listener => &[ListenerRule],
            TargetGroup => &[ListenerRule, Listener, Cluster],
            LoadBalancer => &[Listener],
            DbSubnetGroup => &[DbInstance],
            Topic | Queue => &[Subscription],
            Role | LogGroup => &[Cluster],
            RouteTable => &[RouteTableAssociation],
            ElasticIp => &[NatGateway],
            SecurityGroup => &[
                SecurityGroupRules,
                LoadBalancer,
                VpcLink,
                DbInstance,
                Cluster,
            ],
            InternetGateway => &[ElasticIp, NatGateway],
            Subnet => &[
                RouteTableAssociation,
                NatGateway,
                LoadBalancer,
                VpcLink,
                DbSubnetGroup,
                DbInstance,
                Cluster,
            ],
            Vpc => &[
                Subnet,
                SecurityGroup,
                InternetGateway,
                RouteTable,
                TargetGroup,
            ],
            // Nothing needs a secret gone first; its readers' roles go
            // before it so that no policy names a secret that is gone.
            Secret => &[Role, ManagedPolicy],
            // IAM refuses to delete a policy a role holds as its boundary.
            ManagedPolicy => &[Role],
            StackSecret => &[
                StackOutputs,
                Secret,
                Vpc,
                HttpApi,
                TargetGroup,
                DbSubnetGroup,
                Role,
                ManagedPolicy,
                LogGroup,
                Repository,
                Topic,
                Queue,
                Alarm,
            ],
            Cluster
            | Repository
            | ApiRoute
            | ApiStage
            | ListenerRule
            | Subscription
            | Alarm
            | RouteTableAssociation
            | SecurityGroupRules
            | NatGateway
            | DbInstance
            | StackOutputs => &[],
        }
    }

    /// How many kinds deep this kind sits in the deletion order: the order
    /// `down` lists resources in.
    pub fn deletion_wave(self) -> u8 {
        self.deleted_after()
            .iter()
            .map(|k| k.deletion_wave() + 1)
            .max()
            .unwrap_or(0)
    }

    /// Whether a resource of this kind must be gone before one of `other`
    /// is deleted, directly or through kinds in between.
    pub fn deleted_before(self, other: Kind) -> bool {
        other
            .deleted_after()
            .iter()
            .any(|k| *k == self || self.deleted_before(*k))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}

/// Where a security-group rule lets traffic come from or go to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    Group(LogicalId),
    Cidr(String),
}

/// One security-group rule. Descriptions are left out on purpose: AWS does
/// not count them in a rule's identity, and neither do we.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// `tcp`, `udp`, `icmp` or `-1` (all traffic).
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
}

impl Rule {
    pub fn tcp(port: u16, peer: Peer) -> Self {
        Self {
            protocol: "tcp".into(),
            from_port: port.into(),
            to_port: port.into(),
            peer,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ports = if self.protocol == "-1" {
            "all traffic".to_string()
        } else if self.from_port == self.to_port {
            format!("{} {}", self.protocol, self.from_port)
        } else {
            format!("{} {}-{}", self.protocol, self.from_port, self.to_port)
        };
        match &self.peer {
            Peer::Group(id) => write!(f, "{ports} with {id}"),
            Peer::Cidr(cidr) => write!(f, "{ports} with {cidr}"),
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A value that names other resources: a literal, the physical id of a
/// resource, one of its attributes (an ARN, a DNS name), or a list of these.
/// Used where AWS holds references as plain strings: the stack outputs,
/// IAM policies, queue policies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum Output {
    Text(String),
    Id(LogicalId),
    Attr { of: LogicalId, attr: String },
    List(Vec<Output>),
}

impl Output {
    pub fn attr(of: LogicalId, attr: &str) -> Self {
        Output::Attr {
            of,
            attr: attr.to_string(),
        }
    }

    pub fn ids(ids: impl IntoIterator<Item = LogicalId>) -> Self {
        Output::List(ids.into_iter().map(Output::Id).collect())
    }

    /// The resources this value names.
    pub fn refs(&self) -> Vec<&LogicalId> {
        match self {
            Output::Text(_) => vec![],
            Output::Id(id) | Output::Attr { of: id, .. } => vec![id],
            Output::List(items) => items.iter().flat_map(Output::refs).collect(),
        }
    }

    /// The value with every reference `resolve` knows replaced by its text:
    /// what AWS would hold if nothing it names changes.
    fn rendered(self, resolve: &dyn Fn(&Output) -> Option<String>) -> Output {
        match self {
            Output::List(items) => {
                Output::List(items.into_iter().map(|o| o.rendered(resolve)).collect())
            }
            Output::Text(text) => Output::Text(text),
            reference => match resolve(&reference) {
                Some(text) => Output::Text(text),
                None => reference,
            },
        }
    }
}

/// Whether the stack secret holds a generated credential (a JWT signing
/// key, the database password). The value itself never appears in a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeysState {
    Present,
    Missing,
}

/// A stage's throttling of every route: steady requests a second and the
/// burst it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Throttle {
    pub rate_per_second: u32,
    pub burst: u32,
}

/// The gateway's CORS answer, as the blueprint states it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cors {
    pub allow_origins: BTreeSet<String>,
    pub allow_methods: BTreeSet<String>,
    pub allow_headers: BTreeSet<String>,
    pub max_age_seconds: i32,
}

/// One statement of an IAM policy: these actions on these resources,
/// allowed or denied, where the conditions hold.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Statement {
    #[serde(skip_serializing_if = "Effect::is_allow")]
    pub effect: Effect,
    pub actions: BTreeSet<String>,
    pub resources: BTreeSet<Output>,
    /// Operator → condition key → the values it accepts, as IAM writes
    /// its `Condition` block.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// A policy document as IAM takes it, each reference rendered by `text`.
pub fn policy_document<E>(
    policy: &BTreeSet<Statement>,
    text: impl Fn(&Output) -> Result<String, E>,
) -> Result<serde_json::Value, E> {
    let statements = policy
        .iter()
        .map(|s| {
            let resources = s
                .resources
                .iter()
                .map(&text)
                .collect::<Result<Vec<_>, E>>()?;
            let mut statement = serde_json::json!({
                "Effect": s.effect.as_str(),
                "Action": s.actions.iter().collect::<Vec<_>>(),
                "Resource": resources,
            });
            if !s.conditions.is_empty() {
                statement["Condition"] = serde_json::json!(s.conditions);
            }
            Ok(statement)
        })
        .collect::<Result<Vec<_>, E>>()?;
    Ok(serde_json::json!({ "Version": "2012-10-17", "Statement": statements }))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

impl Effect {
    fn is_allow(&self) -> bool {
        *self == Effect::Allow
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

impl Statement {
    /// Allows `actions` on `resources`, unconditionally.
    pub fn allow<A: AsRef<str>>(
        actions: impl IntoIterator<Item = A>,
        resources: impl IntoIterator<Item = Output>,
    ) -> Statement {
        Statement {
            effect: Effect::Allow,
            actions: actions
                .into_iter()
                .map(|a| a.as_ref().to_string())
                .collect(),
            resources: resources.into_iter().collect(),
            conditions: BTreeMap::new(),
        }
    }

    /// The same, denied.
    pub fn denied(self) -> Statement {
        Statement {
            effect: Effect::Deny,
            ..self
        }
    }

    /// The same, where `key` compared by `operator` is one of `values`.
    pub fn when<V: AsRef<str>>(
        mut self,
        operator: &str,
        key: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Statement {
        self.conditions
            .entry(operator.to_string())
            .or_default()
            .entry(key.to_string())
            .or_default()
            .extend(values.into_iter().map(|v| v.as_ref().to_string()));
        self
    }
}

/// Who may assume a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trust {
    /// An AWS service, on this account's behalf (`ecs-tasks.amazonaws.com`).
    Service(String),
    /// GitHub Actions, with an OIDC token for the audience
    /// `sts.amazonaws.com` whose subject is exactly this.
    GitHub { subject: String },
}

/// Where a queue sends what it failed to deliver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The dead-letter queue's ARN.
    pub queue: Output,
    pub max_receive_count: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Spec {
    Vpc {
        cidr: String,
        dns_support: bool,
        dns_hostnames: bool,
    },
    Subnet {
        vpc: LogicalId,
        cidr: String,
        availability_zone: String,
    },
    InternetGateway {
        vpc: LogicalId,
    },
    ElasticIp {},
    NatGateway {
        subnet: LogicalId,
        elastic_ip: LogicalId,
    },
    RouteTable {
        vpc: LogicalId,
        /// Destination CIDR to the gateway (internet or NAT) it goes through.
        routes: BTreeMap<String, LogicalId>,
    },
    RouteTableAssociation {
        route_table: LogicalId,
        subnet: LogicalId,
    },
    SecurityGroup {
        vpc: LogicalId,
        group_name: String,
        description: String,
    },
    SecurityGroupRules {
        group: LogicalId,
        ingress: BTreeSet<Rule>,
        egress: BTreeSet<Rule>,
    },
    LoadBalancer {
        name: String,
        internal: bool,
        subnets: BTreeSet<LogicalId>,
        security_groups: BTreeSet<LogicalId>,
    },
    TargetGroup {
        name: String,
        vpc: LogicalId,
        port: u16,
        health_check_path: String,
        deregistration_delay_seconds: u32,
    },
    Listener {
        load_balancer: LogicalId,
        port: u16,
        /// What a request that matches no rule gets.
        default_status: u16,
    },
    ListenerRule {
        listener: LogicalId,
        priority: u32,
        /// Path patterns, at most five per rule (AWS's limit).
        paths: BTreeSet<String>,
        target_group: LogicalId,
    },
    VpcLink {
        name: String,
        subnets: BTreeSet<LogicalId>,
        security_groups: BTreeSet<LogicalId>,
    },
    HttpApi {
        name: String,
        cors: Cors,
    },
    Integration {
        api: LogicalId,
        vpc_link: LogicalId,
        listener: LogicalId,
    },
    ApiRoute {
        api: LogicalId,
        route_key: String,
        integration: LogicalId,
    },
    ApiStage {
        api: LogicalId,
        name: String,
        auto_deploy: bool,
        /// Default route throttling: requests a second, burst.
        throttle: Throttle,
    },
    Cluster {
        name: String,
        container_insights: bool,
    },
    Role {
        name: String,
        /// Who may assume the role.
        trust: Trust,
        /// Only this account's tasks may assume it (the `aws:SourceAccount`
        /// and `aws:SourceArn` conditions: AWS's guard against a confused
        /// deputy).
        account_guard: bool,
        /// The role's one inline policy: every right it has.
        policy: BTreeSet<Statement>,
        /// The managed policy (its ARN) that bounds what the role can
        /// ever be granted.
        boundary: Option<Output>,
    },
    /// A customer managed policy: the stack's permissions boundary.
    ManagedPolicy {
        name: String,
        policy: BTreeSet<Statement>,
    },
    LogGroup {
        name: String,
        retention_days: u32,
    },
    DbSubnetGroup {
        name: String,
        subnets: BTreeSet<LogicalId>,
    },
    DbInstance {
        identifier: String,
        engine_version: String,
        instance_class: String,
        allocated_storage_gb: u32,
        backup_retention_days: u32,
        port: u16,
        master_username: String,
        database_name: String,
        encrypted: bool,
        publicly_accessible: bool,
        subnet_group: LogicalId,
        security_group: LogicalId,
    },
    Repository {
        name: String,
        scan_on_push: bool,
        keep_images: u32,
    },
    Topic {
        name: String,
    },
    Queue {
        name: String,
        visibility_timeout_seconds: u32,
        retention_seconds: u32,
        dead_letter: Option<DeadLetter>,
        /// Topics (ARNs) allowed to send to the queue.
        senders: BTreeSet<Output>,
    },
    Subscription {
        topic: LogicalId,
        queue: LogicalId,
        /// Event names let through by the filter policy.
        events: BTreeSet<String>,
        /// The queue gets the message as published, not wrapped in SNS's
        /// envelope.
        raw_delivery: bool,
    },
    /// Raised while a queue holds visible messages: on a dead-letter queue,
    /// a parked event an operator must look at (`techctl events`).
    Alarm {
        name: String,
        /// The watched queue's name (the metric's `QueueName` dimension).
        queue_name: String,
        /// Seconds per evaluated data point.
        period_seconds: u32,
    },
    StackSecret {
        name: String,
        database_password: KeysState,
        scheduled_for_deletion: bool,
    },
    StackOutputs {
        secret: LogicalId,
        outputs: BTreeMap<String, Output>,
    },
    /// A secret beside the stack secret, each readable only by the roles
    /// that need what it holds.
    Secret {
        name: String,
        holds: SecretHolds,
        /// Whether what `up` makes for it is there: the key ring, the
        /// public set in step with the ring, the service's database
        /// password. Values operators set are never part of it.
        complete: KeysState,
        scheduled_for_deletion: bool,
    },
}

/// What a [`Spec::Secret`] is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecretHolds {
    /// The token signing key ring, private halves included: the user
    /// service's alone. `techctl keys` changes it.
    SigningKeys,
    /// The ring's public JWK set, which every service verifies tokens with.
    PublicKeys,
    /// One service's credentials: its database role's password (made by
    /// `up`) and what operators set with `techctl secrets`.
    Service(String),
}

impl Spec {
    pub fn kind(&self) -> Kind {
        match self {
            Spec::Vpc { .. } => Kind::Vpc,
            Spec::Subnet { .. } => Kind::Subnet,
            Spec::InternetGateway { .. } => Kind::InternetGateway,
            Spec::ElasticIp {} => Kind::ElasticIp,
            Spec::NatGateway { .. } => Kind::NatGateway,
            Spec::RouteTable { .. } => Kind::RouteTable,
            Spec::RouteTableAssociation { .. } => Kind::RouteTableAssociation,
            Spec::SecurityGroup { .. } => Kind::SecurityGroup,
            Spec::SecurityGroupRules { .. } => Kind::SecurityGroupRules,
            Spec::LoadBalancer { .. } => Kind::LoadBalancer,
            Spec::TargetGroup { .. } => Kind::TargetGroup,
            Spec::Listener { .. } => Kind::Listener,
            Spec::ListenerRule { .. } => Kind::ListenerRule,
            Spec::VpcLink { .. } => Kind::VpcLink,
            Spec::HttpApi { .. } => Kind::HttpApi,
            Spec::Integration { .. } => Kind::Integration,
            Spec::ApiRoute { .. } => Kind::ApiRoute,
            Spec::ApiStage { .. } => Kind::ApiStage,
            Spec::Cluster { .. } => Kind::Cluster,
            Spec::Role { .. } => Kind::Role,
            Spec::ManagedPolicy { .. } => Kind::ManagedPolicy,
            Spec::LogGroup { .. } => Kind::LogGroup,
            Spec::DbSubnetGroup { .. } => Kind::DbSubnetGroup,
            Spec::DbInstance { .. } => Kind::DbInstance,
            Spec::Repository { .. } => Kind::Repository,
            Spec::Topic { .. } => Kind::Topic,
            Spec::Queue { .. } => Kind::Queue,
            Spec::Subscription { .. } => Kind::Subscription,
            Spec::Alarm { .. } => Kind::Alarm,
            Spec::StackSecret { .. } => Kind::StackSecret,
            Spec::StackOutputs { .. } => Kind::StackOutputs,
            Spec::Secret { .. } => Kind::Secret,
        }
    }

    /// References that fix the resource's identity: if one of them is
    /// replaced, this resource must be replaced too.
    pub fn fixed_refs(&self) -> Vec<&LogicalId> {
        match self {
            Spec::Subnet { vpc, .. }
            | Spec::InternetGateway { vpc }
            | Spec::RouteTable { vpc, .. }
            | Spec::SecurityGroup { vpc, .. }
            | Spec::TargetGroup { vpc, .. } => vec![vpc],
            Spec::NatGateway { subnet, elastic_ip } => vec![subnet, elastic_ip],
            Spec::RouteTableAssociation {
                route_table,
                subnet,
            } => vec![route_table, subnet],
            Spec::SecurityGroupRules { group, .. } => vec![group],
            Spec::Listener { load_balancer, .. } => vec![load_balancer],
            Spec::ListenerRule { listener, .. } => vec![listener],
            Spec::VpcLink {
                subnets,
                security_groups,
                ..
            } => subnets.iter().chain(security_groups).collect(),
            Spec::Integration { api, .. }
            | Spec::ApiRoute { api, .. }
            | Spec::ApiStage { api, .. } => vec![api],
            Spec::DbInstance { subnet_group, .. } => vec![subnet_group],
            Spec::Subscription { topic, queue, .. } => vec![topic, queue],
            Spec::StackOutputs { secret, .. } => vec![secret],
            Spec::Vpc { .. }
            | Spec::ElasticIp {}
            | Spec::LoadBalancer { .. }
            | Spec::HttpApi { .. }
            | Spec::Cluster { .. }
            | Spec::Role { .. }
            | Spec::ManagedPolicy { .. }
            | Spec::LogGroup { .. }
            | Spec::DbSubnetGroup { .. }
            | Spec::Repository { .. }
            | Spec::Topic { .. }
            | Spec::Queue { .. }
            | Spec::Alarm { .. }
            | Spec::StackSecret { .. }
            | Spec::Secret { .. } => vec![],
        }
    }

    /// References held in fields that can be changed in place.
    pub fn mutable_refs(&self) -> Vec<&LogicalId> {
        match self {
            Spec::RouteTable { routes, .. } => routes.values().collect(),
            Spec::SecurityGroupRules {
                ingress, egress, ..
            } => ingress
                .iter()
                .chain(egress)
                .filter_map(|r| match &r.peer {
                    Peer::Group(id) => Some(id),
                    Peer::Cidr(_) => None,
                })
                .collect(),
            Spec::LoadBalancer {
                subnets,
                security_groups,
                ..
            } => subnets.iter().chain(security_groups).collect(),
            Spec::ListenerRule { target_group, .. } => vec![target_group],
            Spec::Integration {
                vpc_link, listener, ..
            } => vec![vpc_link, listener],
            Spec::ApiRoute { integration, .. } => vec![integration],
            Spec::Role {
                policy, boundary, ..
            } => policy
                .iter()
                .flat_map(|s| s.resources.iter().flat_map(Output::refs))
                .chain(boundary.iter().flat_map(Output::refs))
                .collect(),
            Spec::ManagedPolicy { policy, .. } => policy
                .iter()
                .flat_map(|s| s.resources.iter().flat_map(Output::refs))
                .collect(),
            Spec::DbSubnetGroup { subnets, .. } => subnets.iter().collect(),
            Spec::DbInstance { security_group, .. } => vec![security_group],
            Spec::Queue {
                dead_letter,
                senders,
                ..
            } => dead_letter
                .iter()
                .flat_map(|d| d.queue.refs())
                .chain(senders.iter().flat_map(Output::refs))
                .collect(),
            Spec::StackOutputs { outputs, .. } => outputs.values().flat_map(Output::refs).collect(),
            _ => vec![],
        }
    }

    /// Turns the physical ids read back from AWS into references to the
    /// resources that carry them, once the whole stack has been observed.
    /// `lookup` knows every observed physical id and attribute.
    pub fn relink(&mut self, lookup: &dyn Fn(&str) -> Option<Output>) {
        let id = |id: &mut LogicalId| {
            // A resource may be named by its id or by an attribute (a
            // queue by its URL or its ARN): either way it is that resource.
            if let Some(Output::Id(found) | Output::Attr { of: found, .. }) =
                id.foreign_physical().and_then(lookup)
            {
                *id = found;
            }
        };
        let set = |ids: &mut BTreeSet<LogicalId>| {
            *ids = std::mem::take(ids)
                .into_iter()
                .map(|mut i| {
                    id(&mut i);
                    i
                })
                .collect();
        };
        match self {
            Spec::Subnet { vpc, .. }
            | Spec::InternetGateway { vpc }
            | Spec::RouteTable { vpc, .. }
            | Spec::SecurityGroup { vpc, .. }
            | Spec::TargetGroup { vpc, .. } => id(vpc),
            Spec::LoadBalancer {
                subnets,
                security_groups,
                ..
            }
            | Spec::VpcLink {
                subnets,
                security_groups,
                ..
            } => {
                set(subnets);
                set(security_groups);
            }
            Spec::Listener { load_balancer, .. } => id(load_balancer),
            Spec::ListenerRule {
                listener,
                target_group,
                ..
            } => {
                id(listener);
                id(target_group);
            }
            Spec::Integration {
                api,
                vpc_link,
                listener,
            } => {
                id(api);
                id(vpc_link);
                id(listener);
            }
            Spec::ApiRoute {
                api, integration, ..
            } => {
                id(api);
                id(integration);
            }
            Spec::ApiStage { api, .. } => id(api),
            Spec::DbSubnetGroup { subnets, .. } => set(subnets),
            Spec::DbInstance {
                subnet_group,
                security_group,
                ..
            } => {
                id(subnet_group);
                id(security_group);
            }
            Spec::Subscription { topic, queue, .. } => {
                id(topic);
                id(queue);
            }
            _ => {}
        }
    }

    /// Writes the references held as text in AWS (ARNs in policies, ids in
    /// the stack outputs) as that text, where `resolve` knows it, so that
    /// they compare with what AWS holds.
    pub fn render_outputs(&mut self, resolve: &dyn Fn(&Output) -> Option<String>) {
        let set = |items: &mut BTreeSet<Output>| {
            *items = std::mem::take(items)
                .into_iter()
                .map(|o| o.rendered(resolve))
                .collect();
        };
        let one =
            |o: &mut Output| *o = std::mem::replace(o, Output::List(vec![])).rendered(resolve);
        match self {
            Spec::Role {
                policy, boundary, ..
            } => {
                *policy = std::mem::take(policy)
                    .into_iter()
                    .map(|mut s| {
                        set(&mut s.resources);
                        s
                    })
                    .collect();
                if let Some(b) = boundary {
                    one(b);
                }
            }
            Spec::ManagedPolicy { policy, .. } => {
                *policy = std::mem::take(policy)
                    .into_iter()
                    .map(|mut s| {
                        set(&mut s.resources);
                        s
                    })
                    .collect();
            }
            Spec::Queue {
                dead_letter,
                senders,
                ..
            } => {
                if let Some(d) = dead_letter {
                    one(&mut d.queue);
                }
                set(senders);
            }
            Spec::StackOutputs { outputs, .. } => outputs.values_mut().for_each(one),
            _ => {}
        }
    }

    /// The spec's fields by name, for the field-by-field diff.
    pub fn fields(&self) -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => {
                map.into_iter().filter(|(k, _)| k != "kind").collect()
            }
            _ => BTreeMap::new(),
        }
    }
}

/// A resource the blueprint wants.
#[derive(Clone, Debug, Serialize)]
pub struct Resource {
    pub id: LogicalId,
    pub spec: Spec,
    /// Ordering the spec does not show: a NAT gateway needs the internet
    /// gateway attached before it can become available.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<LogicalId>,
}

impl Resource {
    pub fn new(id: LogicalId, spec: Spec) -> Self {
        Self {
            id,
            spec,
            after: Vec::new(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.spec.kind()
    }

    /// Everything this resource must wait for when it is created.
    pub fn deps(&self) -> BTreeSet<&LogicalId> {
        let mut deps: BTreeSet<&LogicalId> = self.spec.fixed_refs().into_iter().collect();
        deps.extend(self.spec.mutable_refs());
        deps.extend(self.after.iter());
        deps
    }
}

/// A resource found in AWS by its stack tag.
#[derive(Clone, Debug, Serialize)]
pub struct Observed {
    pub id: LogicalId,
    pub physical_id: String,
    /// The spec as AWS holds it, with physical references turned back into
    /// logical ids.
    pub spec: Spec,
    pub tags: BTreeMap<String, String>,
    /// AWS's own word for its state, where it has one (`available`, `pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Values other resources refer to besides the physical id: `arn`,
    /// `dns_name`, `endpoint`, `url`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Observed {
    pub fn with_attribute(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.insert(name.to_string(), value.into());
        self
    }
}
