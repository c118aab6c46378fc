//! Where the services run: the ECS cluster, the IAM roles its tasks use and
//! one CloudWatch log group per service.
//!
//! Roles are found by their IAM path (`/techctl/STACK/`), since IAM lists no
//! tags; their physical id is the role name. Log groups are found by their
//! name prefix (`/techctl/STACK/`) and known by their name.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_ecs::types::{ClusterSetting, ClusterSettingName, Tag as EcsTag};
use serde_json::{Value, json};

use super::{Aws, AwsError, all_pages, in_stack, observed, policy, tag_map};
use crate::{Ctx, RetryInUse, Step};
use engine::plan::expand::deploy::{GITHUB_ISSUER, deploy_role_path};
use engine::plan::expand::role_path;
use engine::plan::resource::{Effect, Output, Statement, Trust};
use engine::plan::{Observed, Resource, Spec};

const DRAINED_DEADLINE: Duration = Duration::from_secs(20 * 60);
const IN_USE_DEADLINE: Duration = Duration::from_secs(10 * 60);
const POLL: Duration = Duration::from_secs(5);
/// How long a first cluster waits for ECS's service-linked role to be made.
const SERVICE_LINKED_ROLE_DEADLINE: Duration = Duration::from_secs(120);

/// ECS's answer while its service-linked role is still being made: "Unable
/// to assume the service linked role. Please verify that the ECS service
/// linked role exists."
fn is_service_linked_role_pending(e: &AwsError) -> bool {
    e.code.as_deref() == Some("InvalidParameterException")
        && e.message
            .to_ascii_lowercase()
            .contains("service linked role")
}

/// The name of the one inline policy of each role.
const POLICY_NAME: &str = "techctl";

fn log_prefix(stack: &str) -> String {
    format!("/techctl/{stack}/")
}

pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let (clusters, roles, logs) = tokio::try_join!(
        observe_clusters(aws, stack),
        observe_roles(aws, stack),
        observe_log_groups(aws, stack),
    )?;
    Ok(clusters.into_iter().chain(roles).chain(logs).collect())
}

async fn observe_clusters(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    // The stack's cluster has the stack's name: asked for by name, it is
    // one call, however many clusters the account holds (a missing one is
    // answered as a failure, not an error).
    let mut out = Vec::new();
    let answer = sdk!(
        "DescribeClusters",
        aws.ecs
            .describe_clusters()
            .clusters(stack)
            .include(aws_sdk_ecs::types::ClusterField::Tags)
            .include(aws_sdk_ecs::types::ClusterField::Settings)
            .send()
    )?;
    for c in answer.clusters() {
        let tags = tag_map(
            c.tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
        );
        let status = c.status().unwrap_or_default().to_ascii_lowercase();
        // Deleted clusters stay listed for a while as INACTIVE.
        let Some(arn) = c
            .cluster_arn()
            .filter(|_| in_stack(&tags, stack) && status != "inactive")
        else {
            continue;
        };
        let insights = c.settings().iter().any(|s| {
            s.name() == Some(&ClusterSettingName::ContainerInsights)
                && matches!(s.value(), Some("enabled" | "enhanced"))
        });
        out.push(observed(
            arn,
            tags,
            Spec::Cluster {
                name: c.cluster_name().unwrap_or_default().to_string(),
                container_insights: insights,
            },
            Some(status),
        ));
    }
    Ok(out)
}

/// The statements of a policy document as the engine states them; a
/// statement it would never write (no effect it knows) reads as nothing,
/// which shows as a difference and is put right.
pub(crate) fn statements_of(document: &str) -> BTreeSet<Statement> {
    let doc = iam::document_json(document);
    policy::statements(&doc)
        .into_iter()
        .filter_map(|s| {
            let effect = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return None,
            };
            let mut conditions = BTreeMap::new();
            for (operator, keys) in s
                .get("Condition")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                for (key, values) in keys.as_object().into_iter().flatten() {
                    conditions
                        .entry(operator.clone())
                        .or_insert_with(BTreeMap::new)
                        .insert(
                            key.clone(),
                            policy::strings(Some(values)).into_iter().collect(),
                        );
                }
            }
            Some(Statement {
                effect,
                actions: policy::strings(s.get("Action")).into_iter().collect(),
                resources: policy::strings(s.get("Resource"))
                    .into_iter()
                    .map(Output::Text)
                    .collect(),
                conditions,
            })
        })
        .collect()
}
/// The audience GitHub's tokens carry for AWS.
const GITHUB_AUDIENCE: &str = "sts.amazonaws.com";

