//! AWS's clock, played back: slow resources stay in their real
//! intermediate states for the time `cli/engine/aws-clock.toml` gives,
//! scaled, where moto makes everything ready (or gone) at once.
//!
//! A NAT gateway is `pending`, then `deleting`; a load balancer
//! `provisioning`, and its network interfaces stay in use after its
//! deletion; a VPC link `PENDING`, then `DELETING`; a DB instance
//! `creating` (with no endpoint yet), `backing-up`, `modifying` after a
//! change applied at once, then `deleting`; an ECS
//! deployment `IN_PROGRESS` with its tasks pending. While a
//! deleted resource still holds its subnets, security groups or DB subnet
//! group, deleting those is refused as AWS refuses it.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::Value;

use super::{Request, Service, Verdict};

/// The table shared with techctl.
const TABLE: &str = include_str!("../../../cli/engine/aws-clock.toml");

/// Seconds of `state` of `resource` in the table (`db-instance`,
/// `creating`).
pub fn typical(resource: &str, state: &str) -> Duration {
    static TABLE_VALUES: OnceLock<BTreeMap<String, BTreeMap<String, u64>>> = OnceLock::new();
    let table = TABLE_VALUES.get_or_init(|| {
        toml::from_str(TABLE).unwrap_or_else(|e| panic!("aws-clock.toml is malformed: {e}"))
    });
    let seconds = table
        .get(resource)
        .and_then(|states| states.get(state))
        .unwrap_or_else(|| panic!("aws-clock.toml has no {resource}.{state}"));
    Duration::from_secs(*seconds)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slow {
    NatGateway,
    LoadBalancer,
    VpcLink,
    DbInstance,
}

/// A slow resource the proxy saw made, and what it holds.
#[derive(Clone, Debug)]
struct Held {
    id: String,
    slow: Slow,
    born: Instant,
    /// When its deletion was accepted.
    deleted: Option<Instant>,
    /// When a change applied at once was accepted (a DB instance).
    modified: Option<Instant>,
    groups: Vec<String>,
    subnets: Vec<String>,
    /// Its DB subnet group or its NAT gateway's Elastic IP allocation.
    other: Option<String>,
    /// Its last description, to answer for it while it is being deleted.
    last_seen: Option<String>,
}

/// The resources of one proxy on a clock `scale` times AWS's.
pub(super) struct Clock {
    scale: f64,
    held: Vec<Held>,
    /// ECS deployments (their ids) and when they started.
    deployments: Vec<(String, Instant)>,
}

impl Clock {
    pub(super) fn new(scale: f64) -> Clock {
        Clock {
            scale,
            held: Vec::new(),
            deployments: Vec::new(),
        }
    }

    fn of(&self, resource: &str, state: &str) -> Duration {
        typical(resource, state).mul_f64(self.scale)
    }

    /// Where a made resource is: `None` once ready.
    fn making(&self, held: &Held) -> Option<&'static str> {
        let age = held.born.elapsed();
        match held.slow {
            Slow::NatGateway => (age < self.of("nat-gateway", "pending")).then_some("pending"),
            Slow::LoadBalancer => {
                (age < self.of("load-balancer", "provisioning")).then_some("provisioning")
            }
            Slow::VpcLink => (age < self.of("vpc-link", "pending")).then_some("PENDING"),
            Slow::DbInstance => {
                let creating = self.of("db-instance", "creating");
                let modifying = self.of("db-instance", "modifying");
                if age < creating {
                    Some("creating")
                } else if age < creating + self.of("db-instance", "backing-up") {
                    Some("backing-up")
                } else if held.modified.is_some_and(|at| at.elapsed() < modifying) {
                    Some("modifying")
                } else {
                    None
                }
            }
        }
    }

    /// Whether a deleted resource still holds on to what it used.
    fn dying(&self, held: &Held) -> bool {
        let Some(at) = held.deleted else {
            return false;
        };
        let lasts = match held.slow {
            Slow::NatGateway => self.of("nat-gateway", "deleting"),
            Slow::LoadBalancer => self.of("load-balancer", "interfaces-in-use"),
            Slow::VpcLink => self.of("vpc-link", "deleting"),
            Slow::DbInstance => self.of("db-instance", "deleting"),
        };
        at.elapsed() < lasts
    }

    fn find(&self, slow: Slow, id: &str) -> Option<&Held> {
        self.held
            .iter()
            .rev()
            .find(|h| h.slow == slow && h.id == id)
    }

    fn find_mut(&mut self, slow: Slow, id: &str) -> Option<&mut Held> {
        self.held
            .iter_mut()
            .rev()
            .find(|h| h.slow == slow && h.id == id)
    }

    /// A resource being deleted that still holds what `holds` picks.
    fn dying_holder(&self, holds: impl Fn(&Held) -> bool) -> Option<&Held> {
        self.held.iter().find(|h| self.dying(h) && holds(h))
    }

    /// AWS's refusal of a request while something is still being made or
    /// still being deleted.
    pub(super) fn refuse(&self, request: &Request<'_>) -> Option<Verdict> {
        match (request.service, request.operation) {
            (Service::Ec2, "DeleteSecurityGroup") => {
                let group = request.form("GroupId")?;
                let holder = self.dying_holder(|h| h.groups.iter().any(|g| g == group))?;
                Some(Verdict::new(
                    "DependencyViolation",
                    format!("resource {group} has a dependent object"),
                    format!(
                        "{} {} is being deleted and its network interfaces are still in {group}",
                        noun(holder.slow),
                        holder.id
                    ),
                ))
            }
            (Service::Ec2, "DeleteSubnet") => {
                let subnet = request.form("SubnetId")?;
                let holder = self.dying_holder(|h| h.subnets.iter().any(|s| s == subnet))?;
                Some(Verdict::new(
                    "DependencyViolation",
                    format!("The subnet '{subnet}' has dependencies and cannot be deleted."),
                    format!(
                        "{} {} is being deleted and still has a network interface in {subnet}",
                        noun(holder.slow),
                        holder.id
                    ),
                ))
            }
            (Service::Ec2, "ReleaseAddress") => {
                let allocation = request.form("AllocationId")?;
                let holder = self.held.iter().find(|h| {
                    h.slow == Slow::NatGateway
                        && (self.dying(h) || (h.deleted.is_none()))
                        && h.other.as_deref() == Some(allocation)
                })?;
                Some(Verdict::new(
                    "InvalidIPAddress.InUse",
                    format!("Address {allocation} is in use."),
                    format!("NAT gateway {} still holds {allocation}", holder.id),
                ))
            }
            (Service::Rds, "DeleteDBSubnetGroup") => {
                let group = request.form("DBSubnetGroupName")?;
                let holder = self.held.iter().find(|h| {
                    h.slow == Slow::DbInstance && self.dying(h) && h.other.as_deref() == Some(group)
                })?;
                Some(Verdict::new(
                    "InvalidDBSubnetGroupStateFault",
                    format!(
                        "Cannot delete the subnet group '{group}' because at least one database instance: {} is still using it.",
                        holder.id
                    ),
                    format!("DB instance {} is still being deleted", holder.id),
                ))
            }
            (Service::Rds, "ModifyDBInstance" | "DeleteDBInstance") => {
                let id = request.form("DBInstanceIdentifier")?;
                let held = self.find(Slow::DbInstance, id)?;
                let state = self.making(held)?;
                Some(Verdict::new(
                    "InvalidDBInstanceState",
                    format!("Instance {id} is not in available state (it is {state})."),
                    format!("DB instance {id} is {state}"),
                ))
            }
            _ => None,
        }
    }

    /// Takes note of a slow resource moto made or deleted (`answer` is
    /// moto's, successful).
    pub(super) fn observe(&mut self, request: &Request<'_>, answer: &[u8]) {
        let text = String::from_utf8_lossy(answer);
        let now = Instant::now();
        let listed = |prefix: &str| -> Vec<String> {
            request
                .params
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .collect()
        };
        let made = |slow, id: String, groups, subnets, other| Held {
            id,
            slow,
            born: now,
            deleted: None,
            modified: None,
            groups,
            subnets,
            other,
            last_seen: None,
        };
        match (request.service, request.operation) {
            (Service::Ec2, "CreateNatGateway") => {
                if let Some(id) = between(&text, "<natGatewayId>", "</natGatewayId>") {
                    let subnets = request.form("SubnetId").map(str::to_string);
                    let allocation = request.form("AllocationId").map(str::to_string);
                    self.held.push(made(
                        Slow::NatGateway,
                        id,
                        Vec::new(),
                        subnets.into_iter().collect(),
                        allocation,
                    ));
                }
            }
            (Service::Elbv2, "CreateLoadBalancer") => {
                if let Some(arn) = between(&text, "<LoadBalancerArn>", "</LoadBalancerArn>") {
                    let groups = listed("SecurityGroups.member.");
                    let subnets = listed("Subnets.member.");
                    self.held
                        .push(made(Slow::LoadBalancer, arn, groups, subnets, None));
                }
            }
            (Service::ApiGatewayV2, "CreateVpcLink") => {
                let link: Value = serde_json::from_slice(answer).unwrap_or_default();
                let strings = |key: &str| -> Vec<String> {
                    link[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                };
                if let Some(id) = link["vpcLinkId"].as_str() {
                    let mut held = made(
                        Slow::VpcLink,
                        id.to_string(),
                        strings("securityGroupIds"),
                        strings("subnetIds"),
                        None,
                    );
                    held.last_seen = Some(link.to_string());
                    self.held.push(held);
                }
            }
            (Service::Rds, "CreateDBInstance") => {
                if let Some(id) = request.form("DBInstanceIdentifier") {
                    let groups = listed("VpcSecurityGroupIds.");
                    let subnet_group = request.form("DBSubnetGroupName").map(str::to_string);
                    self.held.push(made(
                        Slow::DbInstance,
                        id.to_string(),
                        groups,
                        Vec::new(),
                        subnet_group,
                    ));
                }
            }
            (Service::Ecs, "CreateService" | "UpdateService") => {
                let answer: Value = serde_json::from_slice(answer).unwrap_or_default();
                let deployments = answer["service"]["deployments"].as_array().cloned();
                for deployment in deployments.into_iter().flatten() {
                    if deployment["status"] == "PRIMARY"
                        && let Some(id) = deployment["id"].as_str()
                        && !self.deployments.iter().any(|(d, _)| d == id)
                    {
                        self.deployments.push((id.to_string(), now));
                    }
                }
            }
            (Service::Rds, "ModifyDBInstance")
                if request.form("ApplyImmediately") == Some("true") =>
            {
                if let Some(held) = request
                    .form("DBInstanceIdentifier")
                    .and_then(|id| self.find_mut(Slow::DbInstance, id))
                {
                    held.modified = Some(now);
                }
            }
            (Service::Ec2, "DeleteNatGateway") => {
                self.deleted(Slow::NatGateway, request.form("NatGatewayId"), now)
            }
            (Service::Elbv2, "DeleteLoadBalancer") => {
                self.deleted(Slow::LoadBalancer, request.form("LoadBalancerArn"), now)
            }
            (Service::ApiGatewayV2, "DeleteVpcLink") => {
                let id = request.path.trim_end_matches('/').rsplit('/').next();
                self.deleted(Slow::VpcLink, id, now)
            }
            (Service::Rds, "DeleteDBInstance") => {
                self.deleted(Slow::DbInstance, request.form("DBInstanceIdentifier"), now)
            }
            _ => {}
        }
    }

    fn deleted(&mut self, slow: Slow, id: Option<&str>, now: Instant) {
        if let Some(held) = id.and_then(|id| self.find_mut(slow, id))
            && held.deleted.is_none()
        {
            held.deleted = Some(now);
        }
    }

    /// Moto's answer to a read, as AWS would give it at this moment: with
    /// the states of what is still being made or deleted.
    pub(super) fn rewrite(
        &mut self,
        request: &Request<'_>,
        status: StatusCode,
        answer: &[u8],
    ) -> Option<(StatusCode, Bytes)> {
        let text = String::from_utf8_lossy(answer).into_owned();
        match (request.service, request.operation) {
            (Service::Ec2, "DescribeNatGateways") if status.is_success() => {
                let mut xml = text;
                for held in self.held.iter().filter(|h| h.slow == Slow::NatGateway) {
                    let id_element = format!("<natGatewayId>{}</natGatewayId>", held.id);
                    if let Some(state) = self.making(held) {
                        xml = edit_around(&xml, &id_element, "<state>", "</state>", state);
                    } else if self.dying(held) {
                        xml = edit_around(&xml, &id_element, "<state>", "</state>", "deleting");
                    }
                }
                Some((status, Bytes::from(xml)))
            }
            (Service::Elbv2, "DescribeLoadBalancers") if status.is_success() => {
                let mut xml = text;
                for held in self.held.iter().filter(|h| h.slow == Slow::LoadBalancer) {
                    if let Some(state) = self.making(held) {
                        let id_element = format!("<LoadBalancerArn>{}</LoadBalancerArn>", held.id);
                        xml = edit_around(&xml, &id_element, "<Code>", "</Code>", state);
                    }
                }
                Some((status, Bytes::from(xml)))
            }
            (Service::Ec2, "DescribeNetworkInterfaces") if status.is_success() => {
                let wanted = request
                    .params
                    .iter()
                    .find(|(k, v)| {
                        k.starts_with("Filter.") && k.ends_with(".Name") && v == "description"
                    })
                    .and_then(|(k, _)| request.form(&k.replace(".Name", ".Value.1")))?;
                let holder = self.held.iter().find(|h| {
                    h.slow == Slow::LoadBalancer
                        && self.dying(h)
                        && interface_description(&h.id) == wanted
                })?;
                let item = format!(
                    "<item><networkInterfaceId>eni-{:017x}</networkInterfaceId><description>{wanted}</description>\
                     <status>in-use</status><subnetId>{}</subnetId><groupSet>{}</groupSet></item>",
                    fastrand::u64(..) >> 4,
                    holder.subnets.first().cloned().unwrap_or_default(),
                    holder
                        .groups
                        .iter()
                        .map(|g| format!("<item><groupId>{g}</groupId></item>"))
                        .collect::<String>()
                );
                Some((
                    status,
                    Bytes::from(insert_item(&text, "networkInterfaceSet", &item)),
                ))
            }
            (Service::Ecs, "DescribeServices") if status.is_success() => {
                let mut answer: Value = serde_json::from_slice(answer).ok()?;
                let lasts = self.of("ecs-service", "deployment");
                let services = answer["services"].as_array_mut()?;
                for service in services {
                    let Some(deployments) = service["deployments"].as_array_mut() else {
                        continue;
                    };
                    for deployment in deployments {
                        let young = self.deployments.iter().any(|(id, born)| {
                            deployment["id"] == id.as_str() && born.elapsed() < lasts
                        });
                        if young {
                            let desired = deployment["desiredCount"].clone();
                            deployment["rolloutState"] = Value::from("IN_PROGRESS");
                            deployment["rolloutStateReason"] =
                                Value::from("ECS deployment in progress.");
                            deployment["runningCount"] = Value::from(0);
                            deployment["pendingCount"] = desired;
                        }
                    }
                }
                Some((status, Bytes::from(answer.to_string())))
            }
            (Service::ApiGatewayV2, "GetVpcLink") => {
                let id = request.path.trim_end_matches('/').rsplit('/').next()?;
                let held = self.find(Slow::VpcLink, id)?.clone();
                let mut link: Value = if status.is_success() {
                    serde_json::from_slice(answer).ok()?
                } else if self.dying(&held) {
                    serde_json::from_str(held.last_seen.as_deref()?).ok()?
                } else {
                    return None;
                };
                let state = if self.dying(&held) {
                    "DELETING"
                } else {
                    self.making(&held)?
                };
                link["vpcLinkStatus"] = Value::String(state.to_string());
                Some((StatusCode::OK, Bytes::from(link.to_string())))
            }
            (Service::Rds, "DescribeDBInstances") => {
                let asked = request.form("DBInstanceIdentifier");
                let mut xml = text;
                for i in 0..self.held.len() {
                    let held = self.held[i].clone();
                    if held.slow != Slow::DbInstance {
                        continue;
                    }
                    let id_element =
                        format!("<DBInstanceIdentifier>{}</DBInstanceIdentifier>", held.id);
                    if status.is_success() {
                        if let Some(found) = enclosing(&xml, &id_element, "DBInstance") {
                            self.held[i].last_seen = Some(xml[found.0..found.1].to_string());
                        }
                        if let Some(state) = self.making(&held) {
                            xml = edit_around(
                                &xml,
                                &id_element,
                                "<DBInstanceStatus>",
                                "</DBInstanceStatus>",
                                state,
                            );
                            if state == "creating" {
                                xml = drop_element(&xml, &id_element, "DBInstance", "Endpoint");
                            }
                        }
                    } else if self.dying(&held) && asked == Some(held.id.as_str()) {
                        let member = held.last_seen.clone()?;
                        let member = edit_around(
                            &member,
                            &id_element,
                            "<DBInstanceStatus>",
                            "</DBInstanceStatus>",
                            "deleting",
                        );
                        let body = format!(
                            "<DescribeDBInstancesResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\
                             <DescribeDBInstancesResult><DBInstances>{member}</DBInstances></DescribeDBInstancesResult>\
                             <ResponseMetadata><RequestId>strict-proxy</RequestId></ResponseMetadata></DescribeDBInstancesResponse>"
                        );
                        return Some((StatusCode::OK, Bytes::from(body)));
                    }
                }
                status.is_success().then(|| (status, Bytes::from(xml)))
            }
            _ => None,
        }
    }
}

fn noun(slow: Slow) -> &'static str {
    match slow {
        Slow::NatGateway => "NAT gateway",
        Slow::LoadBalancer => "load balancer",
        Slow::VpcLink => "VPC link",
        Slow::DbInstance => "DB instance",
    }
}

