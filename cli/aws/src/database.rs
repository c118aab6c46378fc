//! RDS PostgreSQL: the DB subnet group over the private subnets and the
//! instance, encrypted, private, backed up, reachable only from the
//! services' security group. Both are known by their name (the stack's).
//!
//! The master password is made by the stack secret's step and read from
//! the secret here: it is stored before the instance exists, so no run,
//! however interrupted, leaves an instance whose password nobody knows.

use std::time::Duration;

use aws_sdk_rds::types::{DbInstance, Tag};

use super::{Aws, AwsError, all_pages, in_stack, observed, tag_map};
use crate::{Ctx, RetryInUse, Step};
use blueprint::engine_version::Requirement;
use engine::clock::{AwsClock, Pace};
use engine::plan::{Kind, LogicalId, Observed, Resource, Spec};

const AVAILABLE_DEADLINE: Duration = Duration::from_secs(60 * 60);
const DELETED_DEADLINE: Duration = Duration::from_secs(60 * 60);
const IN_USE_DEADLINE: Duration = Duration::from_secs(10 * 60);
const POLL: Duration = Duration::from_secs(15);

fn rds_tags(ctx: &Ctx<'_>, id: &LogicalId) -> Vec<Tag> {
    ctx.tags(id)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tags_of(tags: &[Tag]) -> std::collections::BTreeMap<String, String> {
    tag_map(
        tags.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let rds = &aws.rds;
    let subnet_groups = all_pages(|marker| async move {
        let page = sdk!(
            "DescribeDBSubnetGroups",
            rds.describe_db_subnet_groups().set_marker(marker).send()
        )?;
        Ok((
            page.db_subnet_groups().to_vec(),
            page.marker().map(str::to_string),
        ))
    })
    .await?;
    let instances = all_pages(|marker| async move {
        let page = sdk!(
            "DescribeDBInstances",
            rds.describe_db_instances().set_marker(marker).send()
        )?;
        Ok((
            page.db_instances().to_vec(),
            page.marker().map(str::to_string),
        ))
    })
    .await?;
    let mut out = Vec::new();
    for g in &subnet_groups {
        let (Some(name), Some(arn)) = (g.db_subnet_group_name(), g.db_subnet_group_arn()) else {
            continue;
        };
        let tags = sdk!(
            "ListTagsForResource",
            rds.list_tags_for_resource().resource_name(arn).send()
        )?;
        let tags = tags_of(tags.tag_list());
        if !in_stack(&tags, stack) {
            continue;
        }
        let spec = Spec::DbSubnetGroup {
            name: name.to_string(),
            subnets: g
                .subnets()
                .iter()
                .filter_map(|s| s.subnet_identifier())
                .map(LogicalId::foreign)
                .collect(),
        };
        let state = g.subnet_group_status().map(str::to_ascii_lowercase);
        out.push(observed(
            name,
            tags,
            spec,
            state.filter(|s| s != "complete"),
        ));
    }
    for db in &instances {
        let tags = tags_of(db.tag_list());
        let Some(identifier) = db
            .db_instance_identifier()
            .filter(|_| in_stack(&tags, stack))
        else {
            continue;
        };
        let mut seen = observed(
            identifier,
            tags,
            instance_spec(db),
            db.db_instance_status().map(str::to_string),
        );
        if let Some(address) = db.endpoint().and_then(|e| e.address()) {
            seen = seen.with_attribute("endpoint", address);
        }
        out.push(seen);
    }
    Ok(out)
}

fn instance_spec(db: &DbInstance) -> Spec {
    Spec::DbInstance {
        identifier: db.db_instance_identifier().unwrap_or_default().to_string(),
        engine_version: db.engine_version().unwrap_or_default().to_string(),
        instance_class: db.db_instance_class().unwrap_or_default().to_string(),
        allocated_storage_gb: db.allocated_storage().unwrap_or_default() as u32,
        backup_retention_days: db.backup_retention_period().unwrap_or_default() as u32,
        port: db
            .endpoint()
            .and_then(|e| e.port())
            .or(db.db_instance_port().filter(|p| *p != 0))
            .unwrap_or_default() as u16,
        master_username: db.master_username().unwrap_or_default().to_string(),
        database_name: db.db_name().unwrap_or_default().to_string(),
        encrypted: db.storage_encrypted().unwrap_or(false),
        publicly_accessible: db.publicly_accessible().unwrap_or(true),
        subnet_group: LogicalId::foreign(
            db.db_subnet_group()
                .and_then(|g| g.db_subnet_group_name())
                .unwrap_or_default(),
        ),
        security_group: LogicalId::foreign(
            db.vpc_security_groups()
                .first()
                .and_then(|g| g.vpc_security_group_id())
                .unwrap_or_default(),
        ),
    }
}

pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let rds = &ctx.aws.rds;
    match &resource.spec {
        Spec::DbSubnetGroup { name, subnets } => {
            let subnets = ctx.resolve_all(subnets)?;
            let created = sdk!(
                "CreateDBSubnetGroup",
                rds.create_db_subnet_group()
                    .db_subnet_group_name(name)
                    .db_subnet_group_description(format!(
                        "techctl stack {}: private subnets",
                        ctx.stack
                    ))
                    .set_subnet_ids(Some(subnets))
                    .set_tags(Some(rds_tags(ctx, &resource.id)))
                    .send()
            );
            match created {
                Ok(_) => Ok(name.clone()),
                Err(e) if e.is_already_exists() => {
                    update(ctx, step, resource, name).await?;
                    Ok(name.clone())
                }
                Err(e) => Err(e),
            }
        }
        Spec::DbInstance {
            identifier,
            engine_version,
            instance_class,
            allocated_storage_gb,
            backup_retention_days,
            port,
            master_username,
            database_name,
            encrypted,
            publicly_accessible,
            subnet_group,
            security_group,
        } => {
            let password = super::secrets::database_password(ctx).await?;
            let version = super::preflight::engine_version(ctx.aws, engine_version).await?;
            let created = sdk!(
                "CreateDBInstance",
                rds.create_db_instance()
                    .db_instance_identifier(identifier)
                    .engine("postgres")
                    .engine_version(version)
                    .db_instance_class(instance_class)
                    .allocated_storage(*allocated_storage_gb as i32)
                    .storage_type("gp3")
                    .backup_retention_period(*backup_retention_days as i32)
                    .port(i32::from(*port))
                    .master_username(master_username)
                    .master_user_password(password)
                    .db_name(database_name)
                    .storage_encrypted(*encrypted)
                    .publicly_accessible(*publicly_accessible)
                    .db_subnet_group_name(ctx.resolve(subnet_group)?)
                    .vpc_security_group_ids(ctx.resolve(security_group)?)
                    .copy_tags_to_snapshot(true)
                    .auto_minor_version_upgrade(true)
                    .deletion_protection(false)
                    .set_tags(Some(rds_tags(ctx, &resource.id)))
                    .send()
            );
            match created {
                Ok(_) => {}
                // A retry after a lost answer, or an instance left by an
                // interrupted run: the same instance.
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
            let pace = ctx.pace(
                AwsClock::typical().create(Kind::DbInstance),
                AVAILABLE_DEADLINE,
            );
            let db = wait_available(step, ctx.aws, identifier, pace).await?;
            remember_endpoint(ctx, &resource.id, &db)?;
            Ok(identifier.clone())
        }
        _ => Err(AwsError::new("create", "not an RDS resource")),
    }
}

fn remember_endpoint(ctx: &Ctx<'_>, id: &LogicalId, db: &DbInstance) -> Result<(), AwsError> {
    let address = db
        .endpoint()
        .and_then(|e| e.address())
        .ok_or_else(|| AwsError::new("DescribeDBInstances", "the instance has no endpoint"))?;
    ctx.remember_attribute(id, "endpoint", address);
    Ok(())
}

pub async fn update(
    ctx: &Ctx<'_>,
    step: &Step,
    resource: &Resource,
    physical: &str,
) -> Result<(), AwsError> {
    let rds = &ctx.aws.rds;
    let arn = match &resource.spec {
        Spec::DbSubnetGroup { subnets, .. } => {
            let subnets = ctx.resolve_all(subnets)?;
            let answer = sdk!(
                "ModifyDBSubnetGroup",
                rds.modify_db_subnet_group()
                    .db_subnet_group_name(physical)
                    .set_subnet_ids(Some(subnets))
                    .send()
            )?;
            match answer
                .db_subnet_group()
                .and_then(|g| g.db_subnet_group_arn())
            {
                Some(arn) => arn.to_string(),
                None => sdk!(
                    "DescribeDBSubnetGroups",
                    rds.describe_db_subnet_groups()
                        .db_subnet_group_name(physical)
                        .send()
                )?
                .db_subnet_groups()
                .first()
                .and_then(|g| g.db_subnet_group_arn())
                .ok_or_else(|| AwsError::new("ModifyDBSubnetGroup", "no subnet group ARN"))?
                .to_string(),
            }
        }
        Spec::DbInstance {
            engine_version,
            instance_class,
            allocated_storage_gb,
            backup_retention_days,
            port,
            security_group,
            ..
        } => {
            // An instance still being created (an interrupted `up`) or
            // modified cannot be changed yet; how far along it is is not
            // known, so it is polled steadily.
            let db = wait_available(
                step,
                ctx.aws,
                physical,
                ctx.steady(POLL, AVAILABLE_DEADLINE),
            )
            .await?;
            let now = instance_spec(&db);
            let Spec::DbInstance {
                engine_version: now_version,
                instance_class: now_class,
                allocated_storage_gb: now_storage,
                backup_retention_days: now_backups,
                port: now_port,
                ..
            } = &now
            else {
                return Err(AwsError::new(
                    "update",
                    "the instance spec has another kind",
                ));
            };
            let group = ctx.resolve(security_group)?;
            let now_group = db
                .vpc_security_groups()
                .first()
                .and_then(|g| g.vpc_security_group_id())
                .unwrap_or_default();
            let mut modify = rds
                .modify_db_instance()
                .db_instance_identifier(physical)
                .apply_immediately(true);
            let mut changed = false;
            // Only ever upward: a newer minor (RDS's own upgrade) or a
            // newer major is left as it is.
            let in_sync =
                Requirement::parse(engine_version).is_some_and(|r| r.accepts(now_version));
            if !in_sync {
                let target = super::preflight::engine_version(ctx.aws, engine_version).await?;
                let major = |v: &str| v.split('.').next().unwrap_or_default().to_string();
                modify = modify
                    .allow_major_version_upgrade(major(now_version) != major(&target))
                    .engine_version(target);
                changed = true;
            }
            if now_class != instance_class {
                modify = modify.db_instance_class(instance_class);
                changed = true;
            }
            if now_storage != allocated_storage_gb {
                modify = modify.allocated_storage(*allocated_storage_gb as i32);
                changed = true;
            }
            if now_backups != backup_retention_days {
                modify = modify.backup_retention_period(*backup_retention_days as i32);
                changed = true;
            }
            if now_port != port {
                modify = modify.db_port_number(i32::from(*port));
                changed = true;
            }
            if now_group != group {
                modify = modify.vpc_security_group_ids(group);
                changed = true;
            }
            let db = if changed {
                sdk!("ModifyDBInstance", modify.send())?;
                let pace = ctx.pace(
                    AwsClock::typical().update(Kind::DbInstance),
                    AVAILABLE_DEADLINE,
                );
                wait_available(step, ctx.aws, physical, pace).await?
            } else {
                db
            };
            remember_endpoint(ctx, &resource.id, &db)?;
            db.db_instance_arn().unwrap_or_default().to_string()
        }
        _ => return Err(AwsError::new("update", "not an RDS resource")),
    };
    sdk!(
        "AddTagsToResource",
        rds.add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(rds_tags(ctx, &resource.id)))
            .send()
    )
    .map(|_| ())
}

pub async fn delete(ctx: &Ctx<'_>, step: &Step, observed: &Observed) -> Result<(), AwsError> {
    let rds = &ctx.aws.rds;
    let name = observed.physical_id.as_str();
    match &observed.spec {
        Spec::DbInstance { .. } => {
            let keep = ctx.options.keep_data;
            let snapshot = final_snapshot_name(name);
            // RDS refuses the delete while the instance is busy (creating,
            // backing up, being modified): wait for a state it accepts and
            // ask again; an instance already deleting is simply waited on.
            let accepted = step
                .wait_for_state(
                    "the database instance to accept its deletion",
                    ctx.steady(POLL, AVAILABLE_DEADLINE),
                    || async {
                        let mut request = rds
                            .delete_db_instance()
                            .db_instance_identifier(name)
                            .skip_final_snapshot(!keep)
                            .delete_automated_backups(!keep);
                        if keep {
                            request = request.final_db_snapshot_identifier(&snapshot);
                        }
                        match sdk!("DeleteDBInstance", request.send()) {
                            Ok(_) => Ok(Ok(true)),
                            Err(e) if e.is_not_found() => Ok(Ok(false)),
                            Err(e) if e.code.as_deref() == Some("InvalidDBInstanceState") => {
                                let status = match describe(ctx.aws, name).await {
                                    Ok(db) => {
                                        db.db_instance_status().unwrap_or_default().to_string()
                                    }
                                    Err(gone) if gone.is_not_found() => return Ok(Ok(false)),
                                    Err(other) => return Err(other),
                                };
                                match refused_delete(&status, keep) {
                                    Refusal::AlreadyDeleting => Ok(Ok(true)),
                                    Refusal::Busy => Ok(Err(Some(status))),
                                    Refusal::Final(why) => Err(AwsError {
                                        message: format!("{}: {why}", e.message),
                                        ..e
                                    }),
                                }
                            }
                            Err(e) => Err(e),
                        }
                    },
                )
                .await?;
            if !accepted {
                return Ok(());
            }
            step.wait_for_state(
                "the database instance to be deleted",
                ctx.pace(
                    AwsClock::typical().delete(Kind::DbInstance),
                    DELETED_DEADLINE,
                ),
                || async {
                    match describe(ctx.aws, name).await {
                        Ok(db) => Ok(Err(db.db_instance_status().map(str::to_string))),
                        Err(e) if e.is_not_found() => Ok(Ok(())),
                        Err(e) => Err(e),
                    }
                },
            )
            .await
        }
        Spec::DbSubnetGroup { .. } => {
            step.retry_dependency(
                "the database instance to let go of the subnet group",
                IN_USE_DEADLINE,
                || async {
                    sdk!(
                        "DeleteDBSubnetGroup",
                        rds.delete_db_subnet_group()
                            .db_subnet_group_name(name)
                            .send()
                    )
                    .map(|_| ())
                },
            )
            .await
        }
        _ => Err(AwsError::new("delete", "not an RDS resource")),
    }
}

/// Why RDS refused to delete an instance in `status`, and what follows.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// An earlier, interrupted `down` already asked: wait for it to go.
    AlreadyDeleting,
    /// A passing state: the delete is accepted once it is over.
    Busy,
    /// Asking again will not help; the reason says what will.
    Final(String),
}

