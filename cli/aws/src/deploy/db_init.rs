//! The database set-up task: a one-off ECS task, inside the VPC, that logs
//! in with the master password and gives each service its own PostgreSQL
//! role and database (`SERVICE db-init`, see service-kit's `provision`).
//! It runs a service's image under an execution role that alone may read
//! the master password; no service ever holds it. `deploy` runs it before
//! it rolls out a service whose role is not made yet, and marks the
//! service's secret once it is.

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{ContainerOverride, LaunchType};
use aws_sdk_secretsmanager::types::Tag;

use super::ecs::{ServiceSettings, register};
use super::task::{SpecError, StackFacts, TaskSpec};
use crate::{Aws, AwsError};
use blueprint::Blueprint;
use engine::plan::expand::service_database;
use engine::plan::outputs::{self as out, Own};

/// How RunTask marks the set-up task (and the test world recognises it).
pub const STARTED_BY: &str = "techctl-db-init";
/// The tag on a service's secret that says its role and database exist on
/// the instance it names.
pub const READY_TAG: &str = "techctl:database-ready";
const CONTAINER: &str = "db-init";

/// The set-up task's definition for `services`, run from `image` (one of
/// their images: every service binary can do the set-up).
pub fn task_spec(
    blueprint: &Blueprint,
    facts: &StackFacts,
    services: &[String],
    image: &str,
    architecture: image::Architecture,
) -> Result<TaskSpec, SpecError> {
    let text = |key: &str| {
        facts.text(key).map_err(|_| {
            SpecError(format!(
                "the stack secret has no output {key:?}: run `techctl up` first so the stack is complete"
            ))
        })
    };
    let roles: Vec<String> = services.iter().map(|s| service_database(s)).collect();
    let mut secrets = std::collections::BTreeMap::from([(
        "DB_PASSWORD".to_string(),
        format!("{}:{}::", facts.secret_arn, out::DB_PASSWORD),
    )]);
    for (service, role) in services.iter().zip(&roles) {
        secrets.insert(
            service_kit_password_variable(role),
            format!(
                "{}:{}::",
                text(&Own::SecretArn.of(service))?,
                out::DB_PASSWORD
            ),
        );
    }
    let environment = std::collections::BTreeMap::from([
        ("LOG_FORMAT".to_string(), "json".to_string()),
        ("DB_HOST".to_string(), text(out::DB_HOST)?),
        ("DB_PORT".to_string(), text(out::DB_PORT)?),
        ("DB_USER".to_string(), text(out::DB_USER)?),
        ("DB_NAME".to_string(), text(out::DB_NAME)?),
        ("DB_INIT_ROLES".to_string(), roles.join(",")),
    ]);
    Ok(TaskSpec {
        family: format!("{}-db-init", blueprint.stack_name()),
        cpu: "256".into(),
        memory: "512".into(),
        execution_role_arn: text(out::DB_INIT_ROLE_ARN)?,
        // It calls no AWS API: no task role.
        task_role_arn: String::new(),
        container: CONTAINER.into(),
        image: image.to_string(),
        cpu_architecture: architecture.ecs().to_string(),
        port: 0,
        environment,
        secrets,
        log_group: text(out::DB_INIT_LOG_GROUP)?,
        log_region: blueprint.region().to_string(),
        health_check: Vec::new(),
    })
}

/// The variable the set-up reads `role`'s password from (service-kit's
/// `provision::password_variable`, spelled the same).
fn service_kit_password_variable(role: &str) -> String {
    format!(
        "DB_INIT_PASSWORD_{}",
        role.to_ascii_uppercase().replace('-', "_")
    )
}

/// Times the set-up task is started when ECS could not initialise it:
/// right after `up` made its execution role, IAM may not let ECS use it yet
/// (the task stops with `ResourceInitializationError` before it runs).
const ATTEMPTS: usize = 3;

/// How one run of the task ended.
enum Ended {
    Succeeded,
    /// ECS could not start the container; worth another run.
    NotInitialised(String),
}

/// Registers and runs the set-up task, and waits for it to finish; an error
/// names the exit code, ECS's reason and where the task's log is.
pub async fn run(
    aws: &Aws,
    spec: &TaskSpec,
    network: &ServiceSettings,
    binary: &str,
    timeout: Duration,
    poll: Duration,
    stack: &str,
) -> Result<(), AwsError> {
    let definition = register(aws, spec, stack).await?;
    let mut attempt = 1;
    loop {
        let task = start(aws, network, &definition, binary).await?;
        match wait(aws, spec, network, &task, timeout, poll).await? {
            Ended::Succeeded => return Ok(()),
            Ended::NotInitialised(reason) if attempt < ATTEMPTS => {
                tracing::warn!(%task, %reason, "the database set-up task did not start; running it again");
                tokio::time::sleep(poll).await;
                attempt += 1;
            }
            Ended::NotInitialised(reason) => {
                return Err(AwsError::new(
                    "DescribeTasks",
                    format!(
                        "ECS could not start the database set-up task ({ATTEMPTS} tries; last: {reason}); \
                         check that its execution role {} may read the stack secret and the services' secrets",
                        spec.execution_role_arn
                    ),
                ));
            }
        }
    }
}

