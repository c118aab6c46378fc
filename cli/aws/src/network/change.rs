//! Creating, updating and deleting the network's resources, each create
//! safe to retry and each delete safe to repeat.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{AttributeBooleanValue, DomainType, NatGatewayState, ResourceType, Tag};
use sha2::{Digest, Sha256};

use super::rules::{converge_rules, revoke_all, sweep_interfaces};
use super::{
    DEPENDENCY_DEADLINE, NAT_AVAILABLE_DEADLINE, NAT_DELETED_DEADLINE, filter, group_of_rules,
    rules_physical_id, tag_spec,
};
use crate::AwsError;
use crate::{Ctx, RetryInUse, Step};
use engine::clock::{AwsClock, Pace};
use engine::plan::{Kind, LogicalId, Observed, Resource, Spec};

async fn find(ctx: &Ctx<'_>, id: &LogicalId) -> Result<Option<String>, AwsError> {
    crate::find(super::observe(ctx.aws, &ctx.stack), id).await
}

/// Creates `resource` and returns its physical id.
pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let ec2 = &ctx.aws.ec2;
    let tags = ctx.tags(&resource.id);
    let id = &resource.id;
    let lookup = || find(ctx, id);
    match &resource.spec {
        Spec::Vpc {
            cidr,
            dns_support,
            dns_hostnames,
        } => {
            let vpc_id = ctx
                .aws
                .create_once(
                    || async {
                        sdk!(
                            "CreateVpc",
                            ec2.create_vpc()
                                .cidr_block(cidr)
                                .tag_specifications(tag_spec(ResourceType::Vpc, &tags))
                                .customize()
                                .config_override(no_retry!(aws_sdk_ec2))
                                .send()
                        )?
                        .vpc()
                        .and_then(|v| v.vpc_id().map(str::to_string))
                        .ok_or_else(|| AwsError::new("CreateVpc", "no VPC id in the answer"))
                    },
                    lookup,
                )
                .await?;
            set_dns(ctx, &vpc_id, *dns_support, *dns_hostnames).await?;
            Ok(vpc_id)
        }
        Spec::Subnet {
            vpc,
            cidr,
            availability_zone,
        } => {
            let vpc_id = ctx.resolve(vpc)?;
            ctx.aws
                .create_once(
                    || async {
                        sdk_settled!(
                            ctx.aws,
                            [vpc_id],
                            "CreateSubnet",
                            ec2.create_subnet()
                                .vpc_id(&vpc_id)
                                .cidr_block(cidr)
                                .availability_zone(availability_zone)
                                .tag_specifications(tag_spec(ResourceType::Subnet, &tags))
                                .customize()
                                .config_override(no_retry!(aws_sdk_ec2))
                                .send()
                        )?
                        .subnet()
                        .and_then(|s| s.subnet_id().map(str::to_string))
                        .ok_or_else(|| AwsError::new("CreateSubnet", "no subnet id in the answer"))
                    },
                    lookup,
                )
                .await
        }
        Spec::InternetGateway { vpc } => {
            let vpc_id = ctx.resolve(vpc)?;
            let igw = ctx
                .aws
                .create_once(
                    || async {
                        sdk!(
                            "CreateInternetGateway",
                            ec2.create_internet_gateway()
                                .tag_specifications(tag_spec(ResourceType::InternetGateway, &tags))
                                .customize()
                                .config_override(no_retry!(aws_sdk_ec2))
                                .send()
                        )?
                        .internet_gateway()
                        .and_then(|g| g.internet_gateway_id().map(str::to_string))
                        .ok_or_else(|| {
                            AwsError::new("CreateInternetGateway", "no gateway id in the answer")
                        })
                    },
                    lookup,
                )
                .await?;
            attach_gateway(ctx, &igw, &vpc_id).await?;
            Ok(igw)
        }
        Spec::ElasticIp {} => {
            ctx.aws
                .create_once(
                    || async {
                        sdk!(
                            "AllocateAddress",
                            ec2.allocate_address()
                                .domain(DomainType::Vpc)
                                .tag_specifications(tag_spec(ResourceType::ElasticIp, &tags))
                                .customize()
                                .config_override(no_retry!(aws_sdk_ec2))
                                .send()
                        )?
                        .allocation_id()
                        .map(str::to_string)
                        .ok_or_else(|| {
                            AwsError::new("AllocateAddress", "no allocation id in the answer")
                        })
                    },
                    lookup,
                )
                .await
        }
        Spec::NatGateway { subnet, elastic_ip } => {
            let subnet_id = ctx.resolve(subnet)?;
            let allocation = ctx.resolve(elastic_ip)?;
            // Same stack, resource, subnet and address → same token, so a
            // retried create returns the gateway already made.
            let token = client_token(&[&ctx.stack, id.as_str(), &subnet_id, &allocation]);
            // Moto ignores client tokens, and a lost answer must not make a
            // second gateway on real AWS either: look before trying again.
            let nat_id = ctx
                .aws
                .create_once(
                    || async {
                        sdk_settled!(
                            ctx.aws,
                            [subnet_id, allocation],
                            "CreateNatGateway",
                            ec2.create_nat_gateway()
                                .subnet_id(&subnet_id)
                                .allocation_id(&allocation)
                                .client_token(&token)
                                .tag_specifications(tag_spec(ResourceType::Natgateway, &tags))
                                .customize()
                                .config_override(no_retry!(aws_sdk_ec2))
                                .send()
                        )?
                        .nat_gateway()
                        .and_then(|n| n.nat_gateway_id().map(str::to_string))
                        .ok_or_else(|| {
                            AwsError::new("CreateNatGateway", "no NAT gateway id in the answer")
                        })
                    },
                    lookup,
                )
                .await?;
            wait_nat_available(ctx, step, &nat_id).await?;
            Ok(nat_id)
        }
        Spec::RouteTable { vpc, routes } => {
            let vpc_id = ctx.resolve(vpc)?;
            let table = ctx
                .aws
                .create_once(
                    || async {
                        sdk_settled!(
                            ctx.aws,
                            [vpc_id],
                            "CreateRouteTable",
                            ec2.create_route_table()
                                .vpc_id(&vpc_id)
                                .tag_specifications(tag_spec(ResourceType::RouteTable, &tags))
                                .customize()
                                .config_override(no_retry!(aws_sdk_ec2))
                                .send()
                        )?
                        .route_table()
                        .and_then(|t| t.route_table_id().map(str::to_string))
                        .ok_or_else(|| {
                            AwsError::new("CreateRouteTable", "no route table id in the answer")
                        })
                    },
                    lookup,
                )
                .await?;
            converge_routes(ctx, &table, routes).await?;
            Ok(table)
        }
        Spec::RouteTableAssociation {
            route_table,
            subnet,
        } => associate(ctx, &ctx.resolve(route_table)?, &ctx.resolve(subnet)?).await,
        Spec::SecurityGroup {
            vpc,
            group_name,
            description,
        } => {
            let vpc_id = ctx.resolve(vpc)?;
            let created = ctx
                .aws
                .create_once(
                    || async {
                        sdk_settled!(
                            ctx.aws,
                            [vpc_id],
                            "CreateSecurityGroup",
                            ec2.create_security_group()
                                .vpc_id(&vpc_id)
                                .group_name(group_name)
                                .description(description)
                                .tag_specifications(tag_spec(ResourceType::SecurityGroup, &tags))
                                .customize()
                                .config_override(no_retry!(aws_sdk_ec2))
                                .send()
                        )?
                        .group_id()
                        .map(str::to_string)
                        .ok_or_else(|| {
                            AwsError::new("CreateSecurityGroup", "no group id in the answer")
                        })
                    },
                    lookup,
                )
                .await;
            match created {
                // The name is taken in this VPC by a group that lost its
                // tags: adopt it rather than fail.
                Err(e) if e.code.as_deref() == Some("InvalidGroup.Duplicate") => {
                    let existing = sdk!(
                        "DescribeSecurityGroups",
                        ec2.describe_security_groups()
                            .filters(filter("vpc-id", &vpc_id))
                            .filters(filter("group-name", group_name))
                            .send()
                    )?
                    .security_groups()
                    .first()
                    .and_then(|g| g.group_id().map(str::to_string))
                    .ok_or(e)?;
                    write_tags(ctx, &existing, &tags).await?;
                    Ok(existing)
                }
                other => other,
            }
        }
        Spec::SecurityGroupRules {
            group,
            ingress,
            egress,
        } => {
            let group_id = ctx.resolve(group)?;
            converge_rules(ctx, &group_id, ingress, egress).await?;
            Ok(rules_physical_id(&group_id))
        }
        _ => Err(AwsError::new("create", "not an EC2 network resource")),
    }
}

