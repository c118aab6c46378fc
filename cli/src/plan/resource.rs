//! Resources as data: a stable logical id, a kind, and a spec whose
//! references to other resources are logical ids, so that what the blueprint
//! wants and what AWS holds can be compared without knowing physical ids.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Serialize, Serializer};

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
        Self(format!("(not in stack: {physical_id})"))
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Vpc,
    Subnet,
    InternetGateway,
    ElasticIp,
    NatGateway,
    RouteTable,
    RouteTableAssociation,
    SecurityGroup,
    SecurityGroupRules,
    StackSecret,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Vpc,
        Kind::Subnet,
        Kind::InternetGateway,
        Kind::ElasticIp,
        Kind::NatGateway,
        Kind::RouteTable,
        Kind::RouteTableAssociation,
        Kind::SecurityGroup,
        Kind::SecurityGroupRules,
        Kind::StackSecret,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Vpc => "VPC",
            Kind::Subnet => "subnet",
            Kind::InternetGateway => "internet gateway",
            Kind::ElasticIp => "Elastic IP",
            Kind::NatGateway => "NAT gateway",
            Kind::RouteTable => "route table",
            Kind::RouteTableAssociation => "route table association",
            Kind::SecurityGroup => "security group",
            Kind::SecurityGroupRules => "security group rules",
            Kind::StackSecret => "stack secret",
        }
    }

    /// Fields AWS lets us change in place; a difference anywhere else means
    /// the resource is replaced.
    pub fn updatable(self, field: &str) -> bool {
        match self {
            Kind::Vpc => matches!(field, "dns_support" | "dns_hostnames"),
            Kind::RouteTable => field == "routes",
            Kind::SecurityGroupRules => matches!(field, "ingress" | "egress"),
            Kind::StackSecret => field != "name",
            _ => false,
        }
    }

    /// Deletion happens in waves: a resource is deleted only once every
    /// resource of an earlier wave is gone. The order is AWS's, which moto
    /// does not enforce: routes and associations before their tables, the NAT
    /// gateway before its Elastic IP is released, every public address
    /// released before the internet gateway is detached, rules revoked
    /// before groups that they name, and the VPC last. The stack secret goes
    /// after everything, so an interrupted `down` still has the keys.
    pub fn deletion_wave(self) -> u8 {
        match self {
            Kind::RouteTableAssociation | Kind::SecurityGroupRules => 0,
            Kind::RouteTable | Kind::NatGateway => 1,
            Kind::ElasticIp | Kind::SecurityGroup => 2,
            Kind::InternetGateway => 3,
            Kind::Subnet => 4,
            Kind::Vpc => 5,
            Kind::StackSecret => 6,
        }
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

/// A value written to the stack secret: a literal, or the physical id(s) of
/// other resources, known once they exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Text(String),
    Id(LogicalId),
    Ids(Vec<LogicalId>),
}

/// Whether the stack secret holds a usable JWT signing key. The key itself
/// never appears in a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeysState {
    Present,
    Missing,
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
    StackSecret {
        name: String,
        outputs: BTreeMap<String, Output>,
        jwt_keys: KeysState,
        scheduled_for_deletion: bool,
    },
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
            Spec::StackSecret { .. } => Kind::StackSecret,
        }
    }

    /// References that fix the resource's identity: if one of them is
    /// replaced, this resource must be replaced too.
    pub fn fixed_refs(&self) -> Vec<&LogicalId> {
        match self {
            Spec::Subnet { vpc, .. }
            | Spec::InternetGateway { vpc }
            | Spec::RouteTable { vpc, .. }
            | Spec::SecurityGroup { vpc, .. } => vec![vpc],
            Spec::NatGateway { subnet, elastic_ip } => vec![subnet, elastic_ip],
            Spec::RouteTableAssociation {
                route_table,
                subnet,
            } => vec![route_table, subnet],
            Spec::SecurityGroupRules { group, .. } => vec![group],
            Spec::Vpc { .. } | Spec::ElasticIp {} | Spec::StackSecret { .. } => vec![],
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
            Spec::StackSecret { outputs, .. } => outputs
                .values()
                .flat_map(|o| match o {
                    Output::Text(_) => vec![],
                    Output::Id(id) => vec![id],
                    Output::Ids(ids) => ids.iter().collect(),
                })
                .collect(),
            _ => vec![],
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
}