fn refused_delete(status: &str, keep_data: bool) -> Refusal {
    match status {
        "deleting" => Refusal::AlreadyDeleting,
        "creating"
        | "backing-up"
        | "modifying"
        | "upgrading"
        | "rebooting"
        | "starting"
        | "stopping"
        | "maintenance"
        | "renaming"
        | "resetting-master-credentials"
        | "storage-optimization"
        | "configuring-enhanced-monitoring"
        | "configuring-iam-database-auth"
        | "configuring-log-exports"
        | "moving-to-vpc"
        | "converting-to-vpc"
        | "available" => Refusal::Busy,
        "failed"
        | "incompatible-restore"
        | "incompatible-network"
        | "incompatible-parameters"
        | "inaccessible-encryption-credentials"
            if keep_data =>
        {
            Refusal::Final(format!(
                "the instance is {status}, and RDS takes no final snapshot of an instance in that state; \
                 run `techctl down` without --keep-data to delete it without one"
            ))
        }
        other => Refusal::Final(format!(
            "the instance is {other}; see its events in the RDS console, then re-run `techctl down`"
        )),
    }
}

/// The snapshot `down --keep-data` leaves: named after the instance and the
/// minute it was taken, so repeated runs never collide.
fn final_snapshot_name(instance: &str) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .take(12)
        .collect();
    format!("{instance}-final-{stamp}")
}