/// Who a trust policy lets assume the role, as the engine writes it.
fn trust_of_document(document: &str) -> Trust {
    let doc = iam::document_json(document);
    let first = policy::statements(&doc).into_iter().next();
    let federated = first
        .and_then(|s| s.pointer("/Principal/Federated"))
        .and_then(Value::as_str)
        .filter(|p| p.ends_with(&format!("oidc-provider/{GITHUB_ISSUER}")));
    match (federated, first) {
        (Some(_), Some(s)) => {
            let equals = s.pointer("/Condition/StringEquals");
            let claim = |name: &str| {
                equals
                    .and_then(|e| e.get(format!("{GITHUB_ISSUER}:{name}")))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            // Any other audience is not what the engine writes: it shows
            // as a difference and is put right.
            let subject = if claim("aud") == GITHUB_AUDIENCE {
                claim("sub")
            } else {
                String::new()
            };
            Trust::GitHub { subject }
        }
        _ => Trust::Service(
            first
                .and_then(|s| s.pointer("/Principal/Service"))
                .map(|v| policy::strings(Some(v)).join(","))
                .unwrap_or_default(),
        ),
    }
}

/// Whether the trust policy lets only one account's tasks assume the role.
fn has_account_guard(document: &str) -> bool {
    let doc = iam::document_json(document);
    policy::statements(&doc).first().is_some_and(|s| {
        s.pointer("/Condition/StringEquals/aws:SourceAccount")
            .and_then(Value::as_str)
            .is_some_and(|a| !a.is_empty())
            && s.pointer("/Condition/ArnLike/aws:SourceArn").is_some()
    })
}

/// The names of the roles under an IAM path.
async fn roles_under(aws: &Aws, prefix: String) -> Result<Vec<String>, AwsError> {
    all_pages(|marker| {
        let prefix = prefix.clone();
        async move {
            let page = sdk!(
                "ListRoles",
                aws.iam
                    .list_roles()
                    .path_prefix(prefix)
                    .set_marker(marker)
                    .send()
            )?;
            let names = page
                .roles()
                .iter()
                .map(|r| r.role_name().to_string())
                .collect();
            Ok((
                names,
                page.marker()
                    .filter(|_| page.is_truncated())
                    .map(str::to_string),
            ))
        }
    })
    .await
}

async fn observe_roles(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let mut names = Vec::new();
    for prefix in [role_path(stack), deploy_role_path(stack)] {
        names.extend(roles_under(aws, prefix).await?);
    }
    let mut out = Vec::new();
    for name in names {
        let role = match sdk!("GetRole", aws.iam.get_role().role_name(&name).send()) {
            Ok(answer) => answer.role,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let Some(role) = role else { continue };
        let tags = tag_map(role.tags().iter().map(|t| (t.key(), t.value())));
        if !in_stack(&tags, stack) {
            continue;
        }
        let policy = match sdk!(
            "GetRolePolicy",
            aws.iam
                .get_role_policy()
                .role_name(&name)
                .policy_name(POLICY_NAME)
                .send()
        ) {
            Ok(answer) => statements_of(answer.policy_document()),
            Err(e) if e.is_not_found() => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        let spec = Spec::Role {
            name: name.clone(),
            trust: trust_of_document(role.assume_role_policy_document().unwrap_or("{}")),
            account_guard: has_account_guard(role.assume_role_policy_document().unwrap_or("{}")),
            policy,
            boundary: role
                .permissions_boundary()
                .and_then(|b| b.permissions_boundary_arn())
                .map(|arn| Output::Text(arn.to_string())),
        };
        out.push(observed(&name, tags, spec, None).with_attribute("arn", role.arn()));
    }
    Ok(out)
}

async fn observe_log_groups(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let prefix = log_prefix(stack);
    let groups = all_pages(|token| {
        let prefix = prefix.clone();
        async move {
            let page = sdk!(
                "DescribeLogGroups",
                aws.logs
                    .describe_log_groups()
                    .log_group_name_prefix(prefix)
                    .set_next_token(token)
                    .send()
            )?;
            Ok((
                page.log_groups().to_vec(),
                page.next_token().map(str::to_string),
            ))
        }
    })
    .await?;
    let mut out = Vec::new();
    for g in groups {
        let (Some(name), Some(arn)) = (g.log_group_name(), g.arn()) else {
            continue;
        };
        let tags = sdk!(
            "ListTagsForResource",
            aws.logs
                .list_tags_for_resource()
                .resource_arn(arn.trim_end_matches(":*"))
                .send()
        )?;
        let tags = tag_map(
            tags.tags()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        if !in_stack(&tags, stack) {
            continue;
        }
        let spec = Spec::LogGroup {
            name: name.to_string(),
            retention_days: g.retention_in_days().unwrap_or(0) as u32,
        };
        out.push(observed(name, tags, spec, None).with_attribute("arn", arn));
    }
    Ok(out)
}

/// A policy document (a role's, or the boundary), with every reference
/// resolved to an ARN.
pub(crate) fn policy_document(
    ctx: &Ctx<'_>,
    policy: &BTreeSet<Statement>,
) -> Result<String, AwsError> {
    Ok(engine::plan::resource::policy_document(policy, |r| ctx.output_text(r))?.to_string())
}

/// The trust policy of a role the service assumes on behalf of this
/// account's tasks only: without the conditions, a task of another account
/// that names the role could be handed its rights (the confused deputy AWS
/// warns of for `ecs-tasks.amazonaws.com`).
fn trust_document(service: &str, partition: &str, region: &str, account: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole",
            "Condition": {
                "ArnLike": { "aws:SourceArn": format!("arn:{partition}:ecs:{region}:{account}:*") },
                "StringEquals": { "aws:SourceAccount": account },
            },
        }],
    })
    .to_string()
}

