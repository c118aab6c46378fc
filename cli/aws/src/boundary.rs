//! The stack's permissions boundary: a customer managed policy under the
//! stack's IAM path (`/techctl/STACK/STACK-boundary`), set on every role
//! of the stack. Its physical id is its ARN.
//!
//! IAM keeps at most five versions of a managed policy: a change adds a
//! version made the default, after deleting the oldest one that is not.

use std::time::Duration;

use super::{Aws, AwsError, all_pages, in_stack, observed, tag_map};
use crate::ecs::{iam_tags, policy_document, statements_of};
use crate::{Ctx, RetryInUse, Step};
use engine::plan::expand::role_path;
use engine::plan::{Observed, Resource, Spec};

/// IAM's limit on the versions of one managed policy.
const MAX_VERSIONS: usize = 5;
const IN_USE_DEADLINE: Duration = Duration::from_secs(5 * 60);

pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let prefix = role_path(stack);
    let listed = all_pages(|marker| {
        let prefix = prefix.clone();
        async move {
            let page = sdk!(
                "ListPolicies",
                aws.iam
                    .list_policies()
                    .scope(aws_sdk_iam::types::PolicyScopeType::Local)
                    .path_prefix(prefix)
                    .set_marker(marker)
                    .send()
            )?;
            let next = page.marker().map(str::to_string);
            Ok((page.policies.unwrap_or_default(), next))
        }
    })
    .await?;
    let mut out = Vec::new();
    for listed in listed {
        let (Some(arn), Some(name)) = (listed.arn(), listed.policy_name()) else {
            continue;
        };
        let policy = match sdk!("GetPolicy", aws.iam.get_policy().policy_arn(arn).send()) {
            Ok(answer) => answer.policy,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let Some(policy) = policy else { continue };
        let tags = tag_map(policy.tags().iter().map(|t| (t.key(), t.value())));
        if !in_stack(&tags, stack) {
            continue;
        }
        let version = policy.default_version_id().unwrap_or("v1");
        let document = match sdk!(
            "GetPolicyVersion",
            aws.iam
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send()
        ) {
            Ok(answer) => answer
                .policy_version
                .and_then(|v| v.document)
                .unwrap_or_default(),
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let spec = Spec::ManagedPolicy {
            name: name.to_string(),
            policy: statements_of(&document),
        };
        out.push(observed(arn, tags, spec, None).with_attribute("arn", arn));
    }
    Ok(out)
}

pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let Spec::ManagedPolicy { name, policy } = &resource.spec else {
        return Err(AwsError::new("create", "not a managed policy"));
    };
    let aws = ctx.aws;
    let document = policy_document(ctx, policy)?;
    let path = role_path(&ctx.stack);
    let created = sdk!(
        "CreatePolicy",
        aws.iam
            .create_policy()
            .policy_name(name)
            .path(&path)
            .policy_document(&document)
            .description(format!("techctl stack {}: {}", ctx.stack, resource.id))
            .set_tags(Some(iam_tags(&ctx.tags(&resource.id))))
            .send()
    );
    let arn = match created {
        Ok(answer) => answer
            .policy
            .and_then(|p| p.arn)
            .ok_or_else(|| AwsError::new("CreatePolicy", "no policy ARN in the answer"))?,
        // Left by an interrupted run (or a lost answer): adopt it and put
        // its document right.
        Err(e) if e.is_already_exists() => {
            let account = aws.account_id().await?;
            let arn = format!(
                "arn:{}:iam::{account}:policy{path}{name}",
                super::partition(&aws.region)
            );
            ctx.remember_attribute(&resource.id, "arn", &arn);
            update(ctx, step, resource, &arn).await?;
            return Ok(arn);
        }
        Err(e) => return Err(e),
    };
    aws.made.mark(&arn);
    ctx.remember_attribute(&resource.id, "arn", &arn);
    Ok(arn)
}

/// A new default version with the document, and the tags.
pub async fn update(
    ctx: &Ctx<'_>,
    _step: &Step,
    resource: &Resource,
    arn: &str,
) -> Result<(), AwsError> {
    let Spec::ManagedPolicy { policy, .. } = &resource.spec else {
        return Err(AwsError::new("update", "not a managed policy"));
    };
    let aws = ctx.aws;
    let document = policy_document(ctx, policy)?;
    let versions = sdk_settled!(
        aws,
        [arn],
        "ListPolicyVersions",
        aws.iam.list_policy_versions().policy_arn(arn).send()
    )?
    .versions
    .unwrap_or_default();
    if versions.len() >= MAX_VERSIONS {
        // The oldest version that is not the default makes room.
        let oldest = versions
            .iter()
            .filter(|v| !v.is_default_version())
            .min_by_key(|v| v.create_date().map(|d| d.secs()))
            .and_then(|v| v.version_id());
        if let Some(oldest) = oldest {
            delete_version(aws, arn, oldest).await?;
        }
    }
    sdk!(
        "CreatePolicyVersion",
        aws.iam
            .create_policy_version()
            .policy_arn(arn)
            .policy_document(&document)
            .set_as_default(true)
            .send()
    )?;
    sdk!(
        "TagPolicy",
        aws.iam
            .tag_policy()
            .policy_arn(arn)
            .set_tags(Some(iam_tags(&ctx.tags(&resource.id))))
            .send()
    )
    .map(|_| ())
}

/// Every version but the default, then the policy; IAM refuses while a
/// role still holds it as its boundary, which the walk deletes first.
pub async fn delete(ctx: &Ctx<'_>, step: &Step, observed: &Observed) -> Result<(), AwsError> {
    let aws = ctx.aws;
    let arn = observed.physical_id.as_str();
    let versions = match sdk!(
        "ListPolicyVersions",
        aws.iam.list_policy_versions().policy_arn(arn).send()
    ) {
        Ok(answer) => answer.versions.unwrap_or_default(),
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    for version in versions.iter().filter(|v| !v.is_default_version()) {
        if let Some(id) = version.version_id() {
            delete_version(aws, arn, id).await?;
        }
    }
    step.retry_dependency(
        "the roles it bounds to be deleted",
        IN_USE_DEADLINE,
        || async {
            super::gone(
                sdk!(
                    "DeletePolicy",
                    aws.iam.delete_policy().policy_arn(arn).send()
                )
                .map(|_| ()),
            )
        },
    )
    .await
}

/// Deletes one version of the policy; one already gone counts as done.
async fn delete_version(aws: &Aws, arn: &str, version: &str) -> Result<(), AwsError> {
    super::gone(
        sdk!(
            "DeletePolicyVersion",
            aws.iam
                .delete_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send()
        )
        .map(|_| ()),
    )
}