/// Brings an existing resource's updatable fields and tags in line.
pub async fn update(
    ctx: &Ctx<'_>,
    step: &Step,
    resource: &Resource,
    physical: &str,
) -> Result<(), AwsError> {
    let tags = ctx.tags(&resource.id);
    match &resource.spec {
        // Still pending (an interrupted `up`): ready before the routes.
        Spec::NatGateway { .. } => {
            wait_nat_available(ctx, step, physical).await?;
            write_tags(ctx, physical, &tags).await
        }
        Spec::Vpc {
            dns_support,
            dns_hostnames,
            ..
        } => {
            set_dns(ctx, physical, *dns_support, *dns_hostnames).await?;
            write_tags(ctx, physical, &tags).await
        }
        Spec::RouteTable { routes, .. } => {
            converge_routes(ctx, physical, routes).await?;
            write_tags(ctx, physical, &tags).await
        }
        Spec::SecurityGroupRules {
            ingress, egress, ..
        } => converge_rules(ctx, group_of_rules(physical), ingress, egress).await,
        Spec::RouteTableAssociation { .. } => Ok(()),
        _ => write_tags(ctx, physical, &tags).await,
    }
}

/// Deletes one observed resource; "already gone" counts as done.
pub async fn delete(ctx: &Ctx<'_>, step: &Step, observed: &Observed) -> Result<(), AwsError> {
    let ec2 = &ctx.aws.ec2;
    let id = observed.physical_id.as_str();
    match observed.spec.kind() {
        Kind::RouteTableAssociation => crate::gone(
            sdk!(
                "DisassociateRouteTable",
                ec2.disassociate_route_table().association_id(id).send()
            )
            .map(|_| ()),
        ),
        Kind::SecurityGroupRules => crate::gone(revoke_all(ctx, group_of_rules(id)).await),
        Kind::RouteTable => {
            step.retry_dependency(
                "the route table's subnets to be let go",
                DEPENDENCY_DEADLINE,
                || async {
                    sdk!(
                        "DeleteRouteTable",
                        ec2.delete_route_table().route_table_id(id).send()
                    )
                    .map(|_| ())
                },
            )
            .await
        }
        Kind::NatGateway => {
            crate::gone(
                sdk!(
                    "DeleteNatGateway",
                    ec2.delete_nat_gateway().nat_gateway_id(id).send()
                )
                .map(|_| ()),
            )?;
            // The Elastic IP cannot be released while the gateway holds it.
            let pace = ctx.pace(
                AwsClock::typical().delete(Kind::NatGateway),
                NAT_DELETED_DEADLINE,
            );
            step.wait_until(
                "the NAT gateway to be deleted, so its Elastic IP can be released",
                pace,
                || async {
                    let state = nat_state(ctx, id, &pace).await?;
                    Ok(matches!(state, None | Some(NatGatewayState::Deleted)).then_some(()))
                },
            )
            .await
        }
        Kind::ElasticIp => {
            step.retry_dependency(
                "the NAT gateway to let go of the address",
                DEPENDENCY_DEADLINE,
                || async {
                    let released = sdk!(
                        "ReleaseAddress",
                        ec2.release_address().allocation_id(id).send()
                    )
                    .map(|_| ());
                    match released {
                        // An address still held by a gateway that is going away.
                        Err(e) if e.code.as_deref() == Some("InvalidIPAddress.InUse") => {
                            Err(AwsError {
                                code: Some("DependencyViolation".into()),
                                ..e
                            })
                        }
                        other => other,
                    }
                },
            )
            .await
        }
        Kind::SecurityGroup => {
            sweep_interfaces(ctx, id).await?;
            step.retry_dependency(
                "network interfaces in the group to be detached",
                DEPENDENCY_DEADLINE,
                || async {
                    sdk!(
                        "DeleteSecurityGroup",
                        ec2.delete_security_group().group_id(id).send()
                    )
                    .map(|_| ())
                },
            )
            .await
        }
        Kind::InternetGateway => {
            if let Spec::InternetGateway { .. } = &observed.spec {
                let attached = sdk!(
                    "DescribeInternetGateways",
                    ec2.describe_internet_gateways()
                        .internet_gateway_ids(id)
                        .send()
                );
                let vpcs: Vec<String> = match attached {
                    Ok(out) => out
                        .internet_gateways()
                        .iter()
                        .flat_map(|g| g.attachments())
                        .filter_map(|a| a.vpc_id().map(str::to_string))
                        .collect(),
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) => return Err(e),
                };
                for vpc in vpcs {
                    step.retry_dependency(
                        "public addresses in the VPC to be released",
                        DEPENDENCY_DEADLINE,
                        || {
                            let vpc = vpc.clone();
                            async move {
                                sdk!(
                                    "DetachInternetGateway",
                                    ec2.detach_internet_gateway()
                                        .internet_gateway_id(id)
                                        .vpc_id(vpc)
                                        .send()
                                )
                                .map(|_| ())
                            }
                        },
                    )
                    .await?;
                }
            }
            crate::gone(
                sdk!(
                    "DeleteInternetGateway",
                    ec2.delete_internet_gateway().internet_gateway_id(id).send()
                )
                .map(|_| ()),
            )
        }
        Kind::Subnet => {
            step.retry_dependency(
                "network interfaces in the subnet to go",
                DEPENDENCY_DEADLINE,
                || async {
                    sdk!("DeleteSubnet", ec2.delete_subnet().subnet_id(id).send()).map(|_| ())
                },
            )
            .await
        }
        Kind::Vpc => {
            step.retry_dependency(
                "everything in the VPC to be deleted",
                DEPENDENCY_DEADLINE,
                || async { sdk!("DeleteVpc", ec2.delete_vpc().vpc_id(id).send()).map(|_| ()) },
            )
            .await
        }
        _ => Err(AwsError::new("delete", "not an EC2 network resource")),
    }
}