/// `ELB app/NAME/ID`, as AWS describes a load balancer's interfaces.
fn interface_description(arn: &str) -> String {
    let tail = arn.split_once(":loadbalancer/").map_or(arn, |(_, t)| t);
    format!("ELB {tail}")
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = start + text[start..].find(close)?;
    Some(text[start..end].to_string())
}

/// The byte span of the innermost element named `name` around the first
/// occurrence of `marker`.
fn enclosing(xml: &str, marker: &str, name: &str) -> Option<(usize, usize)> {
    let at = xml.find(marker)?;
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml[..at].rfind(&open)?;
    let end = at + xml[at..].find(&close)? + close.len();
    Some((start, end))
}

/// Replaces the text of the first `open`…`close` element after `marker`
/// with `value` (the state that follows an id in AWS's shapes).
fn edit_around(xml: &str, marker: &str, open: &str, close: &str, value: &str) -> String {
    let Some(at) = xml.find(marker) else {
        return xml.to_string();
    };
    // The state may come before the id (RDS) or after it (EC2, ELB):
    // take the nearest one.
    let after = xml[at..].find(open).map(|i| at + i);
    let before = xml[..at].rfind(open);
    let start = match (before, after) {
        (Some(b), Some(a)) if at - b < a - at => b,
        (_, Some(a)) => a,
        (Some(b), None) => b,
        (None, None) => return xml.to_string(),
    };
    let text_start = start + open.len();
    let Some(length) = xml[text_start..].find(close) else {
        return xml.to_string();
    };
    format!(
        "{}{value}{}",
        &xml[..text_start],
        &xml[text_start + length..]
    )
}

