//! ECR: one repository per service (`STACK/SERVICE`), scanned on push, with
//! a lifecycle policy that keeps the last N images. Known by name.

use aws_sdk_ecr::types::{ImageScanningConfiguration, Tag};
use serde_json::{Value, json};

use super::{Aws, AwsError, all_pages, in_stack, observed, tag_map};
use crate::{Ctx, Step};
use engine::plan::{Observed, Resource, Spec};

fn lifecycle_policy(keep: u32) -> String {
    json!({
        "rules": [{
            "rulePriority": 1,
            "description": format!("keep the last {keep} images"),
            "selection": {
                "tagStatus": "any",
                "countType": "imageCountMoreThan",
                "countNumber": keep,
            },
            "action": { "type": "expire" },
        }]
    })
    .to_string()
}

/// The image count a lifecycle policy keeps, if it is one of ours.
fn kept_images(policy: &str) -> u32 {
    serde_json::from_str::<Value>(policy)
        .ok()
        .and_then(|p| p.pointer("/rules/0/selection/countNumber")?.as_u64())
        .unwrap_or(0) as u32
}

pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let ecr = &aws.ecr;
    let repositories = all_pages(|token| async move {
        let page = sdk!(
            "DescribeRepositories",
            ecr.describe_repositories().set_next_token(token).send()
        )?;
        Ok((
            page.repositories().to_vec(),
            page.next_token().map(str::to_string),
        ))
    })
    .await?;
    let prefix = format!("{stack}/");
    let mut out = Vec::new();
    for repo in repositories {
        let (Some(name), Some(arn)) = (repo.repository_name(), repo.repository_arn()) else {
            continue;
        };
        if !name.starts_with(&prefix) {
            continue;
        }
        let tags = sdk!(
            "ListTagsForResource",
            ecr.list_tags_for_resource().resource_arn(arn).send()
        )?;
        let tags = tag_map(tags.tags().iter().map(|t| (t.key(), t.value())));
        if !in_stack(&tags, stack) {
            continue;
        }
        let keep = match sdk!(
            "GetLifecyclePolicy",
            ecr.get_lifecycle_policy().repository_name(name).send()
        ) {
            Ok(answer) => kept_images(answer.lifecycle_policy_text().unwrap_or_default()),
            Err(e) if e.is_not_found() => 0,
            Err(e) => return Err(e),
        };
        let spec = Spec::Repository {
            name: name.to_string(),
            scan_on_push: repo
                .image_scanning_configuration()
                .is_some_and(|c| c.scan_on_push()),
            keep_images: keep,
        };
        out.push(
            observed(name, tags, spec, None)
                .with_attribute("arn", arn)
                .with_attribute("uri", repo.repository_uri().unwrap_or_default()),
        );
    }
    Ok(out)
}

fn ecr_tags(ctx: &Ctx<'_>, resource: &Resource) -> Vec<Tag> {
    ctx.tags(&resource.id)
        .into_iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

fn scanning(on: bool) -> ImageScanningConfiguration {
    ImageScanningConfiguration::builder()
        .scan_on_push(on)
        .build()
}

pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let Spec::Repository {
        name, scan_on_push, ..
    } = &resource.spec
    else {
        return Err(AwsError::new("create", "not an ECR repository"));
    };
    let created = sdk!(
        "CreateRepository",
        ctx.aws
            .ecr
            .create_repository()
            .repository_name(name)
            .image_scanning_configuration(scanning(*scan_on_push))
            .set_tags(Some(ecr_tags(ctx, resource)))
            .send()
    );
    let repo = match created {
        Ok(answer) => answer.repository,
        Err(e) if e.is_already_exists() => None,
        Err(e) => return Err(e),
    };
    let repo = match repo {
        Some(repo) => repo,
        None => sdk!(
            "DescribeRepositories",
            ctx.aws
                .ecr
                .describe_repositories()
                .repository_names(name)
                .send()
        )?
        .repositories()
        .first()
        .cloned()
        .ok_or_else(|| AwsError::new("DescribeRepositories", format!("{name} is not listed")))?,
    };
    ctx.remember_attribute(
        &resource.id,
        "arn",
        repo.repository_arn().unwrap_or_default(),
    );
    ctx.remember_attribute(
        &resource.id,
        "uri",
        repo.repository_uri().unwrap_or_default(),
    );
    update(ctx, step, resource, name).await?;
    Ok(name.clone())
}

pub async fn update(
    ctx: &Ctx<'_>,
    _step: &Step,
    resource: &Resource,
    name: &str,
) -> Result<(), AwsError> {
    let Spec::Repository {
        scan_on_push,
        keep_images,
        ..
    } = &resource.spec
    else {
        return Err(AwsError::new("update", "not an ECR repository"));
    };
    let ecr = &ctx.aws.ecr;
    sdk!(
        "PutImageScanningConfiguration",
        ecr.put_image_scanning_configuration()
            .repository_name(name)
            .image_scanning_configuration(scanning(*scan_on_push))
            .send()
    )?;
    sdk!(
        "PutLifecyclePolicy",
        ecr.put_lifecycle_policy()
            .repository_name(name)
            .lifecycle_policy_text(lifecycle_policy(*keep_images))
            .send()
    )?;
    let arn = match ctx.attribute(&resource.id, "arn") {
        Ok(arn) => arn,
        Err(_) => return Ok(()),
    };
    sdk!(
        "TagResource",
        ecr.tag_resource()
            .resource_arn(arn)
            .set_tags(Some(ecr_tags(ctx, resource)))
            .send()
    )
    .map(|_| ())
}

pub async fn delete(ctx: &Ctx<'_>, _step: &Step, observed: &Observed) -> Result<(), AwsError> {
    // Images go with the repository: `down` leaves nothing behind.
    super::gone(
        sdk!(
            "DeleteRepository",
            ctx.aws
                .ecr
                .delete_repository()
                .repository_name(&observed.physical_id)
                .force(true)
                .send()
        )
        .map(|_| ()),
    )
}

/// ECR's token for pushing images: base64 of `AWS:password`, as HTTP Basic
/// authentication wants it. It lasts 12 hours and is never printed.
pub async fn authorization_token(aws: &Aws) -> Result<String, AwsError> {
    let answer = sdk!(
        "GetAuthorizationToken",
        aws.ecr.get_authorization_token().send()
    )?;
    answer
        .authorization_data()
        .first()
        .and_then(|d| d.authorization_token())
        .map(str::to_string)
        .ok_or_else(|| AwsError::new("GetAuthorizationToken", "no token in the answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_policy_reads_back_its_count() {
        assert_eq!(kept_images(&lifecycle_policy(10)), 10);
        assert_eq!(kept_images("not json"), 0);
    }
}