fn client_token(parts: &[&str]) -> String {
    let digest = Sha256::digest(parts.join("\n").as_bytes());
    digest.iter().take(24).map(|b| format!("{b:02x}")).collect()
}

async fn set_dns(
    ctx: &Ctx<'_>,
    vpc_id: &str,
    support: bool,
    hostnames: bool,
) -> Result<(), AwsError> {
    let ec2 = &ctx.aws.ec2;
    let on = |v: bool| AttributeBooleanValue::builder().value(v).build();
    // AWS takes one attribute per call.
    sdk_settled!(
        ctx.aws,
        [vpc_id],
        "ModifyVpcAttribute",
        ec2.modify_vpc_attribute()
            .vpc_id(vpc_id)
            .enable_dns_support(on(support))
            .send()
    )?;
    sdk_settled!(
        ctx.aws,
        [vpc_id],
        "ModifyVpcAttribute",
        ec2.modify_vpc_attribute()
            .vpc_id(vpc_id)
            .enable_dns_hostnames(on(hostnames))
            .send()
    )?;
    Ok(())
}

async fn write_tags(
    ctx: &Ctx<'_>,
    physical: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), AwsError> {
    let tags: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    sdk_settled!(
        ctx.aws,
        [physical],
        "CreateTags",
        ctx.aws
            .ec2
            .create_tags()
            .resources(physical)
            .set_tags(Some(tags.clone()))
            .send()
    )
    .map(|_| ())
}