async fn describe(aws: &Aws, name: &str) -> Result<DbInstance, AwsError> {
    let answer = sdk!(
        "DescribeDBInstances",
        aws.rds
            .describe_db_instances()
            .db_instance_identifier(name)
            .send()
    )?;
    answer
        .db_instances()
        .first()
        .cloned()
        .ok_or_else(|| AwsError {
            code: Some("DBInstanceNotFound".into()),
            ..AwsError::new("DescribeDBInstances", format!("{name} is not listed"))
        })
}

async fn wait_available(
    step: &Step,
    aws: &Aws,
    name: &str,
    pace: Pace,
) -> Result<DbInstance, AwsError> {
    step.wait_for_state(
        "the database instance to become available",
        pace,
        || async {
            let db = describe(aws, name).await?;
            match db.db_instance_status() {
                Some("available") => Ok(Ok(db)),
                Some(
                    status @ ("failed"
                    | "incompatible-network"
                    | "incompatible-parameters"
                    | "incompatible-restore"
                    | "inaccessible-encryption-credentials"
                    | "storage-full"
                    | "deleting"),
                ) => Err(AwsError::new(
                    "CreateDBInstance",
                    format!(
                        "database instance {name} is {status}; see its events in the RDS console"
                    ),
                )),
                other => Ok(Err(other.map(str::to_string))),
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_delete_is_waited_out_only_where_waiting_helps() {
        assert_eq!(refused_delete("deleting", false), Refusal::AlreadyDeleting);
        for busy in ["backing-up", "creating", "modifying", "upgrading"] {
            assert_eq!(refused_delete(busy, true), Refusal::Busy, "{busy}");
        }
        let Refusal::Final(why) = refused_delete("incompatible-network", true) else {
            panic!("a final snapshot of a broken instance never works");
        };
        assert!(why.contains("without --keep-data"), "{why}");
        assert!(matches!(
            refused_delete("stopped", false),
            Refusal::Final(_)
        ));
    }
}
