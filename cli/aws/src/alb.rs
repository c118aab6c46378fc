//! The internal Application Load Balancer: the load balancer, one target
//! group per service, the listener that answers 404 to what matches no
//! service, and one rule per service (or per five path patterns).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, LoadBalancerSchemeEnum,
    LoadBalancerStateEnum, LoadBalancerTypeEnum, PathPatternConditionConfig, ProtocolEnum,
    RuleCondition, Tag, TargetGroupAttribute, TargetTypeEnum,
};

use super::{Aws, AwsError, all_pages, in_stack, observed, tag_map};
use crate::{Ctx, RetryInUse, Step};
use engine::clock::AwsClock;
use engine::plan::{Kind, LogicalId, Observed, Resource, Spec};

const ACTIVE_DEADLINE: Duration = Duration::from_secs(15 * 60);
const GONE_DEADLINE: Duration = Duration::from_secs(15 * 60);
const IN_USE_DEADLINE: Duration = Duration::from_secs(10 * 60);
const POLL: Duration = Duration::from_secs(5);
const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";
/// DescribeTags takes at most 20 ARNs at a time.
const TAGS_PER_CALL: usize = 20;

fn tags(map: &BTreeMap<String, String>) -> Vec<Tag> {
    map.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The tags of many resources, by ARN.
async fn tags_of(
    aws: &Aws,
    arns: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, AwsError> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(TAGS_PER_CALL) {
        let answer = sdk!(
            "DescribeTags",
            aws.elb
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
        )?;
        for d in answer.tag_descriptions() {
            if let Some(arn) = d.resource_arn() {
                out.insert(
                    arn.to_string(),
                    tag_map(
                        d.tags()
                            .iter()
                            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                    ),
                );
            }
        }
    }
    Ok(out)
}

pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let elb = &aws.elb;
    let balancers = all_pages(|marker| async move {
        let page = sdk!(
            "DescribeLoadBalancers",
            elb.describe_load_balancers().set_marker(marker).send()
        )?;
        Ok((
            page.load_balancers().to_vec(),
            page.next_marker().map(str::to_string),
        ))
    })
    .await?;
    let groups = all_pages(|marker| async move {
        let page = sdk!(
            "DescribeTargetGroups",
            elb.describe_target_groups().set_marker(marker).send()
        )?;
        Ok((
            page.target_groups().to_vec(),
            page.next_marker().map(str::to_string),
        ))
    })
    .await?;
    let arns: Vec<String> = balancers
        .iter()
        .filter_map(|b| b.load_balancer_arn())
        .chain(groups.iter().filter_map(|g| g.target_group_arn()))
        .map(str::to_string)
        .collect();
    let tags = tags_of(aws, &arns).await?;
    let tags_for = |arn: &str| tags.get(arn).cloned().unwrap_or_default();

    let mut out = Vec::new();
    for b in &balancers {
        let Some(arn) = b.load_balancer_arn() else {
            continue;
        };
        let tags = tags_for(arn);
        if !in_stack(&tags, stack) {
            continue;
        }
        let spec = Spec::LoadBalancer {
            name: b.load_balancer_name().unwrap_or_default().to_string(),
            internal: b.scheme() == Some(&LoadBalancerSchemeEnum::Internal),
            subnets: b
                .availability_zones()
                .iter()
                .filter_map(|z| z.subnet_id())
                .map(LogicalId::foreign)
                .collect(),
            security_groups: b
                .security_groups()
                .iter()
                .map(|g| LogicalId::foreign(g))
                .collect(),
        };
        let state = b
            .state()
            .and_then(|s| s.code())
            .map(|c| c.as_str().to_string());
        out.push(
            observed(arn, tags, spec, state)
                .with_attribute("dns_name", b.dns_name().unwrap_or_default()),
        );
        out.extend(observe_listeners(aws, stack, arn).await?);
    }
    for g in &groups {
        let Some(arn) = g.target_group_arn() else {
            continue;
        };
        let tags = tags_for(arn);
        if !in_stack(&tags, stack) {
            continue;
        }
        let attributes = sdk!(
            "DescribeTargetGroupAttributes",
            elb.describe_target_group_attributes()
                .target_group_arn(arn)
                .send()
        )?;
        let delay = attributes
            .attributes()
            .iter()
            .find(|a| a.key() == Some(DEREGISTRATION_DELAY))
            .and_then(|a| a.value()?.parse().ok())
            .unwrap_or(300);
        let spec = Spec::TargetGroup {
            name: g.target_group_name().unwrap_or_default().to_string(),
            vpc: LogicalId::foreign(g.vpc_id().unwrap_or_default()),
            port: g.port().unwrap_or_default() as u16,
            health_check_path: g.health_check_path().unwrap_or_default().to_string(),
            deregistration_delay_seconds: delay,
        };
        out.push(observed(arn, tags, spec, None));
    }
    Ok(out)
}