async fn attach_gateway(ctx: &Ctx<'_>, igw: &str, vpc_id: &str) -> Result<(), AwsError> {
    let attached = sdk_settled!(
        ctx.aws,
        [igw, vpc_id],
        "AttachInternetGateway",
        ctx.aws
            .ec2
            .attach_internet_gateway()
            .internet_gateway_id(igw)
            .vpc_id(vpc_id)
            .send()
    );
    match attached {
        Err(e) if e.code.as_deref() == Some("Resource.AlreadyAssociated") => Ok(()),
        other => other.map(|_| ()),
    }
}

/// A NAT gateway's state no older than half of `pace`'s interval, from one
/// call shared with the other gateways being waited for (by a filter,
/// which unlike `NatGatewayIds` does not fail the call when one of them is
/// gone).
async fn nat_state(
    ctx: &Ctx<'_>,
    nat_id: &str,
    pace: &Pace,
) -> Result<Option<NatGatewayState>, AwsError> {
    let ec2 = &ctx.aws.ec2;
    ctx.aws
        .polls
        .nat_gateways
        .poll(nat_id, pace.every / 2, |ids| async move {
            let out = sdk!(
                "DescribeNatGateways",
                ec2.describe_nat_gateways()
                    .filter(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("nat-gateway-id")
                            .set_values(Some(ids))
                            .build()
                    )
                    .send()
            )?;
            Ok(out
                .nat_gateways()
                .iter()
                .filter_map(|n| Some((n.nat_gateway_id()?.to_string(), n.state()?.clone())))
                .collect())
        })
        .await
}