/// Starts one run of the task; its ARN.
async fn start(
    aws: &Aws,
    network: &ServiceSettings,
    definition: &str,
    binary: &str,
) -> Result<String, AwsError> {
    let started = sdk!(
        "RunTask",
        aws.ecs
            .run_task()
            .cluster(&network.cluster)
            .task_definition(definition)
            .launch_type(LaunchType::Fargate)
            .network_configuration(network.network()?)
            .started_by(STARTED_BY)
            .overrides(
                aws_sdk_ecs::types::TaskOverride::builder()
                    .container_overrides(
                        ContainerOverride::builder()
                            .name(CONTAINER)
                            .command(binary)
                            .command("db-init")
                            .build(),
                    )
                    .build(),
            )
            .send()
    )?;
    if let Some(failure) = started.failures().first() {
        return Err(AwsError::new(
            "RunTask",
            format!(
                "ECS did not start the database set-up task: {} {}",
                failure.reason().unwrap_or("(no reason)"),
                failure.detail().unwrap_or_default()
            ),
        ));
    }
    started
        .tasks()
        .first()
        .and_then(|t| t.task_arn())
        .map(str::to_string)
        .ok_or_else(|| AwsError::new("RunTask", "ECS answered with no task"))
}

/// Waits for `task` to stop. A task DescribeTasks does not know yet (it
/// is eventually consistent right after RunTask) is looked at again.
async fn wait(
    aws: &Aws,
    spec: &TaskSpec,
    network: &ServiceSettings,
    task: &str,
    timeout: Duration,
    poll: Duration,
) -> Result<Ended, AwsError> {
    let begun = Instant::now();
    // A Fargate task takes from seconds to a minute to start and run: look
    // soon, then less often, never slower than `poll` nor than 5 s.
    let slowest = poll.min(Duration::from_secs(5));
    let mut wait = Duration::from_millis(500).min(slowest);
    loop {
        let described = sdk!(
            "DescribeTasks",
            aws.ecs
                .describe_tasks()
                .cluster(&network.cluster)
                .tasks(task)
                .send()
        )?;
        let found = described.tasks().first();
        if let Some(t) = found.filter(|t| t.last_status() == Some("STOPPED")) {
            let exit = t
                .containers()
                .iter()
                .find(|c| c.name() == Some(CONTAINER))
                .and_then(|c| c.exit_code());
            let reason = t.stopped_reason().unwrap_or("no reason given");
            return match exit {
                Some(0) => Ok(Ended::Succeeded),
                None if reason.starts_with("ResourceInitializationError") => {
                    Ok(Ended::NotInitialised(reason.to_string()))
                }
                other => Err(AwsError::new(
                    "DescribeTasks",
                    format!(
                        "the database set-up task {task} stopped with {} ({reason}); its log is in {}",
                        other.map_or("no exit code".to_string(), |c| format!("exit code {c}")),
                        spec.log_group
                    ),
                )),
            };
        }
        if begun.elapsed() > timeout {
            return Err(AwsError::new(
                "DescribeTasks",
                format!(
                    "the database set-up task {task} was still {} after {}s; its log is in {}. Re-run the deploy once it has finished",
                    found.and_then(|t| t.last_status()).unwrap_or("unknown"),
                    timeout.as_secs(),
                    spec.log_group
                ),
            ));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(slowest);
    }
}

/// What tells one life of the stack's instance from the next: its
/// `DbiResourceId`, which a re-created instance of the same name does not
/// share (so a stack taken down and up again sets its roles up anew).
pub async fn instance_identity(aws: &Aws, identifier: &str) -> Result<Option<String>, AwsError> {
    match sdk!(
        "DescribeDBInstances",
        aws.rds
            .describe_db_instances()
            .db_instance_identifier(identifier)
            .send()
    ) {
        Ok(answer) => Ok(answer
            .db_instances()
            .first()
            .and_then(|db| db.dbi_resource_id())
            .map(str::to_string)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Marks each service's secret: its role and database exist on `instance`
/// (an [`instance_identity`]).
pub async fn mark_ready(
    aws: &Aws,
    facts: &StackFacts,
    services: &[String],
    instance: &str,
) -> Result<(), AwsError> {
    for service in services {
        let Ok(arn) = facts.text(&Own::SecretArn.of(service)) else {
            continue;
        };
        sdk!(
            "TagResource",
            aws.secrets
                .tag_resource()
                .secret_id(arn)
                .tags(Tag::builder().key(READY_TAG).value(instance).build())
                .send()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_variable_matches_service_kit_s() {
        assert_eq!(
            service_kit_password_variable("order_service"),
            "DB_INIT_PASSWORD_ORDER_SERVICE"
        );
    }
}