/// The ARN of this account's GitHub Actions OIDC provider.
fn github_provider_arn(partition: &str, account: &str) -> String {
    format!("arn:{partition}:iam::{account}:oidc-provider/{GITHUB_ISSUER}")
}

/// The trust policy of a role GitHub Actions assumes: a token for AWS
/// whose subject is exactly one repository's branch, compared whole
/// (`StringEquals`: no wildcard widens it to other branches or forks).
fn github_trust_document(provider_arn: &str, subject: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": provider_arn },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    format!("{GITHUB_ISSUER}:aud"): GITHUB_AUDIENCE,
                    format!("{GITHUB_ISSUER}:sub"): subject,
                },
            },
        }],
    })
    .to_string()
}

async fn trust_policy(aws: &Aws, trust: &Trust) -> Result<String, AwsError> {
    let account = aws.account_id().await?;
    let partition = super::partition(&aws.region);
    Ok(match trust {
        Trust::Service(service) => trust_document(service, partition, &aws.region, &account),
        Trust::GitHub { subject } => {
            github_trust_document(&github_provider_arn(partition, &account), subject)
        }
    })
}

/// Makes the account's GitHub Actions OIDC provider unless it exists, and
/// gives its ARN. It
/// is the account's, not the stack's: every stack deployed from GitHub
/// trusts the same one, so `down` leaves it. IAM fetches GitHub's signing
/// keys itself; no thumbprint is pinned.
async fn ensure_github_provider(aws: &Aws) -> Result<String, AwsError> {
    let account = aws.account_id().await?;
    let arn = github_provider_arn(super::partition(&aws.region), &account);
    match sdk!(
        "GetOpenIDConnectProvider",
        aws.iam
            .get_open_id_connect_provider()
            .open_id_connect_provider_arn(&arn)
            .send()
    ) {
        Ok(_) => return Ok(arn),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let created = sdk!(
        "CreateOpenIDConnectProvider",
        aws.iam
            .create_open_id_connect_provider()
            .url(format!("https://{GITHUB_ISSUER}"))
            .client_id_list(GITHUB_AUDIENCE)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("techctl:shared")
                    .value("github-actions")
                    .build()
                    .map_err(|e| AwsError::new("CreateOpenIDConnectProvider", e.to_string()))?,
            )
            .send()
    );
    match created {
        Ok(_) => {
            aws.made.mark(&arn);
            Ok(arn)
        }
        // Made meanwhile by another stack's `up`.
        Err(e) if e.is_already_exists() => Ok(arn),
        Err(e) => Err(e),
    }
}

/// Where a role lives in IAM: the stack's roles under the stack's path,
/// its deploy role apart.
fn path_of(stack: &str, trust: &Trust) -> String {
    match trust {
        Trust::Service(_) => role_path(stack),
        Trust::GitHub { .. } => deploy_role_path(stack),
    }
}

pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let aws = ctx.aws;
    let tags = ctx.tags(&resource.id);
    match &resource.spec {
        Spec::Cluster {
            name,
            container_insights,
        } => {
            // CreateCluster returns the existing cluster of the same name.
            // In a fresh account the first one also makes ECS's
            // service-linked role, and is refused until that role exists.
            let answer = super::retry_passing(
                SERVICE_LINKED_ROLE_DEADLINE,
                is_service_linked_role_pending,
                || async {
                    sdk!(
                        "CreateCluster",
                        aws.ecs
                            .create_cluster()
                            .cluster_name(name)
                            .settings(insights_setting(*container_insights))
                            .set_tags(Some(ecs_tags(&tags)))
                            .send()
                    )
                },
            )
            .await?;
            answer
                .cluster()
                .and_then(|c| c.cluster_arn().map(str::to_string))
                .ok_or_else(|| AwsError::new("CreateCluster", "no cluster ARN in the answer"))
        }
        Spec::Role {
            name,
            trust,
            boundary,
            ..
        } => {
            let boundary = boundary.as_ref().map(|b| ctx.output_text(b)).transpose()?;
            let provider = match trust {
                Trust::GitHub { .. } => Some(ensure_github_provider(aws).await?),
                Trust::Service(_) => None,
            };
            let path = path_of(&ctx.stack, trust);
            let trust = trust_policy(aws, trust).await?;
            // IAM may not know a provider it made a moment ago, and then
            // refuses the trust policy that names it.
            // IAM may also not know the boundary policy made a moment ago
            // (NoSuchEntity, or InvalidInput naming the boundary).
            let provider_pending = |e: &AwsError| {
                let fresh =
                    |arn: &Option<String>| arn.as_deref().is_some_and(|a| aws.made.is_fresh(a));
                (e.code.as_deref() == Some("MalformedPolicyDocument") && fresh(&provider))
                    || ((e.is_not_found() || e.code.as_deref() == Some("InvalidInput"))
                        && fresh(&boundary))
            };
            let created = super::retry_passing(super::PROPAGATION, provider_pending, || async {
                sdk!(
                    "CreateRole",
                    aws.iam
                        .create_role()
                        .role_name(name)
                        .path(&path)
                        .assume_role_policy_document(&trust)
                        .set_permissions_boundary(boundary.clone())
                        .description(format!("techctl stack {}: {}", ctx.stack, resource.id))
                        .set_tags(Some(iam_tags(&tags)))
                        .send()
                )
            })
            .await;
            let arn = match created {
                Ok(answer) => {
                    // IAM is eventually consistent too: the next calls
                    // naming the role may not find it at first.
                    aws.made.mark(name);
                    answer.role.map(|r| r.arn).unwrap_or_default()
                }
                // Left by an interrupted run (or a lost answer): adopt it.
                Err(e) if e.is_already_exists() => {
                    sdk!("GetRole", aws.iam.get_role().role_name(name).send())?
                        .role
                        .map(|r| r.arn)
                        .unwrap_or_default()
                }
                Err(e) => return Err(e),
            };
            ctx.remember_attribute(&resource.id, "arn", &arn);
            update(ctx, step, resource, name).await?;
            Ok(name.clone())
        }
        Spec::LogGroup { name, .. } => {
            let created = sdk!(
                "CreateLogGroup",
                aws.logs
                    .create_log_group()
                    .log_group_name(name)
                    .set_tags(Some(tags.clone().into_iter().collect()))
                    .send()
            );
            match created {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
            let listed = sdk!(
                "DescribeLogGroups",
                aws.logs
                    .describe_log_groups()
                    .log_group_name_prefix(name)
                    .send()
            )?;
            let arn = listed
                .log_groups()
                .iter()
                .find(|g| g.log_group_name() == Some(name))
                .and_then(|g| g.arn())
                .ok_or_else(|| {
                    AwsError::new("DescribeLogGroups", format!("{name} is not listed"))
                })?;
            ctx.remember_attribute(&resource.id, "arn", arn);
            update(ctx, step, resource, name).await?;
            Ok(name.clone())
        }
        _ => Err(AwsError::new("create", "not an ECS resource")),
    }
}

fn insights_setting(on: bool) -> ClusterSetting {
    ClusterSetting::builder()
        .name(ClusterSettingName::ContainerInsights)
        .value(if on { "enabled" } else { "disabled" })
        .build()
}

