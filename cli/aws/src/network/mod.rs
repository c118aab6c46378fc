//! EC2 networking: VPC, subnets, internet and NAT gateways, Elastic IPs,
//! route tables and their associations, security groups and their rules.
//!
//! This file observes; `change` creates, updates and deletes; `rules`
//! keeps security-group rules in line.

mod change;
mod rules;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, NatGatewayState, ResourceType, Tag, TagSpecification, VpcAttributeName,
};

pub use change::{create, delete, update};

use super::{Aws, AwsError, TAG_STACK, in_stack, logical_id};
use engine::plan::expand::ids;
use engine::plan::{LogicalId, Observed, Spec};
use rules::rules_of;

const NAT_AVAILABLE_DEADLINE: Duration = Duration::from_secs(15 * 60);
const NAT_DELETED_DEADLINE: Duration = Duration::from_secs(15 * 60);
const DEPENDENCY_DEADLINE: Duration = Duration::from_secs(10 * 60);

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Everything of the stack's in EC2, found by its tag.
pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let ec2 = &aws.ec2;
    let by_stack = || filter(&format!("tag:{TAG_STACK}"), stack);
    let (vpcs, subnets, igws, addresses, nats, tables, groups) = tokio::try_join!(
        async {
            sdk!(
                "DescribeVpcs",
                ec2.describe_vpcs().filters(by_stack()).send()
            )
        },
        async {
            sdk!(
                "DescribeSubnets",
                ec2.describe_subnets().filters(by_stack()).send()
            )
        },
        async {
            sdk!(
                "DescribeInternetGateways",
                ec2.describe_internet_gateways().filters(by_stack()).send()
            )
        },
        async {
            sdk!(
                "DescribeAddresses",
                ec2.describe_addresses().filters(by_stack()).send()
            )
        },
        async {
            sdk!(
                "DescribeNatGateways",
                ec2.describe_nat_gateways().filter(by_stack()).send()
            )
        },
        async {
            sdk!(
                "DescribeRouteTables",
                ec2.describe_route_tables().filters(by_stack()).send()
            )
        },
        async {
            sdk!(
                "DescribeSecurityGroups",
                ec2.describe_security_groups().filters(by_stack()).send()
            )
        },
    )?;

    // The tag filter is AWS's; what it lets through is checked here too
    // (an emulator may ignore it for some kinds, and a resource of another
    // stack must never be taken for one of ours).
    let ours = |tags: &[Tag]| in_stack(&tag_map(tags), stack);

    // Physical id → logical id, to turn AWS's references back into ours.
    let mut names: HashMap<String, LogicalId> = HashMap::new();
    let mut learn = |physical: Option<&str>, tags: &[Tag]| {
        if let Some(p) = physical {
            names.insert(p.to_string(), logical_id(&tag_map(tags), p));
        }
    };
    vpcs.vpcs().iter().for_each(|v| learn(v.vpc_id(), v.tags()));
    subnets
        .subnets()
        .iter()
        .for_each(|s| learn(s.subnet_id(), s.tags()));
    igws.internet_gateways()
        .iter()
        .for_each(|g| learn(g.internet_gateway_id(), g.tags()));
    addresses
        .addresses()
        .iter()
        .for_each(|a| learn(a.allocation_id(), a.tags()));
    nats.nat_gateways()
        .iter()
        .for_each(|n| learn(n.nat_gateway_id(), n.tags()));
    tables
        .route_tables()
        .iter()
        .for_each(|t| learn(t.route_table_id(), t.tags()));
    groups
        .security_groups()
        .iter()
        .for_each(|g| learn(g.group_id(), g.tags()));
    let name = |physical: Option<&str>| -> LogicalId {
        let p = physical.unwrap_or("?");
        names
            .get(p)
            .cloned()
            .unwrap_or_else(|| LogicalId::foreign(p))
    };

    let mut out = Vec::new();
    for vpc in vpcs.vpcs().iter().filter(|x| ours(x.tags())) {
        let Some(vpc_id) = vpc.vpc_id() else { continue };
        let (support, hostnames) = tokio::try_join!(
            vpc_attribute(ec2, vpc_id, VpcAttributeName::EnableDnsSupport),
            vpc_attribute(ec2, vpc_id, VpcAttributeName::EnableDnsHostnames),
        )?;
        out.push(observed(
            vpc_id,
            vpc.tags(),
            Spec::Vpc {
                cidr: vpc.cidr_block().unwrap_or_default().to_string(),
                dns_support: support,
                dns_hostnames: hostnames,
            },
            vpc.state().map(|s| s.as_str().to_string()),
        ));
    }
    for s in subnets.subnets().iter().filter(|x| ours(x.tags())) {
        let Some(id) = s.subnet_id() else { continue };
        out.push(observed(
            id,
            s.tags(),
            Spec::Subnet {
                vpc: name(s.vpc_id()),
                cidr: s.cidr_block().unwrap_or_default().to_string(),
                availability_zone: s.availability_zone().unwrap_or_default().to_string(),
            },
            None,
        ));
    }
    for g in igws.internet_gateways().iter().filter(|x| ours(x.tags())) {
        let Some(id) = g.internet_gateway_id() else {
            continue;
        };
        let attached = g.attachments().first().and_then(|a| a.vpc_id());
        out.push(observed(
            id,
            g.tags(),
            Spec::InternetGateway {
                vpc: name(attached),
            },
            None,
        ));
    }
    for a in addresses.addresses().iter().filter(|x| ours(x.tags())) {
        let Some(id) = a.allocation_id() else {
            continue;
        };
        out.push(observed(id, a.tags(), Spec::ElasticIp {}, None));
    }
    for n in nats.nat_gateways().iter().filter(|x| ours(x.tags())) {
        let Some(id) = n.nat_gateway_id() else {
            continue;
        };
        let state = n.state().cloned();
        if state == Some(NatGatewayState::Deleted) {
            continue; // AWS lists deleted NAT gateways for an hour.
        }
        let allocation = n
            .nat_gateway_addresses()
            .first()
            .and_then(|a| a.allocation_id());
        out.push(observed(
            id,
            n.tags(),
            Spec::NatGateway {
                subnet: name(n.subnet_id()),
                elastic_ip: name(allocation),
            },
            state.map(|s| s.as_str().to_string()),
        ));
    }
    for t in tables.route_tables().iter().filter(|x| ours(x.tags())) {
        let Some(id) = t.route_table_id() else {
            continue;
        };
        let routes = t
            .routes()
            .iter()
            .filter(|r| r.gateway_id() != Some("local"))
            .filter_map(|r| {
                let dest = r.destination_cidr_block()?.to_string();
                let target = r.nat_gateway_id().or(r.gateway_id());
                Some((dest, name(target)))
            })
            .collect();
        let table = logical_id(&tag_map(t.tags()), id);
        out.push(observed(
            id,
            t.tags(),
            Spec::RouteTable {
                vpc: name(t.vpc_id()),
                routes,
            },
            None,
        ));
        for assoc in t.associations().iter().filter(|a| a.main() != Some(true)) {
            let (Some(assoc_id), Some(subnet)) =
                (assoc.route_table_association_id(), assoc.subnet_id())
            else {
                continue;
            };
            let subnet = name(Some(subnet));
            let id = match subnet.as_str().strip_prefix("network/subnet/") {
                Some(subnet_name) => ids::association(subnet_name),
                None => LogicalId::new(&["untracked", assoc_id]),
            };
            out.push(Observed {
                id,
                physical_id: assoc_id.to_string(),
                spec: Spec::RouteTableAssociation {
                    route_table: table.clone(),
                    subnet,
                },
                tags: BTreeMap::new(),
                state: None,
                attributes: BTreeMap::new(),
            });
        }
    }
    for g in groups.security_groups().iter().filter(|x| ours(x.tags())) {
        let Some(id) = g.group_id() else { continue };
        let group = logical_id(&tag_map(g.tags()), id);
        out.push(observed(
            id,
            g.tags(),
            Spec::SecurityGroup {
                vpc: name(g.vpc_id()),
                group_name: g.group_name().unwrap_or_default().to_string(),
                description: g.description().unwrap_or_default().to_string(),
            },
            None,
        ));
        let rules_id = match group.as_str().strip_prefix("network/security-group/") {
            Some(role) => ids::security_group_rules(role),
            None => LogicalId::new(&["untracked", id, "rules"]),
        };
        out.push(Observed {
            id: rules_id,
            physical_id: rules_physical_id(id),
            spec: Spec::SecurityGroupRules {
                group,
                ingress: rules_of(g.ip_permissions(), &name),
                egress: rules_of(g.ip_permissions_egress(), &name),
            },
            tags: BTreeMap::new(),
            state: None,
            attributes: BTreeMap::new(),
        });
    }
    Ok(out)
}

fn observed(physical: &str, tags: &[Tag], spec: Spec, state: Option<String>) -> Observed {
    super::observed(physical, tag_map(tags), spec, state)
}

/// The rules of a group are not a resource of their own in AWS; they are
/// known by the group's id with a suffix.
fn rules_physical_id(group_id: &str) -> String {
    format!("{group_id}#rules")
}

fn group_of_rules(physical: &str) -> &str {
    physical.strip_suffix("#rules").unwrap_or(physical)
}

async fn vpc_attribute(
    ec2: &Client,
    vpc_id: &str,
    attribute: VpcAttributeName,
) -> Result<bool, AwsError> {
    let out = sdk!(
        "DescribeVpcAttribute",
        ec2.describe_vpc_attribute()
            .vpc_id(vpc_id)
            .attribute(attribute.clone())
            .send()
    )?;
    let value = match attribute {
        VpcAttributeName::EnableDnsHostnames => out.enable_dns_hostnames().and_then(|v| v.value()),
        _ => out.enable_dns_support().and_then(|v| v.value()),
    };
    Ok(value.unwrap_or(false))
}