async fn observe_listeners(
    aws: &Aws,
    stack: &str,
    balancer: &str,
) -> Result<Vec<Observed>, AwsError> {
    let elb = &aws.elb;
    let listeners = sdk!(
        "DescribeListeners",
        elb.describe_listeners().load_balancer_arn(balancer).send()
    )?;
    let mut out = Vec::new();
    for l in listeners.listeners() {
        let Some(arn) = l.listener_arn() else {
            continue;
        };
        let rules = sdk!(
            "DescribeRules",
            elb.describe_rules().listener_arn(arn).send()
        )?;
        let mut arns = vec![arn.to_string()];
        arns.extend(
            rules
                .rules()
                .iter()
                .filter(|r| r.is_default() != Some(true))
                .filter_map(|r| r.rule_arn().map(str::to_string)),
        );
        let tags = tags_of(aws, &arns).await?;
        let listener_tags = tags.get(arn).cloned().unwrap_or_default();
        if !in_stack(&listener_tags, stack) {
            continue;
        }
        let default_status = l
            .default_actions()
            .iter()
            .find_map(|a| a.fixed_response_config()?.status_code()?.parse().ok())
            .unwrap_or(0);
        out.push(observed(
            arn,
            listener_tags,
            Spec::Listener {
                load_balancer: LogicalId::foreign(balancer),
                port: l.port().unwrap_or_default() as u16,
                default_status,
            },
            None,
        ));
        for r in rules
            .rules()
            .iter()
            .filter(|r| r.is_default() != Some(true))
        {
            let Some(rule_arn) = r.rule_arn() else {
                continue;
            };
            let paths = r
                .conditions()
                .iter()
                .filter_map(|c| c.path_pattern_config())
                .flat_map(|p| p.values().iter().cloned())
                .collect();
            let target = r
                .actions()
                .iter()
                .find_map(|a| a.target_group_arn())
                .unwrap_or_default();
            out.push(observed(
                rule_arn,
                tags.get(rule_arn).cloned().unwrap_or_default(),
                Spec::ListenerRule {
                    listener: LogicalId::foreign(arn),
                    priority: r.priority().and_then(|p| p.parse().ok()).unwrap_or(0),
                    paths,
                    target_group: LogicalId::foreign(target),
                },
                None,
            ));
        }
    }
    Ok(out)
}

fn not_found_answer(call: &'static str) -> AwsError {
    AwsError::new(call, "no ARN in the answer")
}

fn fixed_response(status: u16) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code(status.to_string())
                // AWS allows only a few content types; problem+json is not one.
                .content_type("application/json")
                .message_body(format!(
                    r#"{{"type":"about:blank","title":"No service serves this path","status":{status}}}"#
                ))
                .build(),
        )
        .build()
}

fn forward(target_group: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(target_group)
        .build()
}

fn path_condition(paths: &std::collections::BTreeSet<String>) -> RuleCondition {
    RuleCondition::builder()
        .field("path-pattern")
        .path_pattern_config(
            PathPatternConditionConfig::builder()
                .set_values(Some(paths.iter().cloned().collect()))
                .build(),
        )
        .build()
}

pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let elb = &ctx.aws.elb;
    let tag_list = tags(&ctx.tags(&resource.id));
    let lookup = || super::find(observe(ctx.aws, &ctx.stack), &resource.id);
    match &resource.spec {
        Spec::LoadBalancer {
            name,
            internal,
            subnets,
            security_groups,
        } => {
            let subnets = ctx.resolve_all(subnets)?;
            let groups = ctx.resolve_all(security_groups)?;
            let scheme = if *internal {
                LoadBalancerSchemeEnum::Internal
            } else {
                LoadBalancerSchemeEnum::InternetFacing
            };
            // Moto makes a second load balancer of the same name where AWS
            // would return the first: look before trying again.
            let arn = ctx
                .aws
                .create_once(
                    || async {
                        sdk!(
                            "CreateLoadBalancer",
                            elb.create_load_balancer()
                                .name(name)
                                .r#type(LoadBalancerTypeEnum::Application)
                                .scheme(scheme.clone())
                                .set_subnets(Some(subnets.clone()))
                                .set_security_groups(Some(groups.clone()))
                                .set_tags(Some(tag_list.clone()))
                                .customize()
                                .config_override(no_retry!(elbv2))
                                .send()
                        )?
                        .load_balancers()
                        .first()
                        .and_then(|b| b.load_balancer_arn().map(str::to_string))
                        .ok_or_else(|| not_found_answer("CreateLoadBalancer"))
                    },
                    lookup,
                )
                .await?;
            let dns = wait_active(ctx, step, &arn).await?;
            ctx.remember_attribute(&resource.id, "dns_name", &dns);
            Ok(arn)
        }
        Spec::TargetGroup {
            name,
            vpc,
            port,
            health_check_path,
            deregistration_delay_seconds,
        } => {
            let vpc_id = ctx.resolve(vpc)?;
            // AWS returns the existing group for the same name and settings.
            let arn = ctx
                .aws
                .create_once(
                    || async {
                        sdk!(
                            "CreateTargetGroup",
                            elb.create_target_group()
                                .name(name)
                                .protocol(ProtocolEnum::Http)
                                .port(i32::from(*port))
                                .vpc_id(&vpc_id)
                                .target_type(TargetTypeEnum::Ip)
                                .health_check_path(health_check_path)
                                .health_check_interval_seconds(15)
                                .healthy_threshold_count(2)
                                .unhealthy_threshold_count(3)
                                .set_tags(Some(tag_list.clone()))
                                .customize()
                                .config_override(no_retry!(elbv2))
                                .send()
                        )?
                        .target_groups()
                        .first()
                        .and_then(|g| g.target_group_arn().map(str::to_string))
                        .ok_or_else(|| not_found_answer("CreateTargetGroup"))
                    },
                    lookup,
                )
                .await?;
            set_deregistration_delay(ctx, &arn, *deregistration_delay_seconds).await?;
            Ok(arn)
        }
        Spec::Listener {
            load_balancer,
            port,
            default_status,
        } => {
            let balancer = ctx.resolve(load_balancer)?;
            let created = sdk!(
                "CreateListener",
                elb.create_listener()
                    .load_balancer_arn(&balancer)
                    .protocol(ProtocolEnum::Http)
                    .port(i32::from(*port))
                    .default_actions(fixed_response(*default_status))
                    .set_tags(Some(tag_list.clone()))
                    .send()
            );
            match created {
                Ok(answer) => answer
                    .listeners()
                    .first()
                    .and_then(|l| l.listener_arn().map(str::to_string))
                    .ok_or_else(|| not_found_answer("CreateListener")),
                // A retry of a create whose answer was lost.
                Err(e) if e.is_already_exists() => lookup().await?.ok_or(e),
                Err(e) => Err(e),
            }
        }
        Spec::ListenerRule {
            listener,
            priority,
            paths,
            target_group,
        } => {
            let listener = ctx.resolve(listener)?;
            let target = ctx.resolve(target_group)?;
            let created = sdk!(
                "CreateRule",
                elb.create_rule()
                    .listener_arn(&listener)
                    .priority(*priority as i32)
                    .conditions(path_condition(paths))
                    .actions(forward(&target))
                    .set_tags(Some(tag_list.clone()))
                    .send()
            );
            match created {
                Ok(answer) => answer
                    .rules()
                    .first()
                    .and_then(|r| r.rule_arn().map(str::to_string))
                    .ok_or_else(|| not_found_answer("CreateRule")),
                Err(e) if e.is_already_exists() => lookup().await?.ok_or(e),
                Err(e) => Err(e),
            }
        }
        _ => Err(AwsError::new("create", "not a load-balancing resource")),
    }
}