async fn wait_nat_available(ctx: &Ctx<'_>, step: &Step, nat_id: &str) -> Result<(), AwsError> {
    let pace = ctx.pace(
        AwsClock::typical().create(Kind::NatGateway),
        NAT_AVAILABLE_DEADLINE,
    );
    // A gateway begun soon after another's (one per zone) polls with it.
    let origin = ctx.aws.polls.nat_gateways.origin(nat_id, pace.expected / 4);
    step.wait_until_from(
        origin,
        "the NAT gateway to become available, so private subnets can route through it",
        pace,
        || async {
            match nat_state(ctx, nat_id, &pace).await? {
                Some(NatGatewayState::Available) => Ok(Some(())),
                Some(NatGatewayState::Failed) => Err(AwsError::new(
                    "CreateNatGateway",
                    format!(
                        "NAT gateway {nat_id} failed; see its failure message in the EC2 console"
                    ),
                )),
                _ => Ok(None),
            }
        },
    )
    .await
}

/// Makes a route table hold exactly the routes wanted (besides `local`).
async fn converge_routes(
    ctx: &Ctx<'_>,
    table: &str,
    wanted: &BTreeMap<String, LogicalId>,
) -> Result<(), AwsError> {
    let ec2 = &ctx.aws.ec2;
    let out = sdk!(
        "DescribeRouteTables",
        ec2.describe_route_tables().route_table_ids(table).send()
    )?;
    let current: BTreeMap<String, String> = out
        .route_tables()
        .iter()
        .flat_map(|t| t.routes())
        .filter(|r| r.gateway_id() != Some("local"))
        .filter_map(|r| {
            let target = r.nat_gateway_id().or(r.gateway_id()).unwrap_or("blackhole");
            Some((r.destination_cidr_block()?.to_string(), target.to_string()))
        })
        .collect();
    for (dest, target) in wanted {
        let target = ctx.resolve(target)?;
        let nat = target.starts_with("nat-");
        match current.get(dest) {
            Some(now) if *now == target => {}
            Some(_) => {
                let req = ec2
                    .replace_route()
                    .route_table_id(table)
                    .destination_cidr_block(dest);
                let req = if nat {
                    req.nat_gateway_id(&target)
                } else {
                    req.gateway_id(&target)
                };
                sdk_settled!(
                    ctx.aws,
                    [table, &target],
                    "ReplaceRoute",
                    req.clone().send()
                )?;
            }
            None => {
                let req = ec2
                    .create_route()
                    .route_table_id(table)
                    .destination_cidr_block(dest);
                let req = if nat {
                    req.nat_gateway_id(&target)
                } else {
                    req.gateway_id(&target)
                };
                sdk_settled!(ctx.aws, [table, &target], "CreateRoute", req.clone().send())?;
            }
        }
    }
    for dest in current.keys().filter(|d| !wanted.contains_key(*d)) {
        sdk!(
            "DeleteRoute",
            ec2.delete_route()
                .route_table_id(table)
                .destination_cidr_block(dest)
                .send()
        )?;
    }
    Ok(())
}

/// Associates a subnet with a table, moving it from another table if need be.
async fn associate(ctx: &Ctx<'_>, table: &str, subnet: &str) -> Result<String, AwsError> {
    let ec2 = &ctx.aws.ec2;
    let out = sdk!(
        "DescribeRouteTables",
        ec2.describe_route_tables()
            .filters(filter("association.subnet-id", subnet))
            .send()
    )?;
    let existing = out.route_tables().iter().find_map(|t| {
        t.associations()
            .iter()
            .find(|a| a.subnet_id() == Some(subnet))
            .map(|a| {
                (
                    t.route_table_id().unwrap_or_default().to_string(),
                    a.route_table_association_id()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
    });
    match existing {
        Some((current, assoc)) if current == table => Ok(assoc),
        Some((_, assoc)) => sdk_settled!(
            ctx.aws,
            [table, subnet],
            "ReplaceRouteTableAssociation",
            ec2.replace_route_table_association()
                .association_id(&assoc)
                .route_table_id(table)
                .send()
        )?
        .new_association_id()
        .map(str::to_string)
        .ok_or_else(|| {
            AwsError::new(
                "ReplaceRouteTableAssociation",
                "no association id in the answer",
            )
        }),
        None => sdk_settled!(
            ctx.aws,
            [table, subnet],
            "AssociateRouteTable",
            ec2.associate_route_table()
                .route_table_id(table)
                .subnet_id(subnet)
                .send()
        )?
        .association_id()
        .map(str::to_string)
        .ok_or_else(|| AwsError::new("AssociateRouteTable", "no association id in the answer")),
    }
}