/// Removes the child element `child` from the `name` element around
/// `marker`.
fn drop_element(xml: &str, marker: &str, name: &str, child: &str) -> String {
    let Some((start, end)) = enclosing(xml, marker, name) else {
        return xml.to_string();
    };
    let span = &xml[start..end];
    let (open, close) = (format!("<{child}>"), format!("</{child}>"));
    let Some(from) = span.find(&open) else {
        return xml.to_string();
    };
    let Some(to) = span[from..].find(&close).map(|i| from + i + close.len()) else {
        return xml.to_string();
    };
    format!(
        "{}{}{}{}",
        &xml[..start],
        &span[..from],
        &span[to..],
        &xml[end..]
    )
}

/// Adds `item` to the list element `list`, empty or not.
fn insert_item(xml: &str, list: &str, item: &str) -> String {
    let empty = format!("<{list}/>");
    if xml.contains(&empty) {
        return xml.replacen(&empty, &format!("<{list}>{item}</{list}>"), 1);
    }
    let open = format!("<{list}>");
    xml.replacen(&open, &format!("{open}{item}"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_engines() {
        assert_eq!(typical("db-instance", "creating"), Duration::from_secs(420));
        assert_eq!(typical("nat-gateway", "pending"), Duration::from_secs(120));
    }

    #[test]
    fn a_state_is_edited_next_to_its_id_only() {
        let xml = "<set><item><natGatewayId>nat-1</natGatewayId><state>available</state></item>\
                   <item><natGatewayId>nat-2</natGatewayId><state>available</state></item></set>";
        let edited = edit_around(
            xml,
            "<natGatewayId>nat-2</natGatewayId>",
            "<state>",
            "</state>",
            "pending",
        );
        assert!(
            edited.contains("nat-1</natGatewayId><state>available"),
            "{edited}"
        );
        assert!(
            edited.contains("nat-2</natGatewayId><state>pending"),
            "{edited}"
        );
        let rds = "<DBInstances><DBInstance><DBInstanceStatus>available</DBInstanceStatus><Endpoint><Address>a</Address></Endpoint>\
                   <DBInstanceIdentifier>db</DBInstanceIdentifier></DBInstance></DBInstances>";
        let marker = "<DBInstanceIdentifier>db</DBInstanceIdentifier>";
        let creating = drop_element(
            &edit_around(
                rds,
                marker,
                "<DBInstanceStatus>",
                "</DBInstanceStatus>",
                "creating",
            ),
            marker,
            "DBInstance",
            "Endpoint",
        );
        assert!(
            creating.contains("<DBInstanceStatus>creating<"),
            "{creating}"
        );
        assert!(!creating.contains("Endpoint"), "{creating}");
        assert_eq!(
            insert_item(
                "<r><networkInterfaceSet/></r>",
                "networkInterfaceSet",
                "<item/>"
            ),
            "<r><networkInterfaceSet><item/></networkInterfaceSet></r>"
        );
    }
}
