//! Security-group rules: compared physically, authorized and revoked as a
//! whole set per group.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};

use super::filter;
use crate::AwsError;
use crate::Ctx;
use engine::plan::LogicalId;
use engine::plan::resource::{Peer, Rule};

/// A rule as AWS holds it: peers by physical id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct AwsRule {
    protocol: String,
    from_port: i32,
    to_port: i32,
    group: Option<String>,
    cidr: Option<String>,
}

impl AwsRule {
    fn permission(&self) -> IpPermission {
        let mut perm = IpPermission::builder().ip_protocol(&self.protocol);
        if self.protocol != "-1" {
            perm = perm.from_port(self.from_port).to_port(self.to_port);
        }
        if let Some(group) = &self.group {
            perm = perm.user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build());
        }
        if let Some(cidr) = &self.cidr {
            perm = perm.ip_ranges(IpRange::builder().cidr_ip(cidr).build());
        }
        perm.build()
    }

    fn logical(&self, name: &dyn Fn(Option<&str>) -> LogicalId) -> Rule {
        Rule {
            protocol: self.protocol.clone(),
            from_port: self.from_port,
            to_port: self.to_port,
            peer: match &self.group {
                Some(group) => Peer::Group(name(Some(group))),
                None => Peer::Cidr(self.cidr.clone().unwrap_or_default()),
            },
        }
    }

    fn physical(ctx: &Ctx<'_>, rule: &Rule) -> Result<Self, AwsError> {
        let (group, cidr) = match &rule.peer {
            Peer::Group(id) => (Some(ctx.resolve(id)?), None),
            Peer::Cidr(cidr) => (None, Some(cidr.clone())),
        };
        Ok(Self {
            protocol: rule.protocol.clone(),
            from_port: rule.from_port,
            to_port: rule.to_port,
            group,
            cidr,
        })
    }
}

/// Flattens AWS's permissions (one per protocol and port range, each with
/// several peers) into one rule per peer.
fn aws_rules(perms: &[IpPermission]) -> BTreeSet<AwsRule> {
    let mut rules = BTreeSet::new();
    for p in perms {
        let protocol = p.ip_protocol().unwrap_or("-1").to_string();
        let (from_port, to_port) = if protocol == "-1" {
            (-1, -1)
        } else {
            (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1))
        };
        let rule = |group: Option<&str>, cidr: Option<&str>| AwsRule {
            protocol: protocol.clone(),
            from_port,
            to_port,
            group: group.map(str::to_string),
            cidr: cidr.map(str::to_string),
        };
        for pair in p.user_id_group_pairs() {
            rules.insert(rule(pair.group_id(), None));
        }
        for range in p.ip_ranges() {
            rules.insert(rule(None, range.cidr_ip()));
        }
        for range in p.ipv6_ranges() {
            rules.insert(rule(None, range.cidr_ipv6()));
        }
    }
    rules
}

pub(super) fn rules_of(
    perms: &[IpPermission],
    name: &dyn Fn(Option<&str>) -> LogicalId,
) -> BTreeSet<Rule> {
    aws_rules(perms).iter().map(|r| r.logical(name)).collect()
}

pub(super) async fn group_permissions(
    ctx: &Ctx<'_>,
    group_id: &str,
) -> Result<(Vec<IpPermission>, Vec<IpPermission>), AwsError> {
    let out = sdk_settled!(
        ctx.aws,
        [group_id],
        "DescribeSecurityGroups",
        ctx.aws
            .ec2
            .describe_security_groups()
            .group_ids(group_id)
            .send()
    )?;
    let group = out.security_groups().first();
    Ok((
        group
            .map(|g| g.ip_permissions().to_vec())
            .unwrap_or_default(),
        group
            .map(|g| g.ip_permissions_egress().to_vec())
            .unwrap_or_default(),
    ))
}