fn ecs_tags(tags: &BTreeMap<String, String>) -> Vec<EcsTag> {
    tags.iter()
        .map(|(k, v)| EcsTag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn iam_tags(tags: &BTreeMap<String, String>) -> Vec<aws_sdk_iam::types::Tag> {
    tags.iter()
        .filter_map(|(k, v)| {
            aws_sdk_iam::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .ok()
        })
        .collect()
}

pub async fn update(
    ctx: &Ctx<'_>,
    _step: &Step,
    resource: &Resource,
    physical: &str,
) -> Result<(), AwsError> {
    let aws = ctx.aws;
    let tags = ctx.tags(&resource.id);
    match &resource.spec {
        Spec::Cluster {
            container_insights, ..
        } => {
            sdk!(
                "UpdateClusterSettings",
                aws.ecs
                    .update_cluster_settings()
                    .cluster(physical)
                    .settings(insights_setting(*container_insights))
                    .send()
            )?;
            sdk!(
                "TagResource",
                aws.ecs
                    .tag_resource()
                    .resource_arn(physical)
                    .set_tags(Some(ecs_tags(&tags)))
                    .send()
            )
            .map(|_| ())
        }
        Spec::Role {
            policy,
            trust,
            boundary,
            ..
        } => {
            let trust = trust_policy(aws, trust).await?;
            let document = policy_document(ctx, policy)?;
            // The boundary first: a caller that may change only bounded
            // roles (the deploy role) can then make the other changes.
            if let Some(boundary) = boundary {
                let boundary = ctx.output_text(boundary)?;
                sdk_settled!(
                    aws,
                    [physical, boundary.as_str()],
                    "PutRolePermissionsBoundary",
                    aws.iam
                        .put_role_permissions_boundary()
                        .role_name(physical)
                        .permissions_boundary(&boundary)
                        .send()
                )?;
            }
            sdk_settled!(
                aws,
                [physical],
                "UpdateAssumeRolePolicy",
                aws.iam
                    .update_assume_role_policy()
                    .role_name(physical)
                    .policy_document(&trust)
                    .send()
            )?;
            sdk_settled!(
                aws,
                [physical],
                "PutRolePolicy",
                aws.iam
                    .put_role_policy()
                    .role_name(physical)
                    .policy_name(POLICY_NAME)
                    .policy_document(&document)
                    .send()
            )?;
            sdk_settled!(
                aws,
                [physical],
                "TagRole",
                aws.iam
                    .tag_role()
                    .role_name(physical)
                    .set_tags(Some(iam_tags(&tags)))
                    .send()
            )
            .map(|_| ())
        }
        Spec::LogGroup { retention_days, .. } => {
            sdk!(
                "PutRetentionPolicy",
                aws.logs
                    .put_retention_policy()
                    .log_group_name(physical)
                    .retention_in_days(*retention_days as i32)
                    .send()
            )?;
            let arn = ctx.attribute(&resource.id, "arn")?;
            sdk!(
                "TagResource",
                aws.logs
                    .tag_resource()
                    .resource_arn(arn.trim_end_matches(":*"))
                    .set_tags(Some(tags.into_iter().collect()))
                    .send()
            )
            .map(|_| ())
        }
        _ => Err(AwsError::new("update", "not an ECS resource")),
    }
}

pub async fn delete(ctx: &Ctx<'_>, step: &Step, observed: &Observed) -> Result<(), AwsError> {
    let aws = ctx.aws;
    let physical = observed.physical_id.as_str();
    match &observed.spec {
        Spec::Cluster { .. } => {
            drain_services(ctx, step, physical).await?;
            step.retry_dependency("the cluster's tasks to stop", IN_USE_DEADLINE, || async {
                sdk!(
                    "DeleteCluster",
                    aws.ecs.delete_cluster().cluster(physical).send()
                )
                .map(|_| ())
            })
            .await
        }
        Spec::Role { .. } => {
            let inline = match sdk!(
                "ListRolePolicies",
                aws.iam.list_role_policies().role_name(physical).send()
            ) {
                Ok(answer) => answer.policy_names().to_vec(),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            };
            for name in inline {
                super::gone(
                    sdk!(
                        "DeleteRolePolicy",
                        aws.iam
                            .delete_role_policy()
                            .role_name(physical)
                            .policy_name(name)
                            .send()
                    )
                    .map(|_| ()),
                )?;
            }
            // Policies attached by hand would block the delete.
            let attached = sdk!(
                "ListAttachedRolePolicies",
                aws.iam
                    .list_attached_role_policies()
                    .role_name(physical)
                    .send()
            )?;
            for policy in attached.attached_policies() {
                if let Some(arn) = policy.policy_arn() {
                    super::gone(
                        sdk!(
                            "DetachRolePolicy",
                            aws.iam
                                .detach_role_policy()
                                .role_name(physical)
                                .policy_arn(arn)
                                .send()
                        )
                        .map(|_| ()),
                    )?;
                }
            }
            step.retry_dependency("the role to be let go of", IN_USE_DEADLINE, || async {
                sdk!(
                    "DeleteRole",
                    aws.iam.delete_role().role_name(physical).send()
                )
                .map(|_| ())
            })
            .await
        }
        Spec::LogGroup { .. } => super::gone(
            sdk!(
                "DeleteLogGroup",
                aws.logs.delete_log_group().log_group_name(physical).send()
            )
            .map(|_| ()),
        ),
        _ => Err(AwsError::new("delete", "not an ECS resource")),
    }
}

/// Scales every service of the cluster to zero, deletes it, and waits
/// until its tasks have drained: their network interfaces hold the
/// subnets and the security group, and their target registrations the
/// target groups.
async fn drain_services(ctx: &Ctx<'_>, step: &Step, cluster: &str) -> Result<(), AwsError> {
    let ecs = &ctx.aws.ecs;
    let listed = all_pages(|token| async move {
        let page = sdk!(
            "ListServices",
            ecs.list_services()
                .cluster(cluster)
                .set_next_token(token)
                .send()
        )?;
        Ok((
            page.service_arns().to_vec(),
            page.next_token().map(str::to_string),
        ))
    })
    .await;
    let services = match listed {
        Ok(services) => services,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    for service in &services {
        sdk!(
            "UpdateService",
            ecs.update_service()
                .cluster(cluster)
                .service(service)
                .desired_count(0)
                .send()
        )?;
        sdk!(
            "DeleteService",
            ecs.delete_service()
                .cluster(cluster)
                .service(service)
                .force(true)
                .send()
        )?;
    }
    if services.is_empty() {
        return Ok(());
    }
    step.wait_for_state(
        "the cluster's services to drain",
        ctx.steady(POLL, DRAINED_DEADLINE),
        || async {
            let mut pending = 0;
            // DescribeServices takes at most 10 services at a time.
            for chunk in services.chunks(10) {
                let answer = sdk!(
                    "DescribeServices",
                    ecs.describe_services()
                        .cluster(cluster)
                        .set_services(Some(chunk.to_vec()))
                        .send()
                )?;
                pending += answer
                    .services()
                    .iter()
                    .filter(|s| s.status() != Some("INACTIVE") || s.running_count() > 0)
                    .count();
            }
            Ok(if pending == 0 {
                Ok(())
            } else {
                Err(Some(format!("{pending} service(s) draining")))
            })
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_documents_are_read_whether_encoded_or_not() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22sns%3APublish%22%2C%22Resource%22%3A%22arn%3Aaws%3Asns%3Aus-east-1%3A1%3At%22%7D%5D%7D";
        let statements = statements_of(encoded);
        assert_eq!(statements.len(), 1);
        let s = statements.first().unwrap();
        assert!(s.actions.contains("sns:Publish"));
        assert!(
            s.resources
                .contains(&Output::Text("arn:aws:sns:us-east-1:1:t".into()))
        );
        let trust = trust_document(
            "ecs-tasks.amazonaws.com",
            "aws",
            "us-east-1",
            "123456789012",
        );
        assert_eq!(
            trust_of_document(&trust),
            Trust::Service("ecs-tasks.amazonaws.com".into())
        );
        let github = github_trust_document(
            &github_provider_arn("aws", "123456789012"),
            "repo:lanchonete/techchallenge:environment:staging",
        );
        assert_eq!(
            trust_of_document(&github),
            Trust::GitHub {
                subject: "repo:lanchonete/techchallenge:environment:staging".into()
            }
        );
        assert!(!has_account_guard(&github));
        assert!(has_account_guard(&trust));
        let unguarded = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert!(!has_account_guard(unguarded));
    }
}