pub async fn update(
    ctx: &Ctx<'_>,
    step: &Step,
    resource: &Resource,
    arn: &str,
) -> Result<(), AwsError> {
    let elb = &ctx.aws.elb;
    match &resource.spec {
        Spec::LoadBalancer {
            subnets,
            security_groups,
            ..
        } => {
            let subnets = ctx.resolve_all(subnets)?;
            let groups = ctx.resolve_all(security_groups)?;
            sdk!(
                "SetSubnets",
                elb.set_subnets()
                    .load_balancer_arn(arn)
                    .set_subnets(Some(subnets))
                    .send()
            )?;
            sdk!(
                "SetSecurityGroups",
                elb.set_security_groups()
                    .load_balancer_arn(arn)
                    .set_security_groups(Some(groups))
                    .send()
            )?;
            // Still provisioning (an interrupted `up`): active before
            // what depends on it.
            wait_active(ctx, step, arn).await?;
        }
        Spec::TargetGroup {
            health_check_path,
            deregistration_delay_seconds,
            ..
        } => {
            sdk!(
                "ModifyTargetGroup",
                elb.modify_target_group()
                    .target_group_arn(arn)
                    .health_check_path(health_check_path)
                    .send()
            )?;
            set_deregistration_delay(ctx, arn, *deregistration_delay_seconds).await?;
        }
        Spec::Listener { default_status, .. } => {
            sdk!(
                "ModifyListener",
                elb.modify_listener()
                    .listener_arn(arn)
                    .default_actions(fixed_response(*default_status))
                    .send()
            )?;
        }
        Spec::ListenerRule {
            paths,
            target_group,
            ..
        } => {
            let target = ctx.resolve(target_group)?;
            sdk!(
                "ModifyRule",
                elb.modify_rule()
                    .rule_arn(arn)
                    .conditions(path_condition(paths))
                    .actions(forward(&target))
                    .send()
            )?;
        }
        _ => return Err(AwsError::new("update", "not a load-balancing resource")),
    }
    sdk!(
        "AddTags",
        elb.add_tags()
            .resource_arns(arn)
            .set_tags(Some(tags(&ctx.tags(&resource.id))))
            .send()
    )
    .map(|_| ())
}