/// Makes a group hold exactly the wanted rules: authorizes what is missing
/// and revokes the rest (AWS's default allow-all egress among it). The
/// comparison is physical, so a rule naming a re-created group is renewed.
pub(super) async fn converge_rules(
    ctx: &Ctx<'_>,
    group_id: &str,
    ingress: &BTreeSet<Rule>,
    egress: &BTreeSet<Rule>,
) -> Result<(), AwsError> {
    let ec2 = &ctx.aws.ec2;
    let (now_in, now_out) = group_permissions(ctx, group_id).await?;
    let want = |rules: &BTreeSet<Rule>| -> Result<BTreeSet<AwsRule>, AwsError> {
        rules.iter().map(|r| AwsRule::physical(ctx, r)).collect()
    };
    let (want_in, want_out) = (want(ingress)?, want(egress)?);
    let (have_in, have_out) = (aws_rules(&now_in), aws_rules(&now_out));
    // The group and every group its rules name may be new to EC2.
    let named: Vec<&str> = std::iter::once(group_id)
        .chain(
            want_in
                .iter()
                .chain(&want_out)
                .filter_map(|r| r.group.as_deref()),
        )
        .collect();
    let perms = |a: &BTreeSet<AwsRule>, b: &BTreeSet<AwsRule>| -> Option<Vec<IpPermission>> {
        let list: Vec<IpPermission> = a.difference(b).map(AwsRule::permission).collect();
        (!list.is_empty()).then_some(list)
    };
    if let Some(extra) = perms(&have_in, &want_in) {
        sdk_settled!(
            ctx.aws,
            [group_id],
            "RevokeSecurityGroupIngress",
            ec2.revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(extra.clone()))
                .send()
        )?;
    }
    if let Some(extra) = perms(&have_out, &want_out) {
        sdk_settled!(
            ctx.aws,
            [group_id],
            "RevokeSecurityGroupEgress",
            ec2.revoke_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(extra.clone()))
                .send()
        )?;
    }
    if let Some(missing) = perms(&want_in, &have_in) {
        ctx.aws
            .settled(&named, || async {
                sdk!(
                    "AuthorizeSecurityGroupIngress",
                    ec2.authorize_security_group_ingress()
                        .group_id(group_id)
                        .set_ip_permissions(Some(missing.clone()))
                        .send()
                )
            })
            .await?;
    }
    if let Some(missing) = perms(&want_out, &have_out) {
        ctx.aws
            .settled(&named, || async {
                sdk!(
                    "AuthorizeSecurityGroupEgress",
                    ec2.authorize_security_group_egress()
                        .group_id(group_id)
                        .set_ip_permissions(Some(missing.clone()))
                        .send()
                )
            })
            .await?;
    }
    Ok(())
}

/// Revokes every rule of a group, so the groups it names can be deleted.
pub(super) async fn revoke_all(ctx: &Ctx<'_>, group_id: &str) -> Result<(), AwsError> {
    let ec2 = &ctx.aws.ec2;
    let (ingress, egress) = group_permissions(ctx, group_id).await?;
    if !ingress.is_empty() {
        sdk!(
            "RevokeSecurityGroupIngress",
            ec2.revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(ingress))
                .send()
        )?;
    }
    if !egress.is_empty() {
        sdk!(
            "RevokeSecurityGroupEgress",
            ec2.revoke_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(egress))
                .send()
        )?;
    }
    Ok(())
}

/// Deletes network interfaces left detached in a group (by a deleted load
/// balancer or VPC link); they would block the group's deletion for good.
pub(super) async fn sweep_interfaces(ctx: &Ctx<'_>, group_id: &str) -> Result<(), AwsError> {
    let ec2 = &ctx.aws.ec2;
    let out = sdk!(
        "DescribeNetworkInterfaces",
        ec2.describe_network_interfaces()
            .filters(filter("group-id", group_id))
            .filters(filter("status", "available"))
            .send()
    )?;
    for eni in out.network_interfaces() {
        if let Some(eni_id) = eni.network_interface_id() {
            let deleted = sdk!(
                "DeleteNetworkInterface",
                ec2.delete_network_interface()
                    .network_interface_id(eni_id)
                    .send()
            );
            match deleted {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}