pub async fn delete(ctx: &Ctx<'_>, step: &Step, observed: &Observed) -> Result<(), AwsError> {
    let elb = &ctx.aws.elb;
    let arn = observed.physical_id.as_str();
    match &observed.spec {
        Spec::ListenerRule { .. } => {
            super::gone(sdk!("DeleteRule", elb.delete_rule().rule_arn(arn).send()).map(|_| ()))
        }
        Spec::Listener { .. } => super::gone(
            sdk!(
                "DeleteListener",
                elb.delete_listener().listener_arn(arn).send()
            )
            .map(|_| ()),
        ),
        Spec::TargetGroup { .. } => {
            step.retry_dependency(
                "the target group's listeners and tasks to let go of it",
                IN_USE_DEADLINE,
                || async {
                    sdk!(
                        "DeleteTargetGroup",
                        elb.delete_target_group().target_group_arn(arn).send()
                    )
                    .map(|_| ())
                },
            )
            .await
        }
        Spec::LoadBalancer { .. } => {
            super::gone(
                sdk!(
                    "DeleteLoadBalancer",
                    elb.delete_load_balancer().load_balancer_arn(arn).send()
                )
                .map(|_| ()),
            )?;
            step.wait_until(
                "the load balancer to be deleted",
                ctx.steady(POLL, GONE_DEADLINE),
                || async {
                    match sdk!(
                        "DescribeLoadBalancers",
                        elb.describe_load_balancers().load_balancer_arns(arn).send()
                    ) {
                        Ok(answer) => Ok(answer.load_balancers().is_empty().then_some(())),
                        Err(e) if e.is_not_found() => Ok(Some(())),
                        Err(e) => Err(e),
                    }
                },
            )
            .await?;
            // Its network interfaces outlive it by minutes, and hold its
            // subnets and security group until they go.
            let description = interface_description(arn);
            step.wait_until(
                "the load balancer's network interfaces to be released",
                ctx.pace(
                    AwsClock::typical().delete(Kind::LoadBalancer),
                    GONE_DEADLINE,
                ),
                || async {
                    let answer = sdk!(
                        "DescribeNetworkInterfaces",
                        ctx.aws
                            .ec2
                            .describe_network_interfaces()
                            .filters(
                                aws_sdk_ec2::types::Filter::builder()
                                    .name("description")
                                    .values(&description)
                                    .build()
                            )
                            .send()
                    )?;
                    Ok(answer.network_interfaces().is_empty().then_some(()))
                },
            )
            .await
        }
        _ => Err(AwsError::new("delete", "not a load-balancing resource")),
    }
}

/// The description AWS gives a load balancer's network interfaces:
/// `ELB app/NAME/ID` for `arn:...:loadbalancer/app/NAME/ID`.
fn interface_description(arn: &str) -> String {
    let tail = arn.split_once(":loadbalancer/").map_or(arn, |(_, t)| t);
    format!("ELB {tail}")
}

async fn set_deregistration_delay(ctx: &Ctx<'_>, arn: &str, seconds: u32) -> Result<(), AwsError> {
    sdk!(
        "ModifyTargetGroupAttributes",
        ctx.aws
            .elb
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .attributes(
                TargetGroupAttribute::builder()
                    .key(DEREGISTRATION_DELAY)
                    .value(seconds.to_string())
                    .build()
            )
            .send()
    )
    .map(|_| ())
}

/// Waits for the load balancer to become active and returns its DNS name.
async fn wait_active(ctx: &Ctx<'_>, step: &Step, arn: &str) -> Result<String, AwsError> {
    step.wait_for_state(
        "the load balancer to become active",
        ctx.pace(
            AwsClock::typical().create(Kind::LoadBalancer),
            ACTIVE_DEADLINE,
        ),
        || async {
            let answer = sdk!(
                "DescribeLoadBalancers",
                ctx.aws
                    .elb
                    .describe_load_balancers()
                    .load_balancer_arns(arn)
                    .send()
            )?;
            let Some(b) = answer.load_balancers().first() else {
                return Ok(Err(Some("not listed yet".into())));
            };
            let state = b.state().and_then(|s| s.code());
            match state {
                Some(LoadBalancerStateEnum::Active) => {
                    Ok(Ok(b.dns_name().unwrap_or_default().to_string()))
                }
                Some(LoadBalancerStateEnum::Failed) => Err(AwsError::new(
                    "CreateLoadBalancer",
                    format!(
                        "load balancer {arn} failed: {}",
                        b.state()
                            .and_then(|s| s.reason())
                            .unwrap_or("no reason given")
                    ),
                )),
                other => Ok(Err(other.map(|s| s.as_str().to_string()))),
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_are_found_by_the_balancer_part_of_the_arn() {
        assert_eq!(
            interface_description(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/shop/50dc6c495c0c9188"
            ),
            "ELB app/shop/50dc6c495c0c9188"
        );
    }
}
